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
 *  2. Polarity and background level from the median of the border pixels: ink is the distance from that
 *     level towards the ink side (dark ink on light paper is inverted so ink is bright, as in MNIST).
 *     Ink is then stretched so its strongest pixel is 1 (MNIST's strokes reach 255).
 *  3. Pixels below `threshold` x the strongest ink are background (removes paper texture and JPEG noise);
 *     the rest gives the bounding box that is cropped.
 *  4. Scale so the longer side is 20: area averaging when shrinking (anti-aliased, like MNIST),
 *     bilinear when enlarging. Stretched again so the strongest pixel is 1 (thin strokes stay visible).
 *  5. Paste so the centre of mass lands on (14, 14): shift by the rounded offset, kept inside the field.
 * Browser-safe: the web demo runs it on a canvas's RGBA and `onnx-mnist predict` on decoded PNG/JPEG.
 */
import { ImageError } from "./error.ts";

export const SIDE = 28;
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

/** Ink strength in [0, 255]: distance from the border's median level towards the ink side. */
function inkMap(gray: Float32Array, width: number, height: number, polarity: "auto" | "dark" | "light"): Float32Array {
  const histogram = new Uint32Array(256);
  let count = 0;
  const add = (i: number) => {
    histogram[Math.round(gray[i])]++;
    count++;
  };
  for (let x = 0; x < width; x++) {
    add(x);
    if (height > 1) add((height - 1) * width + x);
  }
  for (let y = 1; y < height - 1; y++) {
    add(y * width);
    if (width > 1) add(y * width + width - 1);
  }
  let background = 0;
  for (let seen = 0; background < 255; background++) {
    seen += histogram[background];
    if (seen * 2 >= count) break;
  }
  const dark = polarity === "dark" || (polarity === "auto" && background >= 128);
  const ink = new Float32Array(gray.length);
  for (let i = 0; i < gray.length; i++) ink[i] = Math.max(0, dark ? background - gray[i] : gray[i] - background);
  return ink;
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
