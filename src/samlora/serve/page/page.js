// samlora serve: the page. Plain JS, no network beyond this server.
// Prompts are kept in pixels of the original image; masks arrive as COCO RLE at that size.
"use strict";

const COLOURS = [[0, 190, 255], [255, 220, 0], [120, 255, 60], [255, 60, 220], [255, 140, 0],
  [160, 100, 255], [255, 60, 60], [0, 220, 170]];
const $ = (id) => document.getElementById(id);

const state = {
  models: null,        // GET /models
  file: null,          // the image file (Blob) sent with every request
  name: "image",       // its name, for downloads
  bitmap: null,        // the decoded image, drawn under the masks
  width: 0, height: 0,
  prompts: { points: [], labels: [], box: null },
  history: [],         // earlier prompt states, for undo
  texts: [],           // text prompts (concept models)
  answer: null,        // the last POST /predict answer
  request: null,       // the last POST /predict request, without the image
  serial: 0,           // request counter: answers to stale requests are dropped
  answered: 0,         // answers shown so far (masks or an error), for scripts that drive the page
  token: sessionStorage.getItem("samlora-token") || "",
};
window.samloraPage = state;

function setStatus(text, error = false) {
  const bar = $("status");
  bar.textContent = text;
  bar.classList.toggle("error", error);
}

function headers() {
  return state.token ? { Authorization: `Bearer ${state.token}` } : {};
}

async function loadModels() {
  const reply = await fetch("/models", { headers: headers() });
  if (reply.status === 401) {
    $("token-box").hidden = false;
    setStatus("this server needs a token: enter it above", true);
    document.body.dataset.state = "token";
    return;
  }
  state.models = await reply.json();
  const m = state.models.model;
  $("model").textContent = `${m.name} (${m.family}, ${m.task})`;
  const menu = $("adapter");
  menu.innerHTML = "";
  for (const name of [...state.models.adapters.map((a) => a.name), state.models.vanilla]) {
    const option = document.createElement("option");
    option.value = option.textContent = name;
    menu.appendChild(option);
  }
  menu.value = state.models.default_adapter;
  $("compare").disabled = state.models.adapters.length === 0;  // vanilla alone: nothing to compare
  const concept = m.task === "concept";
  $("text-form").hidden = !concept;
  document.querySelectorAll(".clicks").forEach((e) => { e.hidden = concept; });
  document.querySelectorAll(".texts").forEach((e) => { e.hidden = !concept; });
  $("token-box").hidden = !state.token;
  setStatus("open an image");
  document.body.dataset.state = "ready";
}

// ---------------------------------------------------------------- images

async function openFile(file) {
  if (!file) return;
  try {
    state.bitmap = await createImageBitmap(file);
  } catch (err) {
    setStatus(`cannot open ${file.name}: not an image the browser can show`, true);
    return;
  }
  state.file = file;
  state.name = (file.name || "image").replace(/\.[^.]*$/, "");
  state.width = state.bitmap.width;
  state.height = state.bitmap.height;
  state.prompts = { points: [], labels: [], box: null };
  state.history = [];
  state.answer = null;
  for (const canvas of document.querySelectorAll(".view canvas")) {
    canvas.width = state.width;
    canvas.height = state.height;
  }
  render();
  setStatus(`${file.name}: ${state.width} x ${state.height}`);
  document.body.dataset.state = "image";
}

// ---------------------------------------------------------------- prompts

function hasPrompts() {
  return state.texts.length > 0 || state.prompts.points.length > 0 || state.prompts.box !== null;
}

function change(update) {
  state.history.push(JSON.stringify({ prompts: state.prompts, texts: state.texts }));
  update();
  predict();
}

function undo() {
  const last = state.history.pop();
  if (last === undefined) return;
  const saved = JSON.parse(last);
  state.prompts = saved.prompts;
  state.texts = saved.texts;
  $("text").value = state.texts.join(", ");
  predict();
}

function clearPrompts() {
  if (!hasPrompts()) return;
  change(() => {
    state.prompts = { points: [], labels: [], box: null };
    state.texts = [];
    $("text").value = "";
  });
}

function requestPrompts() {
  if (state.texts.length) return { text: state.texts };
  const p = {};
  if (state.prompts.box) p.boxes = [state.prompts.box];
  if (state.prompts.points.length) {
    p.points = state.prompts.points;
    p.labels = state.prompts.labels;
  }
  return p;
}

function imagePoint(canvas, event) {
  const rect = canvas.getBoundingClientRect();
  const x = ((event.clientX - rect.left) * canvas.width) / rect.width;
  const y = ((event.clientY - rect.top) * canvas.height) / rect.height;
  const round = (v, top) => Math.round(Math.min(Math.max(v, 0), top) * 10) / 10;
  return [round(x, canvas.width), round(y, canvas.height)];
}

