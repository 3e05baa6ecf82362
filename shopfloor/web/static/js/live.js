// One WebSocket to /api/ws/live for the whole dashboard: current values, samples as they are committed,
// and reconnection with backoff after the platform goes away (restart, network).

import { parseMessage, ReconnectingSocket, socketURL } from "./socket.js";

export class LiveStream extends ReconnectingSocket {
  constructor() {
    super();
    this.tags = null; // null: every tag
    this.state = "connecting"; // connecting | live | disconnected
    this.current = new Map(); // tag -> {t, value, quality}
    this.sampleListeners = new Set();
    this.stateListeners = new Set();
    this.retryAt = null;
    this.disconnectedSince = null;
    this.everConnected = false;
  }

  /** Stream these tags (null: all). Reconnects only when the set changes. */
  setTags(tags) {
    const key = (t) => (t === null ? "*" : [...t].sort().join("\n"));
    if (this.ws && key(tags) === key(this.tags)) return;
    this.tags = tags === null ? null : [...tags];
    this.connect();
  }

  onSamples(fn) {
    this.sampleListeners.add(fn);
    return () => this.sampleListeners.delete(fn);
  }

  /** fn(state, info) on every change of the link state; info.reconnected is true after an outage. */
  onState(fn) {
    this.stateListeners.add(fn);
    fn(this.state, { retryAt: this.retryAt, since: this.disconnectedSince });
    return () => this.stateListeners.delete(fn);
  }

  url() {
    const url = socketURL("/api/ws/live");
    if (this.tags) for (const t of this.tags) url.searchParams.append("tag", t);
    url.searchParams.set("interval_ms", "250");
    return url;
  }

  closed() {
    this.lost();
  }

  receive(data) {
    const msg = parseMessage(data);
    if (msg.type === "hello") {
      const reconnected = this.state === "disconnected" || (this.everConnected && this.attempt > 0);
      this.attempt = 0;
      this.retryAt = null;
      this.disconnectedSince = null;
      this.everConnected = true;
      this.setState("live", { reconnected });
      return;
    }
    if (msg.type !== "samples") return;
    const { tag, t, value, quality } = msg;
    for (let i = 0; i < tag.length; i++) {
      const prev = this.current.get(tag[i]);
      if (!prev || prev.t <= t[i]) this.current.set(tag[i], { t: t[i], value: value[i], quality: quality[i] });
    }
    for (const fn of this.sampleListeners) fn(msg);
  }

  lost() {
    const delay = this.nextDelay();
    this.retryAt = Date.now() + delay;
    if (this.disconnectedSince === null) this.disconnectedSince = Date.now();
    this.setState(this.everConnected ? "disconnected" : "connecting", {});
    if (!this.everConnected && this.attempt > 2) this.setState("disconnected", {});
    this.retry(delay);
  }

  setState(state, extra) {
    this.state = state;
    const info = { retryAt: this.retryAt, since: this.disconnectedSince, ...extra };
    for (const fn of this.stateListeners) fn(state, info);
  }
}

export const live = new LiveStream();
