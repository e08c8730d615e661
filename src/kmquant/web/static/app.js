// kmquant serve: the page. An image is uploaded once (POST /api/images), then every compression
// and the K sweep send only its id. Live preview: debounced requests, at most one in flight per
// kind, only the latest settings sent after it, and out-of-date answers dropped.

import {
  ApiError, dispositionName, getJson, newTicket, postForm, sleep, uploadImage, watchProgress,
} from "./api.js";
import { Curve } from "./curve.js";
import { formatPsnr, formatRatio, formatSeconds, groupDigits, humanBytes } from "./format.js";
import { Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);

const K_MIN = 2;
const K_MAX = 256;
const COMPRESS_DELAY = 150;
const SWEEP_DELAY = 400;
const MAX_RETRIES = 20;
const SETTINGS_KEY = "kmquant-settings";
const THEME_KEY = "kmquant-theme";
const CURVE_HINT = "Click a point (or Enter on it) to use its K; the dashed line is the knee.";

/** A target's default value and hint, by form field (knee: none). */
const TARGETS = {
  knee: { value: "", placeholder: "—" },
  target_psnr: { value: "40", placeholder: "dB, e.g. 40" },
  target_ssim: { value: "0.98", placeholder: "0–1, e.g. 0.98" },
  target_ssimulacra2: { value: "70", placeholder: "e.g. 70" },
  max_bytes: { value: "100k", placeholder: "e.g. 50k, 1.5M" },
  quality: { value: "60-80", placeholder: "MIN-MAX, e.g. 60-80" },
};

/** What each stage of the server's work is called on the page. */
const STAGES = {
  upload: "Uploading",
  decode: "Decoding",
  histogram: "Counting colours",
  seed: "Seeding the palette",
  refine: "Refining the palette",
  remap: "Mapping the pixels",
  encode: "Encoding the PNG",
  metrics: "Measuring the quality",
  sweep: "Trying each K",
  choose: "Choosing K",
};

/** Thrown when an answer is no longer wanted (the image or the settings changed). */
class Stale extends Error {}

const ui = {
  fileInput: $("file-input"),
  fileInfo: $("file-info"),
  version: $("version"),
  kRange: $("k-range"),
  kNumber: $("k-number"),
  kAuto: $("k-auto"),
  targetRow: $("target-row"),
  target: $("target"),
  targetValue: $("target-value"),
  dither: $("dither"),
  space: $("space"),
  speed: $("speed"),
  speedValue: $("speed-value"),
  viewer: $("viewer"),
  imgBefore: $("img-before"),
  imgAfter: $("img-after"),
  tagAfter: $("tag-after"),
  busy: $("busy"),
  progress: $("progress"),
  progressLabel: $("progress-label"),
  results: $("results"),
  originalSize: $("original-size"),
  compressedSize: $("compressed-size"),
  ratio: $("ratio"),
  reduction: $("reduction"),
  psnr: $("psnr"),
  ssim: $("ssim"),
  colors: $("colors"),
  colorsOf: $("colors-of"),
  time: $("time"),
  palette: $("palette"),
  notes: $("notes"),
  download: $("download"),
  downloadReport: $("download-report"),
  curve: $("curve"),
  curveEmpty: $("curve-empty"),
  curveKnee: $("curve-knee"),
  curveReadout: $("curve-readout"),
  sweepBusy: $("sweep-busy"),
  sweepProgress: $("sweep-progress"),
  sweepLabel: $("sweep-label"),
  status: $("status"),
  error: $("error"),
  errorText: $("error-text"),
  errorClose: $("error-close"),
  theme: $("theme-toggle"),
  dropOverlay: $("drop-overlay"),
};

const state = {
  /** The open image: the server's answer plus {gen, file, url}; null before the first. */
  image: null,
  /** Counts the images opened; requests carry it to know when they are out of date. */
  gen: 0,
  /** The shown result's object URLs. */
  urls: { png: null, report: null },
  /** A transparent re-upload under way: {gen, promise}. */
  reupload: null,
};

/* ----------------------------------------------------------------------------- scheduling */

/** Runs `run(params, isCurrent)` for the latest `params()`, one at a time: a call to `schedule`
 * while one runs only marks it to run again, with the settings of then, once it ends. `run`
 * resolves true when it showed its answer (then the same settings are not sent again). */
