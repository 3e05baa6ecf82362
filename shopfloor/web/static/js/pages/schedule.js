// Schedule: the plant's plan against what the machines did. Per machine a "plan" row (work orders as bars,
// planned downtime hatched) and an "actual" row (machine states from the bus, parts made per work order),
// the current time, a marker for every reschedule, KPIs from now on, the orders and the plan's history.
// Operators can enter a work order (a rush order with a high priority).

import { ApiError, getJSON, sendJSON } from "../api.js";
import { session } from "../auth.js";
import { PALETTE, PLOT_CONFIG, rgba, stateColor, themeLayout, toPlot } from "../charts.js";
import { duration, html, number, when } from "../format.js";
import { actionFailed, toast } from "../toast.js";

const POLL_MS = 3000;
const STATE_NAMES = { 0: "running", 1: "idle", 2: "down", 3: "setup" };
const TRIGGERS = {
  orders: "New orders", machine_down: "Machine down", still_down: "Still down", machine_up: "Machine back",
  rush_order: "Rush order", improved: "Improved (CP-SAT)",
};
const MARKED = new Set(["machine_down", "still_down", "machine_up", "rush_order"]);

export function title() {
  return "Schedule";
}

function jobColors(body) {
  const colors = new Map();
  body.orders.forEach((o, i) => colors.set(o.number, PALETTE[i % PALETTE.length]));
  return (job) => colors.get(job) ?? PALETTE[0];
}

