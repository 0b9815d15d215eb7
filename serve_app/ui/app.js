// The /ui page: send a document to POST /layout-parsing with `Accept: application/x-ndjson` and
// show each page as soon as its line arrives (Markdown rendered with marked + KaTeX, sanitised by
// DOMPurify; the layout boxes of prunedResult.layout_det_res drawn over the page image).
"use strict";

const $ = (id) => document.getElementById(id);
const api = (path) => new URL("../" + path, location.href).toString();
const COLORS = ["#2458d6", "#d6242f", "#1c9a5b", "#c77700", "#8a2be2", "#008b8b", "#b8860b", "#d63384"];
const state = { file: null, pages: [], dataInfo: null, abort: null };

// -- input ----------------------------------------------------------------------------------
$("api-key").value = localStorage.getItem("paddleocr-vl-api-key") || "";
$("api-key").addEventListener("change", (e) => localStorage.setItem("paddleocr-vl-api-key", e.target.value));

function pick(file) {
  state.file = file || null;
  $("file-name").textContent = file ? `${file.name} (${(file.size / 1024).toFixed(0)} KB)` : "";
  $("parse").disabled = !file;
}
$("file").addEventListener("change", (e) => pick(e.target.files[0]));
const drop = $("drop");
["dragenter", "dragover"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.add("over"); }));
["dragleave", "drop"].forEach((t) => drop.addEventListener(t, (e) => { e.preventDefault(); drop.classList.remove("over"); }));
drop.addEventListener("drop", (e) => pick(e.dataTransfer.files[0]));

function requestBody(base64) {
  const isPdf = state.file.type === "application/pdf" || /\.pdf$/i.test(state.file.name);
  const body = {
    file: base64, fileType: isPdf ? 0 : 1, textLayer: $("textLayer").value,
    useLayoutDetection: $("useLayoutDetection").checked,
    useDocOrientationClassify: $("useDocOrientationClassify").checked,
    restructurePages: $("restructurePages").checked, visualize: $("visualize").checked,
  };
  if ($("pageRanges").value.trim()) body.pageRanges = $("pageRanges").value.trim();
  return body;
}

function readBase64(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result).split(",", 2)[1]);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// -- parsing (streamed) ---------------------------------------------------------------------
$("parse").addEventListener("click", parse);
$("stop").addEventListener("click", () => state.abort && state.abort.abort());

async function parse() {
  reset();
  $("parse").disabled = true;
  $("stop").hidden = false;
  state.abort = new AbortController();
  const headers = { "Content-Type": "application/json", Accept: "application/x-ndjson" };
  if ($("api-key").value) headers.Authorization = "Bearer " + $("api-key").value;
  try {
    setStatus("uploading…");
    const response = await fetch(api("layout-parsing"), {
      method: "POST", headers, body: JSON.stringify(requestBody(await readBase64(state.file))), signal: state.abort.signal,
    });
    if (!response.ok || !(response.headers.get("content-type") || "").includes("ndjson")) {
      const envelope = await response.json().catch(() => ({ errorMsg: response.statusText }));
      throw new Error(`${response.status}: ${envelope.errorMsg}`);
    }
    await readEvents(response.body);
  } catch (err) {
    showError(err.name === "AbortError" ? "stopped" : err.message);
  } finally {
    $("parse").disabled = !state.file;
    $("stop").hidden = true;
  }
}

async function readEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).trim();
      buffer = buffer.slice(newline + 1);
      if (line) onEvent(JSON.parse(line));
    }
  }
}

function onEvent(event) {
  if (event.event === "start") {
    state.dataInfo = event.dataInfo;
    $("progress").hidden = false;
    $("bar").max = event.pagesTotal;
    setStatus(`0 / ${event.pagesTotal} pages`);
  } else if (event.event === "page") {
    state.pages.push(event);
    showPage(event);
    $("bar").value = state.pages.length;
    setStatus(`${state.pages.length} / ${$("bar").max} pages`);
  } else if (event.event === "done") {
    const failed = event.result.failedPages.length;
    setStatus(`done: ${state.pages.length} pages` + (failed ? `, ${failed} failed (pages ${event.result.failedPages.map((i) => i + 1).join(", ")})` : ""));
    $("downloads").hidden = false;
  } else if (event.event === "error") {
    showError(`${event.errorCode}: ${event.errorMsg}`);
  }
}

