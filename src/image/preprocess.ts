/**
 * Turns any picture of one digit into the 28x28 input an MNIST model expects, the way MNIST itself was made
 * (LeCun et al.): the digit is size-normalised to fit a 20x20 box preserving its aspect ratio, with
 * anti-aliasing, then placed in a 28x28 field so that its centre of mass is at the field's centre.
 * MNIST's centre of mass sits at pixel index (14, 14) on average (measured over the test set), so that is
 * the target here, in row/column index coordinates.
 *
 * The steps, each for a reason:
 *  1. Grayscale by luma (ITU-R BT.601), alpha-composited over a background that contrasts with the visible
 *     content, so a transparent canvas with black strokes reads like black ink on white paper.
 *  2. Background level from the median of the border pixels, polarity from the side the page reaches further
 *     from it: ink is the distance from that level towards the ink side (dark ink on light paper is inverted
 *     so ink is bright, as in MNIST). On a
 *     photo whose paper is unevenly lit (judged from the border), the paper's level is found around each pixel
 *     instead, and ink is measured relative to it (inkMap).
 *     Ink is then stretched so its strongest pixel is 1 (MNIST's strokes reach 255).
 *  3. Pixels below `threshold` x the strongest ink are background (removes paper texture and JPEG noise);
 *     the rest gives the bounding box that is cropped.
 *  4. Scale so the longer side is 20: area averaging when shrinking (anti-aliased, like MNIST),
 *     bilinear when enlarging. Stretched again so the strongest pixel is 1 (thin strokes stay visible).
 *  5. Paste so the centre of mass lands on (14, 14): shift by the rounded offset, kept inside the field.
 * Browser-safe: the web demo runs it on a canvas's RGBA and `onnx-mnist predict` on decoded PNG/JPEG.
 */
import { ImageError } from "./error.ts";
import { MNIST_SIDE } from "../data/dataset.ts";

/** The side of the image the model takes: MNIST's. */
export const SIDE = MNIST_SIDE;
export const BOX = 20;
export const CENTRE = 14;

export interface PreprocessOptions {
  /** "dark": dark ink on a light background; "light": light ink on a dark one; "auto" (default): judged by the border. */
  ink?: "auto" | "dark" | "light";
  /** Fraction of the strongest ink below which a pixel is background. Default 0.1. */
  threshold?: number;
  /** The strongest ink must differ from the background by this fraction of full scale, or the image is empty. Default 0.1. */
  minContrast?: number;
}

export interface MnistInput {
  /** 28*28 row-major, in [0, 1], bright ink on black. All zeros when `empty`. */
  pixels: Float32Array;
  /** True when no ink was found (a blank canvas or a uniform image). */
  empty: boolean;
  /** The cropped ink region in source pixels; null when empty. */
  crop: { x: number; y: number; width: number; height: number } | null;
}

