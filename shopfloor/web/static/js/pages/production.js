// Production: OEE (ISO 22400) of a line per shift, drilled down to its machines and to one machine's shift
// (its stops on a timeline, its counts); the downtime Pareto of the shift; energy and CO2e per good part.

import { getJSON } from "../api.js";
import { PALETTE, PLOT_CONFIG, themeLayout, toPlot } from "../charts.js";
import { clockTime, dateTime, duration, html, number, raw } from "../format.js";

const POLL_MS = 30000;
const PROVISIONAL_MS = 15 * 60000; // a shorter measurement is shown, but marked: parts begun before it count in it

export function title() {
  return "Production";
}

function pct(x) {
  return x === null || x === undefined ? "—" : `${(100 * x).toFixed(1)}`;
}

function pctCell(x) {
  return x === null || x === undefined ? "—" : `${pct(x)} %`;
}

function oeeClass(x) {
  if (x === null || x === undefined) return "";
  return x >= 0.85 ? "oee-good" : x >= 0.6 ? "oee-fair" : "oee-poor";
}

function short(path) {
  return path.split("/").pop();
}

export function mount(el, route) {
  let asset = route.path || null;
  let chosenShift = route.query.get("shift");
  let machine = route.query.get("machine");
  let body = null;
  let stopped = false;
  let timer = null;

  el.innerHTML = `<div class="production" data-testid="production-page">
    <div class="prod-head"><h1>Production</h1>
      <select id="line" aria-label="Line"></select>
      <span class="faint" id="head-note"></span><span class="spacer"></span>
      <a class="button small" href="#/trace">Trace a serial</a></div>
    <div class="kpis" id="tiles"></div>
    <section class="panel"><div class="panel-head"><h2>OEE by shift</h2><span class="spacer"></span>
      <span class="faint">ISO 22400: OEE = availability × performance × quality · click a shift for its machines</span></div>
      <div class="table-wrap" id="shifts"></div></section>
    <div class="two-col">
      <section class="panel"><div class="panel-head"><h2 id="machines-title">Machines</h2><span class="spacer"></span>
        <span class="faint">click a machine for its shift</span></div><div class="table-wrap" id="machines"></div></section>
      <section class="panel"><div class="panel-head"><h2 id="pareto-title">Downtime Pareto</h2></div>
        <div class="chart" id="pareto" data-testid="pareto"></div></section>
    </div>
    <section class="panel" id="drill" style="margin-top:var(--gap)" hidden><div class="panel-head"><h2 id="drill-title"></h2>
      <span class="spacer"></span><button class="button small" id="drill-close" type="button">Close</button></div>
      <div class="panel-body"><div class="kpis compact" id="drill-tiles"></div><div class="chart timeline" id="timeline"></div>
      <div class="table-wrap" id="stops"></div></div></section>
  </div>`;

  const lineSelect = el.querySelector("#line");
  lineSelect.addEventListener("change", () => {
    window.location.hash = `#/production/${encodeURI(lineSelect.value)}`;
  });
  el.querySelector("#drill-close").addEventListener("click", () => {
    machine = null;
    render();
  });

  function selectedShift() {
    const measured = body.shifts.filter((s) => s.measured_from_ns !== null);
    return measured.find((s) => s.shift === chosenShift) ?? measured[measured.length - 1] ?? null;
  }

  function tile(label, value, sub, cls = "") {
    return html`<div class="panel kpi ${cls}"><div class="label">${label}</div><div class="value">${raw(value)}</div>
      <div class="sub">${raw(sub)}</div></div>`.html;
  }

  function co2PerPart(kwhPerPart) {
    const f = body.emission_factor_kg_per_kwh;
    return kwhPerPart === null || kwhPerPart === undefined || f === null ? null : kwhPerPart * f;
  }

  function renderTiles(s) {
    const tiles = el.querySelector("#tiles");
    if (!s) {
      tiles.innerHTML = '<div class="panel empty">No machine state has been recorded yet: OEE starts with the first one.</div>';
      return;
    }
    const measuredMs = (s.end_ns - s.measured_from_ns) / 1e6;
    const provisional = measuredMs < PROVISIONAL_MS;
    const since = s.measured_from_ns > s.start_ns ? `measured since ${clockTime(s.measured_from_ns / 1e6)} (no data before)` : `since ${clockTime(s.start_ns / 1e6)}`;
    const co2 = co2PerPart(s.energy_per_good_part_kwh);
    el.querySelector("#head-note").textContent = `shift ${s.shift} · ${since}${provisional ? ` · only ${duration(measuredMs)} measured: provisional, parts begun before measuring count in it` : ""}`;
    tiles.innerHTML = [
      tile("OEE", `<span data-testid="oee-value" class="${provisional ? "provisional" : oeeClass(s.oee_index)}">${pct(s.oee_index)}</span><small>%</small>`,
        `shift ${s.shift}${provisional ? ' <span class="badge uncertain">provisional</span>' : ""}`),
      tile("Availability", `${pct(s.availability)}<small>%</small>`, "run time / planned busy time"),
      tile("Performance", `${pct(s.effectiveness)}<small>%</small>`, "planned run time × parts / run time"),
      tile("Quality", `${pct(s.quality_ratio)}<small>%</small>`, `${number(s.GQ, { integer: true })} good · ${number(s.SQ, { integer: true })} scrap${s.rejected_at_inspection ? ` (${number(s.rejected_at_inspection, { integer: true })} rejected at inspection)` : ""}`),
      tile("Energy per good part", `${number(s.energy_per_good_part_kwh)}<small>kWh</small>`,
        s.energy_kwh === null ? "no energy meters" : `${number(s.energy_kwh)} kWh in the shift`),
      tile("CO2e per good part", `${co2 === null ? "—" : number(co2)}<small>kg</small>`,
        body.emission_factor_kg_per_kwh === null ? "no emission factor configured" : `at ${body.emission_factor_kg_per_kwh} kg CO2e/kWh`),
    ].join("");
  }

  function renderShifts(current) {
    const rows = [...body.shifts].reverse().map((s) => {
      if (s.measured_from_ns === null) {
        return html`<tr class="faint"><td>${s.shift}</td><td>${dateTime(s.start_ns / 1e6)}</td><td colspan="8">no data recorded</td></tr>`;
      }
      const co2 = co2PerPart(s.energy_per_good_part_kwh);
      const early = (s.end_ns - s.measured_from_ns) / 1e6 < PROVISIONAL_MS;
      return html`<tr class="clickable ${current && s.shift === current.shift ? "selected" : ""}" data-shift="${s.shift}" data-testid="shift-row">
        <td><b>${s.shift}</b></td><td>${dateTime(s.measured_from_ns / 1e6)} – ${clockTime(s.end_ns / 1e6)}</td>
        <td class="r">${pctCell(s.availability)}</td><td class="r">${pctCell(s.effectiveness)}</td><td class="r">${pctCell(s.quality_ratio)}</td>
        <td class="r"><b class="${early ? "provisional" : oeeClass(s.oee_index)}" title="${early ? "provisional: under 15 min measured" : ""}">${pctCell(s.oee_index)}</b></td>
        <td class="r">${number(s.GQ, { integer: true })}</td><td class="r">${number(s.SQ, { integer: true })}</td>
        <td class="r">${s.energy_per_good_part_kwh === null ? "—" : `${number(s.energy_per_good_part_kwh)} kWh`}${co2 === null ? "" : ` · ${number(co2)} kg`}</td>
        <td>${s.bottleneck ? short(s.bottleneck) : "—"}</td></tr>`;
    });
    el.querySelector("#shifts").innerHTML = html`<table class="grid"><thead><tr><th>Shift</th><th>Measured</th><th class="r">Availability</th>
      <th class="r">Performance</th><th class="r">Quality</th><th class="r">OEE</th><th class="r">Good</th><th class="r">Scrap</th>
      <th class="r">Per good part</th><th>Bottleneck</th></tr></thead><tbody>${rows}</tbody></table>`.html;
    el.querySelectorAll("#shifts tr[data-shift]").forEach((tr) => tr.addEventListener("click", () => {
      chosenShift = tr.dataset.shift;
      render();
    }));
  }

  function renderMachines(s) {
    el.querySelector("#machines-title").textContent = s ? `Machines · shift ${s.shift}` : "Machines";
    if (!s) {
      el.querySelector("#machines").innerHTML = '<div class="empty">No data.</div>';
      return;
    }
    const rows = s.machines.map((m) => html`<tr class="clickable ${m.machine === machine ? "selected" : ""}" data-machine="${m.machine}" data-testid="machine-row">
      <td><b>${short(m.machine)}</b>${m.machine === s.bottleneck ? raw(' <span class="badge">bottleneck</span>') : ""}</td>
      <td class="r">${pctCell(m.availability)}</td><td class="r">${pctCell(m.effectiveness)}</td><td class="r">${pctCell(m.quality_ratio)}</td>
      <td class="r"><b class="${oeeClass(m.oee_index)}">${pctCell(m.oee_index)}</b></td>
      <td class="r">${number(m.GQ, { integer: true })} / ${number(m.SQ, { integer: true })}</td>
      <td class="r">${number(m.PRI_s)} s</td></tr>`);
    el.querySelector("#machines").innerHTML = html`<table class="grid"><thead><tr><th>Machine</th><th class="r">A</th><th class="r">P</th>
      <th class="r">Q</th><th class="r">OEE</th><th class="r">Good / scrap</th><th class="r" title="Planned run time per item (routing)">PRI</th></tr></thead>
      <tbody>${rows}</tbody></table>`.html;
    el.querySelectorAll("#machines tr[data-machine]").forEach((tr) => tr.addEventListener("click", () => {
      machine = tr.dataset.machine;
      render();
      el.querySelector("#drill").scrollIntoView({ behavior: "smooth", block: "nearest" });
    }));
  }

  function renderPareto(s) {
    const div = el.querySelector("#pareto");
    el.querySelector("#pareto-title").textContent = s ? `Downtime Pareto · shift ${s.shift}` : "Downtime Pareto";
    if (!window.Plotly) return;
    const theme = themeLayout();
    const rows = s ? s.pareto : [];
    window.Plotly.react(div, [
      { type: "bar", x: rows.map((r) => r.reason), y: rows.map((r) => r.seconds / 60), name: "minutes",
        marker: { color: rows.map((r) => (r.planned ? PALETTE[4] : PALETTE[3])) },
        customdata: rows.map((r) => [r.stops, r.planned ? "planned" : "unplanned"]),
        hovertemplate: "%{x}: %{y:.1f} min in %{customdata[0]} stops (%{customdata[1]})<extra></extra>" },
      { type: "scatter", mode: "lines+markers", x: rows.map((r) => r.reason), y: rows.map((r) => 100 * r.cumulative_share),
        yaxis: "y2", name: "cumulative %", line: { color: theme.colors.text2, width: 1.5 }, hovertemplate: "%{y:.0f} %<extra></extra>" },
    ], {
      paper_bgcolor: theme.paper_bgcolor, plot_bgcolor: theme.plot_bgcolor, font: theme.font, hoverlabel: theme.hoverlabel,
      margin: { l: 48, r: 44, t: 10, b: 60 }, showlegend: false, bargap: 0.35,
      yaxis: { title: { text: "minutes" }, gridcolor: theme.colors.grid, zeroline: false, rangemode: "tozero" },
      yaxis2: { overlaying: "y", side: "right", range: [0, 105], ticksuffix: " %", showgrid: false },
      xaxis: { linecolor: theme.colors.line },
      annotations: rows.length ? [] : [{ text: "no stops in this shift", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
    }, { ...PLOT_CONFIG, displayModeBar: false });
  }

  function renderDrill(s) {
    const panel = el.querySelector("#drill");
    const m = s && machine ? s.machines.find((x) => x.machine === machine) : null;
    panel.hidden = !m;
    if (!m) return;
    el.querySelector("#drill-title").textContent = `${short(m.machine)} · shift ${s.shift}`;
    const t = m.time_s;
    el.querySelector("#drill-tiles").innerHTML = [
      tile("OEE", `<span class="${oeeClass(m.oee_index)}">${pct(m.oee_index)}</span><small>%</small>`, `A ${pctCell(m.availability)} · P ${pctCell(m.effectiveness)} · Q ${pctCell(m.quality_ratio)}`),
      tile("Good / scrap", `${number(m.GQ, { integer: true })}<small>/ ${number(m.SQ, { integer: true })}</small>`, `scrap ${pctCell(m.scrap_ratio)}${m.rejected_at_inspection ? ` · ${number(m.rejected_at_inspection, { integer: true })} rejected at inspection` : ""}`),
      tile("Running", duration(t.APT * 1000), `waiting ${duration(t.ADET * 1000)} · down ${duration(t.ADOT * 1000)} · setup ${duration(t.AUST * 1000)}`),
      tile("Cycle time", `${number(m.actual_cycle_time_s)}<small>s</small>`, `planned ${number(m.PRI_s)} s per part`),
      tile("Failures", `${m.failures}`, `MTTR ${m.mttr_s === null ? "—" : duration(m.mttr_s * 1000)} · MTBF ${m.mtbf_s === null ? "—" : duration(m.mtbf_s * 1000)}`),
      tile("Energy per good part", `${number(m.energy_per_good_part_kwh)}<small>kWh</small>`,
        m.co2e_per_good_part_kg === null ? "" : `${number(m.co2e_per_good_part_kg)} kg CO2e`),
    ].join("");
    renderTimeline(s, m);
    el.querySelector("#stops").innerHTML = m.stops.length ? html`<table class="grid"><thead><tr><th>From</th><th>To</th>
      <th class="r">Duration</th><th>Reason</th><th></th></tr></thead><tbody>${[...m.stops].reverse().map((x) => html`<tr>
        <td>${clockTime(x.start_ns / 1e6)}</td><td>${clockTime(x.end_ns / 1e6)}</td><td class="r">${duration(x.seconds * 1000)}</td>
        <td>${x.reason}</td><td>${x.planned ? raw('<span class="badge">planned</span>') : ""}</td></tr>`)}</tbody></table>`.html
      : '<div class="empty">No stops: it ran the whole time measured.</div>';
  }

  function renderTimeline(s, m) {
    if (!window.Plotly) return;
    const theme = themeLayout();
    const a = s.measured_from_ns / 1e6;
    const b = s.end_ns / 1e6;
    const reasons = [...new Set(m.stops.map((x) => x.reason))];
    const traces = [{ type: "bar", orientation: "h", y: ["state"], base: [toPlot(a)], x: [b - a], name: "running",
      marker: { color: getComputedStyle(document.documentElement).getPropertyValue("--running").trim() || PALETTE[2] },
      hovertemplate: "running<extra></extra>" }];
    reasons.forEach((reason, i) => {
      const stops = m.stops.filter((x) => x.reason === reason);
      traces.push({ type: "bar", orientation: "h", y: stops.map(() => "state"), base: stops.map((x) => toPlot(x.start_ns / 1e6)),
        x: stops.map((x) => Math.max((x.end_ns - x.start_ns) / 1e6, 1000)), name: reason,
        marker: { color: PALETTE[(i + 3) % PALETTE.length] }, hovertemplate: `${reason}: %{x:,.0f} ms<extra></extra>` });
    });
    window.Plotly.react(el.querySelector("#timeline"), traces, {
      paper_bgcolor: theme.paper_bgcolor, plot_bgcolor: theme.plot_bgcolor, font: theme.font, hoverlabel: theme.hoverlabel,
      barmode: "overlay", margin: { l: 10, r: 10, t: 4, b: 26 }, height: 110, showlegend: true,
      legend: { orientation: "h", y: 1.4, x: 0 }, yaxis: { visible: false, fixedrange: true },
      xaxis: { type: "date", range: [toPlot(a), toPlot(b)], gridcolor: theme.colors.grid, linecolor: theme.colors.line },
    }, { ...PLOT_CONFIG, displayModeBar: false });
  }

  function render() {
    if (!body) return;
    const s = selectedShift();
    renderTiles(s);
    renderShifts(s);
    renderMachines(s);
    renderPareto(s);
    renderDrill(s);
  }

  async function load() {
    try {
      body = await getJSON("/api/mes/production", { asset, hours: 24 });
      if (stopped) return;
      asset = body.asset;
      lineSelect.innerHTML = html`${body.lines.map((l) => html`<option value="${l}" ${l === asset ? "selected" : ""}>${l}</option>`)}`.html;
      render();
    } catch (err) {
      if (stopped) return;
      el.querySelector("#tiles").innerHTML = html`<div class="panel error-note">Production figures are not available: ${err.message}</div>`.html;
    } finally {
      if (!stopped) timer = setTimeout(load, POLL_MS);
    }
  }

  const rerender = () => render();
  window.addEventListener("themechange", rerender);
  load();
  return () => {
    stopped = true;
    clearTimeout(timer);
    window.removeEventListener("themechange", rerender);
  };
}
