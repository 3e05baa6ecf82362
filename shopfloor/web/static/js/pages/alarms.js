// Alarms: the active list (most urgent first) with acknowledge and shelve, the shelved/suppressed/out-of-service
// list with unshelve, and the journal of every transition with who and when, filtered and paged.

import { alarms, equipmentOf, isUnacked, PRIORITIES, PRIORITY_SHORT, STATE_LABELS, displayState } from "../alarms.js";
import { getJSON, sendJSON } from "../api.js";
import { session } from "../auth.js";
import { catalog } from "../catalog.js";
import { dateTime, duration, html, humanize, number, raw, when } from "../format.js";
import { actionFailed, toast } from "../toast.js";

const SHELVE_MINUTES = [[15, "15 min"], [30, "30 min"], [60, "1 h"], [120, "2 h"], [240, "4 h"], [480, "8 h"]];
const JOURNAL_PAGE = 50;
const EVENT_LABELS = {
  activated: "Activated", cleared: "Cleared", acknowledged: "Acknowledged", shelved: "Shelved", unshelved: "Unshelved",
  shelve_expired: "Shelving ended", suppressed: "Suppressed", unsuppressed: "Unsuppressed",
  removed_from_service: "Out of service", returned_to_service: "Back in service", escalated: "Escalated",
  removed: "Removed", rule_created: "Rule created", rule_updated: "Rule changed", rule_deleted: "Rule deleted",
};

export function title(route) {
  return route.path === "journal" ? "Alarm journal" : "Alarms";
}

export function mount(el, route) {
  const journal = route.path === "journal";
  el.innerHTML = html`<div class="alarms-page" data-testid="alarms-page">
    <div class="alarms-head">
      <h1>Alarms</h1>
      <nav class="seg" aria-label="Alarm views">
        <a href="#/alarms" class="${journal ? "" : "on"}" aria-current="${journal ? "false" : "page"}">Active</a>
        <a href="#/alarms/journal" class="${journal ? "on" : ""}" aria-current="${journal ? "page" : "false"}">Journal</a>
      </nav>
      <span class="spacer"></span>
      <span class="legend-prio" aria-label="Priorities">${PRIORITIES.map((p) => html`<span class="prio p-${p}">${PRIORITY_SHORT[p]}</span><span>${p}</span>`)}</span>
    </div>
    <div id="view"></div>
  </div>`.html;
  const view = el.querySelector("#view");
  return journal ? journalView(view, route) : activeView(view);
}

// ------------------------------------------------------------------------------------------------------- active

