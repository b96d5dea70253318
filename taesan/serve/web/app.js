// taesan playground: tabs over the JSON API of `taesan serve`. Plain JS, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { models: [], attention: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "style") node.style.cssText = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function showError(out, message) {
  out.replaceChildren(el("p", { class: "error" }, message));
}

async function post(path, body) {
  const response = await fetch(path, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await response.json().catch(() => ({ error: `HTTP ${response.status}` }));
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return data;
}

// ---- tabs and model pickers ---------------------------------------------------------------------------------

function selectTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll(".tab")) s.classList.toggle("active", s.id === `tab-${name}`);
  history.replaceState(null, "", `#${name}`);
}

function fillPickers() {
  for (const section of document.querySelectorAll(".tab")) {
    const action = section.dataset.action;
    const usable = state.models.filter((m) => m.actions.includes(action));
    const select = section.querySelector("select.model");
    const tab = document.querySelector(`#tabs button[data-tab="${action}"]`);
    tab.classList.toggle("disabled", !usable.length && !section.dataset.any);
    tab.hidden = !usable.length && Boolean(section.dataset.optional);  // the image tab only with an image model
    if (!select) continue;
    select.replaceChildren(...usable.map((m) => el("option", { value: m.name }, `${m.name} (${m.task || m.model_type})`)));
    if (!usable.length) select.append(el("option", { value: "" }, `no served model can ${action}`));
  }
}

function modelOf(section) {
  return $(`tab-${section}`).querySelector("select.model").value;
}

async function running(button, work) {
  button.disabled = true;
  try { await work(); } finally { button.disabled = false; }
}

// ---- classify -----------------------------------------------------------------------------------------------

async function classify() {
  const out = $("classify-out");
  try {
    const r = await post("/api/classify", { model: modelOf("classify"), text: $("classify-text").value });
    const bars = Object.entries(r.probabilities || {}).sort((a, b) => b[1] - a[1]).map(([label, p]) =>
      el("div", { class: "bar" }, el("span", { class: "name" }, label),
        el("span", { class: "fill", style: `width:${Math.round(p * 300)}px` }), `${(p * 100).toFixed(1)}%`));
    const p = r.probability !== undefined ? ` (${(r.probability * 100).toFixed(1)}%)` : "";
    out.replaceChildren(el("p", {}, "label: ", el("span", { class: "label", id: "classify-label" }, r.label), p), ...bars);
  } catch (e) { showError(out, e.message); }
}

// ---- highlighted spans (NER entities, the QA answer) ----------------------------------------------------------

function highlight(text, spans) {
  const box = el("div", { class: "highlighted" });
  let at = 0;
  for (const s of [...spans].sort((a, b) => a.start - b.start)) {
    if (s.start < at) continue;
    box.append(text.slice(at, s.start));
    const mark = el("mark", { class: s.cls || "", title: s.title || "" }, text.slice(s.start, s.end));
    if (s.tag) mark.append(el("span", { class: "tag" }, s.tag));
    box.append(mark);
    at = s.end;
  }
  box.append(text.slice(at));
  return box;
}

async function ner() {
  const out = $("ner-out");
  try {
    const text = $("ner-text").value;
    const r = await post("/api/ner", { model: modelOf("ner"), text });
    const entities = r.entities || [];
    const spans = entities.map((e) => ({ start: e.start, end: e.end, tag: e.label, title: `${e.label} ${e.score ?? ""}` }));
    const rows = entities.map((e) => el("tr", {}, el("td", {}, e.text), el("td", {}, e.label), el("td", {}, e.score ?? "")));
    out.replaceChildren(highlight(r.text ?? text, spans),
      entities.length ? el("table", {}, el("tr", {}, el("th", {}, "entity"), el("th", {}, "type"), el("th", {}, "score")), ...rows)
        : el("p", { class: "hint" }, "no entities found"));
  } catch (e) { showError(out, e.message); }
}

async function qa() {
  const out = $("qa-out");
  try {
    const context = $("qa-context").value;
    const r = await post("/api/qa", { model: modelOf("qa"), question: $("qa-question").value, context });
    let start = r.start, end = r.end;
    if (start === undefined || start === null) { start = context.indexOf(r.answer); end = start + (r.answer || "").length; }
    const spans = start >= 0 && end > start ? [{ start, end, cls: "answer", title: `score ${r.score ?? ""}` }] : [];
    out.replaceChildren(el("p", {}, "answer: ", el("span", { class: "label", id: "qa-answer" }, r.answer || "(none)"),
      r.score !== undefined ? ` (score ${Number(r.score).toFixed(3)})` : ""), highlight(r.context ?? context, spans));
  } catch (e) { showError(out, e.message); }
}

