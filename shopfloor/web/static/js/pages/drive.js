// Drive: an operator drives a remotely operated vehicle (the mine's ore locomotive) from the cab camera.
//
// Hold-to-drive: heartbeats go to the vehicle only while a drive button (or arrow key) is held AND the
// page is visible and focused: a deadman in the console too. Letting go sends a stop; losing the page,
// the focus or the vehicle's echoes stops the heartbeats, and the vehicle's own deadman brakes it.
// After a safe stop the operator must let go and press again (a new drive command).

import { getJSON } from "../api.js";
import { number } from "../format.js";

const STATE_TEXT = { stopped: "Stopped", driving: "Driving", safe_stop: "SAFE STOP" };
const REASON_TEXT = {
  none: "", heartbeat_timeout: "the console's heartbeats stopped", latency_over_budget: "link round trip over budget",
  uplink_lost: "the vehicle's echoes stopped reaching the platform",
};
const RTT_WINDOW = 120;
const ms = (v) => `${v.toFixed(v < 10 ? 1 : 0)}<small>ms</small>`;

export function title() {
  return "Drive";
}

export function mount(el, route) {
  el.innerHTML = `<div class="drive" data-testid="drive">
    <div class="empty" id="drive-empty">Loading vehicles…</div>
    <div class="drive-grid" id="drive-main" hidden>
      <section class="panel drive-camera-panel">
        <div class="panel-head"><h2 id="drive-title">Vehicle</h2><span class="spacer"></span>
          <span class="pill" id="drive-state" data-testid="drive-state">—</span></div>
        <div class="drive-camera"><img id="drive-camera" data-testid="drive-camera" alt="Cab camera of the vehicle">
          <div class="drive-camera-note" id="drive-camera-note">Waiting for the camera…</div></div>
        <div class="drive-reason" id="drive-reason" data-testid="drive-reason"></div>
        <div class="drive-controls">
          <button class="button drive-button" id="drive-rev" data-testid="drive-reverse" type="button">◀ Reverse</button>
          <label class="drive-speed">Speed <input type="range" id="drive-speed" min="0.1" max="1" step="0.1" value="0.5">
            <output id="drive-speed-out">0.5</output> m/s</label>
          <button class="button drive-button" id="drive-fwd" data-testid="drive-forward" type="button">Forward ▶</button>
        </div>
        <div class="faint drive-help">Hold a button or an arrow key (← →) to drive; let go to stop.
          Heartbeats are sent only while you hold it and this page is in front.</div>
      </section>
      <div class="drive-side">
        <section class="panel"><div class="panel-head"><h2>Motion</h2></div><div class="drive-kpis">
          <div class="kpi"><div class="label">Speed</div><div class="value" id="drive-v" data-testid="drive-speed">—</div></div>
          <div class="kpi"><div class="label">Position</div><div class="value" id="drive-x" data-testid="drive-position">—</div></div>
          <div class="kpi"><div class="label">Deadman trips</div><div class="value" id="drive-trips">—</div></div>
        </div><div class="drive-track"><div class="drive-track-bar"><span id="drive-marker"></span></div>
          <div class="faint" id="drive-track-label"></div></div></section>
        <section class="panel"><div class="panel-head"><h2>Link</h2><span class="spacer"></span>
          <span class="faint" id="drive-link-note"></span></div><div class="drive-kpis">
          <div class="kpi"><div class="label">Round trip</div><div class="value" id="drive-rtt" data-testid="drive-rtt">—</div>
            <div class="sub">console → vehicle → console</div></div>
          <div class="kpi"><div class="label">Jitter</div><div class="value" id="drive-jitter" data-testid="drive-jitter">—</div>
            <div class="sub">RFC 3550 estimate</div></div>
          <div class="kpi"><div class="label">Vehicle's view</div><div class="value" id="drive-rtt-dev">—</div>
            <div class="sub">platform ↔ vehicle</div></div>
        </div><canvas class="drive-spark" id="drive-spark" width="360" height="60"></canvas>
          <div class="faint drive-limits" id="drive-limits"></div></section>
      </div>
    </div>
  </div>`;
  const $ = (id) => el.querySelector(`#${id}`);
  let stopped = false;
  let ws = null;
  let vehicle = null;
  let frameUrl = null;
  let holding = 0; // -1 reverse, +1 forward, 0 not held
  let needRelease = false; // after a safe stop: let go, press again
  let hbTimer = null;
  let commandId = 0;
  let lastEcho = 0;
  let lastRtt = null;
  let jitter = 0;
  const rtts = [];
  let status = {};

  function setState(s) {
    status = { ...status, ...s };
    const state = status.state ?? "stopped";
    const pill = $("drive-state");
    pill.textContent = STATE_TEXT[state] ?? state;
    pill.className = `pill ${state === "safe_stop" ? "q-bad" : state === "driving" ? "q-good" : "s-idle"}`;
    pill.dataset.state = state;
    $("drive-reason").textContent = state === "safe_stop" ? `Safe stop: ${REASON_TEXT[status.trip_reason] ?? status.trip_reason}. Let go and press again to drive.` : "";
    if (status.speed !== undefined) $("drive-v").innerHTML = `${number(status.speed)}<small>m/s</small>`;
    if (status.position !== undefined) {
      $("drive-x").innerHTML = `${number(status.position)}<small>m</small>`;
      if (vehicle) $("drive-marker").style.left = `${Math.max(0, Math.min(100, (100 * status.position) / vehicle.track))}%`;
    }
    if (status.trips !== undefined) $("drive-trips").textContent = String(status.trips);
    $("drive-rtt-dev").innerHTML = status.rtt_ms === null || status.rtt_ms === undefined ? "—" : ms(status.rtt_ms);
    if (state === "safe_stop" && holding) stopHeartbeats(false);
  }

  function drawSpark() {
    const canvas = $("drive-spark");
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (rtts.length < 2 || !vehicle) return;
    const top = Math.max(vehicle.latency_budget_ms * 1.2, ...rtts);
    const y = (v) => canvas.height - 2 - ((canvas.height - 4) * v) / top;
    ctx.strokeStyle = "rgba(220, 60, 60, 0.7)";
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(0, y(vehicle.latency_budget_ms));
    ctx.lineTo(canvas.width, y(vehicle.latency_budget_ms));
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.strokeStyle = getComputedStyle(el).getPropertyValue("--accent") || "#4a7fe0";
    ctx.beginPath();
    rtts.forEach((v, i) => {
      const x = (canvas.width * i) / (RTT_WINDOW - 1);
      if (i) ctx.lineTo(x, y(v)); else ctx.moveTo(x, y(v));
    });
    ctx.stroke();
  }

  function onEcho(m) {
    const rtt = performance.now() - m.console;
    lastEcho = performance.now();
    if (lastRtt !== null) jitter += (Math.abs(rtt - lastRtt) - jitter) / 16;
    lastRtt = rtt;
    rtts.push(rtt);
    if (rtts.length > RTT_WINDOW) rtts.shift();
    $("drive-rtt").innerHTML = ms(rtt);
    $("drive-jitter").innerHTML = ms(jitter);
    $("drive-rtt").classList.toggle("v-bad", rtt > vehicle.latency_budget_ms);
    drawSpark();
  }

  function send(message) {
    if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
  }

  function heartbeat() {
    // the console's own deadman: the page hidden (losing the focus releases too, see onBlur)
    if (document.visibilityState !== "visible") return stopHeartbeats(true);
    if (performance.now() - lastEcho > vehicle.timeout_ms + vehicle.heartbeat_ms) {
      // no echo: the operator may be watching a frozen picture; stop, as the vehicle will
      $("drive-link-note").textContent = "no echo from the vehicle: link lost";
      return stopHeartbeats(true);
    }
    send({ type: "hb", t: performance.now() });
  }

  function startDriving(direction) {
    if (!vehicle || holding || needRelease || !ws || ws.readyState !== WebSocket.OPEN) return;
    holding = direction;
    lastEcho = performance.now(); // the first echo has a timeout's grace
    $("drive-link-note").textContent = "";
    el.querySelector(direction > 0 ? "#drive-fwd" : "#drive-rev").classList.add("held");
    heartbeat(); // a fresh heartbeat first: the vehicle takes a drive command only after one
    hbTimer = setInterval(heartbeat, vehicle.heartbeat_ms);
    const speed = Number($("drive-speed").value) * direction;
    setTimeout(() => { if (holding === direction) send({ type: "drive", speed, id: ++commandId }); }, 20);
  }

  function stopHeartbeats(sendStop) {
    if (!holding) return;
    el.querySelectorAll(".drive-button").forEach((b) => b.classList.remove("held"));
    holding = 0;
    clearInterval(hbTimer);
    hbTimer = null;
    if (sendStop) send({ type: "drive", speed: 0, id: ++commandId });
    if (status.state === "safe_stop") needRelease = true;
  }

  function release() {
    stopHeartbeats(true);
    needRelease = false;
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss" : "ws";
    ws = new WebSocket(`${scheme}://${window.location.host}/api/ws/drive/${encodeURIComponent(vehicle.name)}`);
    ws.binaryType = "blob";
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") {
        const url = URL.createObjectURL(event.data);
        $("drive-camera").src = url;
        if (frameUrl) URL.revokeObjectURL(frameUrl);
        frameUrl = url;
        $("drive-camera-note").hidden = true;
        return;
      }
      const m = JSON.parse(event.data);
      if (m.type === "hello") {
        $("drive-link-note").textContent = `connected as ${m.driver}`;
      } else if (m.type === "echo") {
        onEcho(m);
        setState(m);
      } else if (m.type === "status" || m.type === "state") {
        setState(m);
      } else if (m.type === "command") {
        setState(m);
        if (!m.accepted && m.id) $("drive-reason").textContent = `The vehicle refused: ${m.reason}`;
      } else if (m.type === "refused" || m.type === "error") {
        $("drive-reason").textContent = `Refused: ${m.reason}`;
        stopHeartbeats(false);
      }
    };
    ws.onclose = (event) => {
      stopHeartbeats(false);
      if (stopped) return;
      $("drive-link-note").textContent = event.reason ? `closed: ${event.reason}` : "disconnected; reconnecting…";
      if (event.code !== 1008) setTimeout(() => { if (!stopped) connect(); }, 2000);
    };
  }

  const keyDirection = (e) => (e.key === "ArrowRight" || e.key === "ArrowUp" ? 1 : e.key === "ArrowLeft" || e.key === "ArrowDown" ? -1 : 0);
  const onKeyDown = (e) => {
    const d = keyDirection(e);
    if (!d || e.target.tagName === "INPUT") return;
    e.preventDefault();
    if (!e.repeat) startDriving(d);
  };
  const onKeyUp = (e) => { if (keyDirection(e)) release(); };
  const onHide = () => { if (document.visibilityState !== "visible") stopHeartbeats(true); };
  const onBlur = () => stopHeartbeats(true);
  window.addEventListener("keydown", onKeyDown);
  window.addEventListener("keyup", onKeyUp);
  window.addEventListener("blur", onBlur);
  document.addEventListener("visibilitychange", onHide);
  for (const [id, d] of [["drive-fwd", 1], ["drive-rev", -1]]) {
    const b = $(id);
    b.addEventListener("pointerdown", (e) => { b.setPointerCapture?.(e.pointerId); startDriving(d); });
    for (const ev of ["pointerup", "pointercancel", "lostpointercapture"]) b.addEventListener(ev, release);
    b.addEventListener("contextmenu", (e) => e.preventDefault());
  }
  $("drive-speed").addEventListener("input", () => { $("drive-speed-out").textContent = $("drive-speed").value; });

  (async () => {
    let list;
    try {
      list = await getJSON("/api/drive/vehicles");
    } catch (err) {
      $("drive-empty").textContent = `Could not load the vehicles: ${err.message}`;
      return;
    }
    if (stopped) return;
    if (!list.length) {
      $("drive-empty").textContent = "No vehicle is set up for remote driving (drive: in plant.yaml).";
      return;
    }
    const wanted = route?.path;
    vehicle = list.find((v) => v.name === wanted) ?? list[0];
    vehicle.track = 1;
    $("drive-empty").hidden = true;
    $("drive-main").hidden = false;
    $("drive-title").textContent = `${vehicle.name} · ${vehicle.equipment}`;
    const slider = $("drive-speed");
    slider.min = String(Math.min(0.1, vehicle.jog_speed));
    slider.max = String(vehicle.max_speed);
    slider.value = String(vehicle.jog_speed);
    $("drive-speed-out").textContent = slider.value;
    $("drive-limits").textContent = `Deadman: heartbeat every ${vehicle.heartbeat_ms} ms, safe stop after ${vehicle.timeout_ms} ms without one or a round trip over ${vehicle.latency_budget_ms} ms.`;
    if (vehicle.track_m) vehicle.track = vehicle.track_m;
    $("drive-track-label").textContent = `track 0 – ${number(vehicle.track)} m`;
    if (!stopped) connect();
  })();

  return () => {
    stopped = true;
    release();
    window.removeEventListener("keydown", onKeyDown);
    window.removeEventListener("keyup", onKeyUp);
    window.removeEventListener("blur", onBlur);
    document.removeEventListener("visibilitychange", onHide);
    if (ws) ws.close();
    if (frameUrl) URL.revokeObjectURL(frameUrl);
  };
}
