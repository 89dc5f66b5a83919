// The page of timesformer serve: choose or drop a video, see it play, its top-5 classes as bars,
// the window timeline for long videos and the attention rollout. Plain browser APIs only, and
// every URL is relative, so the page also works behind a proxy under a path prefix.
"use strict";

const COLOURS = ["#2f6fde", "#e0782b", "#2e9d5b", "#c23b6c", "#7b5cc4"];
const $ = (id) => document.getElementById(id);
const state = { file: null, clipSeconds: null, prediction: null, gifUrl: null };

function setStatus(text, kind = "") {
  const status = $("status");
  status.textContent = text;
  status.className = kind;
}

// An error answer's message ({"error": ..., "code": ...}), or the HTTP status line.
async function failure(response) {
  try {
    const body = await response.json();
    if (body && body.error) return `${body.error} (${response.status})`;
  } catch (_) { /* not JSON */ }
  return `${response.status} ${response.statusText}`;
}

async function loadModel() {
  try {
    const response = await fetch("healthz");
    if (!response.ok) throw new Error(await failure(response));
    const info = await response.json();
    state.clipSeconds = info.clip ? info.clip.seconds : null;
    $("model").textContent =
      `${info.model} · ${info.classes} classes · ${info.attention} attention · ${info.precision}`;
  } catch (err) {
    $("model").textContent = `server not ready: ${err.message}`;
  }
}

function showTop(top) {
  const box = $("top");
  box.replaceChildren();
  top.forEach((item, i) => {
    const row = document.createElement("div");
    row.className = "row";
    const label = document.createElement("span");
    label.className = "label";
    label.textContent = item.label;  // text, never HTML: labels come from the checkpoint
    label.title = item.label;
    const track = document.createElement("div");
    track.className = "track";
    const bar = document.createElement("div");
    bar.className = "bar";
    bar.style.width = `${(100 * item.prob).toFixed(1)}%`;
    bar.style.background = COLOURS[i % COLOURS.length];
    track.append(bar);
    const prob = document.createElement("span");
    prob.className = "prob";
    prob.textContent = `${(100 * item.prob).toFixed(1)}%`;
    row.append(label, track, prob);
    box.append(row);
  });
}

// One line per top class over the windows' centres; the video's position as a vertical line.
function drawTimeline() {
  const pred = state.prediction;
  const canvas = $("timeline");
  if (!pred || !pred.windows || !pred.windows.length) {
    $("timeline-box").hidden = true;
    return;
  }
  $("timeline-box").hidden = false;
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const pad = { left: 36, right: 10, top: 10, bottom: 24 };
  const end = Math.max(pred.duration || 0, ...pred.windows.map((x) => x.end));
  const x = (t) => pad.left + (w - pad.left - pad.right) * (t / end);
  const y = (p) => h - pad.bottom - (h - pad.top - pad.bottom) * p;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px system-ui, sans-serif";
  ctx.fillStyle = "#5d6677";
  ctx.strokeStyle = "#d8dde6";
  for (const p of [0, 0.5, 1]) {
    ctx.beginPath();
    ctx.moveTo(pad.left, y(p));
    ctx.lineTo(w - pad.right, y(p));
    ctx.stroke();
    ctx.fillText(p.toFixed(1), 6, y(p) + 4);
  }
  const step = Math.max(1, Math.ceil(end / 8));
  for (let t = 0; t <= end; t += step) ctx.fillText(`${t}s`, x(t) - 6, h - 6);
  pred.top.slice(0, 5).forEach((cls, i) => {
    ctx.strokeStyle = COLOURS[i % COLOURS.length];
    ctx.lineWidth = 2;
    ctx.beginPath();
    pred.windows.forEach((win, k) => {
      const hit = win.top.find((item) => item.label === cls.label);
      const px = x((win.start + win.end) / 2), py = y(hit ? hit.prob : 0);
      if (k === 0) ctx.moveTo(px, py); else ctx.lineTo(px, py);
    });
    ctx.stroke();
  });
  const player = $("player");
  if (!player.hidden && Number.isFinite(player.currentTime)) {
    ctx.strokeStyle = "#1d2330";
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x(player.currentTime), pad.top);
    ctx.lineTo(x(player.currentTime), h - pad.bottom);
    ctx.stroke();
  }
  canvas.onclick = (event) => {
    const box = canvas.getBoundingClientRect();
    const px = ((event.clientX - box.left) / box.width) * w;
    const t = ((px - pad.left) / (w - pad.left - pad.right)) * end;
    player.currentTime = Math.min(Math.max(t, 0), end);
  };
}