export function toMnistInput(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number, o: PreprocessOptions = {}): MnistInput {
  if (!(Number.isInteger(width) && width > 0 && Number.isInteger(height) && height > 0)) {
    throw new ImageError(`image size must be positive whole numbers, got ${width}x${height}`);
  }
  if (rgba.length !== width * height * 4) {
    throw new ImageError(`image data has ${rgba.length} bytes but ${width}x${height} RGBA needs ${width * height * 4}`);
  }
  const threshold = o.threshold ?? 0.1;
  const minContrast = o.minContrast ?? 0.1;
  if (!(threshold > 0 && threshold < 1)) throw new RangeError(`threshold must be between 0 and 1, got ${threshold}`);
  if (!(minContrast >= 0 && minContrast <= 1)) throw new RangeError(`minContrast must be between 0 and 1, got ${minContrast}`);
  const none: MnistInput = { pixels: new Float32Array(SIDE * SIDE), empty: true, crop: null };

  const gray = grayscale(rgba, width * height);
  const ink = inkMap(gray, width, height, o.ink ?? "auto");
  let max = 0;
  for (let i = 0; i < ink.length; i++) if (ink[i] > max) max = ink[i];
  if (max <= minContrast * 255 || max === 0) return none;

  let x0 = width, x1 = -1, y0 = height, y1 = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = y * width + x;
      const v = ink[i] / max;
      if (v < threshold) {
        ink[i] = 0;
        continue;
      }
      ink[i] = v;
      if (x < x0) x0 = x;
      if (x > x1) x1 = x;
      if (y < y0) y0 = y;
      if (y > y1) y1 = y;
    }
  }
  const cw = x1 - x0 + 1;
  const ch = y1 - y0 + 1;
  const scale = BOX / Math.max(cw, ch);
  const nw = Math.min(BOX, Math.max(1, Math.round(cw * scale)));
  const nh = Math.min(BOX, Math.max(1, Math.round(ch * scale)));
  const small = resize(ink, width, x0, y0, cw, ch, nw, nh);

  let peak = 0, sum = 0, sx = 0, sy = 0;
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) {
      const v = small[y * nw + x];
      if (v > peak) peak = v;
      sum += v;
      sx += v * x;
      sy += v * y;
    }
  }
  if (sum === 0) return none;
  const ox = clamp(Math.round(CENTRE - sx / sum), 0, SIDE - nw);
  const oy = clamp(Math.round(CENTRE - sy / sum), 0, SIDE - nh);
  const pixels = new Float32Array(SIDE * SIDE);
  for (let y = 0; y < nh; y++) {
    for (let x = 0; x < nw; x++) pixels[(oy + y) * SIDE + ox + x] = Math.min(1, small[y * nw + x] / peak);
  }
  return { pixels, empty: false, crop: { x: x0, y: y0, width: cw, height: ch } };
}

/** Luma in [0, 255], alpha-composited over a background chosen to contrast with the visible content. */
function grayscale(rgba: Uint8Array | Uint8ClampedArray, n: number): Float32Array {
  const gray = new Float32Array(n);
  let weight = 0, lumaSum = 0, transparent = false;
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3] / 255;
    const luma = 0.299 * rgba[4 * i] + 0.587 * rgba[4 * i + 1] + 0.114 * rgba[4 * i + 2];
    gray[i] = luma;
    if (a < 1) transparent = true;
    weight += a;
    lumaSum += a * luma;
  }
  if (!transparent) return gray;
  // Dark content goes on white, light content on black: the transparent part becomes the "paper".
  const behind = weight > 0 && lumaSum / weight < 128 ? 255 : 0;
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3] / 255;
    gray[i] = a * gray[i] + (1 - a) * behind;
  }
  return gray;
}

/** A border whose paper level spreads wider than this (5th to 95th percentile) is uneven paper: see unevenPaper. */
export const UNEVEN_BORDER = 24;
/** Under light ink, a ground darker than this level counts as this level when ink is measured relative to it. */
const DARK_GROUND = 32;

/**
 * Ink strength in [0, 255]. On even paper (a canvas, a scan: see unevenPaper) it is the distance from the
 * border's median level towards the ink side. A photo's paper is rarely even
 * (light falling off across the page, a vignette, a shadow): one level for the whole page would read the dim part
 * of the paper as ink, or the ink in the bright part as paper. There the paper's own level is found around each
 * pixel by a morphological closing (dark ink) or opening (light ink) with a window wider than a stroke, which
 * removes the strokes and keeps the paper's gradients and the straight edges of shadows; ink is how much darker
 * (or, for light ink, lighter) than its paper a pixel is, relative to that paper, as light multiplies both.
 */
