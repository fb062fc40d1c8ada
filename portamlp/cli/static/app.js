// portamlp serve: the page's behaviour. It draws strokes on the canvas and sends the canvas's
// RGBA pixels, untouched, to the server; the server prepares them (prepare_digit, the same code
// as `portamlp predict`) and classifies them. Nothing here crops, scales or centres an image.
"use strict";

const pad = document.getElementById("pad");
const padCtx = pad.getContext("2d", { willReadFrequently: true });
const seen = document.getElementById("seen");
const seenCtx = seen.getContext("2d");
const answerBox = document.getElementById("answer");
const digitText = document.getElementById("digit");
const verdict = document.getElementById("verdict");
const bars = document.getElementById("bars");
const seenCaption = document.getElementById("seen-caption");
const seenCaptionText = seenCaption.innerHTML;

const LINE_WIDTH = Math.round(pad.width * 0.08); // about MNIST's stroke once scaled to 20×20
const MIN_INTERVAL_MS = 50; // at most ~20 requests a second, and never two at once

let version = 0; // bumped at every change of the canvas
let stroke = null; // { id, x, y } while a pointer draws
let inFlight = false;
let timer = null;
let lastSent = -Infinity;
let answered = -1; // the canvas version the shown answer is for
let mode = "draw"; // "draw": answers follow the canvas; "test": a test digit is shown
const changedAt = new Map(); // canvas version -> when it changed (performance.now())

// --------------------------------------------------------------------------- the bar chart
const rows = [];
for (let k = 0; k < 10; k++) {
  const li = document.createElement("li");
  li.innerHTML = `<span class="label">${k}</span><span class="track"><span class="bar"></span>` +
                 `</span><span class="value">–</span>`;
  bars.appendChild(li);
  rows.push({ li, bar: li.querySelector(".bar"), value: li.querySelector(".value") });
}

function showProbabilities(probabilities) {
  const top = probabilities ? probabilities.indexOf(Math.max(...probabilities)) : -1;
  rows.forEach((row, k) => {
    const p = probabilities ? probabilities[k] : 0;
    row.bar.style.width = `${(100 * p).toFixed(1)}%`;
    row.value.textContent = probabilities ? `${(100 * p).toFixed(1)} %` : "–";
    row.li.classList.toggle("top", k === top);
  });
}

function showSeen(pixels) {
  const image = seenCtx.createImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = pixels ? pixels[i] : 0;
    image.data.set([v, v, v, 255], 4 * i);
  }
  seenCtx.putImageData(image, 0, 0);
}

function showAnswer(data, forVersion, caption) {
  answered = forVersion;
  answerBox.dataset.version = String(forVersion);
  answerBox.dataset.mode = mode;
  answerBox.dataset.prediction = data.prediction === null ? "" : String(data.prediction);
  delete answerBox.dataset.label;
  showSeen(data.input);
  showProbabilities(data.probabilities);
  portamlpView.show(data);
  if (mode === "draw" && data.prediction !== null && changedAt.has(forVersion)) {
    // from the canvas change this answer is for, to every part of the page updated
    const ms = performance.now() - changedAt.get(forVersion);
    portamlpView.latencies.push(ms);
    answerBox.dataset.latencyMs = ms.toFixed(1);
  }
  if (data.prediction === null) {
    digitText.textContent = "–";
    verdict.textContent = "No digit found: draw one in the box.";
    verdict.title = data.detail || "";
  } else {
    digitText.textContent = String(data.prediction);
    const sure = (100 * data.probabilities[data.prediction]).toFixed(1);
    verdict.textContent = `${sure} % sure`;
    verdict.title = "";
  }
  seenCaption.innerHTML = caption || seenCaptionText;
}

function showError(message) {
  verdict.innerHTML = "";
  const span = document.createElement("span");
  span.className = "error";
  span.textContent = message;
  verdict.appendChild(span);
}

// ------------------------------------------------------------------------------- the canvas
function clearPad() {
  padCtx.fillStyle = "#ffffff";
  padCtx.fillRect(0, 0, pad.width, pad.height);
  changed();
}

function changed() {
  version += 1;
  pad.dataset.version = String(version);
  changedAt.set(version, performance.now());
  changedAt.delete(version - 50);
}

function at(event) {
  const box = pad.getBoundingClientRect();
  return {
    x: ((event.clientX - box.left - pad.clientLeft) * pad.width) / pad.clientWidth,
    y: ((event.clientY - box.top - pad.clientTop) * pad.height) / pad.clientHeight,
  };
}

