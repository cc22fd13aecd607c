// The page of `circ serve`: plain JavaScript, no build step. Everything it shows comes
// from the server's JSON API (circuitlang/serve/http.py); everything it is showing lives
// in the URL (file, task, circuit, k, off, sel, view, a, b), so a link reproduces the view.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { file: "", task: "", circuit: "", k: null, off: new Set(), sel: "", view: "circuit", a: "", b: "" };
let fileInfo = null;   // /api/file answer for state.file
let measured = null;   // /api/measure answer for the current view
let curve = null;      // /api/curve answer when the circuit is ranked
let busy = 0;

// -- the URL holds the state ------------------------------------------------------------------
function readUrl() {
  const q = new URLSearchParams(location.search);
  state.file = q.get("file") || "";
  state.task = q.get("task") || "";
  state.circuit = q.get("circuit") || "";
  state.k = q.get("k") ? parseInt(q.get("k"), 10) : null;
  state.off = new Set((q.get("off") || "").split(",").filter((s) => s !== "").map(Number));
  state.sel = q.get("sel") || "";
  state.view = q.get("view") || "circuit";
  state.a = q.get("a") || "";
  state.b = q.get("b") || "";
}

function viewQuery(extra) {
  const q = new URLSearchParams({ file: state.file, circuit: state.circuit });
  if (state.task) q.set("task", state.task);
  if (state.k !== null) q.set("k", String(state.k));
  if (state.off.size) q.set("off", [...state.off].sort((x, y) => x - y).join(","));
  for (const [key, value] of Object.entries(extra || {})) q.set(key, value);
  return q;
}

function writeUrl() {
  const q = viewQuery();
  if (state.sel) q.set("sel", state.sel);
  if (state.view !== "circuit") q.set("view", state.view);
  if (state.a) q.set("a", state.a);
  if (state.b) q.set("b", state.b);
  history.replaceState(null, "", "?" + q.toString());
}

// -- talking to the server ---------------------------------------------------------------------
async function call(path, query, options) {
  busy += 1;
  document.body.dataset.busy = "1";
  $("status").textContent = "working…";
  try {
    const response = await fetch(path + (query ? "?" + query.toString() : ""), options);
    const kind = response.headers.get("Content-Type") || "";
    const body = kind.startsWith("application/json") ? await response.json() : await response.text();
    if (!response.ok) {
      const message = body && body.error ? body.error + (body.help ? " (" + body.help + ")" : "") : String(body);
      throw new Error(message);
    }
    return body;
  } finally {
    busy -= 1;
    if (busy === 0) {
      document.body.dataset.busy = "0";
      $("status").textContent = "ready";
    }
  }
}

function showError(err) {
  $("error").textContent = err ? String(err.message || err) : "";
  $("error").hidden = !err;
}

async function guarded(work) {
  try {
    showError(null);
    await work();
  } catch (err) {
    showError(err);
  }
}

// -- numbers -----------------------------------------------------------------------------------
function fmt(x, digits) {
  if (x === null || x === undefined) return "—";
  const text = Number(x).toFixed(digits === undefined ? 4 : digits);
  return /^-0\.?0*$/.test(text) ? text.slice(1) : text;  // no "-0.0000"
}
function fmtInterval(iv) {
  return iv ? "[" + fmt(iv[0]) + ", " + fmt(iv[1]) + "]" : "";
}

function fillSelect(select, values, chosen) {
  select.innerHTML = "";
  for (const value of values) {
    const option = document.createElement("option");
    option.value = option.textContent = value;
    select.appendChild(option);
  }
  if (chosen && values.includes(chosen)) select.value = chosen;
}

function currentCircuit() {
  return fileInfo.circuits.find((c) => c.name === state.circuit);
}

// -- loading a file ----------------------------------------------------------------------------
async function loadFiles() {
  const files = await call("/api/files");
  if (!state.file) state.file = files.default;
  fillSelect($("file"), files.files, state.file);
  fillSelect($("method"), files.methods, files.methods[0]);
}

async function loadFile() {
  fileInfo = await call("/api/file", new URLSearchParams({ file: state.file }));
  const names = fileInfo.circuits.map((c) => c.name);
  const tasks = fileInfo.tasks.map((t) => t.name);
  if (!names.includes(state.circuit)) { state.circuit = names[0] || ""; state.k = null; state.off.clear(); }
  if (!tasks.includes(state.task)) state.task = tasks[0] || "";
  if (!names.includes(state.a)) state.a = names[0] || "";
  if (!names.includes(state.b)) state.b = names[1] || names[0] || "";
  fillSelect($("circuit"), names, state.circuit);
  fillSelect($("task"), tasks, state.task);
  fillSelect($("diff-a"), names, state.a);
  fillSelect($("diff-b"), names, state.b);
}