class LatestOnly {
  constructor({ params, run, delay, unchanged = () => {} }) {
    Object.assign(this, { params, run, delay, unchanged });
    this.timer = 0;
    this.busy = false;
    this.again = false;
    this.shownKey = null; // the settings whose answer is on the page
  }

  key() {
    const params = this.params();
    return params === null ? null : JSON.stringify(params);
  }

  schedule(delay = this.delay) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.pump(), delay);
  }

  async pump() {
    if (this.busy) {
      this.again = true;
      return;
    }
    const key = this.key();
    if (key === null) return;
    if (key === this.shownKey) {
      this.unchanged(); // back to the settings shown (after an error of others, say)
      return;
    }
    this.busy = true;
    this.again = false;
    try {
      const shown = await this.run(JSON.parse(key), () => this.key() === key);
      if (shown) this.shownKey = key;
    } finally {
      this.busy = false;
      if (this.again && this.key() !== key) this.pump();
    }
  }
}

/* ----------------------------------------------------------------------------- progress */

/** A progress bar with a label; shown after `delay` ms (no flicker for quick work). */
class ProgressBar {
  constructor(box, bar, label) {
    Object.assign(this, { box, bar, label });
    this.owner = null;
    this.timer = 0;
  }

  start(owner, text, delay = 250) {
    this.owner = owner;
    this.set(owner, text, null);
    clearTimeout(this.timer);
    if (delay <= 0) this.box.hidden = false;
    else this.timer = setTimeout(() => { if (this.owner === owner) this.box.hidden = false; }, delay);
  }

  /** `fraction` in 0…1, or null for an indeterminate bar. */
  set(owner, text, fraction) {
    if (this.owner !== owner) return;
    this.label.textContent = text;
    if (fraction === null || !Number.isFinite(fraction)) this.bar.removeAttribute("value");
    else this.bar.value = Math.min(1, Math.max(0, fraction));
  }

  stop(owner) {
    if (this.owner !== owner) return;
    this.owner = null;
    clearTimeout(this.timer);
    this.box.hidden = true;
  }
}

const mainProgress = new ProgressBar(ui.busy, ui.progress, ui.progressLabel);
const sweepProgress = new ProgressBar(ui.sweepBusy, ui.sweepProgress, ui.sweepLabel);

/** The words and fraction of a server progress message. */
function stageText({ stage, done, total }) {
  const name = STAGES[stage] ?? stage;
  const count = total > 1 ? ` ${done}/${total}` : "";
  return { text: `${name}${count}…`, fraction: total > 0 ? done / total : null };
}

/* ----------------------------------------------------------------------------- messages */

function setStatus(text) {
  ui.status.textContent = text;
}

function showError(error) {
  const message = error instanceof Error ? error.message : String(error);
  ui.errorText.textContent = message.replace(/\.$/, "") + ".";
  ui.error.hidden = false;
  setStatus(`Error: ${message}`);
}

function hideError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

/* ----------------------------------------------------------------------------- controls */

/** K of the controls (clamped whole number). */
function currentK() {
  const k = Math.round(Number(ui.kRange.value));
  return Math.min(K_MAX, Math.max(K_MIN, Number.isFinite(k) ? k : 64));
}

/** Set K in both controls (and the curve's mark) without asking for a compression. */
function showK(k) {
  ui.kRange.value = String(k);
  ui.kNumber.value = String(k);
  curve.setCurrent(k);
}

/** The options sent with every request. */
function options() {
  return { dither: ui.dither.value, space: ui.space.value, speed: ui.speed.value };
}

/** The form fields of the compression the controls ask for (null: no image). */
function compressParams() {
  if (!state.image) return null;
  const params = { gen: state.image.gen, ...options() };
  if (ui.kAuto.checked) {
    params.k = "auto";
    const target = ui.target.value;
    const value = ui.targetValue.value.trim();
    if (target !== "knee" && value) params[target] = value;
  } else {
    params.k = String(currentK());
  }
  return params;
}

/** The form fields of the sweep (null: no image). */
function sweepParams() {
  return state.image ? { gen: state.image.gen, ...options() } : null;
}

function onKRange() {
  ui.kNumber.value = ui.kRange.value;
  leaveAuto();
  curve.setCurrent(currentK());
  compressor.schedule();
}