function segment(from, to) {
  padCtx.strokeStyle = "#000000";
  padCtx.lineWidth = LINE_WIDTH;
  padCtx.lineCap = "round";
  padCtx.lineJoin = "round";
  padCtx.beginPath();
  padCtx.moveTo(from.x, from.y);
  padCtx.lineTo(to.x, to.y);
  padCtx.stroke();
}

pad.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  const p = at(event);
  stroke = { id: event.pointerId, ...p };
  segment(p, p); // a dot
  mode = "draw";
  changed();
  schedule();
});

pad.addEventListener("pointermove", (event) => {
  if (!stroke || event.pointerId !== stroke.id) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) {
    const p = at(e);
    segment(stroke, p);
    stroke.x = p.x;
    stroke.y = p.y;
  }
  changed();
  schedule();
});

function endStroke(event) {
  if (!stroke || event.pointerId !== stroke.id) return;
  stroke = null;
  schedule();
}
pad.addEventListener("pointerup", endStroke);
pad.addEventListener("pointercancel", endStroke);
pad.addEventListener("lostpointercapture", endStroke);

// -------------------------------------------------------------------- talking to the server
function base64(bytes) {
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(text);
}

async function getJSON(response) {
  let data = null;
  try {
    data = await response.json();
  } catch (_) {
    throw new Error(`the server answered ${response.status} without JSON`);
  }
  if (!response.ok) throw new Error(data && data.error ? data.error : `error ${response.status}`);
  return data;
}

// Throttle: one request at a time, at least MIN_INTERVAL_MS apart; when the canvas changed
// meanwhile, the latest canvas is sent next, so the final stroke always gets its answer.
function schedule() {
  if (mode !== "draw" || inFlight || timer !== null || answered === version) return;
  const wait = Math.max(0, lastSent + MIN_INTERVAL_MS - performance.now());
  timer = setTimeout(() => {
    timer = null;
    send();
  }, wait);
}

async function send() {
  if (mode !== "draw" || answered === version) return;
  inFlight = true;
  lastSent = performance.now();
  const sent = version;
  const pixels = padCtx.getImageData(0, 0, pad.width, pad.height).data;
  try {
    const response = await fetch("api/predict", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({
        width: pad.width, height: pad.height, channels: 4, pixels: base64(pixels),
        activations: true,
      }),
    });
    const data = await getJSON(response);
    if (mode === "draw") showAnswer(data, sent);
  } catch (error) {
    showError(`No answer from the server: ${error.message}`);
    answered = sent; // do not retry in a loop; the next stroke tries again
  } finally {
    inFlight = false;
    schedule();
  }
}

async function testDigit() {
  mode = "test";
  clearPad();
  const forVersion = version;
  try {
    const data = await getJSON(await fetch("api/test-digit?activations=1"));
    if (mode !== "test" || version !== forVersion) return; // the user drew meanwhile
    showAnswer(data, forVersion,
               `MNIST test image #${data.index}, as stored in the data set (no preparation).`);
    const mark = document.createElement("span");
    mark.className = data.correct ? "good" : "bad";
    mark.textContent = data.correct ? "right" : "wrong";
    verdict.textContent = `True label ${data.label}: `;
    verdict.appendChild(mark);
    verdict.appendChild(document.createTextNode(
      ` (${(100 * data.probabilities[data.prediction]).toFixed(1)} % sure)`));
    answerBox.dataset.label = String(data.label);
  } catch (error) {
    showError(`No test digit: ${error.message}`);
  }
}

document.getElementById("clear").addEventListener("click", () => {
  mode = "draw";
  clearPad();
  schedule();
});
document.getElementById("test").addEventListener("click", testDigit);

// ------------------------------------------------------------------------------ the model
async function showModel() {
  const line = document.getElementById("model");
  try {
    const info = await getJSON(await fetch("api/model"));
    portamlpView.setModel(info);
    const accuracy = info.test_accuracy === null
      ? "test accuracy unknown (no run record beside the model)"
      : `test accuracy ${(100 * info.test_accuracy).toFixed(2)} % (from its run record)`;
    line.innerHTML = "";
    const name = document.createElement("strong");
    name.textContent = info.name;
    line.appendChild(name);
    line.appendChild(document.createTextNode(
      ` · layers ${info.layers.join("-")} · ${info.activation} activation, ${info.cost} cost · ` +
      accuracy));
  } catch (error) {
    line.textContent = `The model could not be read: ${error.message}`;
  }
}

showModel();
clearPad();
schedule(); // a blank canvas: the server says "no digit found"
