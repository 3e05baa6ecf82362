// Warehouse: the grid map with racks, docks and line-side buffers (stock on each, low buffers in red), the AGVs
// moving live with the path ahead of each, the vehicles' state and battery, the active transport tasks, and an
// inbound/outbound order form for operators. Redrawn from /api/warehouse/live every second.

import { ApiError, getJSON, sendJSON } from "../api.js";
import { session } from "../auth.js";
import { html, number } from "../format.js";
import { actionFailed, toast } from "../toast.js";

const CELL = 28; // px per grid cell
const POLL_MS = 1000;
const SVG_NS = "http://www.w3.org/2000/svg";
const KIND_LABEL = { rack: "Rack", bin: "Bin", dock: "Dock", line_side: "Line-side" };
const VEHICLE_COLORS = ["#2563eb", "#d97706", "#059669", "#9333ea", "#dc2626", "#0891b2"];

/** A quantity: whole numbers without decimals (pieces), others as the dashboard shows values. */
function qty(value) {
  return number(value, { integer: Number.isInteger(value) });
}

export function title() {
  return "Warehouse";
}

function svg(tag, attrs = {}, parent = null) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (parent) parent.appendChild(el);
  return el;
}

export function mount(el) {
  el.innerHTML = html`<div class="wh-page" data-testid="warehouse-page">
    <div class="wh-head"><h1>Warehouse</h1><span class="faint" id="wh-status"></span></div>
    <div class="wh-layout">
      <section class="panel wh-map-panel">
        <div class="panel-head"><h2>Map</h2><span class="spacer"></span>
          <span class="wh-legend"><i class="lg rack"></i>Rack <i class="lg dock"></i>Dock <i class="lg line_side"></i>Line-side
          <i class="lg low"></i>Below min</span></div>
        <div class="panel-body wh-map-wrap"><div class="empty">Loading the map…</div></div>
      </section>
      <section class="panel">
        <div class="panel-head"><h2>Vehicles</h2></div>
        <div class="table-wrap"><table class="grid" data-testid="wh-vehicles"><thead><tr><th>Vehicle</th><th>State</th>
          <th class="r">Battery</th><th>Load</th><th>Doing</th></tr></thead><tbody></tbody></table></div>
      </section>
      <section class="panel">
        <div class="panel-head"><h2>Line-side stock</h2></div>
        <div class="table-wrap"><table class="grid" data-testid="wh-lineside"><thead><tr><th>Buffer</th><th>Material</th>
          <th class="r">Stock</th><th class="r">Coming</th><th class="r">Min / max</th></tr></thead><tbody></tbody></table></div>
      </section>
      <section class="panel">
        <div class="panel-head"><h2>Transport tasks</h2><span class="faint" id="wh-task-count"></span></div>
        <div class="table-wrap"><table class="grid" data-testid="wh-tasks"><thead><tr><th>#</th><th>Order</th><th>Lot</th>
          <th class="r">Qty</th><th>From → to</th><th>Status</th><th>Vehicle</th></tr></thead><tbody></tbody></table></div>
      </section>
      <section class="panel">
        <div class="panel-head"><h2>New order</h2></div>
        <form class="panel-body wh-form" id="wh-order">
          <label>Kind <select name="kind"><option value="inbound">Inbound (receive, put away)</option>
            <option value="outbound">Outbound (pick, ship)</option></select></label>
          <label>Number <input name="number" required maxlength="64"></label>
          <label>Material <input name="material" required maxlength="64"></label>
          <label>Lot <input name="lot" maxlength="80" placeholder="inbound only"></label>
          <label>Quantity <input name="quantity" type="number" min="0" step="any" required></label>
          <label>Dock <select name="dock"></select></label>
          <button class="button primary" type="submit">Create</button>
        </form>
      </section>
    </div>
  </div>`.html;
  const state = { map: null, timer: null, stopped: false, layers: null, vehicles: new Map(), locations: new Map() };
  const status = el.querySelector("#wh-status");
  const form = el.querySelector("#wh-order");
  const allowed = session.can("operator");
  for (const control of form.elements) {
    control.disabled = !allowed;
    if (!allowed) control.title = session.needs("operator");
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = Object.fromEntries(new FormData(form).entries());
    const body = { ...data, quantity: Number(data.quantity), lot: data.lot || null };
    try {
      const out = await sendJSON("/api/warehouse/orders", body);
      toast(`Order ${out.order}: ${out.tasks.length} transport task${out.tasks.length === 1 ? "" : "s"}`);
      form.reset();
      refresh();
    } catch (err) {
      actionFailed("create the order", err);
    }
  });

  async function refresh() {
    if (state.stopped) return;
    try {
      if (!state.map) {
        state.map = await getJSON("/api/warehouse/map");
        drawMap(el, state);
        form.querySelector('select[name="dock"]').innerHTML = state.map.locations
          .filter((l) => l.kind === "dock").map((l) => html`<option>${l.code}</option>`.html).join("");
      }
      const live = await getJSON("/api/warehouse/live");
      drawLive(el, state, live);
      status.textContent = `${live.vehicles.filter((v) => v.online).length} of ${live.vehicles.length} vehicles online`;
    } catch (err) {
      if (err instanceof ApiError && err.status === 503) {
        el.querySelector(".wh-map-wrap").innerHTML = `<div class="empty">${err.message}</div>`;
        state.stopped = true; // this plant has no warehouse: nothing to poll
        return;
      }
      status.textContent = `Not updated: ${err.message}`;
    }
    if (!state.stopped) state.timer = setTimeout(refresh, POLL_MS);
  }
  refresh();
  return () => {
    state.stopped = true;
    clearTimeout(state.timer);
  };
}