function onKNumber() {
  const k = Number(ui.kNumber.value);
  if (!Number.isInteger(k) || k < K_MIN || k > K_MAX) return; // being typed; fixed on change
  ui.kRange.value = String(k);
  leaveAuto();
  curve.setCurrent(k);
  compressor.schedule();
}

function onKNumberChange() {
  const k = Math.round(Number(ui.kNumber.value));
  const fixed = Number.isFinite(k) && ui.kNumber.value !== "" ? Math.min(K_MAX, Math.max(K_MIN, k)) : currentK();
  showK(fixed);
  leaveAuto();
  compressor.schedule();
}

/** Moving K by hand ends the automatic choice. */
function leaveAuto() {
  if (ui.kAuto.checked) {
    ui.kAuto.checked = false;
    syncAuto();
  }
}

function syncAuto() {
  const auto = ui.kAuto.checked;
  ui.targetRow.hidden = !auto;
  ui.kRange.closest(".k-row").classList.toggle("auto", auto);
  syncTarget();
}

const targetValues = Object.fromEntries(Object.entries(TARGETS).map(([key, t]) => [key, t.value]));

function syncTarget() {
  const target = ui.target.value;
  const spec = TARGETS[target] ?? TARGETS.knee;
  ui.targetValue.disabled = target === "knee";
  ui.targetValue.placeholder = spec.placeholder;
  ui.targetValue.value = targetValues[target] ?? "";
}

function saveSettings() {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify({
      k: currentK(), auto: ui.kAuto.checked, target: ui.target.value, targetValues, ...options(),
    }));
  } catch { /* storage blocked */ }
}

function loadSettings() {
  let saved = null;
  try {
    saved = JSON.parse(localStorage.getItem(SETTINGS_KEY) ?? "null");
  } catch { /* none */ }
  if (!saved || typeof saved !== "object") return;
  const choose = (select, value) => {
    if ([...select.options].some((o) => o.value === value)) select.value = value;
  };
  if (Number.isInteger(saved.k) && saved.k >= K_MIN && saved.k <= K_MAX) {
    ui.kRange.value = ui.kNumber.value = String(saved.k);
  }
  choose(ui.dither, saved.dither);
  choose(ui.space, saved.space);
  choose(ui.target, saved.target);
  if (Number(saved.speed) >= 1 && Number(saved.speed) <= 10) ui.speed.value = String(saved.speed);
  if (saved.targetValues && typeof saved.targetValues === "object") {
    for (const key of Object.keys(TARGETS)) {
      if (typeof saved.targetValues[key] === "string") targetValues[key] = saved.targetValues[key];
    }
  }
  ui.kAuto.checked = saved.auto === true;
}

/* ----------------------------------------------------------------------------- requests */

/** Upload `file`, retrying while the server is busy; progress on the main bar. */
async function upload(file, name, owner) {
  for (let attempt = 0; ; attempt++) {
    mainProgress.set(owner, `${STAGES.upload} ${name}…`, 0);
    try {
      return await uploadImage(file, name, (loaded, total) => {
        const done = loaded >= total;
        const text = done ? `Reading ${name} on the server…` : `${STAGES.upload} ${name}: ${Math.round((100 * loaded) / total)}%`;
        mainProgress.set(owner, text, done ? null : loaded / total);
      });
    } catch (error) {
      if (!(error instanceof ApiError) || !error.retryable || attempt >= MAX_RETRIES) throw error;
      const wait = error.retryAfter ?? 1;
      setStatus(`The server is busy; sending ${name} again in ${wait} s…`);
      await sleep(wait * 1000);
    }
  }
}

/** Upload the open image again (the server forgot it); one upload for all who ask. */
function reupload(image) {
  if (state.reupload?.gen === image.gen) return state.reupload.promise;
  const owner = {};
  mainProgress.start(owner, `${STAGES.upload} ${image.name} again…`, 0);
  const promise = upload(image.file, image.name, owner)
    .then((info) => {
      image.id = info.id;
    })
    .finally(() => {
      mainProgress.stop(owner);
      if (state.reupload?.promise === promise) state.reupload = null;
    });
  state.reupload = { gen: image.gen, promise };
  return promise;
}

/**
 * POST `fields` with `image=<id>` to `path`: uploads again once if the server forgot the
 * image, waits Retry-After and tries again while it is busy; throws Stale when the answer is no
 * longer wanted.
 */
