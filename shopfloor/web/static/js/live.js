// One WebSocket to /api/ws/live for the whole dashboard: current values, samples as they are committed,
// and reconnection with backoff after the platform goes away (restart, network).

const BACKOFF_MS = [500, 1000, 2000, 3000, 5000];

export class LiveStream {
  constructor() {
    this.tags = null; // null: every tag
    this.ws = null;
    this.state = "connecting"; // connecting | live | disconnected
    this.current = new Map(); // tag -> {t, value, quality}
    this.sampleListeners = new Set();
    this.stateListeners = new Set();
    this.attempt = 0;
    this.retryAt = null;
    this.timer = null;
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

  connect() {
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      this.ws.close();
    }
    const url = new URL("/api/ws/live", window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    if (this.tags) for (const t of this.tags) url.searchParams.append("tag", t);
    url.searchParams.set("interval_ms", "250");
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = () => {
      if (this.ws === ws) this.lost();
    };
    ws.onerror = () => { /* onclose follows and schedules the retry */ };
  }

  receive(data) {
    const text = typeof data === "string" ? data : new TextDecoder().decode(data);
    const msg = JSON.parse(text);
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
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    this.retryAt = Date.now() + delay;
    if (this.disconnectedSince === null) this.disconnectedSince = Date.now();
    this.setState(this.everConnected ? "disconnected" : "connecting", {});
    if (!this.everConnected && this.attempt > 2) this.setState("disconnected", {});
    this.timer = setTimeout(() => this.connect(), delay);
  }

  setState(state, extra) {
    this.state = state;
    const info = { retryAt: this.retryAt, since: this.disconnectedSince, ...extra };
    for (const fn of this.stateListeners) fn(state, info);
  }
}

export const live = new LiveStream();
