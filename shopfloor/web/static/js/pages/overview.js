// Plant overview: the ISA-95 tree with each machine's state, one card per equipment (state and its last hour,
// key values, counters and rates), plant totals, and which data is stale or of bad quality.

import { alarms, isUnacked, PRIORITY_SHORT } from "../alarms.js";
import { getJSON } from "../api.js";
import { catalog, clock } from "../catalog.js";
import { duration, escapeHtml, html, humanize, number, rate, raw, stateClass, stateColorVar, tagValue } from "../format.js";
import { live } from "../live.js";

const POLL_MS = 15000;
const QUALITY = { 192: "good", 64: "uncertain", 0: "bad" };

export function title() {
  return "Plant overview";
}

export function mount(el) {
  el.innerHTML = `
    <div class="overview" data-testid="overview">
      <aside class="panel tree" aria-label="Asset tree">
        <div class="panel-head"><h2>Plant</h2><span class="spacer"></span><span class="faint" id="tree-count"></span></div>
        <div class="panel-body" id="tree"></div>
        <div class="legend" aria-label="Colours">
          <span><i style="background:var(--running)"></i>running</span><span><i style="background:var(--idle)"></i>idle</span>
          <span><i style="background:var(--down)"></i>down</span><span><i style="background:var(--setup)"></i>setup</span>
          <span title="Equipment that sent nothing for a while"><i style="background:var(--stale)"></i>stale<span id="stale-after"></span></span>
        </div>
      </aside>
      <section>
        <div class="kpis" id="kpis"></div>
        <div id="groups"><div class="empty">Loading the plant…</div></div>
      </section>
    </div>`;
  const treeEl = el.querySelector("#tree");
  const kpiEl = el.querySelector("#kpis");
  const groupsEl = el.querySelector("#groups");
  let data = null;
  let byPath = new Map();
  let timer = null;
  let pending = null;
  let stopped = false;

  /** The newest known sample of a tag: the live stream's, or the overview's when that is newer. */
  function current(t) {
    if (!t) return null;
    const fromLive = live.current.get(t.tag);
    if (fromLive && (t.ts_ms === null || fromLive.t >= t.ts_ms)) {
      return { value: fromLive.value, quality: QUALITY[fromLive.quality] ?? "bad", ts_ms: fromLive.t };
    }
    return { value: t.value, quality: t.quality, ts_ms: t.ts_ms };
  }

  function stateOf(eq) {
    if (!eq.state) return null;
    const c = current(eq.state);
    const def = catalog.tags.get(eq.state.tag);
    const label = c.quality === "good" && c.value !== null ? (def?.states?.[String(Math.round(c.value))] ?? "unknown") : "unknown";
    let since = eq.state.since_ms;
    if (c.ts_ms !== null && eq.liveLabel !== undefined && eq.liveLabel !== label) eq.liveSince = c.ts_ms;
    eq.liveLabel = label;
    if (eq.liveSince) since = eq.liveSince;
    return { label, since, quality: c.quality };
  }

  function lastSeen(eq) {
    let seen = eq.last_seen_ms ?? null;
    for (const path of catalog.nodes.get(eq.path)?.tags ?? []) {
      const c = live.current.get(path);
      if (c && (seen === null || c.t > seen)) seen = c.t;
    }
    return seen;
  }

  function isStale(eq) {
    const seen = lastSeen(eq);
    return seen === null || clock.now() - seen > data.stale_after_ms;
  }

  function valueHtml(tagNow, withUnit) {
    const def = catalog.tags.get(tagNow.tag);
    const c = current(tagNow);
    const q = c.quality;
    const cls = q === "bad" ? "v-bad" : q === "uncertain" ? "v-uncertain" : "";
    const mark = q === "bad" ? ' <span class="badge bad" title="Bad quality">bad</span>'
      : q === "uncertain" ? ' <span class="badge uncertain" title="Uncertain quality">unc</span>' : "";
    const shown = escapeHtml(q === null ? "—" : tagValue(def, c.value, null));
    return `<span class="${cls}">${shown}</span>${withUnit && tagNow.unit ? `<span class="unit">${escapeHtml(tagNow.unit)}</span>` : ""}${mark}`;
  }

  function renderTree() {
    const node = (n) => {
      if (n.level === "equipment") {
        const eq = byPath.get(n.path);
        return html`<li><a class="node" href="#/equipment/${raw(encodeURI(n.path))}" data-tree="${n.path}">
          <span class="sdot ${eq?.state ? "" : "none"}"></span><span>${n.name}</span><span class="state-label"></span></a></li>`.html;
      }
      const kids = n.children.map(node).join("");
      return html`<li><div class="node group"><span>${n.name}</span><span class="lvl">${n.level}</span></div><ul>${raw(kids)}</ul></li>`.html;
    };
    treeEl.innerHTML = `<ul>${node(catalog.tree)}</ul>`;
    el.querySelector("#tree-count").textContent = `${catalog.equipment().length} equipment`;
  }

  function timelineHtml(eq) {
    const tl = eq.state?.timeline;
    if (!tl || !tl.t.length) return "";
    const end = data.now_ms;
    const start = end - data.window_ms;
    const def = catalog.tags.get(eq.state.tag);
    const parts = [];
    for (let i = 0; i < tl.t.length; i++) {
      const from = Math.max(tl.t[i], start);
      const to = i + 1 < tl.t.length ? tl.t[i + 1] : end;
      if (to <= from) continue;
      const label = tl.value[i] === null ? "unknown" : def?.states?.[String(tl.value[i])] ?? "unknown";
      const pct = ((to - from) / (end - start)) * 100;
      parts.push(`<span style="width:${pct.toFixed(3)}%;background:${stateColorVar(label)}" title="${escapeHtml(label)} · ${duration(to - from)}"></span>`);
    }
    const lead = ((tl.t[0] - start) / (end - start)) * 100;
    const gap = lead > 0.5 ? `<span style="width:${lead.toFixed(3)}%" title="no data"></span>` : "";
    return `<div class="timeline" aria-label="State over the last ${duration(data.window_ms)}">${gap}${parts.join("")}</div>
      <div class="timeline-axis"><span>−${duration(data.window_ms)}</span><span>now</span></div>`;
  }

  function parentName(eq) {
    const node = catalog.nodes.get(eq.parent);
    return node ? node.name : "";
  }

  function cardHtml(eq) {
    const counters = eq.counters.map((c) => html`<span data-counter="${c.tag}">${humanize(c.name)} <b data-tag="${c.tag}">—</b>
      ${c.per_hour === null ? "" : html`<span class="rate">· ${rate(c.per_hour)}/h</span>`}</span>`);
    const values = eq.key.map((k) => html`<div class="cell"><div class="name" title="${k.tag}">${humanize(k.name)}</div>
      <div class="val" data-tag="${k.tag}"></div></div>`);
    return html`<article class="panel card" data-eq="${eq.path}" data-testid="equipment-card">
      <div class="card-head">
        <h3><a href="#/equipment/${raw(encodeURI(eq.path))}">${eq.name}</a></h3><span class="type">${parentName(eq)} · ${eq.type}</span>
        <span class="right"><a class="alarm-marker" href="#/alarms" data-testid="alarm-marker" hidden></a><span class="badge stale" data-stale hidden>stale</span>${raw(eq.state ? '<span class="pill" data-state-pill><span class="dot"></span><span class="label"></span></span>' : "")}</span>
      </div>
      <div class="card-desc" title="${eq.description}">${eq.description}</div>
      ${raw(timelineHtml(eq))}
      ${values.length ? html`<div class="card-values">${values}</div>` : ""}
      ${counters.length ? html`<div class="card-counters">${counters}</div>` : ""}
      <div class="card-foot"><span data-seen></span><a href="#/equipment/${raw(encodeURI(eq.path))}">Trends →</a></div>
    </article>`.html;
  }

  function renderGroups() {
    // One grid of cards in tree order; each card names its cell (the tree on the left shows the hierarchy).
    groupsEl.innerHTML = data.equipment.length ? `<div class="cards">${data.equipment.map(cardHtml).join("")}</div>`
      : '<div class="empty">The plant has no equipment.</div>';
  }

  function renderKpis() {
    const counts = {};
    let withState = 0;
    let stale = 0;
    for (const eq of data.equipment) {
      if (isStale(eq)) stale += 1;
      const s = stateOf(eq);
      if (!s) continue;
      withState += 1;
      counts[s.label] = (counts[s.label] ?? 0) + 1;
    }
    const order = ["running", "idle", "setup", "down", "unknown"];
    for (const k of Object.keys(counts)) if (!order.includes(k)) order.push(k); // labels of other state sets
    const bar = order.filter((k) => counts[k]).map((k) => html`<span style="width:${(counts[k] / withState) * 100}%;background:${raw(stateColorVar(k))}" title="${k}: ${counts[k]}"></span>`.html).join("");
    const sub = escapeHtml(order.filter((k) => k !== "running" && counts[k]).map((k) => `${counts[k]} ${k}`).join(" · ") || "all running");
    const tiles = [`<div class="panel kpi" data-testid="kpi-running"><div class="label">Machines running</div>
      <div class="value">${counts.running ?? 0}<small>of ${withState}</small></div><div class="statebar">${bar}</div><div class="sub">${sub}</div></div>`];
    for (const c of data.counters.slice(0, 3)) {
      tiles.push(html`<div class="panel kpi"><div class="label">${c.description || humanize(c.name)}</div>
        <div class="value">${rate(c.per_hour)}<small>${c.unit ? `${c.unit}/h` : "/h"}</small></div>
        <div class="sub">${number(c.increase, { integer: true })} in the last ${duration(data.window_ms)} · ${c.equipment} equipment</div></div>`.html);
    }
    const q = data.quality;
    const total = q.good + q.uncertain + q.bad + q.missing;
    const problems = [q.bad && `${q.bad} bad`, q.uncertain && `${q.uncertain} uncertain`, q.missing && `${q.missing} no data`, stale && `${stale} stale equipment`].filter(Boolean);
    tiles.push(`<div class="panel kpi" data-testid="kpi-quality"><div class="label">Data quality</div>
      <div class="value">${q.good}<small>of ${total} tags good</small></div>
      <div class="sub ${problems.length ? "v-uncertain" : ""}">${problems.join(" · ") || "no stale or bad data"}</div></div>`);
    kpiEl.innerHTML = tiles.join("");
  }

  /** Values, states, staleness: from the overview and the live stream, patched into the rendered cards. */
  function refresh() {
    pending = null;
    if (!data || stopped) return;
    for (const eq of data.equipment) {
      const card = groupsEl.querySelector(`[data-eq="${CSS.escape(eq.path)}"]`);
      const treeNode = treeEl.querySelector(`[data-tree="${CSS.escape(eq.path)}"]`);
      if (!card) continue;
      const stale = isStale(eq);
      const s = stateOf(eq);
      card.className = `panel card ${s ? stateClass(s.label) : "no-state"} ${stale ? "is-stale" : ""}`;
      const badge = card.querySelector("[data-stale]");
      badge.hidden = !stale;
      const seen = lastSeen(eq);
      badge.title = seen ? `No data for ${duration(clock.now() - seen)}` : "No data yet";
      if (s) {
        const pill = card.querySelector("[data-state-pill]");
        pill.className = `pill ${stateClass(s.label)}`;
        pill.querySelector(".label").textContent = s.since ? `${s.label} · ${duration(clock.now() - s.since)}` : s.label;
        pill.title = s.since ? `${s.label} since ${new Date(s.since).toLocaleTimeString()}` : `${s.label} for the whole last ${duration(data.window_ms)}`;
      }
      if (treeNode) {
        treeNode.classList.toggle("is-stale", stale);
        if (s) {
          treeNode.querySelector(".sdot").style.background = stateColorVar(stale ? "unknown" : s.label);
          treeNode.querySelector(".state-label").textContent = stale ? "stale" : s.label;
        }
      }
      for (const k of eq.key) {
        const target = card.querySelector(`[data-tag="${CSS.escape(k.tag)}"]`);
        if (target) target.innerHTML = valueHtml(k, true);
      }
      for (const k of eq.counters) {
        const target = card.querySelector(`[data-tag="${CSS.escape(k.tag)}"]`);
        if (target) target.innerHTML = valueHtml(k, false);
      }
      card.querySelector("[data-seen]").textContent = seen === null ? "No data yet"
        : clock.now() - seen < 2000 ? "Data just now" : `Last data ${duration(clock.now() - seen)} ago`;
    }
    renderKpis();
  }

  /** A marker on each card with active alarms: how many, coloured by the most urgent, blinking while unacknowledged. */
  function renderAlarmMarkers() {
    if (!data || stopped) return;
    const byEq = alarms.byEquipment();
    for (const eq of data.equipment) {
      const marker = groupsEl.querySelector(`[data-eq="${CSS.escape(eq.path)}"] [data-testid="alarm-marker"]`);
      if (!marker) continue;
      const list = byEq.get(eq.path) ?? [];
      marker.hidden = list.length === 0;
      if (!list.length) continue;
      const top = list[0];
      const unack = list.some(isUnacked);
      marker.className = `alarm-marker p-${top.priority} ${unack ? "unack" : ""}`;
      marker.dataset.count = String(list.length);
      marker.textContent = `${PRIORITY_SHORT[top.priority]} ${list.length > 1 ? `+${list.length - 1}` : ""}`.trim();
      marker.title = list.map((a) => `${a.priority}: ${a.message || a.id} (${a.state.replace("_", " ")})`).join("\n");
      marker.setAttribute("aria-label", `${list.length} active alarm${list.length > 1 ? "s" : ""}, most urgent ${top.priority}`);
    }
  }

  function schedule() {
    if (!pending) pending = setTimeout(refresh, 250);
  }

  async function load() {
    const started = Date.now();
    try {
      const body = await getJSON("/api/dashboard/overview", { window: "1h" });
      if (stopped) return;
      clock.update(body.now_ms, started);
      const first = data === null;
      data = body;
      byPath = new Map(data.equipment.map((e) => [e.path, e]));
      if (first || !treeEl.firstChild) renderTree();
      el.querySelector("#stale-after").textContent = ` (no data for ${duration(data.stale_after_ms)})`;
      renderGroups();
      refresh();
      renderAlarmMarkers();
    } catch (err) {
      if (data === null && !stopped) groupsEl.innerHTML = `<div class="panel error-note">Could not load the overview: ${err.message}</div>`;
    }
  }

  const offSamples = live.onSamples(schedule);
  const offAlarms = alarms.onChange(renderAlarmMarkers);
  const onReconnected = () => load();
  window.addEventListener("reconnected", onReconnected);
  live.setTags(null);
  load();
  timer = setInterval(() => { load(); }, POLL_MS);
  const ticker = setInterval(refresh, 1000);
  return () => {
    stopped = true;
    offSamples();
    offAlarms();
    clearInterval(timer);
    clearInterval(ticker);
    clearTimeout(pending);
    window.removeEventListener("reconnected", onReconnected);
  };
}