// -- the circuit view --------------------------------------------------------------------------
async function showCircuit() {
  const info = currentCircuit();
  if (!info) { $("graph").textContent = "This file has no circuit."; return; }
  $("circuit-doc").textContent = info.doc || (info.how ? "ranked by " + info.how : "");
  $("ranked").hidden = !info.ranked;
  if (info.ranked) await showCurve();
  writeUrl();
  const svg = await call("/api/graph", viewQuery());
  $("graph").innerHTML = svg;
  enlarge($("graph").querySelector("svg"), 1.3);
  wireGraph();
  if (!state.task) { $("faithfulness").textContent = "—"; $("measure-line").textContent = "no task in this file"; return; }
  measured = await call("/api/measure", viewQuery());
  showMeasure();
  await showSelection();
}

function enlarge(svg, factor) {
  // Graphviz sizes its drawing in points for print; on screen small circuits read better larger
  for (const side of ["width", "height"]) {
    const value = parseFloat(svg.getAttribute(side));
    if (value) svg.setAttribute(side, (value * factor).toFixed(0) + "pt");
  }
}

function wireGraph() {
  for (const g of $("graph").querySelectorAll("g.edge, g.node")) {
    if (!/^[en]\d+$/.test(g.id)) continue;
    for (const path of g.querySelectorAll("path")) {  // a wide invisible twin: thin arrows are hard to hit
      const twin = path.cloneNode(false);
      twin.setAttribute("stroke", "transparent");
      twin.setAttribute("stroke-width", "12");
      twin.removeAttribute("stroke-dasharray");
      twin.classList.add("hit");
      path.parentNode.insertBefore(twin, path);
    }
    g.addEventListener("click", () => guarded(() => select(g.id)));
  }
  markSelected();
}

function markSelected() {
  for (const g of $("graph").querySelectorAll("g.selected")) g.classList.remove("selected");
  for (const tr of $("edge-table").querySelectorAll("tr.selected")) tr.classList.remove("selected");
  if (!state.sel) return;
  const g = $("graph").querySelector("#" + state.sel);
  if (g) g.classList.add("selected");
  const row = $("edge-table").querySelector('tr[data-id="' + state.sel + '"]');
  if (row) row.classList.add("selected");
}

function showMeasure() {
  const m = measured;
  $("faithfulness").textContent = fmt(m.faithfulness);
  $("interval").textContent = fmtInterval(m.interval);
  $("measure-line").textContent = m.edges_on + " edges on, task " + m.task + " (" + m.ablation + " ablation, " +
    m.metric + ", " + m.n_examples + " examples): m(circuit) " + fmt(m.m_circuit, 3) + ", m(model) " +
    fmt(m.m_model, 3) + ", m(empty) " + fmt(m.m_empty, 3) + "; measured in " + fmt(m.seconds, 2) + " s";
  $("warnings").textContent = m.warnings.map((w) => "warning: " + w).concat(m.notes.map((n) => "note: " + n))
    .join("\n");
  const body = $("edge-table").querySelector("tbody");
  body.innerHTML = "";
  for (const row of m.edges) {
    const tr = document.createElement("tr");
    tr.dataset.id = "e" + row.i;
    tr.dataset.edge = String(row.i);
    if (!row.on) tr.classList.add("off");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "toggle";
    box.checked = row.on;
    box.addEventListener("change", () => guarded(() => toggle(row.i)));
    const cells = [box, row.edge, fmt(row.delta), fmtInterval(row.interval)];
    cells.forEach((cell, index) => {
      const td = document.createElement("td");
      if (index === 0) td.appendChild(cell); else td.textContent = cell;
      if (index === 2) td.className = "num";
      if (index === 1) td.addEventListener("click", () => guarded(() => select("e" + row.i)));
      tr.appendChild(td);
    });
    body.appendChild(tr);
  }
  markSelected();
}

async function select(id) {
  state.sel = state.sel === id ? "" : id;
  writeUrl();
  markSelected();
  await showSelection();
}

