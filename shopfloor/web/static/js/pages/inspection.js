// Inspection: the camera station at the end of the line. The latest parts with the defect overlay (heat map in
// red, boxes in yellow) and their verdicts, the defect-rate trend, the review queue where an operator confirms
// or corrects uncertain verdicts, and the images that could not be used, with the reason.

import { getJSON } from "../api.js";
import { PageLoop, runAction, showEmpty, showLoadError } from "../apppage.js";
import { PALETTE, PLOT_CONFIG, rgba, themeLayout, toPlot } from "../charts.js";
import { html, humanize, number, when } from "../format.js";

const POLL_MS = 5000;
const LATEST = 12;
const TREND_HOURS = 8;
const TREND_BUCKET_S = 600;

export function title() {
  return "Inspection";
}

function verdictPill(verdict) {
  return html`<span class="pill ${verdict === "fail" ? "q-bad" : "q-good"}" data-testid="verdict">${verdict}</span>`;
}

/** What the model said, and what a person said if anyone looked. */
function label(r) {
  const cls = r.defect_class === "ok" ? "" : ` · ${humanize(r.defect_class)}`;
  if (r.review === "confirmed") return `confirmed by ${r.reviewed_by}${cls}`;
  if (r.review === "corrected") return `corrected to ${humanize(r.label)} by ${r.reviewed_by}`;
  if (r.review === "pending") return `${number(100 * r.confidence)} % sure${cls} · to review`;
  return `${number(100 * r.confidence)} % sure${cls}`;
}

