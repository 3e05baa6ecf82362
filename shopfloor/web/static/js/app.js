// The dashboard shell: hash routes to pages, the theme, the clock and the "disconnected" banner.

import { alarms, equipmentOf, isUnacked, PRIORITIES, PRIORITY_SHORT, STATE_LABELS } from "./alarms.js";
import { onReachability } from "./api.js";
import { session } from "./auth.js";
import { catalog, clock } from "./catalog.js";
import { clockTime, dateTime, html } from "./format.js";
import { live } from "./live.js";
import * as alarmsPage from "./pages/alarms.js";
import * as controlPage from "./pages/control.js";
import * as drivePage from "./pages/drive.js";
import * as equipmentPage from "./pages/equipment.js";
import * as healthPage from "./pages/health.js";
import * as inspectionPage from "./pages/inspection.js";
import * as maintenancePage from "./pages/maintenance.js";
import * as overviewPage from "./pages/overview.js";
import * as schedulePage from "./pages/schedule.js";
import * as productionPage from "./pages/production.js";
import * as tagsPage from "./pages/tags.js";
import * as tracePage from "./pages/trace.js";
import * as warehousePage from "./pages/warehouse.js";

const PAGES = { overview: overviewPage, equipment: equipmentPage, tags: tagsPage, alarms: alarmsPage, schedule: schedulePage, control: controlPage, drive: drivePage, warehouse: warehousePage, maintenance: maintenancePage, production: productionPage, trace: tracePage, inspection: inspectionPage, health: healthPage };
const root = document.getElementById("page");
let current = null; // {name, cleanup}

/** "#/equipment/site/area/eq?tags=a,b" -> {name: "equipment", path: "site/area/eq", query: URLSearchParams} */
export function parseRoute(hash = window.location.hash) {
  const [pathPart, queryPart = ""] = hash.replace(/^#\/?/, "").split("?");
  const [first = "", ...rest] = pathPart.split("/");
  const name = PAGES[first] ? first : "overview";
  return { name, path: rest.map(decodeURIComponent).join("/"), query: new URLSearchParams(queryPart) };
}

async function route() {
  const r = parseRoute();
  if (current) current.cleanup?.();
  current = null;
  document.querySelectorAll(".tabs a").forEach((a) => {
    if (a.dataset.page === r.name) {
      a.setAttribute("aria-current", "page");
      a.scrollIntoView({ block: "nearest", inline: "nearest" }); // the tabs scroll inside the bar on small screens
    } else a.removeAttribute("aria-current");
  });
  root.innerHTML = '<div class="empty">Loading…</div>';
  try {
    await catalog.load();
  } catch (err) {
    root.innerHTML = `<div class="empty">The platform cannot be reached (${err.message}). Retrying…</div>`;
    setTimeout(() => { if (parseRoute().name === r.name) route(); }, 2000);
    return;
  }
  document.getElementById("site-name").textContent = catalog.tree.description || catalog.tree.name;
  const trends = document.querySelector('.tabs a[data-page="equipment"]');
  if (r.name === "equipment" && r.path && catalog.nodes.has(r.path)) trends.href = `#/equipment/${encodeURI(r.path)}`;
  const page = PAGES[r.name];
  document.title = `${page.title(r)} · shopfloor`;
  root.innerHTML = "";
  current = { name: r.name, cleanup: page.mount(root, r) };
}

function setupTheme() {
  const button = document.getElementById("theme-toggle");
  button.addEventListener("click", () => {
    const next = document.documentElement.dataset.theme === "dark" ? "light" : "dark";
    document.documentElement.dataset.theme = next;
    try { localStorage.setItem("shopfloor.theme", next); } catch { /* storage blocked */ }
    window.dispatchEvent(new CustomEvent("themechange"));
  });
}

function setupStatus() {
  const status = document.getElementById("link-status");
  const banner = document.getElementById("banner");
  const detail = document.getElementById("banner-detail");
  let state = "connecting";
  let info = {};
  let httpDown = false;
  const render = () => {
    const down = state === "disconnected" || (httpDown && state !== "live");
    status.dataset.state = down ? "disconnected" : state;
    status.querySelector(".text").textContent = down ? "Disconnected" : state === "live" ? "Live" : "Connecting";
    banner.hidden = !down;
    if (down) {
      const wait = info.retryAt ? Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000)) : 0;
      const since = info.since ? ` since ${clockTime(info.since)}` : "";
      detail.textContent = `No live data${since}; ${wait > 0 ? `reconnecting in ${wait} s` : "reconnecting now"}…`;
    }
  };
  live.onState((s, i) => {
    const wasDown = state === "disconnected";
    state = s;
    info = i;
    render();
    if (s === "live" && (i.reconnected || wasDown)) {
      // The platform may have restarted: its catalogue could have changed, and the page has a gap to fill.
      catalog.load(true).then(() => window.dispatchEvent(new CustomEvent("reconnected"))).catch(() => {});
    }
  });
  onReachability((ok) => {
    httpDown = !ok;
    render();
  });
  setInterval(render, 1000);
}

function setupClock() {
  const el = document.getElementById("clock");
  const tick = () => { el.textContent = clockTime(clock.now()); };
  tick();
  setInterval(tick, 1000);
}

/** Today's times as the clock shows them, older ones with their date. */
function sinceText(ms) {
  return new Date(ms).toDateString() === new Date().toDateString() ? clockTime(ms) : dateTime(ms);
}

