// The dashboard's WebSockets to the platform (live values, alarms): opening one on the page's own host,
// replacing it without its close counting as a loss, and the backoff between reconnects after one.

const BACKOFF_MS = [500, 1000, 2000, 3000, 5000];

/** ws(s)://<this page's host><path>: wss behind https, so the socket is as private as the page. */
export function socketURL(path) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url;
}

/** A JSON message, sent as text or as bytes. */
export function parseMessage(data) {
  return JSON.parse(typeof data === "string" ? data : new TextDecoder().decode(data));
}

/**
 * A socket that the subclass reopens after a loss. Subclasses give `url()`, `receive(data)` (each message's
 * data, text or bytes) and `closed(event)` (the current socket closed; most call `nextDelay()` and `retry()`).
 */
export class ReconnectingSocket {
  constructor() {
    this.ws = null;
    this.attempt = 0; // reconnects since the last good message (the subclass resets it)
    this.timer = null;
  }

  /** Open a new socket, closing the current one first (its close is not a loss). */
  connect() {
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.onmessage = null;
      this.ws.close();
    }
    const ws = new WebSocket(this.url());
    ws.binaryType = "arraybuffer";
    this.ws = ws;
    ws.onmessage = (event) => this.receive(event.data);
    ws.onclose = (event) => {
      if (this.ws === ws) this.closed(event);
    };
    ws.onerror = () => { /* onclose follows and schedules the retry */ };
  }

  /** Close the socket and cancel a pending reconnect. */
  disconnect() {
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close();
      this.ws = null;
    }
  }

  /** The wait before the next reconnect: it grows with each failed attempt up to 5 s. Counts the attempt. */
  nextDelay() {
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt += 1;
    return delay;
  }

  /** Reconnect after `delay` ms. */
  retry(delay) {
    this.timer = setTimeout(() => this.connect(), delay);
  }
}
