// The before/after viewer: two stacked images under one transform (zoom, pan), the original
// clipped to the left of a draggable divider. Mouse, touch (pan, pinch) and keyboard.

const MAX_SCALE = 64;
const WHEEL_STEP = 0.0015;
const BUTTON_STEP = 1.5;
const PAN_STEP = 40;

const clamp = (value, low, high) => Math.min(high, Math.max(low, value));

export class Viewer {
  /**
   * @param {object} parts
   * @param {HTMLElement} parts.root the viewport (overflow hidden, focusable)
   * @param {HTMLImageElement} parts.before the original
   * @param {HTMLImageElement} parts.after the compressed image
   * @param {HTMLElement} parts.beforeLayer the layer clipped at the divider
   * @param {HTMLElement} parts.divider role=slider
   * @param {HTMLElement} parts.zoomLabel shows the zoom (100% = true pixels)
   */
  constructor({ root, before, after, beforeLayer, divider, zoomLabel }) {
    Object.assign(this, { root, before, after, beforeLayer, divider, zoomLabel });
    this.width = 0;
    this.height = 0;
    this.scale = 1;
    this.tx = 0;
    this.ty = 0;
    this.split = 0.5;
    this.fitted = true; // refit when the window is resized
    this.pointers = new Map();
    this.gesture = null;
    this.listen();
    new ResizeObserver(() => this.resized()).observe(root);
    this.apply();
  }

  /** Device pixels per CSS pixel (1:1 shows one image pixel on one device pixel). */
  get dpr() {
    return window.devicePixelRatio || 1;
  }

  /** The viewport's size in CSS pixels. */
  get box() {
    return { w: this.root.clientWidth, h: this.root.clientHeight };
  }

  /** A new image of `width`×`height`: shown whole. */
  setSize(width, height) {
    this.width = width;
    this.height = height;
    for (const img of [this.before, this.after]) {
      img.style.width = `${width}px`;
      img.style.height = `${height}px`;
    }
    this.fit();
  }

  /** The scale at which the whole image fits the viewport. */
  fitScale() {
    const { w, h } = this.box;
    if (!this.width || !this.height || !w || !h) return 1;
    return Math.min(w / this.width, h / this.height);
  }

  fit() {
    this.fitted = true;
    this.scale = this.fitScale();
    this.center();
  }

  /** True pixels: one image pixel on one device pixel, kept centred on the viewport. */
  oneToOne() {
    const { w, h } = this.box;
    this.zoomTo(1 / this.dpr, w / 2, h / 2);
  }

  zoomIn() {
    const { w, h } = this.box;
    this.zoomTo(this.scale * BUTTON_STEP, w / 2, h / 2);
  }

  zoomOut() {
    const { w, h } = this.box;
    this.zoomTo(this.scale / BUTTON_STEP, w / 2, h / 2);
  }

  /** Zoom to `scale`, keeping the image point under (cx, cy) (viewport pixels) in place. */
  zoomTo(scale, cx, cy) {
    const low = Math.min(this.fitScale(), 1 / this.dpr) / 4;
    const next = clamp(scale, low, MAX_SCALE);
    const ratio = next / this.scale;
    this.tx = cx - (cx - this.tx) * ratio;
    this.ty = cy - (cy - this.ty) * ratio;
    this.scale = next;
    this.fitted = false;
    this.apply();
  }

  panBy(dx, dy) {
    this.tx += dx;
    this.ty += dy;
    this.fitted = false;
    this.apply();
  }

  center() {
    const { w, h } = this.box;
    this.tx = (w - this.width * this.scale) / 2;
    this.ty = (h - this.height * this.scale) / 2;
    this.apply();
  }

  /** Keep the image in view: centred along an axis where it is smaller than the viewport,
   * else with no gap at either edge. */
  bound() {
    const { w, h } = this.box;
    const sw = this.width * this.scale;
    const sh = this.height * this.scale;
    this.tx = sw <= w ? (w - sw) / 2 : clamp(this.tx, w - sw, 0);
    this.ty = sh <= h ? (h - sh) / 2 : clamp(this.ty, h - sh, 0);
  }

  resized() {
    if (this.fitted) this.fit();
    else this.apply();
  }

  setSplit(fraction) {
    this.split = clamp(fraction, 0, 1);
    this.apply();
  }

  apply() {
    this.bound();
    const transform = `translate(${this.tx}px, ${this.ty}px) scale(${this.scale})`;
    this.before.style.transform = transform;
    this.after.style.transform = transform;
    const percent = this.split * 100;
    this.beforeLayer.style.clipPath = `inset(0 ${100 - percent}% 0 0)`;
    this.divider.style.left = `${percent}%`;
    const rounded = Math.round(percent);
    this.divider.setAttribute("aria-valuenow", String(rounded));
    this.divider.setAttribute("aria-valuetext", `${rounded}% original`);
    const truePixels = this.scale * this.dpr;
    this.root.classList.toggle("pixelated", truePixels >= 0.999);
    const shown = truePixels >= 10 ? Math.round(truePixels * 100) : Math.round(truePixels * 1000) / 10;
    this.zoomLabel.textContent = `${shown}%`;
  }

