// Equipment trends: history of the chosen tags from bucketed queries, the live tail from the WebSocket,
// stacked panes per unit on one time axis, zoom and pan that ask the historian for finer buckets.

import { getJSON } from "../api.js";
import { catalog, clock } from "../catalog.js";
import {
  bucketLabel, bucketParam, chooseBucket, fromPlot, PALETTE, PLOT_CONFIG, rgba, stateColor, themeLayout, toPlot,
} from "../charts.js";
import { html, humanize, isInteger, number, raw, stateClass, tagValue } from "../format.js";
import { live } from "../live.js";

export const RANGES = [
  ["15m", 15 * 60e3], ["1h", 3600e3], ["6h", 6 * 3600e3], ["24h", 24 * 3600e3], ["7d", 7 * 86400e3], ["30d", 30 * 86400e3],
];
const DEFAULT_SELECTION = 4;
const REDRAW_MS = 1000;
const QUALITY = { 192: "good", 64: "uncertain", 0: "bad" };

export function title(route) {
  return route.path ? `${route.path.split("/").pop()} trends` : "Trends";
}

export function mount(el, route) {
  if (!route.path || !catalog.nodes.has(route.path) || catalog.nodes.get(route.path).level !== "equipment") {
    return picker(el, route.path);
  }
  return new TrendPage(el, route).cleanup;
}

function picker(el, missing) {
  const groups = new Map();
  for (const eq of catalog.equipment()) {
    const parent = catalog.nodes.get(eq.parent);
    if (!groups.has(parent.path)) groups.set(parent.path, { node: parent, list: [] });
    groups.get(parent.path).list.push(eq);
  }
  el.innerHTML = html`<div class="panel picker" data-testid="equipment-picker">
    <h1>Trends</h1>
    <p class="muted">${missing ? `There is no equipment ${missing}. ` : ""}Choose an equipment to see its tags over time.</p>
    ${raw([...groups.values()].map((g) => html`<h2 class="section-title">${g.node.name}<span class="desc">${g.node.description}</span></h2>
      <div class="picker-list">${g.list.map((eq) => html`<a href="#/equipment/${raw(encodeURI(eq.path))}"><b>${eq.name}</b><span class="faint">${eq.type}</span></a>`)}</div>`.html).join(""))}
  </div>`.html;
  return () => {};
}

