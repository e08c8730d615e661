// The K curve: PNG bytes (top) and PSNR (bottom) against K on a log-2 axis, as inline SVG,
// the knee and the current K marked; a point is picked by click, Enter or Space, and the
// points are one tab stop (arrow keys move between them).

import { humanBytes, formatPsnr } from "./format.js";

const NS = "http://www.w3.org/2000/svg";
const W = 360;
const LEFT = 50;
const RIGHT = 12;
const TOP_CHART = { y0: 18, y1: 112 };
const BOTTOM_CHART = { y0: 146, y1: 240 };
const AXIS_Y = 258;

/** An SVG element with attributes. */
function el(name, attrs = {}, text = null) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (text !== null) node.textContent = text;
  return node;
}

/** About `count` round tick values covering [low, high]. */
export function niceTicks(low, high, count = 3) {
  if (!(high > low)) return [low];
  const raw = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const ticks = [];
  for (let v = Math.ceil(low / step) * step; v <= high + step * 1e-9; v += step) {
    ticks.push(Number(v.toPrecision(12)));
  }
  return ticks;
}

export class Curve {
  /**
   * @param {SVGSVGElement} svg
   * @param {object} hooks
   * @param {(k: number) => void} hooks.onPick a point was chosen
   * @param {(text: string) => void} hooks.onDescribe the point hovered or focused, in words
   */
  constructor(svg, { onPick, onDescribe }) {
    this.svg = svg;
    this.onPick = onPick;
    this.onDescribe = onDescribe;
    this.rows = [];
    this.knee = null;
    this.current = null;
    this.focusIndex = 0;
    svg.addEventListener("keydown", (event) => this.onKey(event));
  }

  /** Draw a sweep's answer `{knee, rows: [{k, png_bytes, psnr, ssim, colors_used}, ...]}`. */
  setData(sweep) {
    this.rows = [...(sweep?.rows ?? [])].sort((a, b) => a.k - b.k);
    this.knee = sweep?.knee ?? null;
    this.draw();
  }

  clear() {
    this.rows = [];
    this.knee = null;
    this.svg.replaceChildren();
  }

  /** Mark `k` as the current K. */
  setCurrent(k) {
    this.current = k;
    if (!this.rows.length) return;
    this.placeCurrent();
    for (const point of this.svg.querySelectorAll(".pt")) {
      const selected = Number(point.dataset.k) === k;
      point.classList.toggle("selected", selected);
      point.setAttribute("aria-pressed", String(selected));
    }
  }

  x(k) {
    const ks = this.rows.map((r) => Math.log2(r.k));
    let low = Math.min(...ks);
    let high = Math.max(...ks);
    if (high - low < 1) {
      low -= 0.5;
      high += 0.5;
    }
    const pad = (high - low) * 0.03;
    const t = (Math.log2(k) - low + pad) / (high - low + 2 * pad);
    return LEFT + t * (W - LEFT - RIGHT);
  }