async function send(path, gen, fields, isCurrent) {
  let uploaded = false;
  for (let attempt = 0; ; attempt++) {
    const image = state.image;
    if (!image || image.gen !== gen || !isCurrent()) throw new Stale();
    try {
      return await postForm(path, { image: image.id, ...fields });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.unknownImage && !uploaded) {
        uploaded = true;
        await reupload(image);
      } else if (error.retryable && attempt < MAX_RETRIES) {
        const wait = error.retryAfter ?? 1;
        setStatus(`The server is busy; trying again in ${wait} s…`);
        await sleep(wait * 1000);
      } else {
        throw error;
      }
    }
  }
}

/** One compression: the PNG and its report shown, unless out of date by then. */
async function runCompress(params, isCurrent) {
  const { gen, ...fields } = params;
  const ticket = newTicket();
  const owner = {};
  const what = fields.k === "auto" ? "Choosing K" : `Compressing with K=${fields.k}`;
  setStatus(`${what}…`);
  ui.results.dataset.state = "busy";
  mainProgress.start(owner, `${what}…`);
  const stop = watchProgress(ticket, (progress) => {
    const { text, fraction } = stageText(progress);
    mainProgress.set(owner, text, fraction);
  });
  try {
    const response = await send("/api/compress", gen, { ...fields, ticket }, isCurrent);
    const blob = await response.blob();
    const report = JSON.parse(response.headers.get("X-Kmquant-Report") ?? "{}");
    const filename = dispositionName(response.headers.get("Content-Disposition"))
      ?? `${stem(state.image?.name)}.k${report.k}.png`;
    const url = URL.createObjectURL(blob);
    await decoded(url);
    if (!isCurrent() || state.image?.gen !== gen) {
      URL.revokeObjectURL(url);
      throw new Stale();
    }
    ui.imgAfter.src = url;
    showResult(report, url, filename, fields.k === "auto");
    ui.results.dataset.target = targetOf(fields);
    hideError();
    return true;
  } catch (error) {
    if (error instanceof Stale) return false;
    if (isCurrent()) {
      ui.results.dataset.state = "error";
      showError(error);
    }
    return false;
  } finally {
    stop();
    mainProgress.stop(owner);
  }
}

/** What chose K in these fields: "k" (by hand), "knee", or "<target>=<value>". */
function targetOf(fields) {
  if (fields.k !== "auto") return "k";
  const target = Object.keys(TARGETS).find((name) => name !== "knee" && fields[name]);
  return target ? `${target}=${fields[target]}` : "knee";
}

/** One sweep: the curve drawn, unless out of date by then. */
async function runSweep(params, isCurrent) {
  const { gen, ...fields } = params;
  const ticket = newTicket();
  const owner = {};
  sweepProgress.start(owner, `${STAGES.sweep}…`, 0);
  ui.curve.setAttribute("aria-busy", "true");
  const stop = watchProgress(ticket, (progress) => {
    const { text, fraction } = stageText(progress);
    sweepProgress.set(owner, text, fraction);
  });
  try {
    const response = await send("/api/sweep", gen, { ...fields, ticket }, isCurrent);
    const sweep = await response.json();
    if (!isCurrent()) return false;
    ui.curveEmpty.hidden = true;
    curve.setData(sweep);
    curve.setCurrent(currentK());
    ui.curveKnee.textContent = sweep.knee ? `knee at K=${sweep.knee}` : "";
    ui.curveReadout.textContent = CURVE_HINT;
    ui.curve.dataset.state = "done";
    return true;
  } catch (error) {
    if (error instanceof Stale) return false;
    if (isCurrent()) {
      ui.curveEmpty.hidden = false;
      ui.curveEmpty.textContent = `The curve could not be drawn: ${error.message}`;
      showError(error);
    }
    return false;
  } finally {
    ui.curve.removeAttribute("aria-busy");
    stop();
    sweepProgress.stop(owner);
  }
}

/** Decode `url` in a detached image first, so that the shown one swaps without a flash. */
async function decoded(url) {
  const probe = new Image();
  probe.src = url;
  try {
    await probe.decode();
  } catch {
    /* shown anyway: the browser does what it can */
  }
}

const compressor = new LatestOnly({
  params: compressParams,
  run: runCompress,
  delay: COMPRESS_DELAY,
  unchanged: () => {
    if (ui.results.dataset.state !== "error") return;
    ui.results.dataset.state = "done";
    hideError();
    setStatus("Showing the result of these settings again.");
  },
});
const sweeper = new LatestOnly({ params: sweepParams, run: runSweep, delay: SWEEP_DELAY });

