// The alarms that need attention, kept live from /api/ws/alarms for the whole dashboard (banner, alarm page,
// overview markers): a snapshot on connect, then one message per transition; reconnects with backoff.

import { getJSON } from "./api.js";
import { parseMessage, ReconnectingSocket, socketURL } from "./socket.js";

export const PRIORITIES = ["critical", "high", "medium", "low"];
const RANK = { critical: 3, high: 2, medium: 1, low: 0 };
const UNACK_ORDER = { unack_active: 0, rtn_unack: 1, acked_active: 2 };
export const PRIORITY_SHORT = { critical: "CRIT", high: "HIGH", medium: "MED", low: "LOW" };

export const STATE_LABELS = {
  unack_active: "Unack active",
  acked_active: "Ack active",
  rtn_unack: "RTN unack",
  normal: "Normal",
  shelved: "Shelved",
  suppressed: "Suppressed",
  out_of_service: "Out of service",
};

/** What an operator sees: a block (out of service, shelved, suppressed) outranks the lifecycle state. */
export function displayState(a) {
  if (a.out_of_service) return "out_of_service";
  if (a.shelved_until) return "shelved";
  if (a.suppressed) return "suppressed";
  return a.state;
}

export function isBlocked(a) {
  return Boolean(a.out_of_service || a.shelved_until || a.suppressed);
}

/** Annunciated: shown in the active list and the banner (not blocked, not normal). */
export function isAnnunciated(a) {
  return !isBlocked(a) && a.state !== "normal";
}

export function isUnacked(a) {
  return a.state === "unack_active" || a.state === "rtn_unack";
}

/** Most urgent first: priority, then unacknowledged before acknowledged, then newest. */
export function byUrgency(a, b) {
  return (RANK[b.priority] ?? -1) - (RANK[a.priority] ?? -1)
    || (UNACK_ORDER[a.state] ?? 3) - (UNACK_ORDER[b.state] ?? 3)
    || Date.parse(b.changed || 0) - Date.parse(a.changed || 0);
}

/** The equipment an alarm belongs to: the parent of its tags (an expression over two machines names the first). */
export function equipmentOf(a) {
  const tag = (a.tags || [])[0];
  return tag ? tag.slice(0, tag.lastIndexOf("/")) : "";
}

export class AlarmStream extends ReconnectingSocket {
  constructor() {
    super();
    this.alarms = new Map(); // id -> view, only those that need attention
    this.summary = null;
    this.state = "connecting"; // connecting | live | disconnected | unauthorized
    this.listeners = new Set();
    this.dropped = 0;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.disconnect();
  }

  /** fn(event|null) after every change; event is the transition, null for a snapshot or a link change. */
  onChange(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  url() {
    return socketURL("/api/ws/alarms");
  }

  closed(event) {
    this.ws = null;
    if (event.code === 1008) { // refused: not logged in (the login form brings us back)
      this.setState("unauthorized");
      window.dispatchEvent(new CustomEvent("authrequired", { detail: event.reason }));
      return;
    }
    this.lost();
  }

  receive(data) {
    const msg = parseMessage(data);
    if (msg.type === "alarms") {
      this.alarms = new Map(msg.alarms.map((a) => [a.id, a]));
      this.summary = msg.summary;
      this.attempt = 0;
      this.dropped = 0;
      this.setState("live");
      return;
    }
    if (msg.type !== "alarm") return;
    if (msg.dropped > this.dropped) { // the server could not keep up with us: take a fresh snapshot
      this.dropped = msg.dropped;
      this.resync();
    }
    if (msg.alarm) {
      const view = msg.alarm;
      if (isBlocked(view) || view.state !== "normal") this.alarms.set(view.id, view);
      else this.alarms.delete(view.id);
    }
    if (msg.summary) this.summary = msg.summary;
    this.emit(msg);
  }

  async resync() {
    try {
      const [list, summary] = await Promise.all([getJSON("/api/alarms"), getJSON("/api/alarms/summary")]);
      this.alarms = new Map(list.map((a) => [a.id, a]));
      this.summary = summary;
      this.emit(null);
    } catch { /* the next message or reconnect tries again */ }
  }

  lost() {
    if (this.stopped) return;
    const delay = this.nextDelay();
    this.setState("disconnected");
    this.retry(delay);
  }

  setState(state) {
    this.state = state;
    this.emit(null);
  }

  emit(event) {
    for (const fn of this.listeners) fn(event);
  }

  /** Alarms in the active list, most urgent first. */
  annunciated() {
    return [...this.alarms.values()].filter(isAnnunciated).sort(byUrgency);
  }

  /** Shelved, suppressed and out-of-service alarms. */
  blocked() {
    return [...this.alarms.values()].filter(isBlocked).sort(byUrgency);
  }

  /** Annunciated alarms per equipment path. */
  byEquipment() {
    const out = new Map();
    for (const a of this.annunciated()) {
      const paths = new Set((a.tags || []).map((t) => t.slice(0, t.lastIndexOf("/"))));
      for (const p of paths) {
        if (!out.has(p)) out.set(p, []);
        out.get(p).push(a);
      }
    }
    return out;
  }
}

export const alarms = new AlarmStream();