function attachCanvas(canvas) {
  let start = null;
  canvas.addEventListener("contextmenu", (e) => e.preventDefault());
  canvas.addEventListener("mousedown", (e) => {
    if (!state.file || state.models?.model.task === "concept") return;
    e.preventDefault();
    start = { at: imagePoint(canvas, e), button: e.button, client: [e.clientX, e.clientY] };
  });
  canvas.addEventListener("mousemove", (e) => {
    if (!start) return;
    const [x, y] = imagePoint(canvas, e);
    render([Math.min(start.at[0], x), Math.min(start.at[1], y), Math.max(start.at[0], x), Math.max(start.at[1], y)]);
  });
  window.addEventListener("mouseup", (e) => {
    if (!start) return;
    const begun = start;
    start = null;
    const moved = Math.hypot(e.clientX - begun.client[0], e.clientY - begun.client[1]);
    const [x, y] = imagePoint(canvas, e);
    if (moved >= 5) {
      const box = [Math.min(begun.at[0], x), Math.min(begun.at[1], y), Math.max(begun.at[0], x), Math.max(begun.at[1], y)];
      change(() => { state.prompts = { ...state.prompts, box }; });
    } else {
      const label = begun.button === 2 || $("negative").checked ? 0 : 1;
      change(() => {
        state.prompts = { ...state.prompts, points: [...state.prompts.points, begun.at], labels: [...state.prompts.labels, label] };
      });
    }
  });
}

// ---------------------------------------------------------------- the server

// The post-processing panel as the request's "post" options. An empty field is left out (the
// server's default); a value the server refuses comes back as its 422 message in the status bar.
function postOptions() {
  const number = (id) => ($(id).value.trim() === "" ? null : Number($(id).value));
  const post = {};
  const threshold = number("post-threshold");
  if (threshold !== null) post.threshold = threshold;
  if (state.models.model.task === "concept") {
    post.nms_iou = number("post-nms") ?? 0.5;
    post.top_k = number("post-top-k") ?? 100;
  }
  post.min_area = number("post-min-area") ?? 0;
  post.fill_holes = $("post-fill").checked;
  return post;
}

async function predict() {
  const serial = ++state.serial;
  if (!state.file || !hasPrompts()) {
    state.answer = null;
    render();
    setStatus(state.file ? "no prompt: click on the image" : "open an image");
    document.body.dataset.state = state.file ? "image" : "ready";
    state.answered += 1;
    return;
  }
  const adapter = $("adapter").value;
  const compare = $("compare").checked && adapter !== state.models.vanilla;
  const form = new FormData();
  form.append("image", state.file, state.file.name || "image.png");
  state.request = { prompts: requestPrompts(), adapter, compare, post: postOptions() };
  form.append("request", JSON.stringify(state.request));
  document.body.dataset.state = "busy";
  setStatus("segmenting…");
  const started = performance.now();
  let reply, body;
  try {
    reply = await fetch("/predict", { method: "POST", body: form, headers: headers() });
    body = await reply.json();
  } catch (err) {
    if (serial === state.serial) {
      setStatus(`the server did not answer: ${err}`, true);
      document.body.dataset.state = "error";
      state.answered += 1;
    }
    return;
  }
  if (serial !== state.serial) return;
  if (!reply.ok) {
    state.answer = null;
    render();
    setStatus(`${reply.status}: ${body.error || JSON.stringify(body)}`, true);
    document.body.dataset.state = "error";
    state.answered += 1;
    return;
  }
  state.answer = body;
  render();
  const counts = body.results.map((r) => `${r.adapter}: ${r.instances.length} mask(s)${r.cached ? " (cached)" : ""}`);
  setStatus(`${counts.join(" | ")} in ${Math.round(performance.now() - started)} ms`);
  document.body.dataset.state = "done";
  state.answered += 1;
}

// ---------------------------------------------------------------- drawing

