// Trace: a serial's (or lot's) genealogy as two trees, where it came from (materials and lots, machines,
// operators, process parameters, inspection results) and where it went (boxes, the recall scope of a lot),
// and whether the tamper-evident record still verifies.

import { getJSON } from "../api.js";
import { dateTime, html, humanize, number, raw } from "../format.js";

const RECENT_MS = 10000;

export function title(route) {
  return route.path ? `Trace ${route.path}` : "Trace";
}

function short(path) {
  return path ? path.split("/").pop() : "—";
}

function qualityPill(q) {
  if (!q) return raw("");
  return html`<span class="pill ${q === "good" ? "q-good" : "q-bad"}" data-testid="quality">${q}</span>`;
}

/** What an item's own events say about it: how it was made, its inspections, where it was loaded or packed. */
function facts(node) {
  const made = node.events.find((e) => e.kind === "produced");
  return {
    made,
    inspections: node.events.filter((e) => e.kind === "inspection"),
    loads: node.events.filter((e) => e.kind === "material_load"),
    packed: node.events.find((e) => e.kind === "packed"),
  };
}

function eventDetails(node) {
  const f = facts(node);
  const parts = [];
  if (f.made) {
    const p = f.made.payload || {};
    const params = Object.entries(p.parameters || {}).map(([k, v]) => html`<span class="kv"><span>${humanize(k)}</span> <b>${number(v)}</b></span>`);
    const hist = Object.entries(f.made.process_parameters || {}).filter(([, v]) => v.n).map(([k, v]) => html`<tr>
      <td>${humanize(k)}</td><td class="r">${number(v.mean)}</td><td class="r">${number(v.min)}</td><td class="r">${number(v.max)}</td><td class="r">${v.n}</td></tr>`);
    parts.push(html`<div class="trace-fact"><b>Made</b> ${dateTime(f.made.ts_ns / 1e6)} on <span class="mono">${short(f.made.equipment)}</span>
      by ${f.made.operator ?? "nobody logged on"} · work order ${f.made.work_order ?? "—"} ${qualityPill(p.quality)}
      ${p.reason ? html` · ${p.reason}` : ""}</div>`);
    if (params.length) parts.push(html`<div class="trace-fact kvs">${params}</div>`);
    if (hist.length) {
      parts.push(html`<details class="trace-params"><summary>Process parameters from the historian (the minute before)</summary>
        <table class="grid"><thead><tr><th>Tag</th><th class="r">Mean</th><th class="r">Min</th><th class="r">Max</th><th class="r">n</th></tr></thead>
        <tbody>${hist}</tbody></table></details>`);
    }
  }
  for (const i of f.inspections) {
    const p = i.payload || {};
    const bound = (x) => (x === null || x === undefined ? "" : String(x));
    const limits = [p.lower, p.upper].some((x) => x !== null && x !== undefined) ? ` [${bound(p.lower)} … ${bound(p.upper)}]` : "";
    parts.push(html`<div class="trace-fact" data-testid="inspection"><b>Inspected</b> ${humanize(p.characteristic ?? "")} ${String(p.value)} ${p.unit ?? ""}${limits}
      <span class="pill ${p.passed ? "q-good" : "q-bad"}">${p.passed ? "pass" : "fail"}</span>
      <span class="faint">${i.equipment ? short(i.equipment) : ""} ${dateTime(i.ts_ns / 1e6)}</span></div>`);
  }
  if (f.loads.length) {
    const at = [...new Set(f.loads.map((e) => short(e.equipment)))].join(", ");
    parts.push(html`<div class="trace-fact"><b>Loaded</b> ${f.loads.length}× at ${at}, first ${dateTime(f.loads[0].ts_ns / 1e6)}</div>`);
  }
  if (f.packed) parts.push(html`<div class="trace-fact"><b>Packed</b> ${dateTime(f.packed.ts_ns / 1e6)} ${f.packed.equipment ? `by ${short(f.packed.equipment)}` : ""}</div>`);
  return parts;
}

/** The trace as a nested list from its root (each node links to the nodes one step nearer the root); an item
 * reached again is named, not repeated. */
function tree(body) {
  const byCode = new Map(body.nodes.map((n) => [n.code, n]));
  const children = new Map();
  for (const n of body.nodes) {
    for (const l of n.links) {
      if (!children.has(l.code)) children.set(l.code, []);
      children.get(l.code).push(n.code);
    }
  }
  const seen = new Set();
  const item = (code, depth) => {
    const n = byCode.get(code);
    if (!n) return html``;
    if (seen.has(code)) return html`<li class="trace-node again"><span class="mono">${code}</span> <span class="faint">(shown above)</span></li>`;
    seen.add(code);
    const f = facts(n);
    const what = n.product ?? n.material ?? "";
    const next = children.get(code) ?? [];
    const kids = next.map((c) => item(c, depth + 1));
    return html`<li class="trace-node" data-testid="trace-node" data-code="${code}">
      <details ${depth < 3 ? "open" : ""}><summary>
        <span class="badge">${n.kind}</span> <a class="mono code" href="#/trace/${encodeURIComponent(code)}">${code}</a>
        <span class="muted">${what}</span> ${f.made ? qualityPill(f.made.payload?.quality) : ""}
        ${n.kind === "lot" ? html`<span class="faint">lot of ${number(n.quantity, { integer: Number.isInteger(n.quantity) })}</span>` : ""}
        ${next.length ? html`<span class="faint">· ${next.length} ${body.direction === "backward" ? "went in" : "contain it"}</span>` : ""}
      </summary>
      <div class="trace-facts">${eventDetails(n)}</div>
      ${kids.length ? html`<ul>${kids}</ul>` : ""}</details></li>`;
  };
  return html`<ul class="trace-tree">${item(body.root, 0)}</ul>`;
}

