// Tag browser: the catalogue with current values, quality and age; search and filters by asset, unit and quality.

import { getJSON } from "../api.js";
import { catalog, clock } from "../catalog.js";
import { duration, html, tagValue } from "../format.js";
import { live } from "../live.js";

const POLL_MS = 5000;
const QUALITY = { 192: "good", 64: "uncertain", 0: "bad" };

export function title() {
  return "Tags";
}

export function mount(el, route) {
  const assets = [...catalog.nodes.values()].filter((n) => n.level !== "site");
  const units = [...new Set([...catalog.tags.values()].map((t) => t.unit))].sort();
  const q = route.query;
  el.innerHTML = html`<div class="panel" data-testid="tag-browser">
    <div class="panel-head filters">
      <input type="search" id="q" placeholder="Search tags" aria-label="Search tags" value="${q.get("q") ?? ""}">
      <select id="asset" aria-label="Asset"><option value="">All assets</option>${assets.map((n) => html`
        <option value="${n.path}">${"\u2003".repeat(Math.max(0, ["area", "line", "cell", "equipment"].indexOf(n.level)))}${n.name}</option>`)}</select>
      <select id="unit" aria-label="Unit"><option value="*">All units</option>${units.map((u) => html`
        <option value="${u}">${u || "(no unit)"}</option>`)}</select>
      <select id="quality" aria-label="Quality"><option value="">Any quality</option><option value="good">Good</option>
        <option value="uncertain">Uncertain</option><option value="bad">Bad</option><option value="stale">Stale</option>
        <option value="missing">No data</option></select>
      <span class="count" id="count"></span>
    </div>
    <div class="table-wrap"><table class="grid">
      <thead><tr><th>Tag</th><th>Equipment</th><th class="r">Value</th><th>Unit</th><th>Quality</th><th class="r">Age</th><th>Type</th><th>Description</th></tr></thead>
      <tbody id="rows"><tr><td colspan="8" class="empty">Loading…</td></tr></tbody>
    </table></div>
  </div>`.html;
  const controls = { q: el.querySelector("#q"), asset: el.querySelector("#asset"), unit: el.querySelector("#unit"), quality: el.querySelector("#quality") };
  controls.asset.value = q.get("asset") ?? "";
  controls.unit.value = q.has("unit") ? q.get("unit") : "*";
  controls.quality.value = q.get("quality") ?? "";
  const rowsEl = el.querySelector("#rows");
  let rows = [];
  let staleAfter = 120000;
  let stopped = false;
  let generation = 0;

  function params() {
    return {
      q: controls.q.value.trim() || undefined, asset: controls.asset.value || undefined,
      unit: controls.unit.value === "*" ? undefined : controls.unit.value, quality: controls.quality.value || undefined,
    };
  }

  function syncUrl() {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(params())) if (v !== undefined) p.set(k, v);
    history.replaceState(null, "", `#/tags${p.toString() ? `?${p}` : ""}`);
  }

  function cellsFor(r) {
    const def = catalog.tags.get(r.tag);
    const c = live.current.get(r.tag);
    const value = c && (r.ts_ms === null || c.t >= r.ts_ms) ? c.value : r.value;
    const quality = c && (r.ts_ms === null || c.t >= r.ts_ms) ? QUALITY[c.quality] ?? "bad" : r.quality;
    const ts = c && (r.ts_ms === null || c.t >= r.ts_ms) ? c.t : r.ts_ms;
    const stale = r.stale && !(ts !== null && clock.now() - ts < staleAfter);
    const cls = quality === "bad" ? "v-bad" : quality === "uncertain" ? "v-uncertain" : stale ? "v-stale" : "";
    return { value: quality === null ? "—" : tagValue(def, value, null), cls, quality, ts, stale };
  }

  function render() {
    el.querySelector("#count").textContent = `${rows.length} of ${catalog.tags.size} tags`;
    if (!rows.length) {
      rowsEl.innerHTML = '<tr><td colspan="8" class="empty">No tag matches these filters.</td></tr>';
      return;
    }
    rowsEl.innerHTML = rows.map((r) => {
      const eqName = r.equipment.split("/").pop();
      return html`<tr class="clickable" data-row="${r.tag}" data-testid="tag-row">
        <td><div><b>${r.name}</b></div><div class="path mono">${r.tag}</div></td>
        <td>${eqName}</td>
        <td class="r num" data-v><b></b></td>
        <td>${r.unit}</td>
        <td data-q></td>
        <td class="r num" data-age></td>
        <td class="faint">${r.type}</td>
        <td class="muted">${r.description}</td>
      </tr>`.html;
    }).join("");
    update();
  }

  function update() {
    for (const r of rows) {
      const tr = rowsEl.querySelector(`[data-row="${CSS.escape(r.tag)}"]`);
      if (!tr) continue;
      const c = cellsFor(r);
      const v = tr.querySelector("[data-v] b");
      v.textContent = c.value;
      v.className = c.cls;
      tr.querySelector("[data-q]").innerHTML = (c.quality ? `<span class="pill q-${c.quality}">${c.quality}</span>` : '<span class="pill">no data</span>')
        + (c.stale ? ' <span class="badge stale">stale</span>' : "");
      tr.querySelector("[data-age]").textContent = c.ts === null ? "—" : duration(clock.now() - c.ts);
    }
  }

  async function load() {
    const mine = ++generation;
    const started = Date.now();
    try {
      const body = await getJSON("/api/dashboard/tags", params());
      if (stopped || mine !== generation) return;
      clock.update(body.now_ms, started);
      staleAfter = body.stale_after_ms;
      rows = body.tags;
      render();
    } catch (err) {
      if (!stopped && mine === generation) rowsEl.innerHTML = html`<tr><td colspan="8" class="error-note">Could not load the tags: ${err.message}</td></tr>`.html;
    }
  }

  let debounce = null;
  const changed = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => { syncUrl(); load(); }, 200);
  };
  controls.q.addEventListener("input", changed);
  for (const c of [controls.asset, controls.unit, controls.quality]) c.addEventListener("change", changed);
  rowsEl.addEventListener("click", (e) => {
    const row = e.target.closest("[data-row]");
    if (!row) return;
    const def = catalog.tags.get(row.dataset.row);
    if (def) window.location.hash = `#/equipment/${encodeURI(def.equipment)}?tags=${encodeURIComponent(def.name)}`;
  });
  let pending = null;
  const offSamples = live.onSamples(() => { if (!pending) pending = setTimeout(() => { pending = null; update(); }, 300); });
  const onReconnected = () => load();
  window.addEventListener("reconnected", onReconnected);
  live.setTags(null);
  load();
  const timer = setInterval(load, POLL_MS);
  const ticker = setInterval(update, 1000);
  return () => {
    stopped = true;
    offSamples();
    clearInterval(timer);
    clearInterval(ticker);
    clearTimeout(debounce);
    clearTimeout(pending);
    window.removeEventListener("reconnected", onReconnected);
  };
}