class TrendPage {
  constructor(el, route) {
    this.el = el;
    this.node = catalog.nodes.get(route.path);
    this.tags = this.node.tags.map((p) => catalog.tags.get(p)).filter(Boolean);
    const wanted = (route.query.get("tags") || "").split(",").filter(Boolean);
    const byName = new Map(this.tags.map((t) => [t.name, t]));
    const chosen = wanted.map((n) => byName.get(n)).filter(Boolean);
    this.selected = new Set((chosen.length ? chosen : this.defaultSelection()).map((t) => t.path));
    this.colors = new Map(this.tags.map((t, i) => [t.path, PALETTE[i % PALETTE.length]]));
    const preset = RANGES.find(([k]) => k === route.query.get("range"));
    this.rangeMs = preset ? preset[1] : 3600e3;
    this.mode = "live"; // live | zoomed
    this.view = null; // [start, end] ms while zoomed
    this.series = new Map(); // tag -> {t, mean, min, max, last, count, bucket}
    this.bucket = null;
    this.loadedAt = 0;
    this.generation = 0;
    this.dirty = false;
    this.ignoreRelayout = false;
    this.stopped = false;
    this.render();
    this.offSamples = live.onSamples((msg) => this.onSamples(msg));
    this.onTheme = () => this.draw();
    this.onReconnected = () => this.load();
    let resizing = null;
    this.onResize = () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => { if (this.bucket && this.window().bucket !== this.bucket) this.load(); }, 300);
    };
    window.addEventListener("resize", this.onResize);
    window.addEventListener("themechange", this.onTheme);
    window.addEventListener("reconnected", this.onReconnected);
    live.setTags(this.tags.map((t) => t.path));
    this.timer = setInterval(() => this.tick(), REDRAW_MS);
    this.waitForPlotly().then(() => this.load());
    this.cleanup = () => {
      this.stopped = true;
      this.offSamples();
      clearInterval(this.timer);
      window.removeEventListener("themechange", this.onTheme);
      window.removeEventListener("reconnected", this.onReconnected);
      window.removeEventListener("resize", this.onResize);
      if (this.chart && window.Plotly) window.Plotly.purge(this.chart);
    };
  }

  defaultSelection() {
    const state = this.tags.find((t) => t.type === "enum" && t.name === "state");
    const floats = this.tags.filter((t) => t.type.startsWith("float")).slice(0, DEFAULT_SELECTION - (state ? 1 : 0));
    const picked = [...(state ? [state] : []), ...floats];
    return picked.length ? picked : this.tags.slice(0, DEFAULT_SELECTION);
  }

  async waitForPlotly() {
    while (!window.Plotly && !this.stopped) await new Promise((r) => setTimeout(r, 50));
  }

  render() {
    const crumbs = catalog.ancestry(this.node.path).slice(0, -1)
      .map((n, i, all) => html`<span>${n.name}</span>${i + 1 < all.length ? html`<span class="sep">›</span>` : ""}`);
    this.el.innerHTML = html`
      <div class="eq-head">
        <nav class="crumbs" aria-label="Where"><a href="#/">Overview</a><span class="sep">›</span>${crumbs}</nav>
        <h1>${this.node.name}</h1>
        <span class="pill" id="eq-state" hidden><span class="dot"></span><span class="label"></span></span>
        <span class="muted">${this.node.description}</span>
      </div>
      <div class="eq-layout">
        <aside class="panel">
          <div class="panel-head"><h2>Tags</h2><span class="spacer"></span><span class="faint">${this.tags.length}</span></div>
          <div class="taglist" id="taglist">${this.tags.map((t) => html`
            <label title="${t.description}">
              <input type="checkbox" value="${t.path}" ${raw(this.selected.has(t.path) ? "checked" : "")}>
              <span class="swatch" data-swatch="${t.path}"></span>
              <span class="tname">${humanize(t.name)}${t.unit ? html` <span class="faint">${t.unit}</span>` : ""}</span>
              <span class="tval" data-value="${t.path}">—</span>
            </label>`)}</div>
        </aside>
        <section class="panel">
          <div class="panel-head trend-toolbar">
            <div class="seg" role="group" aria-label="Time range" id="ranges">${RANGES.map(([k, ms]) => html`
              <button type="button" data-range="${k}" aria-pressed="${String(ms === this.rangeMs)}">${k}</button>`)}</div>
            <span class="mode live" id="mode">● Live</span>
            <button type="button" class="button" id="to-live" hidden>Back to live</button>
            <span class="hint faint">Drag to zoom, double-click to reset</span>
            <span class="spacer"></span>
            <span class="trend-info" id="trend-info"></span>
          </div>
          <div class="chart" id="chart" data-testid="trend-chart"></div>
        </section>
      </div>`.html;
    this.chart = this.el.querySelector("#chart");
    this.chart.addEventListener("pointerdown", () => { this.pointerDown = true; });
    window.addEventListener("pointerup", () => { this.pointerDown = false; });
    this.el.querySelector("#taglist").addEventListener("change", (e) => {
      if (e.target.checked) this.selected.add(e.target.value);
      else this.selected.delete(e.target.value);
      this.updateUrl();
      this.load();
    });
    this.el.querySelector("#ranges").addEventListener("click", (e) => {
      const key = e.target.closest("button")?.dataset.range;
      if (!key) return;
      this.rangeMs = RANGES.find(([k]) => k === key)[1];
      for (const b of this.el.querySelectorAll("#ranges button")) b.setAttribute("aria-pressed", String(b.dataset.range === key));
      this.goLive();
    });
    this.el.querySelector("#to-live").addEventListener("click", () => this.goLive());
    this.updateSwatches();
    this.updateValues();
  }

  updateUrl() {
    const names = this.tags.filter((t) => this.selected.has(t.path)).map((t) => t.name).join(",");
    const range = RANGES.find(([, ms]) => ms === this.rangeMs)?.[0] ?? "1h";
    history.replaceState(null, "", `#/equipment/${encodeURI(this.node.path)}?tags=${encodeURIComponent(names)}&range=${range}`);
  }

  updateSwatches() {
    for (const s of this.el.querySelectorAll("[data-swatch]")) {
      s.style.background = this.selected.has(s.dataset.swatch) ? this.colors.get(s.dataset.swatch) : "transparent";
    }
  }

  updateValues() {
    for (const t of this.tags) {
      const cell = this.el.querySelector(`[data-value="${CSS.escape(t.path)}"]`);
      const c = live.current.get(t.path);
      if (!cell) continue;
      const q = c ? QUALITY[c.quality] ?? "bad" : null;
      cell.className = `tval ${q === "bad" ? "v-bad" : q === "uncertain" ? "v-uncertain" : ""}`;
      cell.textContent = c ? tagValue(t, c.value, null) : "—";
      if (t.name === "state" && t.states && c) {
        const pill = this.el.querySelector("#eq-state");
        const label = q === "good" ? t.states[String(Math.round(c.value))] ?? "unknown" : "unknown";
        pill.hidden = false;
        pill.className = `pill ${stateClass(label)}`;
        pill.querySelector(".label").textContent = label;
      }
    }
  }

  goLive() {
    this.mode = "live";
    this.view = null;
    this.updateUrl();
    this.load();
  }

  /** The span on screen and the bucket for it (about one bucket per horizontal pixel, at most 1500). */
  window() {
    const end = this.mode === "live" ? clock.now() : this.view[1];
    const start = this.mode === "live" ? end - this.rangeMs : this.view[0];
    const width = Math.max(300, Math.min(1500, (this.chart?.clientWidth || 1000) - 90));
    return { start, end, bucket: chooseBucket(end - start, width) };
  }

  async load() {
    if (this.stopped || !window.Plotly) return;
    const generation = ++this.generation;
    const { start, end, bucket } = this.window();
    const tags = this.tags.filter((t) => this.selected.has(t.path));
    this.updateSwatches();
    const started = performance.now();
    const fetchedAt = clock.now();
    let results;
    try {
      results = await Promise.all(tags.map((t) => getJSON("/api/history", {
        tag: t.path, start: Math.floor(start), end: this.mode === "live" ? "now" : Math.ceil(end), bucket: bucketParam(bucket),
      })));
    } catch (err) {
      if (generation === this.generation) this.el.querySelector("#trend-info").textContent = `History unavailable: ${err.message}`;
      return;
    }
    if (generation !== this.generation || this.stopped) return;
    this.bucket = bucket;
    this.loadedAt = fetchedAt;
    this.series = new Map(tags.map((t, i) => {
      const r = results[i];
      return [t.path, { t: [...r.t], mean: [...r.mean], min: [...r.min], max: [...r.max], last: [...r.last], count: [...r.count] }];
    }));
    this.loadMs = performance.now() - started;
    this.draw();
  }

  onSamples(msg) {
    this.updateValues();
    if (this.mode !== "live" || !this.bucket) return;
    const b = this.bucket;
    for (let i = 0; i < msg.tag.length; i++) {
      const s = this.series.get(msg.tag[i]);
      const v = msg.value[i];
      const t = msg.t[i];
      if (!s || v === null || Number.isNaN(v) || msg.quality[i] === 0 || t < this.loadedAt) continue;
      const start = Math.floor(t / b) * b;
      const n = s.t.length;
      if (n && s.t[n - 1] === start) {
        const c = s.count[n - 1] + 1;
        s.mean[n - 1] += (v - s.mean[n - 1]) / c;
        s.min[n - 1] = Math.min(s.min[n - 1], v);
        s.max[n - 1] = Math.max(s.max[n - 1], v);
        s.last[n - 1] = v;
        s.count[n - 1] = c;
      } else if (!n || start > s.t[n - 1]) {
        s.t.push(start); s.mean.push(v); s.min.push(v); s.max.push(v); s.last.push(v); s.count.push(1);
      }
      this.dirty = true;
    }
  }

  /** In live mode the chart is redrawn once a bucket (at least every second, at most every 10 s): a new bucket
   * is then due and the time axis has moved by one, so nothing on screen is older than a bucket. */
  tick() {
    if (this.mode !== "live" || !this.bucket || this.pointerDown) return;
    const every = Math.min(10000, Math.max(REDRAW_MS, this.bucket));
    if (performance.now() - (this.drawnAt || 0) < every - 50) return;
    const { start } = this.window();
    for (const s of this.series.values()) {
      let drop = 0;
      while (drop < s.t.length - 1 && s.t[drop] + this.bucket < start) drop++;
      if (drop) for (const k of ["t", "mean", "min", "max", "last", "count"]) s[k].splice(0, drop);
    }
    this.draw(); // the time axis moves on even when nothing arrived
    this.dirty = false;
  }

  /** Panes: each enum tag on its own, then one pane per unit; all on one time axis. */
  panes(tags) {
    const panes = [];
    for (const t of tags) {
      if (t.states || t.type === "bool") {
        panes.push({ key: t.path, unit: humanize(t.name), tags: [t], discrete: true });
        continue;
      }
      const key = `unit:${t.unit}`;
      let pane = panes.find((p) => p.key === key);
      if (!pane) panes.push(pane = { key, unit: t.unit || "value", tags: [], discrete: false });
      pane.tags.push(t);
    }
    return panes;
  }

  draw() {
    if (!window.Plotly || this.stopped || !this.bucket) return;
    const theme = themeLayout();
    const { start, end } = this.window();
    const tags = this.tags.filter((t) => this.series.has(t.path));
    const panes = this.panes(tags);
    const weights = panes.map((p) => (p.discrete ? 0.45 : 1));
    const total = weights.reduce((a, b) => a + b, 0) || 1;
    const gap = panes.length > 1 ? 0.045 : 0;
    const usable = 1 - gap * (panes.length - 1);
    const layout = {
      paper_bgcolor: theme.paper_bgcolor, plot_bgcolor: theme.plot_bgcolor, font: theme.font, hoverlabel: theme.hoverlabel,
      margin: { l: 64, r: 18, t: 10, b: 34 }, showlegend: false, dragmode: "zoom", hovermode: "x unified",
      uirevision: this.node.path,
      xaxis: {
        type: "date", range: [toPlot(start), toPlot(end)], gridcolor: theme.colors.grid, linecolor: theme.colors.line,
        showspikes: true, spikemode: "across", spikethickness: 1, spikedash: "dot", spikecolor: theme.colors.text2,
        anchor: panes.length ? `y${panes.length === 1 ? "" : panes.length}` : "y", autorange: false,
      },
    };
    const traces = [];
    let top = 1;
    let points = 0;
    panes.forEach((pane, i) => {
      const h = (weights[i] / total) * usable;
      const axis = i === 0 ? "yaxis" : `yaxis${i + 1}`;
      const ref = i === 0 ? "y" : `y${i + 1}`;
      const y = { domain: [Math.max(0, top - h), top], gridcolor: theme.colors.grid, zeroline: false, fixedrange: true,
        title: { text: pane.unit, font: { size: 11, color: theme.colors.text2 }, standoff: 6 },
        linecolor: theme.colors.line };
      top -= h + gap;
      if (pane.discrete) {
        const t = pane.tags[0];
        const codes = t.states ? Object.keys(t.states).map(Number) : [0, 1];
        y.tickvals = codes;
        y.ticktext = t.states ? codes.map((c) => t.states[String(c)]) : ["false", "true"];
        y.range = [Math.min(...codes) - 0.5, Math.max(...codes) + 0.5];
      }
      layout[axis] = y;
      for (const t of pane.tags) {
        const s = this.series.get(t.path);
        const color = this.colors.get(t.path);
        const x = s.t.map(toPlot);
        points += s.t.length;
        const name = humanize(t.name);
        if (pane.discrete || isInteger(t.type)) {
          const labels = t.states ? s.last.map((v) => t.states[String(Math.round(v))] ?? v) : null;
          traces.push({ type: "scatter", mode: "lines", x, y: s.last, yaxis: ref, name, line: { color, width: 2, shape: "hv" },
            customdata: labels, hovertemplate: labels ? `${name}: %{customdata}<extra></extra>` : `${name}: %{y:,}<extra></extra>` });
          if (t.name === "state" && t.states) this.stateShading(traces, s, t, ref);
          continue;
        }
        traces.push({ type: "scatter", mode: "lines", x, y: s.max, yaxis: ref, line: { width: 0, color }, hoverinfo: "skip", showlegend: false });
        traces.push({ type: "scatter", mode: "lines", x, y: s.min, yaxis: ref, line: { width: 0, color }, fill: "tonexty",
          fillcolor: rgba(color, 0.16), hoverinfo: "skip", showlegend: false });
        traces.push({ type: "scatter", mode: "lines", x, y: s.mean, yaxis: ref, name, line: { color, width: 1.8 },
          hovertemplate: `${name}: %{y:.4~f} ${t.unit}<extra></extra>` });
      }
    });
    if (!panes.length) {
      layout.annotations = [{ text: "Choose tags on the left to plot them", showarrow: false, xref: "paper", yref: "paper",
        x: 0.5, y: 0.5, font: { size: 14, color: theme.colors.text2 } }];
      layout.yaxis = { visible: false };
    }
    this.ignoreRelayout = true;
    const drawStart = performance.now();
    this.drawnAt = drawStart;
    window.Plotly.react(this.chart, traces, layout, PLOT_CONFIG).then(() => {
      this.chart.dataset.drawMs = String(Math.round(performance.now() - drawStart));
      this.ignoreRelayout = false;
      if (!this.listening) this.listen();
    });
    const modeEl = this.el.querySelector("#mode");
    modeEl.className = `mode ${this.mode === "live" ? "live" : "paused"}`;
    modeEl.textContent = this.mode === "live" ? "● Live" : "❚❚ Zoomed";
    this.el.querySelector("#to-live").hidden = this.mode === "live";
    this.el.querySelector("#trend-info").textContent =
      `${bucketLabel(this.bucket)} buckets · ${tags.length} tag${tags.length === 1 ? "" : "s"} · ${number(points, { integer: true })} points` +
      (this.loadMs ? ` · loaded in ${Math.round(this.loadMs)} ms` : "");
    this.chart.dataset.bucketMs = String(this.bucket);
    this.chart.dataset.points = String(points);
  }

  /** A faint band behind the state's pane in the colour of each state, so a stop stands out at a glance. */
  stateShading(traces, s, t, ref) {
    const byLabel = new Map();
    for (let i = 0; i < s.t.length; i++) {
      const label = t.states[String(Math.round(s.last[i]))] ?? "unknown";
      if (!byLabel.has(label)) byLabel.set(label, []);
      byLabel.get(label).push(i);
    }
    const codes = Object.keys(t.states).map(Number);
    const lo = Math.min(...codes) - 0.5;
    const hi = Math.max(...codes) + 0.5;
    for (const [label, idx] of byLabel) {
      if (label === "running") continue;
      const x = [];
      const y = [];
      for (const i of idx) {
        const x0 = toPlot(s.t[i]);
        const x1 = toPlot(i + 1 < s.t.length ? s.t[i + 1] : s.t[i] + this.bucket);
        x.push(x0, x1, x1, x0, x0, null);
        y.push(lo, lo, hi, hi, lo, null);
      }
      traces.push({ type: "scatter", mode: "lines", x, y, yaxis: ref, fill: "toself", line: { width: 0 },
        fillcolor: rgba(stateColor(label), 0.2), hoverinfo: "skip", showlegend: false });
    }
  }

  listen() {
    this.listening = true;
    this.chart.on("plotly_relayout", (ev) => {
      if (this.ignoreRelayout) return;
      const r0 = ev["xaxis.range[0]"] ?? ev["xaxis.range"]?.[0];
      const r1 = ev["xaxis.range[1]"] ?? ev["xaxis.range"]?.[1];
      if (r0 !== undefined && r1 !== undefined) {
        const a = fromPlot(r0);
        const b = fromPlot(r1);
        if (b - a < 1000) return;
        this.mode = "zoomed";
        this.view = [a, b];
        this.load();
      } else if (ev["xaxis.autorange"]) {
        this.goLive();
      }
    });
    this.chart.on("plotly_doubleclick", () => this.goLive());
  }
}