function activeView(el) {
  el.innerHTML = `<section class="panel">
      <div class="panel-head">
        <h2>Active</h2><span class="faint" id="active-count"></span><span class="spacer"></span>
        <button class="button" type="button" id="ack-selected" disabled>Acknowledge selected</button>
      </div>
      <div class="table-wrap alarm-table"><table class="grid">
        <thead><tr><th class="check"><input type="checkbox" id="select-all" aria-label="Select all unacknowledged"></th>
          <th>Priority</th><th>Since</th><th>Equipment</th><th>Alarm</th><th class="r">Value</th><th>State</th><th class="r">Actions</th></tr></thead>
        <tbody id="active-rows"></tbody></table></div>
    </section>
    <section class="panel" style="margin-top:var(--gap)">
      <div class="panel-head"><h2>Shelved, suppressed, out of service</h2><span class="faint" id="blocked-count"></span></div>
      <div class="table-wrap alarm-table"><table class="grid">
        <thead><tr><th>Priority</th><th>Equipment</th><th>Alarm</th><th>State</th><th>Until</th><th>By, why</th><th class="r">Actions</th></tr></thead>
        <tbody id="blocked-rows"></tbody></table></div>
    </section>
    <dialog class="panel dialog" id="shelve-dialog" aria-labelledby="shelve-title">
      <form method="dialog" id="shelve-form">
        <h2 id="shelve-title">Shelve alarm</h2>
        <p class="muted" id="shelve-what"></p>
        <label>For <select id="shelve-minutes" aria-label="Shelve for">${SHELVE_MINUTES.map(([m, l]) => `<option value="${m}">${l}</option>`).join("")}</select></label>
        <label>Reason <input id="shelve-reason" aria-label="Reason" required maxlength="1000" placeholder="e.g. sensor being replaced"></label>
        <p class="faint">A shelved alarm leaves the active list and comes back by itself when the time is up.</p>
        <div class="dialog-buttons"><button class="button" type="button" id="shelve-cancel">Cancel</button>
          <button class="button primary" type="submit" id="shelve-ok">Shelve</button></div>
      </form>
    </dialog>`;
  const rowsEl = el.querySelector("#active-rows");
  const blockedEl = el.querySelector("#blocked-rows");
  const ackSelected = el.querySelector("#ack-selected");
  const selectAll = el.querySelector("#select-all");
  const dialog = el.querySelector("#shelve-dialog");
  const selected = new Set();
  let rules = new Map();
  let shelving = null;
  let stopped = false;

  getJSON("/api/alarms/rules").then((list) => {
    rules = new Map(list.map((r) => [r.name, r]));
    if (!stopped) render();
  }).catch(() => { /* limits are a detail: the list works without them */ });

  function limitOf(a) {
    const r = rules.get(a.rule);
    if (!r) return "";
    if (r.type === "limit" && a.level) return `${a.level} ${number(r[a.level.toLowerCase()])}`;
    if (r.type === "state") return `${(r.states || []).join(", ")} > ${duration(r.for_s * 1000)}`;
    if (r.type === "stuck") return `unchanged ${duration(r.for_s * 1000)}`;
    if (r.type === "rate") return `> ${number(r.max_rate)}/s`;
    return "";
  }

  function valueOf(a) {
    if (a.value === null || a.value === undefined) return "—";
    const tag = catalog.tags.get((a.tags || [])[0]);
    if (a.type === "state" && tag?.states) return tag.states[String(Math.round(a.value))] ?? number(a.value);
    return `${number(a.value)}${tag?.unit && a.type !== "expression" ? ` ${tag.unit}` : ""}`;
  }

  function eqCell(a) {
    const eq = equipmentOf(a);
    const tag = (a.tags || [])[0];
    const name = tag ? tag.split("/").pop() : "";
    return html`<a href="#/equipment/${raw(encodeURI(eq))}?tags=${raw(encodeURIComponent(name))}" title="${eq}">${eq.split("/").pop()}</a>`;
  }

  function stateCell(a) {
    const s = displayState(a);
    return html`<span class="astate st-${s}" data-testid="alarm-state">${STATE_LABELS[s] ?? s}</span>`;
  }

  function actions(a) {
    const canOp = session.can("operator");
    const why = session.needs("operator");
    const ack = isUnacked(a) ? html`<button class="button small" type="button" data-act="ack" ${raw(canOp ? "" : "disabled")} title="${why || "Acknowledge"}">Ack</button>` : "";
    return html`${ack}<button class="button small" type="button" data-act="shelve" ${raw(canOp ? "" : "disabled")} title="${why || "Shelve for a while"}">Shelve…</button>`;
  }

  function render() {
    const active = alarms.annunciated();
    for (const id of [...selected]) if (!active.some((a) => a.id === id && isUnacked(a))) selected.delete(id);
    el.querySelector("#active-count").textContent = alarms.state === "live" || alarms.summary
      ? `${active.length} · ${active.filter(isUnacked).length} unacknowledged` : "";
    rowsEl.innerHTML = active.length ? active.map((a) => html`<tr data-testid="alarm-row" data-alarm="${a.id}" data-state="${displayState(a)}"
        class="arow p-${a.priority} ${isUnacked(a) ? "unack" : ""}">
      <td class="check">${isUnacked(a) ? html`<input type="checkbox" data-select aria-label="Select ${a.id}" ${raw(selected.has(a.id) ? "checked" : "")} ${raw(session.can("operator") ? "" : "disabled")}>` : ""}</td>
      <td><span class="prio p-${a.priority} ${a.state === "unack_active" ? "blink" : ""}" title="${a.priority} priority">${PRIORITY_SHORT[a.priority] ?? a.priority}</span></td>
      <td class="num nowrap" title="${dateTime(Date.parse(a.active_since || a.changed))}">${when(Date.parse(a.active_since || a.changed))}</td>
      <td>${eqCell(a)}</td>
      <td><div class="amsg">${a.message || humanize(a.rule)}</div><div class="path mono">${a.id}${limitOf(a) ? ` · ${limitOf(a)}` : ""}</div></td>
      <td class="r num nowrap">${valueOf(a)}</td>
      <td>${stateCell(a)}${a.acked_by ? html`<div class="faint small">by ${a.acked_by}</div>` : ""}</td>
      <td class="r nowrap actions">${actions(a)}</td></tr>`.html).join("")
      : `<tr><td colspan="8" class="empty">${alarms.state === "live" ? "No active alarms: the plant is within its limits." : "Connecting to the alarms…"}</td></tr>`;
    const blocked = alarms.blocked();
    el.querySelector("#blocked-count").textContent = blocked.length ? String(blocked.length) : "";
    blockedEl.innerHTML = blocked.length ? blocked.map((a) => {
      const s = displayState(a);
      const canOp = session.can("operator");
      return html`<tr data-testid="blocked-row" data-alarm="${a.id}" data-state="${s}">
        <td><span class="prio p-${a.priority} muted-prio">${PRIORITY_SHORT[a.priority] ?? a.priority}</span></td>
        <td>${eqCell(a)}</td><td><div class="amsg">${a.message || humanize(a.rule)}</div><div class="path mono">${a.id}</div></td>
        <td>${stateCell(a)}${a.condition ? html`<div class="faint small">condition present</div>` : ""}</td>
        <td class="num nowrap">${s === "shelved" ? dateTime(Date.parse(a.shelved_until)) : "—"}</td>
        <td class="muted" data-why="${a.id}"></td>
        <td class="r">${s === "shelved" ? html`<button class="button small" type="button" data-act="unshelve" ${raw(canOp ? "" : "disabled")} title="${session.needs("operator") || "Back to the active list now"}">Unshelve</button>` : ""}</td></tr>`.html;
    }).join("") : '<tr><td colspan="7" class="empty">Nothing is shelved, suppressed or out of service.</td></tr>';
    fillWhy(blocked);
    ackSelected.disabled = selected.size === 0 || !session.can("operator");
    ackSelected.title = session.needs("operator");
    ackSelected.textContent = selected.size ? `Acknowledge selected (${selected.size})` : "Acknowledge selected";
    const unacked = active.filter(isUnacked);
    selectAll.checked = unacked.length > 0 && unacked.every((a) => selected.has(a.id));
    selectAll.disabled = !session.can("operator") || unacked.length === 0;
  }

  /** Who shelved (or took out of service) and why: the newest such journal row of each blocked alarm. */
  const whyCache = new Map();
  async function fillWhy(blocked) {
    for (const a of blocked) {
      const key = `${a.id}|${a.changed}`;
      if (!whyCache.has(key)) {
        whyCache.set(key, getJSON("/api/alarms/journal", { alarm: a.id, limit: 20 }).then((rows) => rows.find((r) => r.user
          && ["shelved", "removed_from_service"].includes(r.event))).catch(() => null));
      }
      const row = await whyCache.get(key);
      const cell = blockedEl.querySelector(`[data-why="${CSS.escape(a.id)}"]`);
      if (cell) cell.textContent = row ? `${row.user}${row.comment ? `: ${row.comment}` : ""}` : displayState(a) === "suppressed" ? "by equipment state" : "";
    }
  }

  async function act(what, fn) {
    try {
      await fn();
    } catch (err) {
      actionFailed(what, err);
      if (err.status === 403) session.load().catch(() => {}); // the role may have changed: show what is allowed now
    }
  }

  function onClick(e) {
    const button = e.target.closest("button[data-act]");
    const row = e.target.closest("[data-alarm]");
    if (!button || !row) return;
    const id = row.dataset.alarm;
    if (button.dataset.act === "ack") {
      act(`acknowledge ${id}`, async () => {
        await sendJSON(`/api/alarms/${encodeURIComponent(id)}/ack`, { comment: "" });
        toast(`Acknowledged ${id}`);
      });
    } else if (button.dataset.act === "shelve") {
      shelving = id;
      el.querySelector("#shelve-what").textContent = `${id}: ${alarms.alarms.get(id)?.message ?? ""}`;
      el.querySelector("#shelve-reason").value = "";
      dialog.showModal();
    } else if (button.dataset.act === "unshelve") {
      act(`unshelve ${id}`, async () => {
        await sendJSON(`/api/alarms/${encodeURIComponent(id)}/unshelve`, { comment: "" });
        toast(`${id} is back in the active list`);
      });
    }
  }

  el.addEventListener("click", onClick);
  el.addEventListener("change", (e) => {
    if (e.target.matches("[data-select]")) {
      const id = e.target.closest("[data-alarm]").dataset.alarm;
      if (e.target.checked) selected.add(id); else selected.delete(id);
      render();
    } else if (e.target === selectAll) {
      for (const a of alarms.annunciated().filter(isUnacked)) {
        if (selectAll.checked) selected.add(a.id); else selected.delete(a.id);
      }
      render();
    }
  });
  ackSelected.addEventListener("click", () => {
    const ids = [...selected];
    act("acknowledge the selected alarms", async () => {
      const result = await sendJSON("/api/alarms/ack", { ids, comment: "" });
      const done = Object.values(result).filter((r) => r === "acknowledged").length;
      const notDone = Object.entries(result).filter(([, r]) => r !== "acknowledged");
      toast(`Acknowledged ${done} alarm${done === 1 ? "" : "s"}${notDone.length ? `; ${notDone.map(([id, r]) => `${id}: ${r}`).join("; ")}` : ""}`);
      selected.clear();
    });
  });
  el.querySelector("#shelve-cancel").addEventListener("click", () => dialog.close());
  el.querySelector("#shelve-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const id = shelving;
    const minutes = Number(el.querySelector("#shelve-minutes").value);
    const comment = el.querySelector("#shelve-reason").value.trim();
    dialog.close();
    act(`shelve ${id}`, async () => {
      await sendJSON(`/api/alarms/${encodeURIComponent(id)}/shelve`, { minutes, comment });
      toast(`Shelved ${id} for ${duration(minutes * 60000)}`);
    });
  });

  const offAlarms = alarms.onChange(() => render());
  const offSession = session.onChange(() => render());
  const ticker = setInterval(() => { if (!dialog.open) render(); }, 30000);
  render();
  return () => {
    stopped = true;
    offAlarms();
    offSession();
    clearInterval(ticker);
    if (dialog.open) dialog.close();
  };
}