/* ----------------------------------------------------------------------------- results */

/** "photo.jpg" → "photo". */
function stem(name) {
  return (name ?? "image").replace(/^.*[\\/]/, "").replace(/\.[^.]*$/, "") || "image";
}

function showResult(report, url, filename, auto) {
  for (const old of Object.values(state.urls)) if (old) URL.revokeObjectURL(old);
  const json = new Blob([JSON.stringify(report, null, 2) + "\n"], { type: "application/json" });
  state.urls = { png: url, report: URL.createObjectURL(json) };

  const k = report.k;
  if (auto) showK(k);
  curve.setCurrent(auto ? k : currentK());
  ui.tagAfter.textContent = `K=${k} · ${humanBytes(report.compressed_bytes)}`;

  ui.originalSize.textContent = humanBytes(report.original_bytes);
  ui.originalSize.title = `${groupDigits(report.original_bytes)} bytes`;
  ui.compressedSize.textContent = humanBytes(report.compressed_bytes);
  ui.compressedSize.title = `${groupDigits(report.compressed_bytes)} bytes, ${report.bits_per_pixel} bits per pixel`;
  ui.ratio.textContent = Number.isFinite(report.ratio) ? `${report.ratio.toFixed(report.ratio >= 10 ? 1 : 2)}×` : "—";
  ui.ratio.title = formatRatio(report.ratio);
  ui.reduction.textContent = Number.isFinite(report.reduction_pct)
    ? ` ${report.reduction_pct >= 0 ? "−" : "+"}${Math.abs(report.reduction_pct).toFixed(report.reduction_pct >= 99.5 ? 1 : 0)}%` : "";
  ui.psnr.textContent = formatPsnr(report.psnr, report.lossless);
  ui.ssim.textContent = report.ssim === null || report.ssim === undefined ? "n/a" : report.ssim.toFixed(4);
  ui.colors.textContent = String(report.colors_used);
  ui.colorsOf.textContent = ` of ${k}`;
  ui.time.textContent = formatSeconds(report.seconds);
  ui.time.title = Object.entries(report.timings ?? {}).map(([stage, s]) => `${stage} ${formatSeconds(s)}`).join(", ");

  showPalette(report.palette ?? [], report.shares ?? []);
  const notes = [...(report.notes ?? [])];
  const reason = report.k_choice?.reason;
  if (reason && !notes.includes(reason)) notes.unshift(reason);
  ui.notes.replaceChildren(...notes.map((note) => Object.assign(document.createElement("li"), { textContent: note })));

  enableLink(ui.download, url, filename);
  enableLink(ui.downloadReport, state.urls.report, filename.replace(/\.png$/i, "") + ".json");

  ui.results.dataset.k = String(k);
  ui.results.dataset.state = "done";
  const psnr = formatPsnr(report.psnr, report.lossless);
  setStatus(`K=${k}: ${humanBytes(report.compressed_bytes)} (${formatRatio(report.ratio)}), PSNR ${psnr}, ${report.colors_used} colours, ${formatSeconds(report.seconds)}.`);
}

function enableLink(link, url, filename) {
  link.href = url;
  link.download = filename;
  link.removeAttribute("aria-disabled");
  link.title = `Save ${filename}`;
}

function disableLink(link) {
  link.removeAttribute("href");
  link.setAttribute("aria-disabled", "true");
  link.removeAttribute("title");
}

function showPalette(palette, shares) {
  const swatches = palette.map((hex, i) => {
    const share = shares[i] ?? 0;
    const swatch = document.createElement("span");
    swatch.className = "swatch";
    swatch.style.flexGrow = String(share);
    swatch.style.setProperty("--color", hex);
    swatch.title = `${hex} · ${(share * 100).toFixed(share < 0.001 ? 3 : 1)}%`;
    swatch.dataset.testid = "swatch";
    return swatch;
  });
  ui.palette.replaceChildren(...swatches);
  const order = palette.map((hex, i) => [hex, shares[i] ?? 0]).sort((a, b) => b[1] - a[1]);
  const top = order.slice(0, 3).map(([hex, s]) => `${hex} ${(s * 100).toFixed(0)}%`).join(", ");
  ui.palette.setAttribute("aria-label", `Palette of ${palette.length} colours${top ? `; most used ${top}` : ""}`);
}