  draw() {
    const svg = this.svg;
    svg.replaceChildren();
    const rows = this.rows;
    if (!rows.length) return;
    const bytes = rows.map((r) => r.png_bytes);
    const bytesHigh = Math.max(...bytes) * 1.08 || 1;
    const psnrs = rows.map((r) => r.psnr).filter((p) => p !== null && Number.isFinite(p));
    let psnrLow = psnrs.length ? Math.min(...psnrs) : 0;
    let psnrHigh = psnrs.length ? Math.max(...psnrs) : 1;
    const spread = Math.max(1, psnrHigh - psnrLow);
    psnrLow = Math.floor(psnrLow - spread * 0.08);
    psnrHigh = Math.ceil(psnrHigh + spread * 0.08);
    const yBytes = (v) => TOP_CHART.y1 - (v / bytesHigh) * (TOP_CHART.y1 - TOP_CHART.y0);
    const yPsnr = (v) => BOTTOM_CHART.y1 - ((v - psnrLow) / (psnrHigh - psnrLow)) * (BOTTOM_CHART.y1 - BOTTOM_CHART.y0);

    const grid = el("g", { class: "grid", "aria-hidden": "true" });
    const unit = byteUnit(bytesHigh);
    const byteTicks = niceTicks(0, bytesHigh / unit.size, 3).map((v) => v * unit.size);
    this.axis(grid, TOP_CHART, byteTicks, yBytes, (v) => (v ? `${Number((v / unit.size).toPrecision(6))} ${unit.name}` : "0"));
    this.axis(grid, BOTTOM_CHART, niceTicks(psnrLow, psnrHigh, 3), yPsnr, (v) => `${v}`);
    grid.append(el("text", { class: "chart-title", x: LEFT, y: TOP_CHART.y0 - 6 }, "PNG size"));
    grid.append(el("text", { class: "chart-title", x: LEFT, y: BOTTOM_CHART.y0 - 6 }, "PSNR (dB)"));
    const ks = rows.map((r) => r.k);
    const low = Math.min(...ks);
    const high = Math.max(...ks);
    for (let k = 2 ** Math.ceil(Math.log2(low)); k <= high; k *= 2) {
      const x = this.x(k);
      grid.append(el("line", { class: "tick", x1: x, x2: x, y1: BOTTOM_CHART.y1, y2: BOTTOM_CHART.y1 + 4 }));
      grid.append(el("text", { class: "x-label", x, y: AXIS_Y, "text-anchor": "middle" }, String(k)));
    }
    grid.append(el("text", { class: "axis-title", x: W - RIGHT, y: AXIS_Y + 14, "text-anchor": "end" }, "K (colours)"));
    svg.append(grid);

    if (this.knee !== null) {
      const x = this.x(this.knee);
      const knee = el("g", { class: "knee", "aria-hidden": "true" });
      knee.append(el("line", { x1: x, x2: x, y1: TOP_CHART.y0, y2: BOTTOM_CHART.y1 }));
      knee.append(el("text", { x: x + 3, y: TOP_CHART.y0 + 8 }, `knee ${this.knee}`));
      svg.append(knee);
    }

    const line = (cls, pick, y) => {
      let d = "";
      for (const row of rows) {
        const v = pick(row);
        if (v === null || !Number.isFinite(v)) continue;
        d += `${d ? "L" : "M"}${this.x(row.k).toFixed(2)},${y(v).toFixed(2)}`;
      }
      if (d) svg.append(el("path", { class: `line ${cls}`, d, "aria-hidden": "true" }));
    };
    line("bytes", (r) => r.png_bytes, yBytes);
    line("psnr", (r) => r.psnr, yPsnr);

    this.currentLine = el("line", { class: "current", y1: TOP_CHART.y0 - 4, y2: BOTTOM_CHART.y1, "aria-hidden": "true" });
    svg.append(this.currentLine);

    const points = el("g", { class: "points" });
    rows.forEach((row, i) => {
      const x = this.x(row.k);
      const left = i ? (x + this.x(rows[i - 1].k)) / 2 : LEFT;
      const right = i < rows.length - 1 ? (x + this.x(rows[i + 1].k)) / 2 : W - RIGHT;
      const label = describe(row, this.knee);
      const point = el("g", {
        class: "pt", "data-testid": "curve-point", "data-k": row.k, role: "button",
        tabindex: -1, "aria-label": label, "aria-pressed": "false",
      });
      point.append(el("title", {}, label));
      point.append(el("rect", { class: "hit", x: left, y: TOP_CHART.y0 - 4, width: Math.max(1, right - left), height: BOTTOM_CHART.y1 - TOP_CHART.y0 + 8 }));
      point.append(el("circle", { class: "dot bytes", cx: x, cy: yBytes(row.png_bytes), r: 3.5 }));
      if (row.psnr !== null && Number.isFinite(row.psnr)) {
        point.append(el("circle", { class: "dot psnr", cx: x, cy: yPsnr(row.psnr), r: 3.5 }));
      } else {
        point.append(el("circle", { class: "dot psnr lossless", cx: x, cy: BOTTOM_CHART.y0, r: 3.5 }));
      }
      point.addEventListener("click", () => this.pick(i));
      point.addEventListener("pointerenter", () => this.onDescribe(label));
      point.addEventListener("focus", () => {
        this.focusIndex = i;
        this.onDescribe(label);
      });
      points.append(point);
    });
    svg.append(points);
    const nearest = this.nearestIndex(this.current ?? this.knee ?? rows[0].k);
    this.setRoving(nearest);
    if (this.current !== null) this.setCurrent(this.current);
  }