export function mount(el) {
  el.innerHTML = `<div class="inspection-page" data-testid="inspection-page">
    <div class="inspection-head">
      <h1>Inspection</h1><span class="faint" id="model-info"></span><span class="spacer"></span>
      <a class="button" href="/api/inspection/labelled.zip" download>Export labelled images</a>
    </div>
    <div class="kpis" id="kpis"></div>
    <section class="panel">
      <div class="panel-head"><h2>Latest parts</h2><span class="spacer"></span>
        <span class="faint">red: where the surface differs from defect-free parts · yellow: defect boxes</span></div>
      <div class="parts" id="parts" data-testid="parts"></div>
    </section>
    <div class="two-col">
      <section class="panel"><div class="panel-head"><h2>Defect rate</h2><span class="spacer"></span>
        <span class="faint">last ${TREND_HOURS} h, per ${TREND_BUCKET_S / 60} min</span></div>
        <div class="defect-trend" id="trend" data-testid="defect-trend"></div></section>
      <section class="panel"><div class="panel-head"><h2>Review queue</h2><span class="spacer"></span>
        <span class="faint" id="review-count"></span></div>
        <div class="table-wrap" id="review" data-testid="review-queue"></div></section>
    </div>
    <section class="panel" style="margin-top:var(--gap)"><div class="panel-head"><h2>Images refused</h2><span class="spacer"></span>
      <span class="faint" id="rejected-count"></span></div><div class="table-wrap" id="rejected"></div></section>
  </div>`;
  const page = new PageLoop(POLL_MS);
  const trend = el.querySelector("#trend");

  function renderStatus(s) {
    el.querySelector("#model-info").textContent = s.state === "ready"
      ? `model v${s.model_version}${s.classifier ? ` + ${s.classifier}` : ""} · threshold ${number(s.threshold)}`
      : `model ${s.state}${s.last_error ? `: ${s.last_error}` : ""}`;
    const t = s.totals;
    const rate = t.inspected ? (100 * t.rejected) / t.inspected : null;
    const tile = (name, value, sub, cls = "") => html`<div class="panel kpi"><div class="label">${name}</div>
      <div class="value ${cls}">${value}</div><div class="sub">${sub}</div></div>`.html;
    el.querySelector("#kpis").innerHTML = [
      tile("Inspected", number(t.inspected, { integer: true }), "parts since the record began"),
      tile("Rejected", number(t.rejected, { integer: true }), rate === null ? "—" : `${number(rate)} % of the parts`,
        t.rejected ? "v-bad" : ""),
      tile("To review", number(s.review_pending, { integer: true }), `verdicts under ${Math.round(100 * s.review_below)} % sure`),
      tile("Images refused", number(s.bad_images_kept, { integer: true }), "corrupt, cut short or the wrong size",
        s.bad_images_kept ? "v-bad" : ""),
    ].join("");
  }

  function renderParts(rows) {
    const box = el.querySelector("#parts");
    if (!rows.length) {
      showEmpty(box, "No parts inspected yet: the camera takes a picture of every part produced.");
      return;
    }
    box.innerHTML = rows.map((r) => html`<figure class="part ${r.verdict}" data-testid="part" data-serial="${r.serial}">
      <a href="${r.image_url}" target="_blank" rel="noopener" title="The image as the camera sent it">
        <img src="${r.overlay_url}" alt="Part ${r.serial}, ${r.verdict}" loading="lazy" width="200" height="200"></a>
      <figcaption><div class="part-line"><b>${r.serial}</b>${verdictPill(r.review === "corrected" ? (r.label === "ok" ? "pass" : "fail") : r.verdict)}</div>
        <div class="faint">${when(r.ts_ms)} · ${r.station}</div><div class="muted">${label(r)}</div></figcaption>
    </figure>`.html).join("");
  }

  function renderTrend(body) {
    if (!window.Plotly) return;
    const theme = themeLayout();
    const b = body.buckets;
    const x = b.map((r) => toPlot(r.ts_ms));
    window.Plotly.react(trend, [
      { type: "bar", x, y: b.map((r) => r.inspected), name: "inspected", yaxis: "y2", marker: { color: rgba(PALETTE[0], 0.35) },
        hovertemplate: "%{y} parts<extra></extra>" },
      { type: "scatter", mode: "lines+markers", x, y: b.map((r) => (r.rate === null ? null : 100 * r.rate)), name: "defect rate",
        line: { color: "#e15759", width: 2 }, hovertemplate: "%{y:.1f} %<extra></extra>" },
    ], {
      paper_bgcolor: theme.paper_bgcolor, plot_bgcolor: theme.plot_bgcolor, font: theme.font, hoverlabel: theme.hoverlabel,
      margin: { l: 44, r: 44, t: 10, b: 28 }, showlegend: false, bargap: 0.3,
      xaxis: { type: "date", gridcolor: theme.colors.grid, linecolor: theme.colors.line, fixedrange: true,
        range: [toPlot(body.start_ms), toPlot(body.end_ms)] },
      yaxis: { title: { text: "%" }, gridcolor: theme.colors.grid, zeroline: false, fixedrange: true, rangemode: "tozero" },
      yaxis2: { overlaying: "y", side: "right", showgrid: false, fixedrange: true, rangemode: "tozero", title: { text: "parts" } },
      annotations: b.length ? [] : [{ text: "no parts in this period", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }],
    }, { ...PLOT_CONFIG, displayModeBar: false });
  }

  function renderReview(body) {
    el.querySelector("#review-count").textContent = `${body.pending} waiting`;
    const box = el.querySelector("#review");
    if (!body.items.length) {
      showEmpty(box, "Nothing to review: every verdict was sure enough.");
      return;
    }
    box.innerHTML = html`<table class="grid"><thead><tr><th>Part</th><th>Model says</th><th class="r">Decide</th></tr></thead><tbody>
      ${body.items.map((r) => {
        const other = r.verdict === "fail" ? "ok" : "anomaly";
        return html`<tr data-testid="review-row" data-id="${r.id}">
          <td class="review-part"><img src="${r.overlay_url}" alt="Part ${r.serial}" width="96" height="96" loading="lazy">
            <div><b>${r.serial}</b><div class="faint">${when(r.ts_ms)}</div></div></td>
          <td>${verdictPill(r.verdict)}<div class="muted">${humanize(r.defect_class)}, ${number(100 * r.confidence)} % sure</div>
            <div class="faint">score ${number(r.score)} / threshold ${number(r.threshold)}</div></td>
          <td class="r review-actions">
            <button class="button small" type="button" data-action="confirm" data-id="${r.id}" data-label="${r.defect_class}">Confirm ${r.verdict}</button>
            <button class="button small" type="button" data-action="correct" data-id="${r.id}" data-label="${other}">${other === "ok" ? "No defect" : "Defective"}</button>
          </td></tr>`;
      })}</tbody></table>`.html;
  }

  function renderRejected(body) {
    el.querySelector("#rejected-count").textContent = `${body.count} kept in quarantine`;
    const box = el.querySelector("#rejected");
    box.innerHTML = body.items.length
      ? html`<table class="grid"><thead><tr><th>When</th><th>From</th><th>Serial</th><th>Why</th><th class="r">Bytes</th></tr></thead><tbody>
        ${body.items.slice(0, 10).map((r) => html`<tr data-testid="rejected-row"><td>${when(r.received_ns / 1e6)}</td><td>${r.source}: ${r.origin}</td>
          <td>${r.serial ?? "—"}</td><td>${r.reason}</td><td class="r">${number(r.size, { integer: true })}</td></tr>`)}</tbody></table>`.html
      : '<div class="empty">No image refused.</div>';
  }

  async function refresh() {
    try {
      const [status, latest, rate, review, rejected] = await Promise.all([
        getJSON("/api/inspection/status"),
        getJSON("/api/inspection/inspections", { limit: LATEST }),
        getJSON("/api/inspection/defect-rate", { start: `-${TREND_HOURS}h`, bucket_s: TREND_BUCKET_S }),
        getJSON("/api/inspection/review", { limit: 20 }),
        getJSON("/api/inspection/rejected", { limit: 10 }),
      ]);
      if (page.stopped) return;
      renderStatus(status);
      renderParts(latest);
      renderTrend(rate);
      renderReview(review);
      renderRejected(rejected);
    } catch (err) {
      if (page.stopped) return;
      showLoadError(el.querySelector("#parts"), err, {
        absent: "This plant has no inspection station (no 'inspection:' section in plant.yaml).", what: "Inspection",
      });
    }
  }

  el.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-action]");
    if (!button) return;
    const { id, label: chosen, action } = button.dataset;
    await runAction(button, {
      path: `/api/inspection/review/${id}`, body: { label: chosen }, refresh, failed: "record the review",
      done: action === "confirm" ? "Verdict confirmed" : `Verdict corrected to ${chosen}`,
    });
  });

  page.start(refresh);
  page.onTheme(() => refresh());
  return () => {
    page.stop();
    if (window.Plotly) window.Plotly.purge(trend);
  };
}
