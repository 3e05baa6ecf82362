// Control: the command types per equipment with their interlocks' state now, a value to send, the two-step
// confirmation of dangerous commands, the refusal reason when a rule says no, and the audit log of every attempt.

import { getJSON } from "../api.js";
import { session } from "../auth.js";
import { dateTime, html, humanize, number, raw } from "../format.js";
import { toast } from "../toast.js";

const REFRESH_MS = 3000;
const AUDIT_ROWS = 50;
const DECISION_LABELS = {
  executed: "Executed", failed: "Device refused", timeout: "No answer", refused: "Refused",
  confirm_required: "Awaiting confirmation", authorized: "Authorized",
};

export function title() {
  return "Control";
}

/** POST a command; {status, body} whatever the status (refusals carry their reason in the body). */
async function post(path, body) {
  const response = await fetch(new URL(path, window.location.origin), {
    method: "POST", headers: { Accept: "application/json", "Content-Type": "application/json" }, body: JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch { /* not JSON */ }
  if (response.status === 401) window.dispatchEvent(new CustomEvent("authrequired", { detail: data.detail }));
  return { status: response.status, body: data.detail && typeof data.detail === "object" ? data.detail : data };
}

function valueInput(c) {
  const v = c.value;
  const id = `value-${c.name}`;
  if (v.type === "enum") {
    const states = Object.entries(v.states);
    return html`<select id="${id}" data-value aria-label="Value of ${c.name}">${states.map(([code, label]) => html`<option value="${code}">${label}</option>`)}</select>`;
  }
  if (v.type === "bool") {
    return html`<select id="${id}" data-value aria-label="Value of ${c.name}"><option value="1">true</option><option value="0">false</option></select>`;
  }
  const step = v.type === "int" ? "1" : "any";
  return html`<span class="ctl-number"><input id="${id}" data-value type="number" step="${step}" aria-label="Value of ${c.name}"
    placeholder="${number(v.min)} … ${number(v.max)}"><span class="faint">${v.unit}</span></span>`;
}

function interlockChips(c) {
  if (!c.interlocks.length) return html`<span class="faint">none</span>`;
  return c.interlocks.map((i) => html`<span class="ilock il-${i.state}" data-testid="interlock" data-state="${i.state}"
    title="${i.expression}: ${i.detail}">${i.name}</span>`);
}

export function mount(el) {
  el.innerHTML = html`<div class="control-page" data-testid="control-page">
    <div class="alarms-head"><h1>Control</h1><span class="spacer"></span>
      <span class="faint" id="ctl-who"></span></div>
    <div id="ctl-groups"><div class="empty">Loading commands…</div></div>
    <section class="panel" style="margin-top:var(--gap)">
      <div class="panel-head"><h2>Audit log</h2><span class="faint">every attempt, refused ones too; append-only</span></div>
      <div class="table-wrap"><table class="grid" data-testid="audit-table">
        <thead><tr><th>When</th><th>User</th><th>Command</th><th>Value</th><th>Step</th><th>Decision</th>
          <th>Reason / device answer</th><th class="r">Round trip</th></tr></thead>
        <tbody id="audit-rows"></tbody></table></div>
    </section>
    <dialog class="panel dialog" id="confirm-dialog" aria-labelledby="confirm-title" data-testid="confirm-dialog">
      <form method="dialog" id="confirm-form">
        <h2 id="confirm-title">Confirm command</h2>
        <p id="confirm-what"></p>
        <p class="faint" id="confirm-expiry"></p>
        <div class="dialog-buttons"><button class="button" type="button" id="confirm-cancel">Cancel</button>
          <button class="button primary danger" type="submit" id="confirm-ok">Confirm and send</button></div>
      </form>
    </dialog>
  </div>`.html;
  const groupsEl = el.querySelector("#ctl-groups");
  const auditEl = el.querySelector("#audit-rows");
  const dialog = el.querySelector("#confirm-dialog");
  let commands = [];
  let pending = null; // {name, value, token, expires}
  let stopped = false;
  let busy = false;

  el.querySelector("#ctl-who").textContent = session.enabled ? `${session.name} (${session.role})` : "auth off: acting as admin";

  function showResult(name, status, body) {
    const box = groupsEl.querySelector(`[data-result="${CSS.escape(name)}"]`);
    if (!box) return;
    const ok = body.decision === "executed";
    const text = body.decision === "refused" || status >= 400 && !body.decision
      ? `Refused (${status}): ${body.reason ?? body.detail ?? "not allowed"}`
      : ok ? `Executed: ${body.answer ?? ""}${body.round_trip_ms != null ? ` (${number(body.round_trip_ms)} ms)` : ""}`
        : `${DECISION_LABELS[body.decision] ?? body.decision}: ${body.answer ?? body.reason ?? ""}`;
    box.textContent = text;
    box.dataset.kind = ok ? "ok" : body.decision === "confirm_required" ? "info" : "bad";
    box.hidden = false;
  }

  function renderCommands() {
    if (!commands.length) {
      groupsEl.innerHTML = '<div class="empty">No command types: add a <code>control:</code> section to plant.yaml (docs/control.md).</div>';
      return;
    }
    const focused = document.activeElement?.id;
    const kept = new Map([...groupsEl.querySelectorAll("[data-value]")].map((i) => [i.id, i.value]));
    const results = new Map([...groupsEl.querySelectorAll("[data-result]")].map((b) => [b.dataset.result, b]));
    const byEq = new Map();
    for (const c of commands) {
      if (!byEq.has(c.equipment)) byEq.set(c.equipment, []);
      byEq.get(c.equipment).push(c);
    }
    groupsEl.innerHTML = [...byEq].map(([eq, list]) => html`<section class="panel ctl-eq" data-equipment="${eq}">
      <div class="panel-head"><h2>${eq.split("/").pop()}</h2><span class="path mono faint">${eq}</span></div>
      <div class="table-wrap"><table class="grid"><thead><tr><th>Command</th><th>Kind</th><th>Via</th><th>Interlocks</th>
        <th>Value</th><th class="r"></th></tr></thead><tbody>
      ${list.map((c) => {
        const allowed = session.can(c.role);
        const why = session.needs(c.role);
        return html`<tr data-testid="command-row" data-command="${c.name}" data-ready="${String(c.ready)}">
          <td><b>${c.name}</b>${c.confirm ? html` <span class="ilock il-confirm" title="Needs a second, confirming request">confirm</span>` : ""}
            <div class="faint small">${c.description}</div></td>
          <td>${humanize(c.kind)}<div class="faint small">role ${c.role}</div></td>
          <td class="small"><span class="mono">${c.protocol}</span><div class="faint small mono">${c.target}</div></td>
          <td>${interlockChips(c)}</td>
          <td class="nowrap">${valueInput(c)}</td>
          <td class="r nowrap"><button class="button small primary" type="button" data-issue="${c.name}"
            ${raw(allowed ? "" : "disabled")} title="${why || `Send ${c.name}`}">Send</button></td></tr>
          <tr class="ctl-result-row"><td colspan="6"><div class="ctl-result" data-result="${c.name}" data-testid="control-result" hidden></div></td></tr>`;
      })}</tbody></table></div></section>`.html).join("");
    for (const [id, v] of kept) { const i = groupsEl.querySelector(`#${CSS.escape(id)}`); if (i) i.value = v; }
    for (const [name, old] of results) {
      const box = groupsEl.querySelector(`[data-result="${CSS.escape(name)}"]`);
      if (box && !old.hidden) { box.textContent = old.textContent; box.dataset.kind = old.dataset.kind; box.hidden = false; }
    }
    if (focused) groupsEl.querySelector(`#${CSS.escape(focused)}`)?.focus();
  }

  function renderAudit(rows) {
    auditEl.innerHTML = rows.length ? rows.map((r) => html`<tr data-testid="audit-row" data-decision="${r.decision}" data-command="${r.command}">
      <td class="num nowrap">${dateTime(r.ts_ns / 1e6)}</td><td>${r.user} <span class="faint small">${r.role}</span></td>
      <td title="${r.target}">${r.command}</td><td>${r.value_text}</td><td>${r.step}</td>
      <td><span class="decision d-${r.decision}">${DECISION_LABELS[r.decision] ?? r.decision}</span>${r.rule ? html`<div class="faint small mono">${r.rule}</div>` : ""}</td>
      <td class="small">${r.answer ?? r.reason}</td>
      <td class="r num">${r.round_trip_ms != null ? `${number(r.round_trip_ms)} ms` : ""}</td></tr>`.html).join("")
      : '<tr><td colspan="8" class="empty">No command sent yet.</td></tr>';
  }

  async function refresh() {
    try {
      const [list, audit] = await Promise.all([getJSON("/api/control/commands"), getJSON("/api/control/audit", { limit: AUDIT_ROWS })]);
      if (stopped) return;
      commands = list;
      if (!busy) renderCommands();
      renderAudit(audit);
    } catch (err) {
      if (!stopped && err.status === 404) groupsEl.innerHTML = `<div class="empty">${err.message}</div>`;
    }
  }

  function readValue(name) {
    const input = groupsEl.querySelector(`#${CSS.escape(`value-${name}`)}`);
    const text = input?.value ?? "";
    return input?.type === "number" ? (text === "" ? "" : Number(text)) : Number(text);
  }

  async function issue(name) {
    const value = readValue(name);
    busy = true;
    try {
      const { status, body } = await post(`/api/control/commands/${encodeURIComponent(name)}`, { value });
      showResult(name, status, body);
      if (status === 202 && body.token) {
        pending = { name, value, token: body.token, expires: Date.now() + body.expires_in_s * 1000 };
        dialog.querySelector("#confirm-what").textContent = body.summary;
        tickExpiry();
        dialog.showModal();
      }
    } catch (err) {
      toast(`Sending ${name} failed: ${err.message}`, "error");
    } finally {
      busy = false;
      refresh();
    }
  }

  function tickExpiry() {
    if (!pending) return;
    const left = Math.max(0, Math.ceil((pending.expires - Date.now()) / 1000));
    dialog.querySelector("#confirm-expiry").textContent = left > 0 ? `Valid for ${left} s more.` : "Expired: the platform will refuse it.";
  }

  async function confirmPending() {
    const p = pending;
    pending = null;
    dialog.close();
    if (!p) return;
    const { status, body } = await post(`/api/control/commands/${encodeURIComponent(p.name)}/confirm`, { value: p.value, token: p.token });
    showResult(p.name, status, body);
    refresh();
  }

  groupsEl.addEventListener("click", (e) => {
    const button = e.target.closest("[data-issue]");
    if (button) issue(button.dataset.issue);
  });
  dialog.querySelector("#confirm-form").addEventListener("submit", (e) => { e.preventDefault(); confirmPending(); });
  dialog.querySelector("#confirm-cancel").addEventListener("click", () => {
    if (pending) showResult(pending.name, 0, { decision: "cancelled", reason: "Not confirmed: nothing was sent." });
    pending = null;
    dialog.close();
  });

  refresh();
  const timer = setInterval(() => { tickExpiry(); if (!dialog.open) refresh(); }, REFRESH_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
    if (dialog.open) dialog.close();
  };
}