function inkMap(gray: Float32Array, width: number, height: number, polarity: "auto" | "dark" | "light"): Float32Array {
  const border = borderLoop(gray, width, height);
  const background = levelAt(histogramOf(border), border.length, 0.5);
  const ink = new Float32Array(gray.length);
  const even = Math.min(width, height) < 8 || !unevenPaper(border);
  // Polarity: the ink is on the side where the page reaches further from its paper, judged from the whole
  // page's levels (0.5th and 99.5th percentiles) around the paper's: the border's median on even paper, the page's
  // median on uneven paper, most of which is paper (a vignette darkens the border of white paper). So white paper
  // in a dim room (its level under 128) still has dark ink. When neither side reaches 64 levels further (a tiny
  // digit in a large photo), bright paper means dark ink, as before.
  let dark = polarity === "dark";
  if (polarity === "auto") {
    const all = histogramOf(gray);
    const level = (q: number) => levelAt(all, gray.length, q);
    const paper = even ? background : level(0.5);
    const [darker, lighter] = [paper - level(0.005), level(0.995) - paper];
    dark = Math.max(darker, lighter) >= 64 ? darker >= lighter : paper >= 128;
  }
  if (even) {
    for (let i = 0; i < gray.length; i++) ink[i] = Math.max(0, dark ? background - gray[i] : gray[i] - background);
    return ink;
  }
  // Uneven paper. The light varies slowly: a large photo's paper level is found at about 128 pixels across its
  // shorter side and enlarged back (bilinear); a 12-megapixel photo's whole preprocessing then takes about 1 s
  // (0.9 s before).
  const f = Math.max(1, Math.floor(Math.min(width, height) / 128));
  const [sw, sh] = [Math.ceil(width / f), Math.ceil(height / f)];
  const small = f > 1 ? resize(gray, width, 0, 0, width, height, sw, sh) : gray;
  // The window is a third of the shorter side: wider than the strokes of a digit even when it fills the frame,
  // and narrow enough to follow the light across the page.
  const w = Math.max(3, Math.round(Math.min(sw, sh) / 3) | 1);
  // From the page blurred, the level does not follow the peaks of the paper's grain, but it smears the sharp edge
  // of a shadow (a line of false ink along it); from the page itself it keeps the edge. Dark ink takes the lower
  // of the two at each pixel, light ink the higher: each is wrong only where it sees more paper than there is.
  const smooth = boxBlur(small, sw, sh, Math.max(1, Math.round(w / 8) | 1));
  const [first, then] = dark ? [Math.max, Math.min] : [Math.min, Math.max];
  const level = paperLevel(smooth, sw, sh, w, first, then);
  if (smooth !== small) {
    const sharp = paperLevel(small, sw, sh, w, first, then);
    for (let i = 0; i < level.length; i++) level[i] = then(level[i], sharp[i]);
  }
  const paper = f > 1 ? resize(level, sw, 0, 0, sw, sh, width, height) : level;
  // Light multiplies paper and ink alike, so ink is measured relative to its paper: the same stroke reads the same
  // in the light and in the shade. (A dark ground gets a floor, so that its grain in the dark is not magnified.)
  for (let i = 0; i < gray.length; i++) ink[i] = Math.max(0, (255 * (dark ? paper[i] - gray[i] : gray[i] - paper[i])) / Math.max(paper[i], dark ? 1 : DARK_GROUND));
  return ink;
}

/**
 * Whether the paper is unevenly lit, judged from the border, where there is mostly paper, whichever side of the
 * median level the paper is on (the brighter side under dark ink). Two signs, either enough:
 * - the paper's own levels spread: light falling off across the page, a vignette;
 * - going round the border as one loop, the level changes for long stretches: a shadow across the page. Runs of
 *   ink where a digit touches the border are shorter, and a closing of the loop (an opening, for light ink) that
 *   fills in runs shorter than a third of the loop removes them first.
 * A spread of more than UNEVEN_BORDER (5th to 95th percentile) counts. Scans and canvases, whose paper is
 * one level, stay on the even path, however much of their ink reaches the border.
 */
function unevenPaper(loop: number[]): boolean {
  const n = loop.length;
  const at = (v: number[], q: number) => v[Math.floor(q * (n - 1))];
  const sorted = [...loop].sort((a, b) => a - b);
  const dark = at(sorted, 0.5) >= 128;
  const paperSpread = dark ? at(sorted, 0.95) - at(sorted, 0.55) : at(sorted, 0.45) - at(sorted, 0.05);
  if (paperSpread > UNEVEN_BORDER) return true;
  const r = Math.floor(n / 6);
  const pass = (v: number[], f: (a: number, b: number) => number) => {
    const ext = Float32Array.from({ length: n + 2 * r }, (_, i) => v[(i - r + n) % n]); // wrapped around
    return Array.from(extreme1d(ext, 2 * r + 1, f).subarray(r, r + n));
  };
  const [first, then] = dark ? [Math.max, Math.min] : [Math.min, Math.max];
  const stretches = pass(pass(loop, first), then).sort((a, b) => a - b);
  return at(stretches, 0.95) - at(stretches, 0.05) > UNEVEN_BORDER;
}

