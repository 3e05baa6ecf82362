// What the apps' polling pages (inspection, maintenance) share: the refresh loop that ends with the page,
// empty and failed states and row action buttons.

import { sendJSON } from "./api.js";
import { html } from "./format.js";
import { actionFailed, toast } from "./toast.js";

/** Put a message in `box` instead of a table or list that has nothing to show (the text is escaped). */
export function showEmpty(box, text) {
  box.innerHTML = html`<div class="empty">${text}</div>`.html;
}

/** Why an app's data could not be read: a 404 means the plant does not run the app (`absent` says so). */
export function showLoadError(box, err, { absent, what }) {
  showEmpty(box, err.status === 404 ? absent : `${what} data cannot be read: ${err.message}`);
}

/**
 * A row's action button: disabled while `path` gets `body` (POST), then `done` as a toast and `refresh()`;
 * on failure enabled again, and the toast says that it could not `failed` and why.
 */
export async function runAction(button, { path, body, done, failed, refresh }) {
  button.disabled = true;
  try {
    await sendJSON(path, body);
    toast(done);
    await refresh();
  } catch (err) {
    button.disabled = false;
    actionFailed(failed, err);
  }
}

/**
 * A page's refresh loop: `refresh()` now and `periodMs` after each one ends (never two at once), and theme
 * listeners, until `stop()`. An answer that comes after the page left checks `stopped` and draws nothing.
 */
export class PageLoop {
  constructor(periodMs) {
    this.periodMs = periodMs;
    this.stopped = false;
    this.timer = null;
    this.themeListeners = [];
  }

  start(refresh) {
    const loop = async () => {
      await refresh();
      if (!this.stopped) this.timer = setTimeout(loop, this.periodMs);
    };
    loop();
  }

  /** Call fn on every theme change (charts take the theme's colours) until stop(). */
  onTheme(fn) {
    window.addEventListener("themechange", fn);
    this.themeListeners.push(fn);
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    for (const fn of this.themeListeners) window.removeEventListener("themechange", fn);
    this.themeListeners = [];
  }
}