// COCO compressed RLE -> H*W bytes, row-major (COCO counts run down the columns).
function decodeRle(rle) {
  const [h, w] = rle.size;
  const s = rle.counts;
  const counts = [];
  let p = 0;
  while (p < s.length) {
    let x = 0, k = 0, more = true;
    while (more) {
      const c = s.charCodeAt(p) - 48;
      x += (c & 0x1f) * 2 ** (5 * k);
      more = (c & 0x20) !== 0;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x -= 2 ** (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  const mask = new Uint8Array(h * w);
  let i = 0;
  counts.forEach((n, j) => {
    if (j % 2) for (let t = i; t < i + n; t++) mask[(t % h) * w + Math.floor(t / h)] = 1;
    i += n;
  });
  return mask;
}

function drawMasks(ctx, instances) {
  if (!instances.length) return;
  const layer = ctx.createImageData(state.width, state.height);
  instances.forEach((inst, k) => {
    const mask = decodeRle(inst.segmentation);
    const [r, g, b] = COLOURS[k % COLOURS.length];
    for (let i = 0; i < mask.length; i++) {
      if (mask[i]) {
        layer.data.set([r, g, b, 140], 4 * i);
      }
    }
  });
  const overlay = new OffscreenCanvas(state.width, state.height);
  overlay.getContext("2d").putImageData(layer, 0, 0);
  ctx.drawImage(overlay, 0, 0);
  const font = Math.max(9, Math.round(Math.max(state.width, state.height) / 40));
  ctx.font = `${font}px sans-serif`;
  ctx.lineWidth = Math.max(1, font / 8);
  instances.forEach((inst, k) => {
    const [x1, y1, x2, y2] = inst.bbox;
    ctx.strokeStyle = `rgb(${COLOURS[k % COLOURS.length].join(",")})`;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = `${inst.label} ${inst.score.toFixed(2)}`;
    const ty = y1 > font + 2 ? y1 - 2 : y2 + font;
    ctx.fillStyle = "rgba(0,0,0,0.65)";
    ctx.fillRect(x1, ty - font, ctx.measureText(text).width + 4, font + 3);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, x1 + 2, ty);
  });
}

function drawPrompts(ctx, dragging) {
  const size = Math.max(3, Math.round(Math.max(state.width, state.height) / 90));
  ctx.lineWidth = Math.max(1, size / 3);
  const box = dragging || state.prompts.box;
  if (box) {
    ctx.setLineDash([size, size]);
    ctx.strokeStyle = "#fff";
    ctx.strokeRect(box[0], box[1], box[2] - box[0], box[3] - box[1]);
    ctx.setLineDash([]);
  }
  state.prompts.points.forEach(([x, y], i) => {
    ctx.beginPath();
    ctx.arc(x, y, size, 0, 2 * Math.PI);
    ctx.fillStyle = state.prompts.labels[i] ? "#1c1" : "#e22";
    ctx.fill();
    ctx.strokeStyle = "#fff";
    ctx.stroke();
  });
}

function render(dragging = null) {
  const compare = state.answer ? state.answer.results.length > 1 : $("compare").checked && $("adapter").value !== state.models?.vanilla;
  const results = state.answer ? state.answer.results : [];
  document.querySelectorAll(".view").forEach((view, v) => {
    view.hidden = v > 0 && !compare;
    const canvas = view.querySelector("canvas");
    const ctx = canvas.getContext("2d");
    ctx.clearRect(0, 0, canvas.width, canvas.height);
    if (state.bitmap) ctx.drawImage(state.bitmap, 0, 0);
    const result = results[v];
    view.querySelector("figcaption").textContent = result ? result.adapter : v ? "vanilla" : $("adapter").value;
    view.dataset.instances = result ? result.instances.length : 0;
    if (result) drawMasks(ctx, result.instances);
    drawPrompts(ctx, dragging);
    const list = view.querySelector(".scores");
    list.innerHTML = "";
    (result ? result.instances : []).forEach((inst, k) => {
      const item = document.createElement("li");
      item.innerHTML = `<span style="background: rgb(${COLOURS[k % COLOURS.length].join(",")})"></span>`;
      item.append(`${inst.label}: score ${inst.score.toFixed(3)}, ${inst.area} px`);
      list.appendChild(item);
    });
  });
}

// ---------------------------------------------------------------- downloads

function save(blob, name) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10000);
}

async function downloadMasks() {
  if (!state.answer) return setStatus("no masks to download yet", true);
  const canvas = new OffscreenCanvas(state.width, state.height);
  const ctx = canvas.getContext("2d");
  for (const result of state.answer.results) {
    for (const [k, inst] of result.instances.entries()) {
      const mask = decodeRle(inst.segmentation);
      const pixels = ctx.createImageData(state.width, state.height);
      for (let i = 0; i < mask.length; i++) pixels.data.set(mask[i] ? [255, 255, 255, 255] : [0, 0, 0, 255], 4 * i);
      ctx.putImageData(pixels, 0, 0);
      save(await canvas.convertToBlob({ type: "image/png" }), `${state.name}_${result.adapter}_${k}.png`);
    }
  }
}

function downloadJson() {
  if (!state.answer) return setStatus("nothing to download yet", true);
  save(new Blob([JSON.stringify(state.answer, null, 1)], { type: "application/json" }), `${state.name}_masks.json`);
}

// ---------------------------------------------------------------- wiring

function init() {
  document.querySelectorAll(".view canvas").forEach(attachCanvas);
  $("file").addEventListener("change", (e) => openFile(e.target.files[0]));
  const drop = $("drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    openFile(e.dataTransfer.files[0]);
  });
  $("adapter").addEventListener("change", predict);
  $("compare").addEventListener("change", () => { render(); predict(); });
  for (const id of ["post-threshold", "post-nms", "post-top-k", "post-min-area", "post-fill"]) {
    $(id).addEventListener("change", predict);
  }
  $("undo").addEventListener("click", undo);
  $("clear").addEventListener("click", clearPrompts);
  $("download-png").addEventListener("click", downloadMasks);
  $("download-json").addEventListener("click", downloadJson);
  $("text-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const texts = $("text").value.split(",").map((t) => t.trim()).filter(Boolean);
    change(() => { state.texts = texts; });
  });
  $("token-use").addEventListener("click", () => {
    state.token = $("token").value;
    sessionStorage.setItem("samlora-token", state.token);
    loadModels();
  });
  document.addEventListener("keydown", (e) => {
    if ((e.ctrlKey || e.metaKey) && e.key === "z") undo();
  });
  loadModels().catch((err) => setStatus(`cannot reach the server: ${err}`, true));
}

init();
