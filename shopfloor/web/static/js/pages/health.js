// Data health: is data coming in, from which connectors and edge gateways, how fast, and what was rejected and why.

import { getJSON } from "../api.js";
import { catalog, clock } from "../catalog.js";
import { PLOT_CONFIG, themeLayout, toPlot } from "../charts.js";
import { dateTime, duration, html, humanize, number, raw, tagValue } from "../format.js";

const POLL_MS = 3000;
const LAST_ACTIVITY = ["last_message_ns", "last_data_ns", "last_poll_ns"];
const HIDDEN = new Set(["name", "protocol", "endpoint", "broker", "connected", "state", "last_error", "sparkplug",
  "subscriptions", "failed_nodes", "request_errors", "security_policy", "counts"]);

export function title() {
  return "Data health";
}

export function mount(el) {
  el.innerHTML = `<div data-testid="health">
    <div class="health-grid" id="tiles"></div>
    <div class="two-col">
      <section class="panel"><div class="panel-head"><h2>Ingest rate</h2><span class="spacer"></span><span class="faint">rows committed per second</span></div>
        <div class="spark" id="spark"></div></section>
      <section class="panel"><div class="panel-head"><h2>Edge gateways</h2><span class="spacer"></span><span class="faint">Sparkplug B nodes</span></div>
        <div id="gateways"></div></section>
    </div>
    <section class="panel" style="margin-top:var(--gap)"><div class="panel-head"><h2>Connectors</h2></div><div id="connectors"></div></section>
    <section class="panel" style="margin-top:var(--gap)" id="link-panel" hidden><div class="panel-head"><h2>Link quality</h2>
      <span class="spacer"></span><span class="faint">tags that measure radio or network links</span></div><div id="links"></div></section>
    <section class="panel" style="margin-top:var(--gap)"><div class="panel-head"><h2>Dead letters</h2><span class="spacer"></span>
      <span class="faint" id="dl-count"></span></div><div class="table-wrap" id="deadletters"></div></section>
  </div>`;
  let stopped = false;
  let body = null;
  const spark = el.querySelector("#spark");

  function tile(label, value, sub, cls = "") {
    return html`<div class="panel kpi"><div class="label">${label}</div><div class="value ${cls}">${raw(value)}</div><div class="sub">${sub}</div></div>`.html;
  }

  /** Latency from the source's timestamp to the commit; below zero the source's clock is ahead of the platform's. */
  function latency(ms, label) {
    if (ms === null || ms === undefined) return "—";
    if (ms < 0) return `<span title="The sources' timestamps are ahead of the platform's clock">${number(ms)}<small>ms ${label} (source clock ahead)</small></span>`;
    return `${number(ms)}<small>ms ${label}</small>`;
  }

  function renderTiles() {
    const ing = body.ingest;
    const up = body.started_ms ? duration(body.now_ms - body.started_ms) : "—";
    const dl = body.dead_letters;
    const since = Object.entries(dl.since_start || {}).map(([k, v]) => `${v} ${k}`).join(" · ") || "none since start";
    el.querySelector("#tiles").innerHTML = [
      tile("Platform", `<span class="pill ${body.status === "ok" ? "q-good" : "q-bad"}" data-testid="platform-status">${body.status}</span>`, `up ${up}`),
      tile("Ingest rate", `${ing.rate_per_s === null ? "—" : number(ing.rate_per_s)}<small>rows/s</small>`, `${number(ing.rows_committed, { integer: true })} rows since start`),
      tile("Source to commit", latency(ing.latency_ms_p50, "p50"),
        `p99 ${latency(ing.latency_ms_p99, "").replace(/<[^>]+>/g, " ")} · ${number(ing.commits, { integer: true })} commits`),
      tile("Writer", `${number(ing.pending_rows, { integer: true })}<small>rows queued</small>`,
        ing.write_errors ? `${ing.write_errors} write errors: ${ing.last_error ?? ""}` : "no write errors", ing.write_errors ? "v-bad" : ""),
      tile("Dead letters", `${number(dl.kept, { integer: true })}<small>kept</small>`, since, dl.kept ? "v-uncertain" : ""),
    ].join("");
  }

  function renderSpark() {
    if (!window.Plotly) return;
    const theme = themeLayout();
    const s = body.ingest.series;
    window.Plotly.react(spark, [{
      type: "scatter", mode: "lines", x: s.t.map(toPlot), y: s.rate, line: { color: theme.colors.accent, width: 1.8, shape: "spline" },
      fill: "tozeroy", fillcolor: "rgba(80, 130, 230, 0.12)", hovertemplate: "%{y:,.0f} rows/s<extra></extra>",
    }], {
      paper_bgcolor: theme.paper_bgcolor, plot_bgcolor: theme.plot_bgcolor, font: theme.font, hoverlabel: theme.hoverlabel,
      margin: { l: 52, r: 14, t: 10, b: 28 }, showlegend: false,
      xaxis: { type: "date", gridcolor: theme.colors.grid, linecolor: theme.colors.line, fixedrange: true, tickformat: "%H:%M:%S" },
      yaxis: { gridcolor: theme.colors.grid, zeroline: false, fixedrange: true, rangemode: "tozero" },
      annotations: s.t.length < 2 ? [{ text: "collecting…", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }] : [],
    }, { ...PLOT_CONFIG, displayModeBar: false });
  }

  function renderGateways() {
    const g = body.gateways;
    el.querySelector("#gateways").innerHTML = g.length ? html`<div class="table-wrap"><table class="grid"><thead><tr><th>Node</th><th>Link</th>
      <th class="r">Last seen</th><th class="r">Messages</th><th class="r" title="Sparkplug sequence numbers skipped: lost messages">Seq. gaps</th>
      <th class="r">Births/deaths</th><th class="r" title="Rebirths requested by the platform">Rebirths</th></tr></thead><tbody>${g.map((n) => html`<tr data-testid="gateway-row">
        <td><b>${n.name}</b></td>
        <td><span class="pill ${n.online ? "q-good" : "q-bad"}">${n.online ? "online" : "offline"}</span></td>
        <td class="r">${n.last_seen_ms ? `${duration(body.now_ms - n.last_seen_ms)} ago` : "—"}</td>
        <td class="r">${number(n.messages, { integer: true })}</td>
        <td class="r ${n.seq_gaps ? "v-uncertain" : ""}">${number(n.seq_gaps, { integer: true })}${n.messages ? ` (${((100 * n.seq_gaps) / n.messages).toFixed(2)} %)` : ""}</td>
        <td class="r">${n.births} / ${n.deaths}</td>
        <td class="r">${n.rebirth_requests}</td></tr>`)}</tbody></table></div>`.html
      : '<div class="empty">No Sparkplug B edge node has been seen.</div>';
  }

  function renderConnectors() {
    const rows = body.connectors.map((c) => {
      const state = c.state ?? (c.connected ? "connected" : "disconnected");
      const good = ["connected", "up"].includes(state);
      const lastNs = LAST_ACTIVITY.map((k) => c[k]).find((v) => v);
      const counters = { ...(c.counts || {}) };
      for (const [k, v] of Object.entries(c)) {
        if (!HIDDEN.has(k) && !k.endsWith("_ns") && typeof v === "number") counters[k] = v;
      }
      const failed = Object.keys(c.failed_nodes || {}).length;
      return html`<tr data-testid="connector-row">
        <td><b>${c.protocol ?? c.name}</b><div class="path mono">${c.endpoint ?? c.broker ?? c.name}</div></td>
        <td><span class="pill ${good ? "q-good" : "q-bad"}">${state}</span></td>
        <td class="r">${lastNs ? `${duration(clock.now() - lastNs / 1e6)} ago` : "—"}</td>
        <td class="muted">${Object.entries(counters).map(([k, v]) => `${humanize(k).toLowerCase()} ${number(v, { integer: Number.isInteger(v) })}`).join(" · ")}</td>
        <td class="${c.last_error || failed ? "reason" : "faint"}">${c.last_error ?? (failed ? `${failed} nodes failed` : "none")}</td>
      </tr>`;
    });
    el.querySelector("#connectors").innerHTML = html`<table class="grid"><thead><tr><th>Connector</th><th>State</th>
      <th class="r">Last data</th><th>Counters</th><th>Last error</th></tr></thead><tbody>${rows}</tbody></table>`.html;
  }

  function renderLinks() {
    const links = body.link_tags;
    el.querySelector("#link-panel").hidden = links.length === 0;
    if (!links.length) return;
    el.querySelector("#links").innerHTML = html`<table class="grid"><thead><tr><th>Equipment</th><th>Tag</th><th class="r">Value</th>
      <th>Quality</th><th class="r">Age</th></tr></thead><tbody>${links.map((t) => html`<tr>
        <td>${t.equipment.split("/").pop()}</td><td>${t.name}</td>
        <td class="r"><b>${tagValue(catalog.tags.get(t.tag), t.value, t.label)}</b><span class="unit">${t.unit}</span></td>
        <td><span class="pill q-${t.quality ?? "bad"}">${t.quality ?? "no data"}</span>${raw(t.stale ? ' <span class="badge stale">stale</span>' : "")}</td>
        <td class="r">${t.ts_ms ? duration(body.now_ms - t.ts_ms) : "—"}</td></tr>`)}</tbody></table>`.html;
  }

  async function loadDeadLetters() {
    const list = await getJSON("/api/deadletters", { limit: 50 });
    if (stopped) return;
    el.querySelector("#dl-count").textContent = list.length ? `newest ${list.length} of ${body?.dead_letters.kept ?? list.length}` : "";
    el.querySelector("#deadletters").innerHTML = list.length ? html`<table class="grid"><thead><tr><th>Received</th><th>Source</th>
      <th>Topic</th><th>Reason</th><th class="r">Size</th><th>Payload</th></tr></thead><tbody>${list.map((d) => html`<tr data-testid="deadletter-row">
        <td class="num">${dateTime(Date.parse(d.received))}</td><td>${d.source}</td><td class="mono">${d.topic}</td>
        <td class="reason">${d.reason}</td><td class="r">${number(d.size, { integer: true })} B</td>
        <td><div class="payload mono" title="${d.payload_text ?? d.payload_hex}">${d.payload_text ?? d.payload_hex}</div></td></tr>`)}</tbody></table>`.html
      : '<div class="empty">Nothing was rejected: every message could be used.</div>';
  }

  async function load() {
    const started = Date.now();
    try {
      body = await getJSON("/api/dashboard/health");
      if (stopped) return;
      clock.update(body.now_ms, started);
      renderTiles();
      renderSpark();
      renderGateways();
      renderConnectors();
      renderLinks();
      await loadDeadLetters();
    } catch (err) {
      if (!stopped && !body) el.querySelector("#tiles").innerHTML = html`<div class="panel error-note">Could not load data health: ${err.message}</div>`.html;
    }
  }

  const onTheme = () => body && renderSpark();
  window.addEventListener("themechange", onTheme);
  load();
  const timer = setInterval(load, POLL_MS);
  return () => {
    stopped = true;
    clearInterval(timer);
    window.removeEventListener("themechange", onTheme);
    if (window.Plotly) window.Plotly.purge(spark);
  };
}