function form(extra) {
  const body = new FormData();
  body.append("video", state.file, state.file.name);
  for (const [key, value] of Object.entries(extra)) body.append(key, value);
  return body;
}

async function explain() {
  $("attention-box").hidden = true;
  const fusion = $("fusion").value;
  const response = await fetch("v1/explain", { method: "POST", body: form({ head_fusion: fusion }) });
  if (!response.ok) {
    setStatus(`attention map: ${await failure(response)}`, "error");
    return;
  }
  const img = $("attention");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(await response.blob());
  $("attention-box").hidden = false;
}

async function run() {
  if (!state.file) return;
  $("again").disabled = true;
  const windows = $("windows").checked;
  setStatus(`predicting ${state.file.name}${windows ? ", window by window" : ""}`, "busy");
  const started = performance.now();
  try {
    const response = await fetch("v1/predict", {
      method: "POST",
      body: form({ topk: "5", windows: windows ? "true" : "false" }),
    });
    if (!response.ok) throw new Error(await failure(response));
    state.prediction = await response.json();
    showTop(state.prediction.top);
    drawTimeline();
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const views = state.prediction.views;
    setStatus(`${state.file.name}: ${state.prediction.duration} s of video, ${views} views, ` +
              `answered in ${seconds} s`);
    await explain();
  } catch (err) {
    setStatus(err.message, "error");
  } finally {
    $("again").disabled = false;
  }
}

function choose(file) {
  if (!file) return;
  state.file = file;
  state.prediction = null;
  $("top").replaceChildren();
  $("timeline-box").hidden = true;
  $("attention-box").hidden = true;
  const player = $("player");
  if (player.src) URL.revokeObjectURL(player.src);
  player.src = URL.createObjectURL(file);
  player.hidden = false;
  // Windows by default when the video holds more than two of the model's windows; a video
  // the browser cannot play (its codec) is still sent: the server decides.
  let started = false;
  const start = () => {
    if (started) return;
    started = true;
    if (state.clipSeconds && Number.isFinite(player.duration)) {
      $("windows").checked = player.duration > 2 * state.clipSeconds;
    }
    run();
  };
  player.onloadedmetadata = start;
  player.onerror = start;
  setTimeout(start, 1500);
}

$("file").addEventListener("change", (event) => choose(event.target.files[0]));
$("again").addEventListener("click", run);
$("player").addEventListener("timeupdate", drawTimeline);
$("gif").addEventListener("click", async (event) => {
  event.preventDefault();
  if (!state.file) return;
  const response = await fetch("v1/explain", {
    method: "POST", body: form({ head_fusion: $("fusion").value, format: "gif" }),
  });
  if (!response.ok) {
    setStatus(`animation: ${await failure(response)}`, "error");
    return;
  }
  if (state.gifUrl) URL.revokeObjectURL(state.gifUrl);
  state.gifUrl = URL.createObjectURL(await response.blob());
  $("attention").src = state.gifUrl;
});

const drop = $("drop");
for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
}
for (const name of ["dragleave", "drop"]) {
  drop.addEventListener(name, () => drop.classList.remove("over"));
}
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  choose(event.dataTransfer.files[0]);
});

loadModel();