export function mount(el, route) {
  const code = route.path || "";
  let stopped = false;
  let timer = null;
  el.innerHTML = html`<div class="trace-page" data-testid="trace-page">
    <div class="prod-head"><h1>Trace</h1>
      <form id="search" class="trace-search"><input type="search" id="code" placeholder="Serial or lot, e.g. FL-…" value="${code}"
        aria-label="Serial or lot" autocomplete="off" maxlength="80"><button class="button primary" type="submit">Trace</button></form>
      <span class="spacer"></span><span id="verify" data-testid="verify"><span class="faint">Checking the record…</span></span>
      <button class="button small" id="reverify" type="button" title="Check every hash link, signed checkpoint and genealogy edge">Verify</button></div>
    <div class="trace-layout">
      <section class="panel"><div class="panel-head"><h2>Recent serials</h2></div><div id="recent" class="recent-list"></div></section>
      <div id="result">${code ? "" : raw('<div class="panel empty">Search a serial or a lot, or pick a recent one.</div>')}</div>
    </div></div>`.html;

  el.querySelector("#search").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = el.querySelector("#code").value.trim();
    if (value) window.location.hash = `#/trace/${encodeURIComponent(value)}`;
  });
  el.querySelector("#reverify").addEventListener("click", () => verify());

  async function recent() {
    try {
      const list = await getJSON("/api/mes/serials", { limit: 15 });
      if (stopped) return;
      el.querySelector("#recent").innerHTML = list.length ? html`<ul>${list.map((s) => html`<li>
        <a class="mono ${s.code === code ? "on" : ""}" href="#/trace/${encodeURIComponent(s.code)}" data-testid="recent-serial">${s.code}</a>
        ${qualityPill(s.quality)}<div class="faint">${s.product ?? ""} · ${short(s.equipment)} · ${dateTime(s.ts_ms)}</div></li>`)}</ul>`.html
        : '<div class="empty">No part has been produced yet.</div>';
    } catch (err) {
      if (!stopped) el.querySelector("#recent").innerHTML = html`<div class="error-note">${err.message}</div>`.html;
    } finally {
      if (!stopped) timer = setTimeout(recent, RECENT_MS);
    }
  }

  async function verify() {
    const out = el.querySelector("#verify");
    out.innerHTML = '<span class="faint">Checking the record…</span>';
    try {
      const r = await getJSON("/api/mes/verify");
      if (stopped) return;
      out.innerHTML = r.ok
        ? html`<span class="pill q-good" title="${r.events} events, ${r.checkpoints} signed checkpoints, ${r.edges} genealogy edges">record intact</span>
            <span class="faint">${number(r.events, { integer: true })} events · ${number(r.checkpoints, { integer: true })} signed checkpoints</span>`.html
        : html`<span class="pill q-bad">record altered</span> <span class="reason">${r.first}</span>`.html;
    } catch (err) {
      if (!stopped) out.innerHTML = html`<span class="pill q-uncertain">not checked</span> <span class="faint">${err.message}</span>`.html;
    }
  }

  async function show() {
    const result = el.querySelector("#result");
    result.innerHTML = '<div class="panel empty">Tracing…</div>';
    try {
      const path = `/api/mes/trace/${encodeURIComponent(code)}`;
      const [back, fwd] = await Promise.all([
        getJSON(path, { direction: "backward", parameters: true }), getJSON(path, { direction: "forward" }),
      ]);
      if (stopped) return;
      const section = (titleText, sub, body, testid) => html`<section class="panel trace-panel" data-testid="${testid}">
        <div class="panel-head"><h2>${titleText}</h2><span class="spacer"></span><span class="faint">${sub}</span></div>
        <div class="panel-body">${tree(body)}</div></section>`;
      result.innerHTML = html`${section("Where it came from", `${back.items} items · machines ${back.machines.map(short).join(", ") || "—"} · operators ${back.operators.join(", ") || "—"}`, back, "trace-backward")}
        ${section("Where it went", fwd.items > 1 ? `${fwd.items - 1} items contain it (recall scope)` : "in nothing else yet", fwd, "trace-forward")}`.html;
    } catch (err) {
      if (!stopped) result.innerHTML = html`<div class="panel error-note">${err.status === 404 ? `No serial or lot ${code}.` : err.message}</div>`.html;
    }
  }

  recent();
  verify();
  if (code) show();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