  listen() {
    const { root, divider } = this;
    root.addEventListener("wheel", (event) => this.onWheel(event), { passive: false });
    root.addEventListener("pointerdown", (event) => this.onPointerDown(event));
    root.addEventListener("pointermove", (event) => this.onPointerMove(event));
    for (const type of ["pointerup", "pointercancel", "lostpointercapture"]) {
      root.addEventListener(type, (event) => this.onPointerUp(event));
    }
    root.addEventListener("keydown", (event) => this.onKey(event));
    divider.addEventListener("keydown", (event) => this.onDividerKey(event));
    root.addEventListener("dblclick", (event) => {
      if (event.target === divider || divider.contains(event.target)) return;
      if (this.fitted) this.zoomTo(1 / this.dpr, ...this.local(event));
      else this.fit();
    });
  }

  /** Viewport coordinates of a mouse or pointer event. */
  local(event) {
    const rect = this.root.getBoundingClientRect();
    return [event.clientX - rect.left, event.clientY - rect.top];
  }

  onWheel(event) {
    if (!this.width) return;
    event.preventDefault();
    const unit = event.deltaMode === 1 ? 16 : event.deltaMode === 2 ? 400 : 1;
    const delta = clamp(event.deltaY * unit, -300, 300);
    this.zoomTo(this.scale * Math.exp(-delta * WHEEL_STEP), ...this.local(event));
  }

  onPointerDown(event) {
    if (!this.width || (event.pointerType === "mouse" && event.button !== 0)) return;
    const onDivider = event.target === this.divider || this.divider.contains(event.target);
    this.root.setPointerCapture(event.pointerId);
    this.pointers.set(event.pointerId, this.local(event));
    if (onDivider && this.pointers.size === 1) {
      this.gesture = { kind: "split" };
      this.root.classList.add("splitting");
    } else if (this.pointers.size === 1) {
      this.gesture = { kind: "pan" };
      this.root.classList.add("panning");
    } else if (this.pointers.size === 2) {
      const [a, b] = [...this.pointers.values()];
      this.gesture = { kind: "pinch", distance: Math.hypot(a[0] - b[0], a[1] - b[1]) || 1 };
    }
    event.preventDefault();
  }

  onPointerMove(event) {
    if (!this.pointers.has(event.pointerId) || !this.gesture) return;
    const [x, y] = this.local(event);
    const [px, py] = this.pointers.get(event.pointerId);
    this.pointers.set(event.pointerId, [x, y]);
    const { kind } = this.gesture;
    if (kind === "split") {
      this.setSplit(x / Math.max(1, this.root.clientWidth));
    } else if (kind === "pan") {
      this.panBy(x - px, y - py);
    } else if (kind === "pinch" && this.pointers.size >= 2) {
      const [a, b] = [...this.pointers.values()];
      const distance = Math.hypot(a[0] - b[0], a[1] - b[1]) || 1;
      const mid = [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
      this.zoomTo(this.scale * (distance / this.gesture.distance), mid[0], mid[1]);
      this.gesture.distance = distance;
    }
  }

  onPointerUp(event) {
    if (!this.pointers.delete(event.pointerId)) return;
    if (this.pointers.size === 0) {
      this.gesture = null;
      this.root.classList.remove("panning", "splitting");
    } else if (this.pointers.size === 1 && this.gesture?.kind === "pinch") {
      this.gesture = { kind: "pan" };
    }
  }

  onKey(event) {
    if (event.target !== this.root || !this.width || event.altKey || event.ctrlKey || event.metaKey) return;
    const step = event.shiftKey ? PAN_STEP * 5 : PAN_STEP;
    const moves = {
      ArrowLeft: [step, 0], ArrowRight: [-step, 0], ArrowUp: [0, step], ArrowDown: [0, -step],
    };
    if (event.key in moves) this.panBy(...moves[event.key]);
    else if (event.key === "+" || event.key === "=") this.zoomIn();
    else if (event.key === "-" || event.key === "_") this.zoomOut();
    else if (event.key === "0") this.fit();
    else if (event.key === "1") this.oneToOne();
    else return;
    event.preventDefault();
  }

  onDividerKey(event) {
    const step = event.shiftKey ? 0.1 : 0.02;
    const moves = {
      ArrowLeft: -step, ArrowDown: -step, ArrowRight: step, ArrowUp: step, PageDown: -0.1, PageUp: 0.1,
    };
    if (event.key in moves) this.setSplit(this.split + moves[event.key]);
    else if (event.key === "Home") this.setSplit(0);
    else if (event.key === "End") this.setSplit(1);
    else return;
    event.preventDefault();
    event.stopPropagation();
  }
}