// ---- generation, streamed line by line (NDJSON) ----------------------------------------------------------------

async function generate() {
  const out = $("generate-out");
  const prompt = $("generate-prompt").value;
  const body = { model: modelOf("generate"), prompt, max_new_tokens: Number($("generate-n").value) || 30 };
  const t = $("generate-temperature").value, p = $("generate-top-p").value;
  if (t !== "") body.temperature = Number(t);
  if (p !== "") body.top_p = Number(p);
  const shown = el("span", { id: "generate-text" });
  delete out.dataset.done;
  out.replaceChildren(el("span", { class: "prompt" }, prompt), shown);
  try {
    const response = await fetch("/api/generate", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    if (!response.ok) {
      const data = await response.json().catch(() => ({}));
      throw new Error(data.error || `HTTP ${response.status}`);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let nl;
      while ((nl = buffer.indexOf("\n")) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        if (!line.trim()) continue;
        const msg = JSON.parse(line);
        if (msg.text) shown.append(msg.text);
        if (msg.error) out.append(el("p", { class: "error" }, msg.error));
        if (msg.done && msg.finish_reason) out.append(finished(msg.finish_reason, shown.textContent === ""));
        if (msg.done) out.dataset.done = "1";
      }
    }
  } catch (e) { showError(out, e.message); }
}

const WHY = { stop: "the model wrote its end-of-text token", length: "max new tokens reached" };

function finished(reason, empty) {
  // why the completion ended, as the API says (finish_reason); an empty one says so plainly
  const why = WHY[reason] ? ` (${WHY[reason]})` : "";
  const text = empty ? `empty completion: finish_reason ${reason}${why}` : `finish_reason ${reason}${why}`;
  return el("p", { class: "hint", id: "generate-finish" }, text);
}

// ---- fill-mask and score ----------------------------------------------------------------------------------------

async function fillMask() {
  const out = $("fill-out");
  try {
    const r = await post("/api/fill-mask", { model: modelOf("fill-mask"), text: $("fill-text").value });
    out.replaceChildren(...r.masks.map((m, i) => el("div", {}, el("p", {}, `[MASK] #${i + 1}`),
      ...m.candidates.map((c) => el("div", { class: "bar" }, el("span", { class: "name" }, c.text || c.token),
        el("span", { class: "fill", style: `width:${Math.round(c.score * 300)}px` }), `${(c.score * 100).toFixed(1)}%`)))));
  } catch (e) { showError(out, e.message); }
}

async function score() {
  const out = $("score-out");
  try {
    const texts = $("score-texts").value.split("\n").filter((s) => s.trim());
    const r = await post("/api/score", { model: modelOf("score"), texts });
    const rows = r.scores.map((s) => el("tr", {}, el("td", {}, s.log_prob.toFixed(3)), el("td", {}, s.text)));
    out.replaceChildren(el("p", { class: "hint" }, `${r.objective} log-probability (natural log), highest first`),
      el("table", {}, ...rows));
  } catch (e) { showError(out, e.message); }
}

// ---- attention heatmap you can hover ----------------------------------------------------------------------------

async function attention() {
  const out = $("attention-out");
  out.replaceChildren();
  try {
    const body = { model: modelOf("attention"), text: $("attention-text").value };
    const target = $("attention-target").value;
    if (target.trim()) body.target = target;
    state.attention = await post("/api/attention", body);
    $("attention-block").replaceChildren(...state.attention.blocks.map((b, i) => el("option", { value: i }, `${b.kind} L${b.layer}`)));
    const heads = state.attention.blocks[0].heads;
    $("attention-head").replaceChildren(el("option", { value: "mean" }, "mean of heads"),
      ...Array.from({ length: heads }, (_, h) => el("option", { value: h }, `H${h}`)));
    drawAttention();
  } catch (e) { showError(out, e.message); }
}

function currentMatrix() {
  const block = state.attention.blocks[Number($("attention-block").value) || 0];
  const head = $("attention-head").value;
  if (head !== "mean") return { block, m: block.weights[Number(head)] };
  const m = block.weights[0].map((row, q) => row.map((_, k) => block.weights.reduce((s, w) => s + w[q][k], 0) / block.heads));
  return { block, m };
}

const GEOM = { left: 90, top: 90, cell: 36 };

function drawAttention() {
  if (!state.attention) return;
  const { block, m } = currentMatrix();
  const canvas = $("attention-canvas");
  const cell = Math.max(10, Math.min(GEOM.cell, Math.floor(640 / Math.max(block.keys.length, 1))));
  canvas.width = GEOM.left + cell * block.keys.length + 10;
  canvas.height = GEOM.top + cell * block.queries.length + 10;
  canvas.dataset.cell = cell;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.font = `${Math.min(13, cell - 2)}px "Nanum Gothic", sans-serif`;
  ctx.fillStyle = "#1d2330";
  block.queries.forEach((q, i) => { ctx.textAlign = "right"; ctx.fillText(q, GEOM.left - 6, GEOM.top + i * cell + cell * 0.7); });
  block.keys.forEach((k, j) => {
    ctx.save(); ctx.translate(GEOM.left + j * cell + cell * 0.7, GEOM.top - 6); ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left"; ctx.fillText(k, 0, 0); ctx.restore();
  });
  m.forEach((row, i) => row.forEach((w, j) => {
    const shade = Math.round(255 * (1 - w));
    ctx.fillStyle = `rgb(${shade}, ${Math.round(255 - 140 * w)}, ${Math.round(255 - 100 * w)})`;
    ctx.fillRect(GEOM.left + j * cell, GEOM.top + i * cell, cell - 1, cell - 1);
  }));
}

function hoverAttention(event) {
  if (!state.attention) return;
  const { block, m } = currentMatrix();
  const canvas = $("attention-canvas");
  const rect = canvas.getBoundingClientRect();
  const cell = Number(canvas.dataset.cell);
  const j = Math.floor((event.clientX - rect.left - GEOM.left) / cell);
  const i = Math.floor((event.clientY - rect.top - GEOM.top) / cell);
  if (i < 0 || j < 0 || i >= block.queries.length || j >= block.keys.length) return;
  $("attention-hover").textContent = `${block.queries[i]} → ${block.keys[j]}: ${m[i][j].toFixed(3)}  (${block.kind} L${block.layer})`;
  drawAttention();
  const ctx = canvas.getContext("2d");  // outline the cell, its query row and its key column
  ctx.strokeStyle = "#b42318";
  ctx.lineWidth = 2;
  ctx.strokeRect(GEOM.left + j * cell, GEOM.top + i * cell, cell - 1, cell - 1);
  ctx.lineWidth = 0.5;
  ctx.strokeRect(GEOM.left, GEOM.top + i * cell, cell * block.keys.length - 1, cell - 1);
  ctx.strokeRect(GEOM.left + j * cell, GEOM.top, cell - 1, cell * block.queries.length - 1);
}

// ---- image: a bundled digit or a drawing -> label, probabilities, rollout over the patches ---------------------

const DRAWN = 32;  // the drawing is sent as DRAWN × DRAWN grey pixels; the server resizes them as the task does

async function classifyImage(image) {
  const out = $("image-out");
  try {
    const r = await post("/api/image", { model: modelOf("image"), ...image });
    const bars = r.top.map((t) => el("div", { class: "bar" }, el("span", { class: "name" }, t.label),
      el("span", { class: "fill", style: `width:${Math.round(t.probability * 300)}px` }), `${(t.probability * 100).toFixed(1)}%`));
    const truth = r.true_label !== null && r.true_label !== undefined ? ` — true label ${r.true_label}` : "";
    out.replaceChildren(el("p", {}, "label: ", el("span", { class: "label", id: "image-label" }, r.label),
      ` (${(r.probability * 100).toFixed(1)}%)${truth}`), ...bars);
    drawRollout(r.image, r.attention);
  } catch (e) { showError(out, e.message); }
}

function drawRollout(image, attention) {
  const canvas = $("image-canvas");
  const ctx = canvas.getContext("2d");
  const px = canvas.width / image.length;
  image.forEach((row, i) => row.forEach((v, j) => {
    const g = Math.round(255 * v);
    ctx.fillStyle = `rgb(${g}, ${g}, ${g})`;
    ctx.fillRect(j * px, i * px, px + 0.5, px + 0.5);
  }));
  const low = Math.min(...attention.flat()), span = Math.max(...attention.flat()) - low || 1;
  const cell = canvas.width / attention.length;
  attention.forEach((row, i) => row.forEach((w, j) => {  // the least-looked-at patch clear, the most 65% orange
    ctx.fillStyle = `rgba(255, 120, 0, ${(0.65 * (w - low) / span).toFixed(3)})`;
    ctx.fillRect(j * cell, i * cell, cell, cell);
  }));
}

function setUpDrawing() {
  const canvas = $("image-draw");
  const ctx = canvas.getContext("2d");
  const clear = () => { ctx.fillStyle = "black"; ctx.fillRect(0, 0, canvas.width, canvas.height); };
  clear();
  let last = null;
  const at = (e) => { const r = canvas.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  canvas.addEventListener("pointerdown", (e) => { last = at(e); canvas.setPointerCapture(e.pointerId); });
  canvas.addEventListener("pointerup", () => { last = null; });
  canvas.addEventListener("pointermove", (e) => {
    if (!last) return;
    const p = at(e);
    ctx.strokeStyle = "white"; ctx.lineWidth = canvas.width / 9; ctx.lineCap = "round";
    ctx.beginPath(); ctx.moveTo(...last); ctx.lineTo(...p); ctx.stroke();
    last = p;
  });
  $("image-clear").addEventListener("click", clear);
}

function drawnPixels() {
  const canvas = $("image-draw");
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const step = canvas.width / DRAWN;
  const rows = [];
  for (let i = 0; i < DRAWN; i++) {  // each pixel: the mean brightness (red channel) of its block of the canvas
    const row = [];
    for (let j = 0; j < DRAWN; j++) {
      let sum = 0, n = 0;
      for (let y = Math.floor(i * step); y < Math.floor((i + 1) * step); y++)
        for (let x = Math.floor(j * step); x < Math.floor((j + 1) * step); x++) { sum += data[(y * canvas.width + x) * 4]; n++; }
      row.push(Math.round(sum / n));
    }
    rows.push(row);
  }
  return rows;
}

// ---- tokenizers side by side -------------------------------------------------------------------------------------

async function tokenize() {
  const out = $("tokenize-out");
  try {
    const r = await post("/api/tokenize", { text: $("tokenize-text").value });
    const rows = r.tokenizers.map((t) => el("tr", {}, el("td", {}, t.name), el("td", {}, t.vocab_size), el("td", {}, t.tokens.length),
      el("td", { class: "tokens" }, ...t.tokens.map((s, i) =>
        el("span", { class: t.ids[i] === t.unk_id ? "unk" : "", title: t.ids[i] === t.unk_id ? "[UNK]" : `id ${t.ids[i]}` }, s)))));
    const head = el("tr", {}, ...["tokenizer", "vocab", "n", "tokens"].map((h) => el("th", {}, h)));
    out.replaceChildren(el("table", {}, head, ...rows), el("p", { class: "hint" }, "red: [UNK], a piece the vocabulary cannot spell"));
  } catch (e) { showError(out, e.message); }
}

// ---- start ------------------------------------------------------------------------------------------------------

const ACTIONS = {
  classify, ner, qa, generate, fill: fillMask, score, attention, tokenize,
  image: () => classifyImage({ digit: Number($("image-digit").value) || 0 }),
  drawn: () => classifyImage({ pixels: drawnPixels() }),
};

// ---- input bounds: the API's own, read from its schema ---------------------------------------------------------

function bounds(schema, name) {
  const field = schema.properties[name] || {};
  return [field, ...(field.anyOf || [])].find((c) => c.minimum !== undefined || c.maximum !== undefined) || {};
}

async function applyBounds() {
  const api = await (await fetch("/openapi.json")).json();
  const generate = api.components.schemas.GenerateRequest;
  for (const input of document.querySelectorAll("#tab-generate input[data-field]")) {
    const { minimum, maximum } = bounds(generate, input.dataset.field);
    if (minimum !== undefined) input.min = minimum;
    if (maximum !== undefined) input.max = maximum;
  }
}

async function start() {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => selectTab(b.dataset.tab));
  for (const [name, fn] of Object.entries(ACTIONS)) {
    const button = $(`${name}-run`);
    button.addEventListener("click", () => running(button, fn));
  }
  $("attention-block").addEventListener("change", drawAttention);
  $("attention-head").addEventListener("change", drawAttention);
  $("attention-canvas").addEventListener("mousemove", hoverAttention);
  setUpDrawing();
  try {
    const response = await fetch("/api/models");
    state.models = (await response.json()).models;
    fillPickers();
    $("status").textContent = `serving: ${state.models.map((m) => m.name).join(", ") || "no models (tokenizers only)"}`;
  } catch (e) { $("status").textContent = `could not list models: ${e.message}`; }
  try { await applyBounds(); } catch (e) { $("status").append(` (could not read the API's bounds: ${e.message})`); }
  const first = location.hash.slice(1) || (state.models.find((m) => m.task)?.actions[0]) || "generate";
  selectTab(document.querySelector(`#tabs button[data-tab="${first}"]`) ? first : "tokenize");
  document.body.dataset.ready = "1";
}

start();