// -- showing a page ---------------------------------------------------------------------------
function showPage(event) {
  const entry = event.result;
  const node = $("page-template").content.firstElementChild.cloneNode(true);
  node.dataset.page = event.pageIndex;
  node.querySelector("h2").textContent = `Page ${event.pageIndex + 1}` + (entry.status === "failed" ? ` — failed: ${entry.error.message}` : "");
  node.classList.toggle("failed", entry.status === "failed");
  const markdown = entry.markdown.text || "";
  node.querySelector(".markdown").innerHTML = renderMarkdown(markdown, entry.markdown.images || {});
  node.querySelector(".source").textContent = markdown;
  if (entry.inputImage && entry.prunedResult.layout_det_res) drawOverlay(node.querySelector(".overlay"), entry);
  $("pages").appendChild(node);
}

function renderMarkdown(text, images) {
  const formulas = [];
  const keep = (tex, display) => {
    formulas.push(katex.renderToString(tex, { displayMode: display, throwOnError: false }));
    return `@@FORMULA${formulas.length - 1}@@`;
  };
  let protectedText = text.replace(/\$\$([\s\S]+?)\$\$/g, (_, tex) => keep(tex, true));
  protectedText = protectedText.replace(/\$([^$\n]+?)\$/g, (_, tex) => keep(tex, false));
  let html = DOMPurify.sanitize(marked.parse(protectedText));
  html = html.replace(/@@FORMULA(\d+)@@/g, (_, i) => formulas[Number(i)]);
  const holder = document.createElement("div");
  holder.innerHTML = html;
  holder.querySelectorAll("img").forEach((img) => {
    const data = images[img.getAttribute("src")];
    if (data) img.src = "data:image/jpeg;base64," + data;
  });
  return holder.innerHTML;
}

function drawOverlay(figure, entry) {
  const { width, height, layout_det_res: layout } = entry.prunedResult;
  figure.hidden = false;
  figure.querySelector("img").src = "data:image/jpeg;base64," + entry.inputImage;
  const svg = figure.querySelector("svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  const labels = new Map();
  for (const box of layout.boxes || []) {
    if (!labels.has(box.label)) labels.set(box.label, COLORS[labels.size % COLORS.length]);
    const [x1, y1, x2, y2] = box.coordinate;
    const rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    Object.entries({ x: x1, y: y1, width: x2 - x1, height: y2 - y1, fill: labels.get(box.label), stroke: labels.get(box.label) })
      .forEach(([k, v]) => rect.setAttribute(k, v));
    const title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = `${box.label} ${box.score.toFixed(2)}`;
    rect.appendChild(title);
    svg.appendChild(rect);
  }
  figure.querySelector("figcaption").textContent = [...labels.keys()].join(" · ");
}

// -- downloads --------------------------------------------------------------------------------
const stem = () => (state.file ? state.file.name.replace(/\.[^.]+$/, "") : "document");
const fullMarkdown = () => state.pages.map((p) => p.result.markdown.text).join("\n\n");
const fullResult = () => ({ layoutParsingResults: state.pages.map((p) => p.result), dataInfo: state.dataInfo });

function save(blob, name) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a);
  a.click();
  setTimeout(() => { URL.revokeObjectURL(a.href); a.remove(); }, 1000);
}
$("dl-md").addEventListener("click", () => save(new Blob([fullMarkdown()], { type: "text/markdown" }), stem() + ".md"));
$("dl-json").addEventListener("click", () => save(new Blob([JSON.stringify(fullResult(), null, 1)], { type: "application/json" }), stem() + ".json"));
$("dl-zip").addEventListener("click", async () => {
  const zip = new JSZip();
  zip.file(stem() + ".md", fullMarkdown());
  zip.file(stem() + ".json", JSON.stringify(fullResult(), null, 1));
  for (const page of state.pages) {
    for (const [path, data] of Object.entries(page.result.markdown.images || {})) zip.file(path, data, { base64: true });
    for (const [name, data] of Object.entries(page.result.outputImages || {})) {
      zip.file(`layout/page_${page.pageIndex + 1}_${name}.jpg`, data, { base64: true });
    }
  }
  save(await zip.generateAsync({ type: "blob" }), stem() + ".zip");
});

// -- status -----------------------------------------------------------------------------------
function reset() {
  state.pages = [];
  state.dataInfo = null;
  $("pages").replaceChildren();
  $("error").hidden = true;
  $("downloads").hidden = true;
  $("bar").value = 0;
}
function setStatus(text) { $("progress").hidden = false; $("status").textContent = text; }
function showError(text) { $("error").textContent = text; $("error").hidden = false; }
