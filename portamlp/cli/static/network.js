// portamlp serve: the network view. Every layer of the real model as a column of neurons whose
// brightness is its activation for the current drawing (from the server's forward pass, the
// library's own), the strongest connections into the neuron under the pointer (blue solid:
// positive, red dashed: negative), and what a first-layer neuron looks for: its incoming
// weights as a 28×28 image. app.js calls portamlpView.show(answer, info) with each answer.
"use strict";

const portamlpView = (() => {
  const SVG = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("net");
  const weightCanvas = document.getElementById("neuron-weights");
  const weightCaption = document.getElementById("neuron-caption");
  const grid = document.getElementById("weight-grid");
  const gridCaption = document.getElementById("grid-caption");
  const SHOWN = 16; // neurons drawn per hidden layer: the most active ones
  const LINES = 12; // connections drawn into the selected neuron
  const W = 760, H = 380, TOP = 30, BOTTOM = 350;
  const IMG = { left: 16, size: 140, top: (H - 140) / 2 }; // the input, 5 px per pixel
  const POSITIVE = "#2166ac", NEGATIVE = "#b2182b"; // blue / red, told apart by dashes too

  const state = {
    layers: null, // the model's layer sizes
    answer: null, // the last answer shown (input, activations, probabilities)
    positions: [], // per layer (0 = input): Map unit -> {x, y}
    selected: null, // {layer, unit}
    weights: new Map(), // "layer/unit" -> incoming weights (a promise)
    latencies: [], // stroke-to-update times of drawn digits, ms
  };

  function el(name, attributes, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
    if (parent) parent.appendChild(node);
    return node;
  }

  function columnX(layer) { // layer 0 = input image, last = output
    const n = state.layers.length - 1, first = 250, last = W - 60;
    return n === 1 ? last : first + (layer - 1) * ((last - first) / (n - 1));
  }

  function layerName(layer) {
    const last = state.layers.length - 1;
    return layer === last ? "output layer" : `hidden layer ${layer}`;
  }

  // Units to draw: all of a small layer, else the SHOWN most active, in unit order.
  function shownUnits(values, layer) {
    const last = state.layers.length - 1;
    const all = values.map((_, j) => j);
    if (layer === last || values.length <= SHOWN) return all;
    return all.sort((a, b) => values[b] - values[a]).slice(0, SHOWN).sort((a, b) => a - b);
  }

  function inputImage(pixels) {
    const canvas = document.createElement("canvas");
    canvas.width = canvas.height = 28;
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(28, 28);
    for (let i = 0; i < 784; i++) {
      const v = 255 - (pixels ? pixels[i] : 0); // ink dark, as drawn
      image.data.set([v, v, v, 255], 4 * i);
    }
    ctx.putImageData(image, 0, 0);
    return canvas.toDataURL();
  }

  function draw() {
    const { answer, layers } = state;
    svg.replaceChildren();
    state.positions = [new Map()];
    if (!layers || !answer || !answer.activations) {
      el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "note" }, svg)
        .textContent = "Draw a digit: every layer of the network lights up here.";
      return;
    }
    const { left, size, top } = IMG;
    el("image", { href: inputImage(answer.input), x: left, y: top, width: size, height: size,
                  class: "input", "image-rendering": "pixelated" }, svg);
    el("rect", { x: left, y: top, width: size, height: size, class: "frame" }, svg);
    el("text", { x: left + size / 2, y: top - 8, "text-anchor": "middle", class: "label" }, svg)
      .textContent = "input 28×28";
    el("g", { id: "links" }, svg); // over the input image, under the neurons
    answer.activations.forEach((values, i) => {
      const layer = i + 1, last = layer === layers.length - 1;
      const units = shownUnits(values, layer);
      const x = columnX(layer), step = (BOTTOM - TOP) / Math.max(units.length, 1);
      const top = Math.max(...values.map(Math.abs), 1e-12);
      const column = el("g", { class: "layer", "data-layer": layer,
                               "data-units": values.length, "data-shown": units.length }, svg);
      el("text", { x, y: TOP - 12, "text-anchor": "middle", class: "label" }, column)
        .textContent = last ? "output" : `hidden ${layer} (${values.length})`;
      const positions = new Map();
      units.forEach((j, k) => {
        const y = TOP + step * (k + 0.5);
        positions.set(j, { x, y });
        const v = values[j], level = Math.max(0, Math.min(1, v / top));
        const unit = el("circle", {
          cx: x, cy: y, r: Math.min(9, step / 2 - 1), class: "unit", tabindex: -1,
          role: "button", "data-layer": layer, "data-unit": j, "data-activation": v,
          "aria-label": `${layerName(layer)}, ${last ? "digit" : "unit"} ${j}: ` +
                        `activation ${v.toPrecision(3)}`,
          fill: `rgb(${Math.round(255 * level)}, ${Math.round(220 * level)}, 60)`,
        }, column);
        if (last && j === answer.prediction) unit.classList.add("winner");
        if (last) {
          el("text", { x: x + 16, y: y + 4, class: "label" }, column).textContent = String(j);
        }
      });
      if (units.length < values.length) {
        el("text", { x, y: BOTTOM + 18, "text-anchor": "middle", class: "note" }, column)
          .textContent = `+${values.length - units.length} more`;
      }
      state.positions.push(positions);
    });
    const sel = state.selected;
    if (sel && state.positions[sel.layer] && state.positions[sel.layer].has(sel.unit)) {
      select(sel.layer, sel.unit, false);
    } else {
      state.selected = null;
      rove(svg.querySelector(".unit")); // Tab enters the view at its first neuron
    }
  }

  // One neuron in the Tab order at a time (the selected one); arrows move between them.
  function rove(circle) {
    svg.querySelectorAll(".unit[tabindex='0']").forEach((c) => c.setAttribute("tabindex", -1));
    if (circle) circle.setAttribute("tabindex", 0);
  }

  function incoming(layer, unit) {
    const key = `${layer}/${unit}`;
    if (!state.weights.has(key)) {
      state.weights.set(key, fetch(`api/weights?layer=${layer}&unit=${unit}`)
        .then((r) => r.json()).then((d) => d.weights));
    }
    return state.weights.get(key);
  }

  // The strongest connections into (layer, unit) from what is drawn of the layer before.
  async function select(layer, unit, focus = true) {
    state.selected = { layer, unit };
    svg.dataset.selected = `${layer}/${unit}`;
    svg.querySelectorAll(".unit.selected").forEach((c) => c.classList.remove("selected"));
    const circle = svg.querySelector(`.unit[data-layer="${layer}"][data-unit="${unit}"]`);
    if (circle) circle.classList.add("selected");
    rove(circle);
    if (focus && circle) circle.focus();
    const weights = await incoming(layer, unit);
    if (!state.selected || state.selected.layer !== layer || state.selected.unit !== unit) return;
    const to = state.positions[layer].get(unit);
    const links = svg.querySelector("#links");
    links.replaceChildren();
    let from;
    if (layer === 1) { // from the pixels, within the input image
      const px = IMG.size / 28;
      from = weights.map((_, i) => ({ x: IMG.left + ((i % 28) + 0.5) * px,
                                      y: IMG.top + (Math.floor(i / 28) + 0.5) * px }));
      showWeightImage(layer, unit, weights);
    } else {
      from = [];
      state.positions[layer - 1].forEach((p, j) => { from[j] = p; });
    }
    const candidates = weights.map((w, i) => [w, i]).filter(([, i]) => from[i]);
    candidates.sort((a, b) => Math.abs(b[0]) - Math.abs(a[0]));
    const strongest = candidates.slice(0, LINES);
    const top = Math.max(...strongest.map(([w]) => Math.abs(w)), 1e-12);
    for (const [w, i] of strongest) {
      el("line", { x1: from[i].x, y1: from[i].y, x2: to.x, y2: to.y,
                   stroke: w >= 0 ? POSITIVE : NEGATIVE,
                   "stroke-dasharray": w >= 0 ? "none" : "5 3",
                   "stroke-width": 0.5 + 3 * Math.abs(w) / top, class: "link",
                   "data-from": i, "data-weight": w }, links);
    }
    svg.dataset.drawn = `${layer}/${unit}`; // its connections are drawn
  }

  // Incoming weights as an image: blue where ink raises the neuron, red where it lowers it.
  function paintWeights(ctx, weights, x0, y0) {
    const top = Math.max(...weights.map(Math.abs), 1e-12);
    const image = ctx.createImageData(28, 28);
    weights.forEach((w, i) => {
      const t = Math.min(1, Math.abs(w) / top);
      const [r, g, b] = w >= 0 ? [255 - 222 * t, 255 - 153 * t, 255 - 83 * t]
                               : [255 - 77 * t, 255 - 231 * t, 255 - 212 * t];
      image.data.set([r, g, b, 255], 4 * i);
    });
    ctx.putImageData(image, x0, y0);
  }

  function showWeightImage(layer, unit, weights) {
    paintWeights(weightCanvas.getContext("2d"), weights, 0, 0);
    weightCanvas.dataset.unit = String(unit);
    weightCaption.textContent = `${layerName(layer)}, unit ${unit}: what it looks for. ` +
      "Blue: ink there raises its activation; red: ink there lowers it.";
  }

  async function showGrid() {
    const units = state.layers[1];
    if (units > 256) {
      gridCaption.textContent = `The first layer has ${units} units; the grid is drawn for ` +
        "256 or fewer (portamlp plot weights draws the first 256 of any model's).";
      grid.hidden = true;
      return;
    }
    const data = await (await fetch("api/weights?layer=1")).json();
    const cols = Math.min(16, units), rows = Math.ceil(units / cols);
    grid.width = cols * 29 - 1;
    grid.height = rows * 29 - 1;
    const ctx = grid.getContext("2d");
    data.weights.forEach((w, j) => paintWeights(ctx, w, (j % cols) * 29, Math.floor(j / cols) * 29));
    grid.dataset.units = String(units);
    gridCaption.textContent = `All ${units} units of the first layer, unit 0 at the top left, ` +
      "each scaled to its own largest weight (blue positive, red negative).";
  }

  // Keyboard: arrows move between neurons (up/down within a layer, left/right across).
  svg.addEventListener("keydown", (event) => {
    const sel = state.selected;
    if (!sel) return;
    const units = [...state.positions[sel.layer].keys()];
    let { layer } = sel, k = units.indexOf(sel.unit);
    if (event.key === "ArrowDown") k = Math.min(units.length - 1, k + 1);
    else if (event.key === "ArrowUp") k = Math.max(0, k - 1);
    else if (event.key === "Home") k = 0;
    else if (event.key === "End") k = units.length - 1;
    else if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      layer += event.key === "ArrowRight" ? 1 : -1;
      if (layer < 1 || layer >= state.positions.length) return;
      const next = [...state.positions[layer].keys()];
      k = Math.min(next.length - 1, Math.round(k * next.length / units.length));
      event.preventDefault();
      select(layer, next[k]);
      return;
    } else return;
    event.preventDefault();
    select(layer, units[k]);
  });
  svg.addEventListener("focusin", (event) => {
    const t = event.target;
    if (t.classList && t.classList.contains("unit")) select(+t.dataset.layer, +t.dataset.unit, false);
  });
  svg.addEventListener("mouseover", (event) => {
    const t = event.target;
    if (t.classList && t.classList.contains("unit")) select(+t.dataset.layer, +t.dataset.unit, false);
  });

  return {
    state,
    latencies: state.latencies,
    setModel(info) {
      state.layers = info.layers;
      draw();
      showGrid().catch((e) => { gridCaption.textContent = `No weights: ${e.message}`; });
    },
    show(answer) {
      state.answer = answer;
      draw();
    },
    get last() { return state.answer; },
  };
})();
window.portamlpView = portamlpView;