/** The border's pixels, each once, going round it: the top row, the right column, the bottom row, the left column. */
function borderLoop(gray: Float32Array, width: number, height: number): number[] {
  const loop: number[] = [];
  for (let x = 0; x < width; x++) loop.push(gray[x]);
  for (let y = 1; y < height; y++) loop.push(gray[y * width + width - 1]);
  if (height > 1) for (let x = width - 2; x >= 0; x--) loop.push(gray[(height - 1) * width + x]);
  if (width > 1) for (let y = height - 2; y > 0; y--) loop.push(gray[y * width]);
  return loop;
}

/** How many of the levels round to each of 0..255. */
function histogramOf(levels: ArrayLike<number>): Uint32Array {
  const h = new Uint32Array(256);
  for (let i = 0; i < levels.length; i++) h[Math.round(levels[i])]++;
  return h;
}

/** The lowest level at or below which at least a fraction q of the `count` levels of histogram h lie. */
function levelAt(h: Uint32Array, count: number, q: number): number {
  let level = 0;
  for (let seen = 0; level < 255; level++) if ((seen += h[level]) >= q * count) break;
  return level;
}

/** The mean of every b x b window (b odd) centred on each pixel, over the window's cells inside the image. */
function boxBlur(src: Float32Array, width: number, height: number, b: number): Float32Array {
  if (b === 1) return src;
  const r = b >> 1;
  const pass = (get: (i: number) => number, set: (i: number, v: number) => void, n: number) => {
    let sum = 0;
    for (let i = 0; i < Math.min(r, n); i++) sum += get(i);
    for (let i = 0; i < n; i++) {
      if (i + r < n) sum += get(i + r);
      if (i - r - 1 >= 0) sum -= get(i - r - 1);
      set(i, sum / (Math.min(n - 1, i + r) - Math.max(0, i - r) + 1));
    }
  };
  const rows = new Float32Array(src.length);
  for (let y = 0; y < height; y++) pass((i) => src[y * width + i], (i, v) => (rows[y * width + i] = v), width);
  const out = new Float32Array(src.length);
  for (let x = 0; x < width; x++) pass((i) => rows[i * width + x], (i, v) => (out[i * width + x] = v), height);
  return out;
}

/**
 * A closing (first = max, then = min) or opening of the page by a w x w square, computed on the page extended
 * by w/2 copies of its edge pixels and cropped back: light falling off towards an edge is then kept as it is,
 * where windows clipped at the edge would fill it in (and the edge of the paper would read as a frame of ink).
 */
function paperLevel(gray: Float32Array, width: number, height: number, w: number, first: (a: number, b: number) => number, then: (a: number, b: number) => number): Float32Array {
  const r = w >> 1;
  const pw = width + 2 * r;
  const ph = height + 2 * r;
  const padded = new Float32Array(pw * ph);
  for (let y = 0; y < ph; y++) {
    const sy = Math.min(height - 1, Math.max(0, y - r)) * width;
    for (let x = 0; x < pw; x++) padded[y * pw + x] = gray[sy + Math.min(width - 1, Math.max(0, x - r))];
  }
  const level = extreme(extreme(padded, pw, ph, w, first), pw, ph, w, then);
  const out = new Float32Array(width * height);
  for (let y = 0; y < height; y++) out.set(level.subarray((y + r) * pw + r, (y + r) * pw + r + width), y * width);
  return out;
}

/**
 * The maximum (or minimum) of every w x w window centred on each pixel (w odd), windows clipped at the edges:
 * separable, each row and then each column by van Herk and Gil-Werman's running blocks, O(1) per pixel whatever w.
 */