function clearResult() {
  for (const old of Object.values(state.urls)) if (old) URL.revokeObjectURL(old);
  state.urls = { png: null, report: null };
  for (const node of [ui.compressedSize, ui.ratio, ui.psnr, ui.ssim, ui.colors, ui.time]) node.textContent = "—";
  ui.colorsOf.textContent = "";
  ui.reduction.textContent = "";
  ui.palette.replaceChildren();
  ui.notes.replaceChildren();
  disableLink(ui.download);
  disableLink(ui.downloadReport);
  delete ui.results.dataset.k;
  delete ui.results.dataset.target;
  ui.results.dataset.state = "empty";
  ui.tagAfter.textContent = "Compressed";
  curve.clear();
  ui.curveKnee.textContent = "";
  ui.curveReadout.textContent = "";
  ui.curveEmpty.hidden = true;
  delete ui.curve.dataset.state;
}

/* ----------------------------------------------------------------------------- opening */

/** A name for a pasted image without one. */
function nameOf(file) {
  if (file.name) return file.name;
  const ext = (file.type.split("/")[1] ?? "png").replace("jpeg", "jpg").replace(/[^a-z0-9]/gi, "");
  return `pasted.${ext || "png"}`;
}

let opening = 0;

/** Upload `file`; when the server takes it, it becomes the open image. */
async function openFile(file) {
  if (!file) return;
  const name = nameOf(file);
  const ticket = ++opening;
  const owner = {};
  hideError();
  setStatus(`Uploading ${name}…`);
  mainProgress.start(owner, `${STAGES.upload} ${name}…`, 0);
  let info;
  try {
    info = await upload(file, name, owner);
  } catch (error) {
    if (ticket === opening) {
      showError(error);
      if (state.image) setStatus(`${name} was not opened; still showing ${state.image.name}.`);
    }
    return;
  } finally {
    mainProgress.stop(owner);
  }
  if (ticket !== opening) return; // a newer file was chosen meanwhile
  forget(state.image);
  const image = { ...info, name, file, gen: ++state.gen, url: URL.createObjectURL(file) };
  state.image = image;
  clearResult();
  ui.viewer.dataset.empty = "false";
  ui.viewer.dataset.original = "ok";
  ui.imgBefore.onerror = () => {
    if (state.image === image) {
      ui.viewer.dataset.original = "unsupported";
      setStatus(`This browser cannot show ${name} itself; the compressed image is shown on both sides.`);
    }
  };
  ui.imgBefore.src = image.url;
  ui.imgAfter.src = image.url;
  viewer.setSize(info.width, info.height);
  ui.originalSize.textContent = humanBytes(info.bytes);
  ui.originalSize.title = `${groupDigits(info.bytes)} bytes`;
  showFileInfo(image);
  setStatus(`Opened ${name}: ${info.width}×${info.height}, ${groupDigits(info.colors)} colours.`);
  compressor.schedule(0);
  sweeper.schedule(0);
}

function showFileInfo(image) {
  const parts = [`${image.width}×${image.height}`, humanBytes(image.bytes), `${groupDigits(image.colors)} colours`];
  if (image.format) parts.push(image.format);
  if (image.frames > 1) parts.push(`${image.frames} frames`);
  ui.fileInfo.replaceChildren(
    Object.assign(document.createElement("strong"), { textContent: image.name }),
    Object.assign(document.createElement("span"), { textContent: parts.join(" · "), className: "muted" }),
  );
  ui.fileInfo.title = image.name;
  document.title = `${image.name} — kmquant`;
}

/** Tell the server it may forget an upload (a courtesy: it forgets idle ones anyway). */
function forget(image) {
  if (!image) return;
  URL.revokeObjectURL(image.url);
  fetch(`/api/images/${encodeURIComponent(image.id)}`, { method: "DELETE", keepalive: true }).catch(() => {});
}

/* ----------------------------------------------------------------------------- drop, paste */

