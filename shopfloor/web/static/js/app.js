// The dashboard shell: hash routes to pages, the theme, the clock and the "disconnected" banner.

import { onReachability } from "./api.js";
import { catalog, clock } from "./catalog.js";
import { clockTime } from "./format.js";
import { live } from "./live.js";
import * as equipmentPage from "./pages/equipment.js";
import * as healthPage from "./pages/health.js";
import * as overviewPage from "./pages/overview.js";
import * as tagsPage from "./pages/tags.js";

const PAGES = { overview: overviewPage, equipment: equipmentPage, tags: tagsPage, health: healthPage };
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
    if (a.dataset.page === r.name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
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

setupTheme();
setupStatus();
setupClock();
window.addEventListener("hashchange", route);
live.setTags(null);
route();