export function extreme(src: Float32Array, width: number, height: number, w: number, f: (a: number, b: number) => number): Float32Array {
  const rows = new Float32Array(src.length);
  for (let y = 0; y < height; y++) rows.set(extreme1d(src.subarray(y * width, (y + 1) * width), w, f), y * width);
  if (height === 1) return rows;
  const out = new Float32Array(src.length);
  const column = new Float32Array(height);
  for (let x = 0; x < width; x++) {
    for (let y = 0; y < height; y++) column[y] = rows[y * width + x];
    const e = extreme1d(column, w, f);
    for (let y = 0; y < height; y++) out[y * width + x] = e[y];
  }
  return out;
}

/** extreme along one line: padded by w/2 cells of f's identity at both ends, in blocks of w (g from each block's
 * start, h from its end), so the window of output i, padded cells [i, i + w - 1], meets at most two blocks. */
function extreme1d(v: Float32Array, w: number, f: (a: number, b: number) => number): Float32Array {
  if (!(Number.isInteger(w) && w >= 1 && w % 2 === 1)) throw new RangeError(`window must be an odd whole number, got ${w}`);
  const n = v.length;
  const r = w >> 1;
  const none = f(-Infinity, Infinity) === Infinity ? -Infinity : Infinity; // f's identity: clipped cells count as none
  const m = n + 2 * r;
  const at = (j: number) => (j < r || j >= n + r ? none : v[j - r]);
  const g = new Float32Array(m);
  const h = new Float32Array(m);
  for (let j = 0; j < m; j++) g[j] = j % w === 0 ? at(j) : f(g[j - 1], at(j));
  for (let j = m - 1; j >= 0; j--) h[j] = j === m - 1 || (j + 1) % w === 0 ? at(j) : f(h[j + 1], at(j));
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = f(h[i], g[i + 2 * r]);
  return out;
}

/**
 * Resamples the crop [x0, x0+cw) x [y0, y0+ch) of `src` (row stride `stride`) to nw x nh, separably:
 * rows first, then columns, each with one sparse weight table.
 */
function resize(src: Float32Array, stride: number, x0: number, y0: number, cw: number, ch: number, nw: number, nh: number): Float32Array {
  const wx = axisWeights(cw, nw);
  const wy = axisWeights(ch, nh);
  const rows = new Float32Array(ch * nw);
  for (let y = 0; y < ch; y++) {
    const base = (y0 + y) * stride + x0;
    for (let o = 0; o < nw; o++) {
      let v = 0;
      for (let k = wx.start[o]; k < wx.start[o + 1]; k++) v += wx.weight[k] * src[base + wx.index[k]];
      rows[y * nw + o] = v;
    }
  }
  const out = new Float32Array(nh * nw);
  for (let o = 0; o < nh; o++) {
    for (let k = wy.start[o]; k < wy.start[o + 1]; k++) {
      const w = wy.weight[k];
      const row = wy.index[k] * nw;
      for (let x = 0; x < nw; x++) out[o * nw + x] += w * rows[row + x];
    }
  }
  return out;
}

/**
 * For each of `dst` output samples, the source indices and weights (a CSR table).
 * Shrinking: output o averages the source interval [o r, (o+1) r), r = src/dst, weighted by overlap (box filter).
 * Enlarging: bilinear between the two nearest source centres, at x = (o + 1/2) src/dst - 1/2.
 */
function axisWeights(src: number, dst: number): { start: Int32Array; index: Int32Array; weight: Float32Array } {
  const start = new Int32Array(dst + 1);
  const index: number[] = [];
  const weight: number[] = [];
  const r = src / dst;
  for (let o = 0; o < dst; o++) {
    start[o] = index.length;
    if (dst < src) {
      const lo = o * r;
      const hi = (o + 1) * r;
      for (let i = Math.floor(lo); i < Math.min(src, Math.ceil(hi)); i++) {
        const overlap = Math.min(i + 1, hi) - Math.max(i, lo);
        if (overlap > 0) {
          index.push(i);
          weight.push(overlap / r);
        }
      }
    } else {
      const x = clamp((o + 0.5) * r - 0.5, 0, src - 1);
      const i = Math.floor(x);
      const f = x - i;
      index.push(i);
      weight.push(1 - f);
      if (f > 0) {
        index.push(i + 1);
        weight.push(f);
      }
    }
  }
  start[dst] = index.length;
  return { start, index: Int32Array.from(index), weight: Float32Array.from(weight) };
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
