// Numbers, times and states as an operator reads them.

const grouped = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const formats = new Map();

function fixed(digits) {
  if (!formats.has(digits)) {
    formats.set(digits, new Intl.NumberFormat(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits }));
  }
  return formats.get(digits);
}

/** A measurement with a resolution that suits its size (4 significant digits, at most 3 decimals). */
export function number(value, { integer = false } = {}) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (integer) return grouped.format(value);
  const abs = Math.abs(value);
  const digits = abs >= 1000 ? 0 : abs >= 100 ? 1 : abs >= 10 ? 2 : 3;
  return fixed(digits).format(value);
}

/** A rate such as 74.6 parts per hour. */
export function rate(value) {
  if (value === null || value === undefined) return "—";
  return Math.abs(value) >= 100 ? grouped.format(value) : fixed(1).format(value);
}

export function isInteger(type) {
  return /^u?int/.test(type || "");
}

/** A value of a tag, with its enum label when it has one. */
export function tagValue(tag, value, label) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (tag && tag.states) {
    const l = label ?? tag.states[String(Math.round(value))];
    return l ?? String(value);
  }
  if (tag && tag.type === "bool") return value ? "true" : "false";
  return number(value, { integer: tag ? isInteger(tag.type) : false });
}

/** "12 s", "4 min", "3 h 5 min", "2 d 4 h". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  if (h < 48) return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
  const d = Math.floor(h / 24);
  return h % 24 ? `${d} d ${h % 24} h` : `${d} d`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
});

export function clockTime(ms) {
  return timeFmt.format(new Date(ms));
}

export function dateTime(ms) {
  return ms === null || ms === undefined ? "—" : dateTimeFmt.format(new Date(ms));
}

/** Today's times as the clock shows them, older ones with their date ("—" for none): lists stay narrow. */
export function when(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  return new Date(ms).toDateString() === new Date().toDateString() ? clockTime(ms) : dateTime(ms);
}

const STATE_CLASSES = new Set(["running", "idle", "down", "setup"]);

/** CSS class of a state label: the four ISA-95 machine states have their colour, others are neutral. */
export function stateClass(label) {
  const l = (label || "").toLowerCase();
  return STATE_CLASSES.has(l) ? `s-${l}` : "s-unknown";
}

export function stateColorVar(label) {
  const l = (label || "").toLowerCase();
  return STATE_CLASSES.has(l) ? `var(--${l})` : "var(--unknown)";
}

/** "spindle_power" -> "Spindle power". */
export function humanize(name) {
  const s = String(name).replace(/[_-]+/g, " ").trim();
  return s.charAt(0).toUpperCase() + s.slice(1);
}

export function escapeHtml(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

/** Tagged template that escapes interpolated values; raw(html) passes trusted markup through. */
export function html(strings, ...values) {
  let out = strings[0];
  values.forEach((v, i) => {
    const text = Array.isArray(v) ? v.map((x) => (x instanceof Raw ? x.html : escapeHtml(x))).join("")
      : v instanceof Raw ? v.html : escapeHtml(v);
    out += text + strings[i + 1];
  });
  return new Raw(out);
}

export class Raw {
  constructor(text) { this.html = text; }
  toString() { return this.html; }
}

export function raw(text) {
  return new Raw(text);
}