// ------------------------------------------------------------------------------------------------------ journal

function journalView(el, route) {
  const q = route.query;
  el.innerHTML = html`<section class="panel" data-testid="alarm-journal">
    <div class="panel-head filters">
      <select id="j-alarm" aria-label="Alarm"><option value="">All alarms</option></select>
      <label class="muted">From <input type="datetime-local" id="j-since" aria-label="From" value="${q.get("since") ?? ""}"></label>
      <label class="muted">To <input type="datetime-local" id="j-until" aria-label="To" value="${q.get("until") ?? ""}"></label>
      <span class="count" id="j-count"></span>
      <button class="button" type="button" id="j-newer" disabled>← Newer</button>
      <button class="button" type="button" id="j-older" disabled>Older →</button>
    </div>
    <div class="table-wrap"><table class="grid">
      <thead><tr><th>Time</th><th>Priority</th><th>Alarm</th><th>Event</th><th>State</th><th class="r">Value</th><th>Who</th><th>Comment</th></tr></thead>
      <tbody id="j-rows"><tr><td colspan="8" class="empty">Loading…</td></tr></tbody></table></div>
  </section>`.html;
  const controls = { alarm: el.querySelector("#j-alarm"), since: el.querySelector("#j-since"), until: el.querySelector("#j-until") };
  const rowsEl = el.querySelector("#j-rows");
  const older = el.querySelector("#j-older");
  const newer = el.querySelector("#j-newer");
  let pages = [null]; // before_id of each page shown so far (null: the newest)
  let alarmFilter = q.get("alarm") ?? ""; // kept apart from the select, which fills in only once the ids are loaded
  let stopped = false;
  let generation = 0;

  getJSON("/api/alarms", { all: true }).then((list) => {
    const ids = list.map((a) => a.id).sort();
    controls.alarm.innerHTML = `<option value="">All alarms</option>${ids.map((id) => html`<option value="${id}">${id}</option>`.html).join("")}`;
    controls.alarm.value = alarmFilter;
  }).catch(() => {});

  const iso = (local) => (local ? new Date(local).toISOString() : undefined);

  function params() {
    return { alarm: alarmFilter || undefined, since: iso(controls.since.value), until: iso(controls.until.value) };
  }

  function syncUrl() {
    const p = new URLSearchParams();
    if (alarmFilter) p.set("alarm", alarmFilter);
    if (controls.since.value) p.set("since", controls.since.value);
    if (controls.until.value) p.set("until", controls.until.value);
    history.replaceState(null, "", `#/alarms/journal${p.toString() ? `?${p}` : ""}`);
  }

  async function load() {
    const mine = ++generation;
    const before = pages[pages.length - 1];
    try {
      const rows = await getJSON("/api/alarms/journal", { ...params(), limit: JOURNAL_PAGE + 1, before_id: before ?? undefined });
      if (stopped || mine !== generation) return;
      const more = rows.length > JOURNAL_PAGE;
      const shown = rows.slice(0, JOURNAL_PAGE);
      older.disabled = !more;
      newer.disabled = pages.length <= 1;
      older.dataset.next = more ? String(shown[shown.length - 1].id) : "";
      el.querySelector("#j-count").textContent = shown.length ? `page ${pages.length} · ${shown.length} entries` : "";
      rowsEl.innerHTML = shown.length ? shown.map((r) => html`<tr data-testid="journal-row" data-event="${r.event}" data-alarm="${r.alarm_id}">
        <td class="num nowrap">${dateTime(Date.parse(r.time))}</td>
        <td>${r.priority ? html`<span class="prio p-${r.priority} muted-prio">${PRIORITY_SHORT[r.priority] ?? r.priority}</span>` : ""}</td>
        <td class="mono">${r.alarm_id}</td>
        <td>${EVENT_LABELS[r.event] ?? r.event}${r.annunciated ? "" : html` <span class="badge" title="Not shown to operators: the alarm was blocked">silent</span>`}</td>
        <td class="muted nowrap">${r.from_state && r.to_state ? `${STATE_LABELS[r.from_state] ?? r.from_state} → ${STATE_LABELS[r.to_state] ?? r.to_state}` : ""}</td>
        <td class="r num">${r.value === null ? "" : number(r.value)}</td>
        <td data-testid="journal-user">${r.user ?? html`<span class="faint">system</span>`}</td>
        <td class="muted">${r.comment}</td></tr>`.html).join("")
        : '<tr><td colspan="8" class="empty">No journal entries match these filters.</td></tr>';
    } catch (err) {
      if (!stopped && mine === generation) rowsEl.innerHTML = html`<tr><td colspan="8" class="error-note">Could not load the journal: ${err.message}</td></tr>`.html;
    }
  }

  const restart = () => {
    pages = [null];
    syncUrl();
    load();
  };
  controls.alarm.addEventListener("change", () => {
    alarmFilter = controls.alarm.value;
    restart();
  });
  controls.since.addEventListener("change", restart);
  controls.until.addEventListener("change", restart);
  older.addEventListener("click", () => {
    if (!older.dataset.next) return;
    pages.push(Number(older.dataset.next));
    load();
  });
  newer.addEventListener("click", () => {
    if (pages.length > 1) pages.pop();
    load();
  });
  // New transitions appear at once on the newest page (when no end time hides them).
  let pending = null;
  const offAlarms = alarms.onChange((event) => {
    if (!event || pages.length > 1 || controls.until.value || pending) return;
    pending = setTimeout(() => { pending = null; load(); }, 300);
  });
  load();
  return () => {
    stopped = true;
    offAlarms();
    clearTimeout(pending);
  };
}