export function mount(el) {
  el.innerHTML = html`<div class="schedule-page" data-testid="schedule-page">
    <div class="schedule-head">
      <h1>Schedule</h1><span class="faint" id="plan-info"></span><span class="spacer"></span>
      <button class="button" type="button" id="add-order" data-min-role="operator">New work order</button>
    </div>
    <div class="kpis" id="kpis"></div>
    <section class="panel">
      <div class="panel-head"><h2>Plan against actual</h2><span class="spacer"></span>
        <span class="faint">plan rows: work orders · actual rows: machine states, parts made per order · dashed: reschedules</span></div>
      <div class="gantt" id="gantt" data-testid="gantt"></div>
    </section>
    <div class="two-col schedule-tables">
      <section class="panel"><div class="panel-head"><h2>Work orders</h2><span class="spacer"></span><span class="faint" id="order-count"></span></div>
        <div class="table-wrap" id="orders"></div></section>
      <section class="panel"><div class="panel-head"><h2>Reschedules</h2><span class="spacer"></span><span class="faint">newest first</span></div>
        <div class="table-wrap" id="events"></div></section>
    </div>
    <dialog class="panel dialog" id="order-dialog" aria-labelledby="order-title">
      <form method="dialog" id="order-form">
        <h2 id="order-title">New work order</h2>
        <label>Number <input id="wo-number" required maxlength="80" placeholder="WO-1234"></label>
        <label>Product <input id="wo-product" required maxlength="80" list="wo-products" placeholder="HOUSING"></label>
        <datalist id="wo-products"></datalist>
        <label>Quantity <input id="wo-quantity" type="number" min="1" step="1" value="10" required></label>
        <label>Due in (minutes) <input id="wo-due" type="number" min="1" step="1" value="120"></label>
        <label>Priority <input id="wo-priority" type="number" min="0" max="1000" step="any" value="1"></label>
        <p class="faint" id="wo-rush-note"></p>
        <div class="dialog-buttons"><button class="button" type="button" id="order-cancel">Cancel</button>
          <button class="button primary" type="submit" id="order-ok">Plan it</button></div>
      </form>
    </dialog>
  </div>`.html;
  const gantt = el.querySelector("#gantt");
  const dialog = el.querySelector("#order-dialog");
  let body = null;
  let stopped = false;
  let timer = null;

  el.querySelector("#add-order").addEventListener("click", () => {
    el.querySelector("#wo-number").value = `WO-${Date.now() % 100000}`;
    dialog.showModal();
  });
  el.querySelector("#order-cancel").addEventListener("click", () => dialog.close());
  el.querySelector("#order-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const due = Number(el.querySelector("#wo-due").value);
    const order = {
      number: el.querySelector("#wo-number").value.trim(), product: el.querySelector("#wo-product").value.trim(),
      quantity: Number(el.querySelector("#wo-quantity").value), priority: Number(el.querySelector("#wo-priority").value || 1),
      due_ms: due > 0 ? Date.now() + due * 60000 : null,
    };
    try {
      const r = await sendJSON("/api/scheduling/plant/orders", order);
      dialog.close();
      toast(`${r.queued} queued${r.rush ? " as a rush order" : ""}`);
      setTimeout(load, 500);
    } catch (err) {
      actionFailed("Planning the order", err);
    }
  });

  function renderKpis() {
    const k = body.kpis;
    const repairs = body.events.filter((e) => MARKED.has(e.trigger)).length;
    const util = Object.entries(k.utilisation).map(([m, u]) => html`<span class="util"><b>${m}</b> ${Math.round(100 * u)} %</span>`);
    el.querySelector("#kpis").innerHTML = html`
      <div class="panel kpi" data-testid="kpi-finish"><div class="label">Plan ends</div><div class="value">${when(k.finish_ms)}</div>
        <div class="sub">${k.finish_ms ? `in ${duration(k.remaining_s * 1000)}` : "nothing planned"}</div></div>
      <div class="panel kpi" data-testid="kpi-tardiness"><div class="label">Weighted tardiness</div>
        <div class="value ${k.weighted_tardiness_s ? "v-uncertain" : ""}">${duration(k.weighted_tardiness_s * 1000)}</div>
        <div class="sub">${k.tardy_orders} late order${k.tardy_orders === 1 ? "" : "s"}</div></div>
      <div class="panel kpi" data-testid="kpi-utilisation"><div class="label">Planned load</div><div class="value util-row">${util}</div>
        <div class="sub">busy share of each machine until the plan ends</div></div>
      <div class="panel kpi" data-testid="kpi-reschedules"><div class="label">Reschedules</div><div class="value">${repairs}</div>
        <div class="sub">${body.plan ? `plan v${body.plan.version}, ${TRIGGERS[body.plan.trigger] ?? body.plan.trigger}` : "no plan yet"}</div></div>`.html;
    el.querySelector("#plan-info").textContent = body.plan
      ? `plan v${body.plan.version} of ${when(body.plan.created_ms)} · objective ${body.objective.replace("_", " ")}` : "";
  }

  function renderGantt() {
    if (!window.Plotly) return;
    const theme = themeLayout();
    const color = jobColors(body);
    const rows = [];
    for (const m of body.machines) rows.push(`${m.id} · actual`, `${m.id} · plan`);
    const traces = [];
    // planned operations, one trace per status so that done work fades
    for (const status of ["done", "running", "planned"]) {
      const ops = body.operations.filter((o) => o.status === status);
      if (!ops.length) continue;
      traces.push({
        type: "bar", orientation: "h", name: `plan (${status})`, y: ops.map((o) => `${o.machine} · plan`),
        base: ops.map((o) => toPlot(o.start_ms)), x: ops.map((o) => o.end_ms - o.start_ms), width: 0.7,
        marker: { color: ops.map((o) => color(o.job)), opacity: status === "done" ? 0.45 : 0.95,
          line: { color: status === "running" ? theme.colors.text : "rgba(0,0,0,0)", width: 1.5 } },
        text: ops.map((o) => `${o.job}/${o.index + 1}`), textposition: "inside", insidetextanchor: "middle",
        customdata: ops.map((o) => [o.job, o.index + 1, o.product ?? "", o.quantity ?? "", when(o.start_ms), when(o.end_ms), status]),
        hovertemplate: "<b>%{customdata[0]}</b> op %{customdata[1]} · %{customdata[2]} × %{customdata[3]}<br>"
          + "%{customdata[4]} – %{customdata[5]} (%{customdata[6]})<extra></extra>",
      });
    }
    const down = Object.entries(body.downtime).flatMap(([m, ivs]) => ivs.map(([s, e]) => ({ m, s, e })));
    if (down.length) {
      traces.push({
        type: "bar", orientation: "h", name: "planned downtime", y: down.map((d) => `${d.m} · plan`),
        base: down.map((d) => toPlot(d.s)), x: down.map((d) => d.e - d.s), width: 0.7,
        marker: { color: rgba("#d63b3b", 0.18), pattern: { shape: "/", fgcolor: stateColor("down"), size: 6 },
          line: { color: stateColor("down"), width: 1 } },
        customdata: down.map((d) => [when(d.s), when(d.e)]),
        hovertemplate: "planned downtime %{customdata[0]} – %{customdata[1]}<extra></extra>",
      });
    }
    // actual: machine states (wide, faint) and parts made per work order (narrow, in the order's colour)
    const segs = Object.entries(body.actual.states).flatMap(([m, ss]) => ss.map(([s, e, c]) => ({ m, s, e, c })));
    for (const code of Object.keys(STATE_NAMES)) {
      const mine = segs.filter((g) => String(g.c) === code && g.e > g.s);
      if (!mine.length) continue;
      const name = STATE_NAMES[code];
      traces.push({
        type: "bar", orientation: "h", name, y: mine.map((g) => `${g.m} · actual`), base: mine.map((g) => toPlot(g.s)),
        x: mine.map((g) => g.e - g.s), width: 0.7, marker: { color: stateColor(name), opacity: 0.35 },
        customdata: mine.map((g) => [when(g.s), when(g.e)]),
        hovertemplate: `${name} %{customdata[0]} – %{customdata[1]}<extra></extra>`,
      });
    }
    const made = body.actual.produced;
    if (made.length) {
      traces.push({
        type: "bar", orientation: "h", name: "parts made", y: made.map((p) => `${p.machine} · actual`),
        base: made.map((p) => toPlot(p.first_ms)), x: made.map((p) => Math.max(p.last_ms - p.first_ms, 20000)), width: 0.3,
        marker: { color: made.map((p) => color(p.work_order)) },
        customdata: made.map((p) => [p.work_order, p.count, when(p.first_ms), when(p.last_ms)]),
        hovertemplate: "<b>%{customdata[0]}</b>: %{customdata[1]} parts, %{customdata[2]} – %{customdata[3]}<extra></extra>",
      });
    }
    const now = toPlot(body.now_ms);
    const shapes = [{ type: "line", xref: "x", yref: "paper", x0: now, x1: now, y0: 0, y1: 1,
      line: { color: theme.colors.accent, width: 2 } }];
    const annotations = [{ x: now, xref: "x", y: 1, yref: "paper", yanchor: "bottom", text: "now", showarrow: false,
      font: { color: theme.colors.accent, size: 11 } }];
    const marks = body.events.filter((e) => MARKED.has(e.trigger));
    for (const e of marks) {
      const x = toPlot(e.ts_ms);
      const c = e.trigger === "rush_order" ? stateColor("setup") : e.trigger === "machine_up" ? stateColor("running") : stateColor("down");
      shapes.push({ type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, line: { color: c, width: 1.2, dash: "dot" } });
      annotations.push({ x, xref: "x", y: 0, yref: "paper", yanchor: "top", text: TRIGGERS[e.trigger], showarrow: false,
        textangle: -30, font: { color: c, size: 10 }, hovertext: e.detail });
    }
    const starts = [...body.operations.map((o) => o.start_ms), ...segs.map((g) => g.s), body.now_ms - 15 * 60000];
    const ends = [...body.operations.map((o) => o.end_ms), body.now_ms + 30 * 60000];
    const lo = Math.max(Math.min(...starts), body.now_ms - 4 * 3600000);
    const hi = Math.max(...ends);
    window.Plotly.react(gantt, traces, {
      paper_bgcolor: theme.paper_bgcolor, plot_bgcolor: theme.plot_bgcolor, font: theme.font, hoverlabel: theme.hoverlabel,
      barmode: "overlay", bargap: 0.2, height: 90 + 58 * rows.length, margin: { l: 110, r: 16, t: 24, b: 60 },
      legend: { orientation: "h", y: -0.18, font: { size: 11 } }, shapes, annotations,
      xaxis: { type: "date", range: [toPlot(lo), toPlot(hi + (hi - lo) * 0.03)], gridcolor: theme.colors.grid, linecolor: theme.colors.line },
      yaxis: { type: "category", categoryorder: "array", categoryarray: rows.slice().reverse(), gridcolor: theme.colors.grid,
        autorange: true, fixedrange: true },
    }, PLOT_CONFIG);
  }

  function renderOrders() {
    const rows = body.orders.slice().reverse().map((o) => html`<tr data-testid="order-row">
      <td><span class="swatch" style="background:${jobColors(body)(o.number)}"></span><b>${o.number}</b></td><td>${o.product}</td>
      <td class="r">${number(o.quantity, { integer: true })}</td><td class="r">${o.priority >= body.rush_priority ? html`<span class="pill q-bad">rush ${o.priority}</span>` : String(o.priority)}</td>
      <td class="r">${when(o.due_ms)}</td><td class="r">${when(o.planned_end_ms)}</td>
      <td class="r ${o.late_s ? "v-bad" : ""}">${o.late_s === null ? "—" : o.late_s ? duration(o.late_s * 1000) : "on time"}</td>
      <td class="r">${number(o.produced, { integer: true })}</td></tr>`);
    el.querySelector("#order-count").textContent = `${body.orders.length} orders`;
    el.querySelector("#orders").innerHTML = rows.length ? html`<table class="grid"><thead><tr><th>Order</th><th>Product</th>
      <th class="r">Qty</th><th class="r">Priority</th><th class="r">Due</th><th class="r">Planned end</th><th class="r">Late</th>
      <th class="r">Made</th></tr></thead><tbody>${rows}</tbody></table>`.html
      : '<div class="empty">No work orders yet: they arrive from the MES, or enter one with "New work order".</div>';
    const products = new Set(body.orders.map((o) => o.product));
    el.querySelector("#wo-products").innerHTML = [...products].map((p) => html`<option value="${p}">`.html).join("");
  }

  function renderEvents() {
    const rows = body.events.slice().reverse().map((e) => {
      const d = e.disruption;
      const moved = d ? `${d.moved} moved, shift ${duration(d.total_shift * 1000)}, ${d.machine_changes} machine changes`
        + (d.interrupted.length ? `, redone: ${d.interrupted.join(" ")}` : "") : "";
      return html`<tr data-testid="event-row" data-trigger="${e.trigger}"><td>${when(e.ts_ms)}</td>
        <td><b>${TRIGGERS[e.trigger] ?? e.trigger}</b><div class="faint">${e.detail}</div></td>
        <td>${e.method}</td><td class="r">${e.solve_ms < 10 ? e.solve_ms.toFixed(1) : Math.round(e.solve_ms)} ms</td><td class="muted">${moved}</td></tr>`;
    });
    el.querySelector("#events").innerHTML = rows.length ? html`<table class="grid"><thead><tr><th>When</th><th>Why</th>
      <th>Method</th><th class="r">Solve</th><th>Disruption</th></tr></thead><tbody>${rows}</tbody></table>`.html
      : '<div class="empty">The plan has not changed yet.</div>';
  }

  async function load() {
    if (stopped) return;
    clearTimeout(timer);
    try {
      body = await getJSON("/api/scheduling/plant");
      renderKpis();
      renderGantt();
      renderOrders();
      renderEvents();
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) {
        el.querySelector("#gantt").innerHTML = html`<div class="empty">${err.message}</div>`.html;
      }
    }
    if (!stopped) timer = setTimeout(load, POLL_MS);
  }

  const waitPlotly = () => (window.Plotly ? Promise.resolve() : new Promise((r) => { setTimeout(r, 100); }).then(waitPlotly));
  waitPlotly().then(load);
  const retheme = () => { if (body) renderGantt(); };
  window.addEventListener("themechange", retheme);
  el.querySelector("#add-order").hidden = session.enabled && !["operator", "engineer", "admin"].includes(session.role);
  return () => {
    stopped = true;
    clearTimeout(timer);
    window.removeEventListener("themechange", retheme);
    if (window.Plotly) window.Plotly.purge(gantt);
  };
}