function listenForFiles() {
  ui.fileInput.addEventListener("change", () => {
    const file = ui.fileInput.files?.[0];
    ui.fileInput.value = ""; // the same file again fires change again
    openFile(file);
  });
  let depth = 0;
  const hasFiles = (event) => [...(event.dataTransfer?.types ?? [])].includes("Files");
  window.addEventListener("dragenter", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth += 1;
    ui.dropOverlay.hidden = false;
  });
  window.addEventListener("dragover", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
  });
  window.addEventListener("dragleave", (event) => {
    if (!hasFiles(event)) return;
    depth = Math.max(0, depth - 1);
    if (depth === 0) ui.dropOverlay.hidden = true;
  });
  window.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0;
    ui.dropOverlay.hidden = true;
    openFile(event.dataTransfer.files[0]);
  });
  document.addEventListener("paste", (event) => {
    const items = [...(event.clipboardData?.items ?? [])];
    const item = items.find((i) => i.kind === "file" && i.type.startsWith("image/"))
      ?? items.find((i) => i.kind === "file");
    if (!item) return; // text pasted into a field stays text
    event.preventDefault();
    openFile(item.getAsFile());
  });
}

/* ----------------------------------------------------------------------------- theme */

function theme() {
  const set = document.documentElement.dataset.theme;
  if (set === "light" || set === "dark") return set;
  return matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

function syncThemeButton() {
  const next = theme() === "dark" ? "light" : "dark";
  ui.theme.setAttribute("aria-label", `Switch to ${next} theme`);
  ui.theme.title = `Switch to ${next} theme`;
  ui.theme.dataset.current = theme();
}

function toggleTheme() {
  const next = theme() === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  try {
    localStorage.setItem(THEME_KEY, next);
  } catch { /* storage blocked: for this page only */ }
  syncThemeButton();
}

/* ----------------------------------------------------------------------------- start */

const viewer = new Viewer({
  root: ui.viewer,
  before: ui.imgBefore,
  after: ui.imgAfter,
  beforeLayer: $("layer-before"),
  divider: $("divider"),
  zoomLabel: $("zoom-level"),
});

const curve = new Curve(ui.curve, {
  onPick: (k) => {
    showK(k);
    leaveAuto();
    saveSettings();
    compressor.schedule(0);
  },
  onDescribe: (text) => {
    ui.curveReadout.textContent = text;
  },
});

function listen() {
  ui.kRange.addEventListener("input", onKRange);
  ui.kNumber.addEventListener("input", onKNumber);
  ui.kNumber.addEventListener("change", onKNumberChange);
  ui.kAuto.addEventListener("change", () => {
    syncAuto();
    compressor.schedule(0);
  });
  ui.target.addEventListener("change", () => {
    syncTarget();
    compressor.schedule(0);
  });
  ui.targetValue.addEventListener("input", () => {
    targetValues[ui.target.value] = ui.targetValue.value;
    compressor.schedule(500);
  });
  for (const select of [ui.dither, ui.space]) {
    select.addEventListener("change", () => {
      compressor.schedule(0);
      sweeper.schedule();
    });
  }
  ui.speed.addEventListener("input", () => {
    ui.speedValue.textContent = ui.speed.value;
    compressor.schedule();
    sweeper.schedule();
  });
  for (const control of [ui.kRange, ui.kNumber, ui.kAuto, ui.target, ui.targetValue, ui.dither, ui.space, ui.speed]) {
    control.addEventListener("change", saveSettings);
  }
  $("zoom-in").addEventListener("click", () => viewer.zoomIn());
  $("zoom-out").addEventListener("click", () => viewer.zoomOut());
  $("zoom-1").addEventListener("click", () => viewer.oneToOne());
  $("zoom-fit").addEventListener("click", () => viewer.fit());
  ui.errorClose.addEventListener("click", hideError);
  ui.theme.addEventListener("click", toggleTheme);
  matchMedia("(prefers-color-scheme: dark)").addEventListener("change", syncThemeButton);
  for (const link of [ui.download, ui.downloadReport]) {
    link.addEventListener("click", (event) => {
      if (link.getAttribute("aria-disabled") === "true") event.preventDefault();
    });
  }
  window.addEventListener("pagehide", () => forget(state.image));
  listenForFiles();
}

loadSettings();
syncAuto();
ui.speedValue.textContent = ui.speed.value;
syncThemeButton();
listen();
disableLink(ui.download);
disableLink(ui.downloadReport);
ui.results.dataset.state = "empty";
getJson("/api/health").then((health) => {
  if (health?.version) ui.version.textContent = `v${health.version}`;
});
document.documentElement.dataset.ready = "true";