function drawMap(el, state) {
  const { width, height, rows, locations } = state.map;
  const wrap = el.querySelector(".wh-map-wrap");
  wrap.innerHTML = "";
  const root = svg("svg", { viewBox: `0 0 ${width * CELL} ${height * CELL}`, class: "wh-map", "data-testid": "wh-map",
    role: "img", "aria-label": "Warehouse map" }, wrap);
  svg("rect", { x: 0, y: 0, width: width * CELL, height: height * CELL, class: "floor" }, root);
  rows.forEach((row, y) => {
    [...row].forEach((ch, x) => {
      if (ch !== ".") svg("rect", { x: x * CELL, y: y * CELL, width: CELL, height: CELL, class: "blocked" }, root);
    });
  });
  for (const [serial, [x, y]] of Object.entries(state.map.homes)) {
    const g = svg("g", { class: "home" }, root);
    svg("rect", { x: x * CELL + 3, y: y * CELL + 3, width: CELL - 6, height: CELL - 6, rx: 4 }, g);
    svg("title", {}, g).textContent = `Charger, home of ${serial}`;
  }
  const locLayer = svg("g", {}, root);
  for (const loc of locations) {
    const [x, y] = loc.cell;
    const g = svg("g", { class: `loc ${loc.kind}`, "data-code": loc.code }, locLayer);
    svg("rect", { x: x * CELL + 2, y: y * CELL + 2, width: CELL - 4, height: CELL - 4, rx: 3 }, g);
    const label = svg("text", { x: x * CELL + CELL / 2, y: y * CELL + CELL / 2 + 4, "text-anchor": "middle" }, g);
    const tip = svg("title", {}, g);
    state.locations.set(loc.code, { g, label, tip });
  }
  const paths = svg("g", { class: "paths" }, root);
  const vehicles = svg("g", { class: "vehicles" }, root);
  state.layers = { root, paths, vehicles };
}

