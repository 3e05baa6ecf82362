// Plotly.js in the dashboard's colours, and the choice of bucket size for a time span.

export const PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#8cd17d"];

// Bucket sizes the trends ask the historian for (ms): 'nice' steps, finer than the sample rate when zoomed in.
export const BUCKETS_MS = [
  100, 200, 500, 1000, 2000, 5000, 10000, 15000, 30000, 60000, 120000, 300000, 600000, 900000, 1800000,
  3600000, 7200000, 10800000, 21600000, 43200000, 86400000,
];

/** The smallest nice bucket that keeps span under maxPoints buckets. */
export function chooseBucket(spanMs, maxPoints) {
  for (const b of BUCKETS_MS) if (spanMs / b <= maxPoints) return b;
  return BUCKETS_MS[BUCKETS_MS.length - 1];
}

/** 500 -> "500ms", 5000 -> "5s", 120000 -> "2m", 7200000 -> "2h". */
export function bucketParam(ms) {
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60000 || ms % 60000) return `${ms / 1000}s`;
  if (ms < 3600000 || ms % 3600000) return `${ms / 60000}m`;
  if (ms < 86400000 || ms % 86400000) return `${ms / 3600000}h`;
  return `${ms / 86400000}d`;
}

export function bucketLabel(ms) {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60000) return `${ms / 1000} s`;
  if (ms < 3600000) return `${ms / 60000} min`;
  if (ms < 86400000) return `${ms / 3600000} h`;
  return `${ms / 86400000} d`;
}

function css(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** Layout defaults that follow the current theme. */
export function themeLayout() {
  return {
    paper_bgcolor: css("--surface"),
    plot_bgcolor: css("--surface"),
    font: { family: css("--font"), color: css("--text-2"), size: 12 },
    hoverlabel: { bgcolor: css("--surface-2"), bordercolor: css("--border-strong"), font: { color: css("--text"), size: 12 } },
    colors: { grid: css("--border"), line: css("--border-strong"), text: css("--text"), text2: css("--text-2"), accent: css("--accent") },
  };
}

export function stateColor(label) {
  const l = (label || "").toLowerCase();
  return ["running", "idle", "down", "setup"].includes(l) ? css(`--${l}`) : css("--unknown");
}

/** Plotly draws dates in UTC; shift epoch ms so that the axis reads the browser's local time. */
export function toPlot(ms) {
  return ms - new Date(ms).getTimezoneOffset() * 60000;
}

/** Inverse of toPlot for Plotly's range strings ("2026-01-02 10:11:12.345") or numbers. */
export function fromPlot(value) {
  const shifted = typeof value === "number" ? value : Date.parse(String(value).replace(" ", "T") + "Z");
  return shifted + new Date(shifted).getTimezoneOffset() * 60000;
}

export function rgba(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

export const PLOT_CONFIG = {
  displaylogo: false,
  responsive: true,
  scrollZoom: false,
  modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d", "toImage", "zoomIn2d", "zoomOut2d"],
};