async function showSelection() {
  const box = $("details");
  if (!state.sel || !measured) { box.innerHTML = '<span class="muted">Nothing selected.</span>'; return; }
  const index = parseInt(state.sel.slice(1), 10);
  const isEdge = state.sel[0] === "e";
  const row = isEdge ? measured.edges.find((r) => r.i === index) : measured.nodes.find((r) => r.i === index);
  if (!row) { box.textContent = "no such " + (isEdge ? "edge" : "node"); return; }
  const what = isEdge ? row.edge : row.node;
  const lines = [];
  if (isEdge && row.on) {
    lines.push("Δf if switched off: " + fmt(row.delta) + " " + fmtInterval(row.interval) +
      (row.superfluous ? " — superfluous (below ε = 0.01)" : ""));
  } else if (isEdge) {
    lines.push("switched off; Δf if switched back on: " + fmt(row.delta) + " " + fmtInterval(row.interval));
  } else if (row.delta === null) {
    lines.push(row.in_circuit ? "always there (no minimality of its own)" : "not in the circuit now");
  } else {
    lines.push("Δf without this node (all its edges): " + fmt(row.delta) + " " + fmtInterval(row.interval));
  }
  if (isEdge && row.score !== null && row.score !== undefined) lines.push("score: " + row.score);
  box.innerHTML = "";
  const title = document.createElement("div");
  title.innerHTML = "<b></b>";
  title.firstChild.textContent = what;
  title.id = "details-title";
  box.appendChild(title);
  for (const line of lines) {
    const div = document.createElement("div");
    div.textContent = line;
    box.appendChild(div);
  }
  if (isEdge) {
    const button = document.createElement("button");
    button.id = "toggle-selected";
    button.textContent = row.on ? "Switch this edge off" : "Switch this edge back on";
    button.addEventListener("click", () => guarded(() => toggle(index)));
    box.appendChild(button);
  }
  if (!isEdge && row.delta === null) return;
  const effects = await call("/api/effects", viewQuery(isEdge ? { edge: String(index) } : { node: String(index) }));
  const caption = document.createElement("div");
  caption.className = "muted";
  caption.textContent = "per-example effect (metric with it − without it, in units of m(model) − m(empty)), " +
    effects.n_examples + " examples, mean " + fmt(effects.mean) + ":";
  box.appendChild(caption);
  box.appendChild(histogram(effects.per_example));
}

// An SVG element with these attributes (and text), appended to `parent` when given.
function svgElement(tag, attrs, text, parent) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  if (parent) parent.appendChild(el);
  return el;
}

function histogram(values) {
  const width = 360, height = 90, bins = 30;
  const lo = Math.min(0, ...values), hi = Math.max(0, ...values);
  const span = hi - lo || 1;
  const counts = new Array(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.floor(((v - lo) / span) * bins))] += 1;
  const top = Math.max(...counts);
  const svg = svgElement("svg", { width: width, height: height + 16, id: "effects" });
  counts.forEach((count, i) => {
    const h = (count / top) * height;
    svgElement("rect", { x: (i * width) / bins, y: height - h, width: width / bins - 1, height: h, fill: "#1f77b4" },
      undefined, svg);
  });
  const zero = ((0 - lo) / span) * width;
  svgElement("line", { x1: zero, x2: zero, y1: 0, y2: height, stroke: "#d62728" }, undefined, svg);
  for (const [x, text, anchor] of [[0, fmt(lo, 3), "start"], [width, fmt(hi, 3), "end"]]) {
    svgElement("text", { x: x, y: height + 13, "font-size": 11, "text-anchor": anchor }, text, svg);
  }
  return svg;
}

async function toggle(index) {
  if (state.off.has(index)) state.off.delete(index); else state.off.add(index);
  state.sel = "e" + index;
  await showCircuit();
}

// -- ranked circuits: slider over the measured curve -------------------------------------------
async function showCurve() {
  curve = await call("/api/curve", viewQuery({ k: "" }));
  const slider = $("k-slider");
  slider.max = String(curve.total);
  if (state.k === null || state.k > curve.total) state.k = smallestReaching(curve, 0.95);
  slider.value = String(state.k);
  $("k-total").textContent = String(curve.total);
  showK();
  drawCurve();
}

function smallestReaching(c, target) {
  const hit = c.points.find(([, f]) => f !== null && f >= target);
  return hit ? hit[0] : c.total;
}

function fAt(k) {
  let best = null;
  for (const [kk, f] of curve.points) if (best === null || Math.abs(kk - k) < Math.abs(best[0] - k)) best = [kk, f];
  return best;
}

function showK() {
  const k = parseInt($("k-slider").value, 10);
  $("k-value").textContent = String(k);
  const [kk, f] = fAt(k);
  $("k-f").textContent = kk === k ? "f(" + k + ") = " + fmt(f) : "nearest measured: f(" + kk + ") = " + fmt(f);
}