function drawLive(el, state, live) {
  const { paths, vehicles } = state.layers;
  for (const loc of live.locations) {
    const item = state.locations.get(loc.code);
    if (!item) continue;
    item.label.textContent = loc.quantity ? qty(loc.quantity) : "";
    item.g.classList.toggle("low", Boolean(loc.low));
    item.g.dataset.quantity = String(loc.quantity);
    item.tip.textContent = `${KIND_LABEL[loc.kind] ?? loc.kind} ${loc.code}: ${qty(loc.quantity)}` +
      `${loc.material ? ` ${loc.material}` : ""}${loc.min !== null ? ` (min ${loc.min}, max ${loc.max})` : ""}`;
  }
  paths.innerHTML = "";
  live.vehicles.forEach((v, k) => {
    const color = VEHICLE_COLORS[k % VEHICLE_COLORS.length];
    if (v.path.length > 1) {
      const points = v.path.map(([x, y]) => `${x * CELL + CELL / 2},${y * CELL + CELL / 2}`).join(" ");
      svg("polyline", { points, class: "path", stroke: color }, paths);
    }
    let item = state.vehicles.get(v.serial);
    if (!item) {
      const g = svg("g", { class: "vehicle", "data-testid": "wh-vehicle", "data-serial": v.serial }, vehicles);
      svg("circle", { cx: 0, cy: 0, r: CELL * 0.42, fill: color }, g);
      const text = svg("text", { x: 0, y: 4, "text-anchor": "middle" }, g);
      text.textContent = v.serial.replace(/^\D+/, "") || v.serial;
      const tip = svg("title", {}, g);
      item = { g, tip };
      state.vehicles.set(v.serial, item);
    }
    const px = v.x * CELL + CELL / 2;
    const py = v.y * CELL + CELL / 2;
    item.g.setAttribute("transform", `translate(${px.toFixed(1)} ${py.toFixed(1)})`);
    item.g.dataset.x = v.x.toFixed(2);
    item.g.dataset.y = v.y.toFixed(2);
    item.g.classList.toggle("loaded", Boolean(v.payload));
    item.g.classList.toggle("offline", !v.online);
    item.tip.textContent = `${v.serial}: ${v.state}, battery ${number(v.battery, { integer: true })} %${v.payload ? `, carrying ${v.payload}` : ""}`;
  });
  const doing = (v) => (v.task ? `task ${v.task}: ${v.leg}` : v.leg === "home" ? "home" : "—");
  el.querySelector('[data-testid="wh-vehicles"] tbody').innerHTML = live.vehicles.map((v) => html`<tr>
      <td>${v.serial}</td><td><span class="wh-state s-${v.online ? v.state : "offline"}">${v.online ? v.state : "offline"}</span>
      ${v.charging ? " ⚡" : ""}</td><td class="r">${v.battery === null ? "—" : `${number(v.battery, { integer: true })} %`}</td>
      <td>${v.payload ?? ""}</td><td>${doing(v)}</td></tr>`.html).join("");
  el.querySelector('[data-testid="wh-lineside"] tbody').innerHTML = live.locations.filter((l) => l.kind === "line_side")
    .map((l) => html`<tr class="${l.low ? "wh-low" : ""}"><td>${l.code}</td><td>${l.material ?? ""}</td>
      <td class="r">${qty(l.quantity)}</td><td class="r">${l.incoming ? qty(l.incoming) : ""}</td>
      <td class="r">${qty(l.min)} / ${qty(l.max)}</td></tr>`.html).join("");
  const tasks = live.tasks;
  el.querySelector("#wh-task-count").textContent = `${tasks.length} active`;
  el.querySelector('[data-testid="wh-tasks"] tbody').innerHTML = tasks.length ? tasks.map((t) => html`<tr>
      <td>${t.id}</td><td>${t.order ?? ""}</td><td>${t.lot}</td><td class="r">${qty(t.quantity)}</td>
      <td>${t.from_location} → ${t.to_location}</td><td>${t.status}</td><td>${t.vehicle ?? ""}</td></tr>`.html).join("")
    : '<tr><td colspan="7" class="faint">No transport task under way</td></tr>';
}
