// Maintenance: each machine's spindle bearing as the maintenance service sees it (health index, remaining
// useful life with its interval, diagnosed fault and confidence), the trend of health and RUL from the
// historian for the machine chosen, and the maintenance work orders with their actions (engineer).

import { getJSON } from "../api.js";
import { PageLoop, runAction, showEmpty, showLoadError } from "../apppage.js";
import { PLOT_CONFIG, themeLayout, toPlot } from "../charts.js";
import { html, number, when } from "../format.js";

const POLL_MS = 5000;
const SPANS = { "8h": 8, "24h": 24, "7d": 168 };

export function title() {
  return "Maintenance";
}

function shortName(path) {
  return path.split("/").pop();
}

function hours(h) {
  if (h === null || h === undefined) return "—";
  return h >= 100 ? number(h, { integer: true }) : number(h);
}

function healthClass(hi) {
  if (hi === null || hi === undefined) return "";
  return hi < 40 ? "v-bad" : hi < 70 ? "v-warn" : "";
}

export function mount(el, route) {
  el.innerHTML = `<div class="maintenance-page" data-testid="maintenance-page">
    <div class="maintenance-head"><h1>Maintenance</h1><span class="faint" id="model-info"></span></div>
    <div class="machines" id="machines" data-testid="machines"><div class="empty">Loading…</div></div>
    <section class="panel">
      <div class="panel-head"><h2 id="trend-title">Health and remaining useful life</h2><span class="spacer"></span>
        <span class="seg" id="spans">${Object.keys(SPANS).map((k) => `<button type="button" data-span="${k}">${k}</button>`).join("")}</span></div>
      <div class="health-trend" id="trend" data-testid="health-trend"></div>
    </section>
    <section class="panel" style="margin-top:var(--gap)">
      <div class="panel-head"><h2>Work orders</h2><span class="spacer"></span>
        <label class="faint"><input type="checkbox" id="show-closed"> closed too</label></div>
      <div class="table-wrap" id="orders" data-testid="work-orders"></div>
    </section>
  </div>`;
  const page = new PageLoop(POLL_MS);
  let chosen = route?.query?.get("machine") || null;
  let span = "8h";
  let machines = [];
  const trend = el.querySelector("#trend");

  function renderMachines(body) {
    const m = body.model;
    el.querySelector("#model-info").textContent = m.kind === "artifact"
      ? `diagnosis: model ${m.name} v${m.version}` : "diagnosis: envelope analysis at the bearing defect frequencies";
    machines = body.machines;
    if (!chosen && machines.length) chosen = machines[0].equipment;
    const box = el.querySelector("#machines");
    if (!machines.length) {
      showEmpty(box, "No machine is watched (maintenance.machines is empty).");
      return;
    }
    box.innerHTML = machines.map((s) => {
      const rul = s.rul_h === null ? "no trend yet" : `${hours(s.rul_h)} h`;
      const interval = s.rul_h === null ? "the bearing is not degrading" : `80 %: ${hours(s.rul_low_h)} – ${hours(s.rul_high_h)} h`;
      const fault = s.windows ? `${s.fault_label}` : "no vibration yet";
      return html`<div class="panel machine" role="button" tabindex="0" data-testid="machine" data-equipment="${s.equipment}"
          aria-pressed="${String(s.equipment === chosen)}">
        <h2><span>${shortName(s.equipment)}</span><span class="faint">${s.windows} windows</span></h2>
        <div class="figures">
          <div><div class="label">Health</div><div class="big ${healthClass(s.health_index)}" data-testid="health">${
            s.health_index === null ? "—" : `${number(s.health_index)} %`}</div></div>
          <div><div class="label">Remaining life</div><div class="big" data-testid="rul">${rul}</div>
            <div class="faint">${interval}</div></div>
          <div><div class="label">Fault</div><div data-testid="fault"><b>${fault}</b></div>
            <div class="faint">${s.windows ? `${number(100 * s.confidence)} % sure · lines ${number(s.defect_db)} dB` : ""}</div></div>
          <div><div class="label">Vibration over healthy</div><div>${
            s.degradation_mm_s === null ? "—" : `${number(s.degradation_mm_s)} mm/s`}</div>
            <div class="faint">fails at ${number(s.failure_level_mm_s)} mm/s</div></div>
        </div></div>`.html;
    }).join("");
  }

  async function renderTrend() {
    const m = machines.find((s) => s.equipment === chosen);
    if (!m || !window.Plotly) return;
    el.querySelector("#trend-title").textContent = `Health and remaining useful life · ${shortName(m.equipment)}`;
    el.querySelectorAll("#spans button").forEach((b) => b.setAttribute("aria-pressed", String(b.dataset.span === span)));
    const start = `-${SPANS[span]}h`;
    const tags = ["health_index", "rul", "rul_low", "rul_high"];
    const series = await Promise.all(tags.map((t) => getJSON("/api/history", { tag: `${m.health_equipment}/${t}`, start })));
    if (page.stopped) return;
    const [hi, rul, low, high] = series;
    const x = (s) => s.t.map(toPlot);
    const y = (s) => s.mean ?? s.value;
    const theme = themeLayout();
    window.Plotly.react(trend, [
      { type: "scatter", mode: "lines", x: x(high), y: y(high), line: { width: 0 }, hoverinfo: "skip", showlegend: false, yaxis: "y2" },
      { type: "scatter", mode: "lines", x: x(low), y: y(low), line: { width: 0 }, fill: "tonexty", fillcolor: "rgba(78,121,167,0.2)",
        name: "RUL 80 % interval", yaxis: "y2", hovertemplate: "low %{y:.2f} h<extra></extra>" },
      { type: "scatter", mode: "lines", x: x(rul), y: y(rul), name: "RUL (h)", yaxis: "y2", line: { color: "#4e79a7", width: 2 },
        hovertemplate: "RUL %{y:.2f} h<extra></extra>" },
      { type: "scatter", mode: "lines", x: x(hi), y: y(hi), name: "health index (%)", line: { color: "#59a14f", width: 2 },
        hovertemplate: "health %{y:.1f} %<extra></extra>" },
    ], {
      paper_bgcolor: theme.paper_bgcolor, plot_bgcolor: theme.plot_bgcolor, font: theme.font, hoverlabel: theme.hoverlabel,
      margin: { l: 48, r: 52, t: 10, b: 28 }, legend: { orientation: "h", y: 1.1 },
      xaxis: { type: "date", gridcolor: theme.colors.grid, linecolor: theme.colors.line },
      yaxis: { title: { text: "health %" }, range: [0, 105], gridcolor: theme.colors.grid, zeroline: false },
      yaxis2: { title: { text: "RUL h" }, overlaying: "y", side: "right", showgrid: false, rangemode: "tozero" },
      annotations: hi.t.length ? [] : [{ text: "no history in this period", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
    }, { ...PLOT_CONFIG, displayModeBar: false });
  }

  function renderOrders(rows) {
    const box = el.querySelector("#orders");
    if (!rows.length) {
      showEmpty(box, "No work order: no bearing is predicted to fail soon.");
      return;
    }
    box.innerHTML = html`<table class="grid"><thead><tr><th>Order</th><th>Machine</th><th>Predicted fault</th>
      <th>Opened</th><th>Due</th><th>Predicted failure</th><th>Status</th><th class="r">Actions</th></tr></thead><tbody>
      ${rows.map((o) => html`<tr data-testid="work-order" data-id="${o.id}">
        <td><b>${o.number}</b></td><td>${shortName(o.equipment)}</td>
        <td>${o.fault}<div class="faint">${number(100 * o.confidence)} % sure</div></td>
        <td>${when(o.created_ns / 1e6)}</td><td>${when(o.due_ns / 1e6)}</td>
        <td>${when(o.predicted_failure_ns / 1e6)}<div class="faint">RUL ${hours(o.rul_h)} h (low ${hours(o.rul_low_h)} h)</div></td>
        <td><span class="pill ${o.status === "closed" ? "q-good" : o.status === "open" ? "q-bad" : "q-uncertain"}">${o.status}</span>
          <div class="faint">${o.closed_by ? `by ${o.closed_by}` : o.acked_by ? `by ${o.acked_by}` : ""}</div></td>
        <td class="r wo-actions">${o.status === "closed" ? "" : html`${o.status === "open"
          ? html`<button class="button small" type="button" data-action="ack" data-id="${o.id}">Acknowledge</button>` : ""}
          <button class="button small" type="button" data-action="close" data-id="${o.id}">Close</button>`}</td>
      </tr>`)}</tbody></table>`.html;
  }

  async function refresh() {
    try {
      const closed = el.querySelector("#show-closed").checked;
      const [status, orders] = await Promise.all([
        getJSON("/api/maintenance/machines"),
        getJSON("/api/maintenance/work-orders", closed ? { limit: 100 } : { status: "open" }),
      ]);
      if (page.stopped) return;
      renderMachines(status);
      renderOrders(orders);
      await renderTrend();
    } catch (err) {
      if (page.stopped) return;
      showLoadError(el.querySelector("#machines"), err, {
        absent: "This plant runs no maintenance service (no 'maintenance:' section in plant.yaml).", what: "Maintenance",
      });
    }
  }

  el.addEventListener("click", async (event) => {
    const card = event.target.closest(".machine[data-equipment]");
    if (card) {
      chosen = card.dataset.equipment;
      el.querySelectorAll(".machine").forEach((c) => c.setAttribute("aria-pressed", String(c === card)));
      renderTrend();
      return;
    }
    const spanButton = event.target.closest("button[data-span]");
    if (spanButton) {
      span = spanButton.dataset.span;
      renderTrend();
      return;
    }
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const { id, action } = button.dataset;
    await runAction(button, {
      path: `/api/maintenance/work-orders/${id}/${action}`, body: action === "close" ? { note: "closed from the dashboard" } : {},
      refresh, done: action === "ack" ? "Work order acknowledged" : "Work order closed",
      failed: action === "ack" ? "acknowledge the work order" : "close the work order",
    });
  });
  el.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && event.target.matches(".machine[data-equipment]")) event.target.click();
  });
  el.querySelector("#show-closed").addEventListener("change", refresh);

  page.start(refresh);
  page.onTheme(() => renderTrend());
  return () => {
    page.stop();
    if (window.Plotly) window.Plotly.purge(trend);
  };
}