/** The alarm banner under the top bar: the most urgent unacknowledged alarm and the counts by priority. */
function setupAlarmBanner() {
  const bar = document.getElementById("alarmbar");
  const top = document.getElementById("alarmbar-top");
  const counts = document.getElementById("alarmbar-counts");
  const tabCount = document.getElementById("alarm-tab-count");
  const render = () => {
    const s = alarms.summary;
    bar.dataset.link = alarms.state; // live, connecting, disconnected (reconnecting) or unauthorized
    if (alarms.state !== "live" && !s) {
      bar.dataset.state = "quiet";
      top.innerHTML = `<span class="faint">${alarms.state === "unauthorized" ? "Log in to see alarms" : "Connecting to alarms…"}</span>`;
      counts.innerHTML = "";
      return;
    }
    const list = alarms.annunciated();
    const first = list.find(isUnacked);
    bar.dataset.state = first ? "unack" : list.length ? "active" : "quiet";
    bar.dataset.priority = first ? first.priority : "";
    if (first) {
      const eq = equipmentOf(first).split("/").pop();
      top.innerHTML = html`<span class="prio p-${first.priority} ${first.state === "unack_active" ? "blink" : ""}">${PRIORITY_SHORT[first.priority] ?? first.priority}</span>
        <span class="alarmbar-time">${sinceText(Date.parse(first.active_since || first.changed))}</span>
        <b>${eq}</b><span class="alarmbar-msg">${first.message || first.id}</span>
        <span class="faint">${first.id} · ${STATE_LABELS[first.state]}</span>`.html;
      top.title = `${first.id}: ${first.message}`;
    } else {
      const blockedN = s ? s.shelved + s.suppressed + s.out_of_service : 0;
      const rest = blockedN ? ` · ${blockedN} shelved, suppressed or out of service` : "";
      top.innerHTML = list.length ? `<span class="muted">No unacknowledged alarms · ${list.length} acknowledged active${rest}</span>`
        : `<span class="muted">No active alarms${rest}</span>`;
      top.title = "";
    }
    const by = s?.by_priority ?? {};
    const chips = PRIORITIES.map((p) => {
      const c = by[p] ?? { unack: 0, active: 0 };
      const lit = c.unack || c.active ? `p-${p}` : "zero";
      return html`<span class="count-chip ${lit}" data-priority="${p}" data-unack="${c.unack}" data-active="${c.active}"
        title="${p}: ${c.unack} unacknowledged, ${c.active} active"><span class="chip-label">${p}</span> <b>${c.unack}</b><span class="chip-active">/${c.active}</span></span>`.html;
    });
    const blocked = s ? [s.shelved && `${s.shelved} shelved`, s.suppressed && `${s.suppressed} suppressed`,
      s.out_of_service && `${s.out_of_service} out of service`].filter(Boolean).join(" · ") : "";
    counts.innerHTML = chips.join("") + (blocked ? html`<span class="faint blocked-count">${blocked}</span>`.html : "");
    counts.title = "Unacknowledged / active alarms by priority";
    const unack = s?.unack ?? 0;
    tabCount.hidden = unack === 0;
    tabCount.textContent = String(unack);
  };
  alarms.onChange(render);
  render();
}

/** The user's name and role in the top bar, the login form, and logging out. */
function setupSession() {
  const user = document.getElementById("user");
  const overlay = document.getElementById("login");
  const form = document.getElementById("login-form");
  const error = document.getElementById("login-error");
  const note = document.getElementById("login-note");
  let wasLoggedIn = false;
  session.onChange(() => {
    user.hidden = !session.enabled || session.name === null;
    document.getElementById("user-name").textContent = session.name ?? "";
    document.getElementById("user-role").textContent = session.role ?? "";
    document.documentElement.dataset.role = session.enabled ? session.role ?? "none" : "admin";
    const needLogin = session.enabled && session.name === null;
    if (needLogin && !overlay.hidden) return;
    overlay.hidden = !needLogin;
    if (needLogin) {
      if (current) current.cleanup?.(); // nothing keeps working behind the form
      current = null;
      root.innerHTML = "";
      note.textContent = wasLoggedIn ? "Your session ended. Log in again to go on."
        : "This plant's dashboard needs a user name and password.";
      alarms.stop();
      setTimeout(() => document.getElementById("login-user").focus(), 0);
    }
    if (session.name !== null) wasLoggedIn = true;
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    error.hidden = true;
    const button = document.getElementById("login-submit");
    button.disabled = true;
    try {
      await session.login(document.getElementById("login-user").value.trim(), document.getElementById("login-password").value);
      document.getElementById("login-password").value = "";
      alarms.start();
      route();
    } catch (err) {
      error.textContent = err.status === 401 ? "Wrong user name or password." : err.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  document.getElementById("logout").addEventListener("click", () => {
    session.logout().catch(() => {});
  });
  window.addEventListener("authrequired", () => session.lost());
}

async function start() {
  setupTheme();
  setupStatus();
  setupClock();
  setupAlarmBanner();
  setupSession();
  window.addEventListener("hashchange", () => { if (session.loggedIn) route(); });
  live.setTags(null);
  for (;;) {
    try {
      await session.load();
      break;
    } catch (err) {
      root.innerHTML = `<div class="empty">The platform cannot be reached (${err.message}). Retrying…</div>`;
      await new Promise((resolve) => { setTimeout(resolve, 2000); });
    }
  }
  if (!session.loggedIn) {
    root.innerHTML = "";
    return; // the login form starts the rest
  }
  alarms.start();
  route();
}

window.addEventListener("unhandledrejection", (e) => {
  if (e.reason && e.reason.status === 401) e.preventDefault(); // the login form is already up
});
start();