  /** An axis of one chart: grid lines and tick labels. */
  axis(grid, chart, ticks, y, label) {
    grid.append(el("line", { class: "frame", x1: LEFT, x2: W - RIGHT, y1: chart.y1, y2: chart.y1 }));
    for (const value of ticks) {
      const at = y(value);
      if (at < chart.y0 - 0.5 || at > chart.y1 + 0.5) continue;
      grid.append(el("line", { class: "gridline", x1: LEFT, x2: W - RIGHT, y1: at, y2: at }));
      grid.append(el("text", { class: "y-label", x: LEFT - 5, y: at + 3.5, "text-anchor": "end" }, label(value)));
    }
  }

  placeCurrent() {
    if (!this.currentLine) return;
    const show = this.current !== null && this.rows.length;
    this.currentLine.style.display = show ? "" : "none";
    if (!show) return;
    const x = this.x(this.current);
    this.currentLine.setAttribute("x1", x);
    this.currentLine.setAttribute("x2", x);
  }

  nearestIndex(k) {
    let best = 0;
    this.rows.forEach((row, i) => {
      if (Math.abs(Math.log2(row.k) - Math.log2(k)) < Math.abs(Math.log2(this.rows[best].k) - Math.log2(k))) best = i;
    });
    return best;
  }

  /** Make point `i` the one tab stop of the chart. */
  setRoving(i) {
    this.focusIndex = i;
    this.svg.querySelectorAll(".pt").forEach((point, j) => point.setAttribute("tabindex", j === i ? "0" : "-1"));
  }

  pick(i) {
    this.setRoving(i);
    this.onPick(this.rows[i].k);
  }

  onKey(event) {
    const points = [...this.svg.querySelectorAll(".pt")];
    const i = points.indexOf(event.target);
    if (i < 0) return;
    let next = null;
    if (event.key === "ArrowRight" || event.key === "ArrowUp") next = Math.min(points.length - 1, i + 1);
    else if (event.key === "ArrowLeft" || event.key === "ArrowDown") next = Math.max(0, i - 1);
    else if (event.key === "Home") next = 0;
    else if (event.key === "End") next = points.length - 1;
    else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      this.pick(i);
      return;
    } else return;
    event.preventDefault();
    this.setRoving(next);
    points[next].focus();
  }
}

/** The binary unit in which `bytes` is shown (KB from 1024, MB from 1024²). */
function byteUnit(bytes) {
  if (bytes >= 1024 ** 2) return { name: "MB", size: 1024 ** 2 };
  if (bytes >= 1024) return { name: "KB", size: 1024 };
  return { name: "B", size: 1 };
}

/** One sweep row in words. */
function describe(row, knee) {
  const parts = [`K ${row.k}`, humanBytes(row.png_bytes), formatPsnr(row.psnr, row.psnr === null)];
  if (row.ssim !== null && row.ssim !== undefined) parts.push(`SSIM ${row.ssim.toFixed(4)}`);
  if (row.colors_used !== undefined && row.colors_used < row.k) parts.push(`${row.colors_used} colours used`);
  if (knee === row.k) parts.push("the knee");
  return parts.join(", ");
}