function drawCurve() {
  const width = 420, height = 150, pad = 34;
  const pts = curve.points.filter(([, f]) => f !== null);
  const fs = pts.map(([, f]) => f);
  const ylo = Math.min(0, ...fs), yhi = Math.max(1, ...fs);
  const x = (k) => pad + (Math.log(k) / Math.log(Math.max(2, curve.total))) * (width - 2 * pad);
  const y = (f) => height - pad + 10 - ((f - ylo) / (yhi - ylo)) * (height - pad - 10);
  const svg = svgElement("svg", { width: width, height: height });
  const add = (tag, attrs, text) => svgElement(tag, attrs, text, svg);
  for (const f of [0, 1]) {
    add("line", { x1: pad, x2: width - pad, y1: y(f), y2: y(f), stroke: "#ddd" });
    add("text", { x: pad - 4, y: y(f) + 4, "text-anchor": "end", "font-size": 10 }, String(f));
  }
  add("text", { x: width - pad, y: height - 4, "text-anchor": "end", "font-size": 10 },
    "edges kept (log), 1 to " + curve.total);
  add("text", { x: pad, y: height - 4, "font-size": 10 }, "f(k)");
  add("path", { d: pts.map(([k, f], i) => (i ? "L" : "M") + x(k).toFixed(1) + "," + y(f).toFixed(1)).join(" "),
    fill: "none", stroke: "#1f77b4", "stroke-width": 1.5 });
  const k = state.k;
  add("line", { x1: x(k), x2: x(k), y1: 8, y2: height - pad + 10, stroke: "#d62728", id: "k-marker" });
  $("curve").innerHTML = "";
  $("curve").appendChild(svg);
}

// -- export ------------------------------------------------------------------------------------
async function exportCirc() {
  const text = await call("/api/export", viewQuery());
  $("export-text").textContent = text;
  $("export-text").hidden = false;
  const link = $("export-link");
  link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
  link.download = state.circuit + (state.off.size ? "_edited" : "") + ".circ";
  link.hidden = false;
}

// -- diff view ---------------------------------------------------------------------------------
async function showDiff() {
  writeUrl();
  const d = await call("/api/diff", new URLSearchParams({ file: state.file, a: state.a, b: state.b }));
  $("diff-svg").innerHTML = d.svg;
  enlarge($("diff-svg").querySelector("svg"), 1.3);
  $("diff-text").textContent = d.text;
  $("diff-summary").textContent = d.summary;
}

// -- discovery ---------------------------------------------------------------------------------
async function discover() {
  const q = new URLSearchParams({ file: state.file, task: state.task, method: $("method").value });
  const found = await call("/api/discover", q, { method: "POST" });
  await loadFile();
  state.circuit = found.circuit;
  state.k = null;
  state.off.clear();
  state.sel = "";
  $("circuit").value = state.circuit;
  await showCircuit();
}

// -- views -------------------------------------------------------------------------------------
async function showView() {
  $("view-circuit").hidden = state.view !== "circuit";
  $("view-diff").hidden = state.view !== "diff";
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === state.view);
  $("export-text").hidden = true;
  $("export-link").hidden = true;
  if (state.view === "diff") await showDiff(); else await showCircuit();
}

function wire() {
  $("file").addEventListener("change", () => guarded(async () => {
    state.file = $("file").value; state.circuit = ""; state.k = null; state.off.clear(); state.sel = "";
    await loadFile();
    await showView();
  }));
  $("task").addEventListener("change", () => guarded(async () => { state.task = $("task").value; await showView(); }));
  $("circuit").addEventListener("change", () => guarded(async () => {
    state.circuit = $("circuit").value; state.k = null; state.off.clear(); state.sel = "";
    await showCircuit();
  }));
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => guarded(async () => { state.view = tab.dataset.view; await showView(); }));
  }
  $("k-slider").addEventListener("input", showK);
  $("k-slider").addEventListener("change", () => guarded(async () => {
    state.k = parseInt($("k-slider").value, 10); state.off.clear(); state.sel = "";
    await showCircuit();
  }));
  $("export-button").addEventListener("click", () => guarded(exportCirc));
  $("reset-button").addEventListener("click", () => guarded(async () => { state.off.clear(); await showCircuit(); }));
  $("discover-button").addEventListener("click", () => guarded(discover));
  $("diff-a").addEventListener("change", () => guarded(async () => { state.a = $("diff-a").value; await showDiff(); }));
  $("diff-b").addEventListener("change", () => guarded(async () => { state.b = $("diff-b").value; await showDiff(); }));
}

readUrl();
wire();
guarded(async () => {
  await loadFiles();
  await loadFile();
  await showView();
}).finally(() => {
  if (busy === 0) { document.body.dataset.busy = "0"; $("status").textContent = "ready"; }
});
