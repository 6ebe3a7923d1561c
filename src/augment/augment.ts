/**
 * Data augmentation as a few standard ONNX ops: emitted at the head of the training-step graph (augmentInto, used by
 * src/program), or as a graph of their own run by a second InferenceSession before each step (Augmenter). Either
 * way it runs in onnxruntime's threads, and identically in onnxruntime-node and onnxruntime-web.
 * The randomness is drawn in JS from a seeded RNG derived from (seed, epoch, batch), so the same seed gives the
 * same augmented batches bit for bit, and a resumed run sees exactly the batches it would have seen.
 *
 * Per image, in one GridSample (bilinear, zeros outside, align_corners=0: PyTorch's `grid_sample` defaults; or
 * nearest, torchvision RandomAffine's default interpolation):
 * - a random affine map with torchvision `RandomAffine` semantics: angle ~ U(-degrees, degrees), translation
 *   round(U(-t*W, t*W)) whole pixels, scale ~ U(lo, hi), x-shear ~ U(-shear, shear) degrees and y-shear (the
 *   four-number form), about the centre; optionally first an aspect-ratio stretch at constant area, width/height
 *   log-uniform in a range (RandomResizedCrop's `ratio`);
 * - Simard et al.'s (2003) elastic distortion: a field of U(-1, 1) noise per coordinate, smoothed by a Gaussian
 *   of `sigma` pixels (a separable Conv, zeros beyond the edge), times `alpha` pixels, added to the sample grid.
 * Then stroke-width jitter: w ~ U(-stroke, stroke) blends towards the 3x3 dilation (w > 0, thicker ink; MaxPool)
 * or the 3x3 erosion (w < 0, thinner ink; -MaxPool(-x)): y = s + relu(w)(dilate(s) - s) + relu(-w)(erode(s) - s).
 */
import type * as OrtCommon from "onnxruntime-common";
import { G } from "../ops/builder.ts";
import type { PoolAttrs } from "../ops/pool.ts";
import { emitReduce } from "../ops/reduce.ts";
import type { Value } from "../graph/value.ts";
import { encodeModel } from "../onnx/proto.ts";
import { Rng } from "../random.ts";
import { MNIST_SIDE } from "../data/dataset.ts";

export type Interpolation = "nearest" | "bilinear";

export interface AugmentConfig {
  /** Rotation: angle ~ U(-degrees, degrees). */
  degrees: number;
  /** Translation: at most this fraction of the width (height), rounded to whole pixels as torchvision does. */
  translate: number;
  /** Scale ~ U(scale[0], scale[1]). */
  scale: [number, number];
  /** Shear parallel to the x axis ~ U(-shear, shear) degrees (torchvision's single-number `shear`). */
  shear: number;
  /** Shear parallel to the y axis ~ U(-shearY, shearY) degrees (the y part of torchvision's four-number `shear`); absent: 0. */
  shearY?: number;
  /** Aspect-ratio jitter: width / height ~ log-uniform in [aspect[0], aspect[1]] (torchvision RandomResizedCrop's `ratio`), at constant area, in the digit's own frame; absent: [1, 1]. */
  aspect?: [number, number];
  /**
   * How the affine (and elastic) map samples the image: torchvision's InterpolationMode, NEAREST by default in
   * RandomAffine, or BILINEAR; GridSample's mode. Absent: bilinear (what configurations saved before it existed used).
   */
  interpolation?: Interpolation;
  /** Elastic distortion strength in pixels (Simard's alpha); 0 turns it off. */
  elasticAlpha: number;
  /** Smoothness of the elastic field: the Gaussian's standard deviation in pixels. */
  elasticSigma: number;
  /** Stroke-width jitter: w ~ U(-stroke, stroke) of the way to the 3x3 dilation (w > 0) or erosion (w < 0); at most 1. */
  stroke: number;
}

/**
 * `--augment`: torchvision users' RandomAffine(degrees=10, scale=(0.9, 1.1)) plus a 10-degree slant, and stroke
 * jitter from one 3x3 erosion (a thin pen) to one 3x3 dilation (a marker). Chosen on a validation split held out
 * of MNIST's training set (its last 10,000 images) and the suite's even-numbered fonts (README: "Augmentation"):
 * - no translation: every input the model meets (MNIST, the demo, `predict`, the suite) is centred by its centre
 *   of mass, so a shifted digit never occurs (translate 0.1 cost 0.5-0.7 points of MNIST accuracy);
 * - no elastic distortion: Simard's alpha 34, sigma 4 (a field of about 1.4 px standard deviation) cost 2-7 points
 *   on the suite at 3-5 epochs of this 8,110-parameter model, and sigma 6 cost 1; it stays available (--elastic);
 * - stroke 1, not 0.5, 1.5 or 2: thin-pen digits were the suite's largest group of errors.
 */
export const AUGMENT_PRESET: AugmentConfig = { degrees: 10, translate: 0, scale: [0.9, 1.1], shear: 10, elasticAlpha: 0, elasticSigma: 4, stroke: 1 };

/** The smallest peak ink that stroke jitter's stretch divides by (see buildAugmentGraph). */
export const STRETCH_FLOOR = 0.25;

/** Nothing: the identity (used for the components a flag did not turn on). */
export const AUGMENT_NONE: AugmentConfig = { degrees: 0, translate: 0, scale: [1, 1], shear: 0, elasticAlpha: 0, elasticSigma: 4, stroke: 0 };

export function isIdentity(c: AugmentConfig): boolean {
  return c.degrees === 0 && c.translate === 0 && c.scale[0] === 1 && c.scale[1] === 1 && c.shear === 0 && !c.shearY && !hasAspect(c) && c.elasticAlpha === 0 && c.stroke === 0;
}

function hasAspect(c: AugmentConfig): boolean {
  return !!c.aspect && (c.aspect[0] !== 1 || c.aspect[1] !== 1);
}

/** The flags that give this configuration, for messages: "rotate 10, translate 0.1, ...". */
export function describeAugment(c: AugmentConfig): string {
  const parts: string[] = [];
  if (c.degrees) parts.push(`rotate ${c.degrees}`);
  if (c.translate) parts.push(`translate ${c.translate}`);
  if (c.scale[0] !== 1 || c.scale[1] !== 1) parts.push(`scale ${c.scale.join(",")}`);
  if (c.shear) parts.push(`shear ${c.shear}`);
  if (c.shearY) parts.push(`shear-y ${c.shearY}`);
  if (hasAspect(c)) parts.push(`aspect ${c.aspect!.join(",")}`);
  if (c.interpolation && parts.length) parts.push(c.interpolation);
  if (c.elasticAlpha) parts.push(`elastic ${c.elasticAlpha},${c.elasticSigma}`);
  if (c.stroke) parts.push(`stroke ${c.stroke}`);
  return parts.join(", ") || "none";
}

/** Checks ranges; throws a RangeError whose message names the flag and says what is allowed. */
export function checkAugmentConfig(c: AugmentConfig): void {
  const bad = (flag: string, what: string) => {
    throw new RangeError(`--${flag} ${what}`);
  };
  const finite = (x: number) => Number.isFinite(x);
  if (!finite(c.degrees) || c.degrees < 0 || c.degrees > 180) bad("rotate", `must be a number of degrees in [0, 180], got ${c.degrees}`);
  if (!finite(c.translate) || c.translate < 0 || c.translate > 1) bad("translate", `must be a fraction of the image in [0, 1], got ${c.translate}`);
  if (!(finite(c.scale[0]) && finite(c.scale[1]) && c.scale[0] > 0 && c.scale[0] <= c.scale[1])) bad("scale", `must be LO,HI with 0 < LO <= HI (e.g. 0.9,1.1), got ${c.scale.join(",")}`);
  if (!finite(c.shear) || c.shear < 0 || c.shear >= 90) bad("shear", `must be a number of degrees in [0, 90), got ${c.shear}`);
  if (c.interpolation !== undefined && c.interpolation !== "nearest" && c.interpolation !== "bilinear") bad("interpolation", `must be nearest or bilinear, got ${c.interpolation}`);
  if (c.shearY !== undefined && (!finite(c.shearY) || c.shearY < 0 || c.shearY >= 90)) bad("shear-y", `must be a number of degrees in [0, 90), got ${c.shearY}`);
  if (c.aspect !== undefined && !(Array.isArray(c.aspect) && c.aspect.length === 2 && finite(c.aspect[0]) && finite(c.aspect[1]) && c.aspect[0] > 0 && c.aspect[0] <= c.aspect[1]))
    bad("aspect", `must be LO,HI with 0 < LO <= HI (width / height, e.g. 0.75,1.333), got ${c.aspect}`);
  if (!finite(c.elasticAlpha) || c.elasticAlpha < 0) bad("elastic", `alpha must be a number of pixels >= 0, got ${c.elasticAlpha}`);
  if (!finite(c.elasticSigma) || c.elasticSigma <= 0 || c.elasticSigma > 20) bad("elastic", `sigma must be a number of pixels in (0, 20], got ${c.elasticSigma}`);
  if (!finite(c.stroke) || c.stroke < 0 || c.stroke > 2) bad("stroke", `must be in [0, 2] (how far towards erosion or dilation: 1 is one 3x3 step, 2 thickens by two), got ${c.stroke}`);
}

/** The n x n matrix that smooths a length-n signal by the Gaussian (zeros beyond the ends): K[i, j] = taps[j - i + r]. */
export function gaussianBand(sigma: number, n: number): Float32Array {
  const taps = gaussianTaps(sigma);
  const r = (taps.length - 1) / 2;
  const k = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = Math.max(0, i - r); j <= Math.min(n - 1, i + r); j++) k[i * n + j] = taps[j - i + r];
  return k;
}

/** The Gaussian's taps, radius round(4 sigma) as scipy's gaussian_filter, normalised to sum 1. */
export function gaussianTaps(sigma: number): Float32Array {
  const r = Math.max(1, Math.round(4 * sigma));
  const taps = Float64Array.from({ length: 2 * r + 1 }, (_, i) => Math.exp(-((i - r) ** 2) / (2 * sigma * sigma)));
  const sum = taps.reduce((a, b) => a + b, 0);
  return Float32Array.from(taps, (t) => t / sum);
}

/** The per-batch random inputs of the augmentation, in its own graph and in a training step that contains it. */
export const AUGMENT_INPUTS = { theta: "augment.theta", noise: "augment.noise", stroke: "augment.stroke" } as const;

/**
 * The augmentation graph for [N, 1, rows, cols] images, on its own: input `images`, output `augmented` (see
 * augmentInto for the random inputs).
 */
export function buildAugmentGraph(c: AugmentConfig, rows: number, cols: number): Uint8Array {
  const g = new G("augment");
  const y = augmentInto(g, g.input("images", ["N", 1, rows, cols], "float32"), c, rows, cols);
  g.output(y, "augmented");
  return encodeModel(g.toModel({ docString: `onnx-mnist augmentation: ${JSON.stringify(c)}` }));
}

/**
 * Emits the augmentation of x ([N, 1, rows, cols]) into g and returns the augmented images; used on its own
 * (buildAugmentGraph) and at the head of the training step (src/program), where it saves a session run per step.
 * Its inputs (AUGMENT_INPUTS): `theta` [N, 2, 3], the affine map of output to input in affine_grid's normalised
 * coordinates; `noise` [N, 2, rows, cols] in [-1, 1] (x then y), when elastic; `stroke` [N, 1, 1, 1] in [-1, 1],
 * when stroke jitter is on. Nothing here is differentiated.
 */
export function augmentInto(g: G, x: Value, c: AugmentConfig, rows: number, cols: number): Value {
  return g.untaped(() => {
    const theta = g.input(AUGMENT_INPUTS.theta, ["N", 2, 3], "float32");
    // affine_grid's base grid (align_corners=0): pixel centres at (2i + 1)/W - 1, one row [x, y, 1] per pixel.
    const base = new Float32Array(rows * cols * 3);
    for (let i = 0; i < rows; i++)
      for (let j = 0; j < cols; j++) base.set([(2 * j + 1) / cols - 1, (2 * i + 1) / rows - 1, 1], (i * cols + j) * 3);
    // grid[n, p] = theta[n] @ [x_p, y_p, 1]: [1, HW, 3] x [N, 3, 2] -> [N, HW, 2]
    let grid = g.reshape(g.matMul(g.constant(base, [1, rows * cols, 3]), g.transpose(theta, [0, 2, 1])), ["N", rows, cols, 2]);
    if (c.elasticAlpha > 0) {
      const noise = g.input(AUGMENT_INPUTS.noise, ["N", 2, rows, cols], "float32");
      // Smoothing each noise plane P by the Gaussian (zeros beyond the edge) is S = K_rows P K_cols^T with banded
      // matrices K[i, j] = taps[j - i + r]: two MatMuls. (Measured: 5-10x faster than a separable Conv, whose
      // one-channel 33-tap im2col ORT runs as hundreds of tiny GEMMs.)
      if (rows !== cols) throw new RangeError(`--elastic needs square images, these are ${rows}x${cols}; leave it out (--elastic 0)`);
      const band = gaussianBand(c.elasticSigma, rows);
      // alpha pixels are 2 alpha / W in normalised coordinates: fold that factor into the second matrix.
      const k = (2 * c.elasticAlpha) / cols;
      const planes = g.matMul(g.constant(band, [rows, rows]), g.reshape(noise, ["N2", rows, cols]));
      const bandT = new Float32Array(rows * rows);
      for (let i = 0; i < rows; i++) for (let j = 0; j < rows; j++) bandT[j * rows + i] = band[i * rows + j] * k;
      const smooth = g.matMul(planes, g.constant(bandT, [rows, rows]));
      grid = g.add(grid, g.transpose(g.reshape(smooth, ["N", 2, rows, cols]), [0, 2, 3, 1]));
    }
    let y = g.node("GridSample", [x, grid], { align_corners: 0, mode: c.interpolation ?? "bilinear", padding_mode: "zeros" }, [{ shape: x.shape, dtype: "float32" }])[0];
    if (c.stroke > 0) {
      const w = g.input(AUGMENT_INPUTS.stroke, ["N", 1, 1, 1], "float32");
      const pool: PoolAttrs = { kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1] };
      if (c.stroke <= 1) {
        // One step either way in one MaxPool: s MaxPool(s y) with s = sign(w) is the dilation for w > 0 and the
        // erosion (-MaxPool(-y)) for w < 0, so y + |w| (that - y) is the header's formula, bit for bit, with one pool
        // and five image-sized elementwise ops instead of two and eight (measured: the augmented step of the
        // lenet5 recipe, batch 32, 2.5-4 % faster).
        const small = [{ shape: w.shape, dtype: "float32" as const }];
        const s = g.node("Sign", [w], {}, small)[0];
        const z = g.mul(s, g.maxPool(g.mul(s, y), pool));
        y = g.add(y, g.mul(g.node("Abs", [w], {}, small)[0], g.sub(z, y)));
      } else {
        const dilate = g.maxPool(y, pool);
        const erode = g.neg(g.maxPool(g.neg(y), pool));
        // thinner: min(-w, 1) of the way to one erosion (a second one leaves nothing of most MNIST strokes)
        const thin = g.clip(g.neg(w), 0, 1);
        const thick = g.clip(w, 0, 1);
        const out = g.add(g.add(y, g.mul(thick, g.sub(dilate, y))), g.mul(thin, g.sub(erode, y)));
        // thicker than one dilation: w - 1 of the way from one dilation to two (a 5x5 one)
        y = g.add(out, g.mul(g.relu(g.sub(w, g.scalar(1))), g.sub(g.maxPool(dilate, pool), dilate)));
      }
      // Then the preprocessing's stretch (src/image/preprocess.ts): every input the model meets has its strongest
      // pixel at 1, so an eroded digit must look like a thin-pen digit after preprocessing (a full-strength core,
      // faint edges), not like a faded one. Peaks under STRETCH_FLOOR are not stretched all the way (no speckle).
      const peak = emitReduce(g, "ReduceMax", y, { axes: [1, 2, 3], keepdims: true }, { shape: ["N", 1, 1, 1], dtype: "float32" })[0];
      y = g.div(y, g.clip(peak, STRETCH_FLOOR));
    }
    return y;
  });
}

/** One image's affine parameters, as torchvision's RandomAffine.get_params draws them. */
export interface AffineParams {
  angle: number; // degrees
  tx: number; // whole pixels
  ty: number;
  scale: number;
  shear: number; // degrees, parallel to x
  shearY?: number; // degrees, parallel to y
  aspect?: number; // width / height, at constant area, applied first
}

/**
 * affine_grid's theta (output -> input, normalised coordinates) for torchvision's F.affine with these
 * parameters: torchvision's _get_inverse_affine_matrix about the centre, rescaled from centred pixels.
 */
export function affineTheta(p: AffineParams, rows: number, cols: number): number[] {
  const rot = (p.angle * Math.PI) / 180;
  const sx = (p.shear * Math.PI) / 180;
  const sy = ((p.shearY ?? 0) * Math.PI) / 180;
  // torchvision's rotation-shear R(rot) SHy(sy) SHx(sx): [[a, b], [c, d]], det 1
  const a = Math.cos(rot - sy) / Math.cos(sy);
  const b = (-Math.cos(rot - sy) * Math.tan(sx)) / Math.cos(sy) - Math.sin(rot);
  const c = Math.sin(rot - sy) / Math.cos(sy);
  const d = (-Math.sin(rot - sy) * Math.tan(sx)) / Math.cos(sy) + Math.cos(rot);
  // The inverse, divided by the scale; an aspect stretch diag(sqrt r, 1/sqrt r) comes first in the forward map,
  // so its inverse scales the inverse's rows.
  const r = Math.sqrt(p.aspect ?? 1);
  const m = [d / r, -b / r, 0, -c * r, a * r, 0].map((v) => v / p.scale);
  m[2] = m[0] * -p.tx + m[1] * -p.ty;
  m[5] = m[3] * -p.tx + m[4] * -p.ty;
  // input_pixel = m @ [x_pixel, y_pixel, 1] with pixel = normalised * size / 2
  return [m[0], (m[1] * rows) / cols, (2 * m[2]) / cols, (m[3] * cols) / rows, m[4], (2 * m[5]) / rows];
}

export function drawAffine(c: AugmentConfig, rng: Rng, rows: number, cols: number): AffineParams {
  const angle = rng.uniform(-c.degrees, c.degrees);
  const tx = Math.round(rng.uniform(-c.translate * cols, c.translate * cols));
  const ty = Math.round(rng.uniform(-c.translate * rows, c.translate * rows));
  const scale = rng.uniform(c.scale[0], c.scale[1]);
  const shear = rng.uniform(-c.shear, c.shear);
  const p: AffineParams = { angle, tx, ty, scale, shear };
  // drawn only when asked for, so that configurations without them keep their random streams
  if (c.shearY) p.shearY = rng.uniform(-c.shearY, c.shearY);
  if (hasAspect(c)) p.aspect = Math.exp(rng.uniform(Math.log(c.aspect![0]), Math.log(c.aspect![1])));
  return p;
}

/**
 * The RNG of one batch: a function of (seed, epoch, batch) alone, so any batch can be regenerated without
 * replaying the ones before it (exact resume), and independent of the shuffling stream.
 */
export function batchRng(seed: number, epoch: number, batch: number): Rng {
  let h = 0x41756721; // "Aug!"
  for (const v of [seed, epoch, batch]) {
    h = Math.imul(h ^ (v >>> 0), 0x9e3779b1) >>> 0;
    h = (h ^ (h >>> 15)) >>> 0;
    h = Math.imul(h, 0x85ebca77) >>> 0;
    h = (h ^ (h >>> 13)) >>> 0;
  }
  return new Rng(h);
}

/** The random inputs of one batch: per image its theta and stroke weight, then the elastic noise of all. */
export function drawBatch(c: AugmentConfig, rng: Rng, n: number, rows: number, cols: number): { theta: Float32Array; noise?: Float32Array; stroke?: Float32Array } {
  const theta = new Float32Array(n * 6);
  const stroke = c.stroke > 0 ? new Float32Array(n) : undefined;
  for (let i = 0; i < n; i++) {
    theta.set(affineTheta(drawAffine(c, rng, rows, cols), rows, cols), i * 6);
    if (stroke) stroke[i] = rng.uniform(-c.stroke, c.stroke);
  }
  let noise: Float32Array | undefined;
  if (c.elasticAlpha > 0) {
    noise = new Float32Array(n * 2 * rows * cols);
    rng.fillUniform(noise, -1, 1);
  }
  return { theta, noise, stroke };
}

type Ort = Pick<typeof OrtCommon, "InferenceSession" | "Tensor">;

/** One batch's draws as the tensors that feed the augmentation's inputs (AUGMENT_INPUTS). */
export function augmentFeeds(ort: Pick<typeof OrtCommon, "Tensor">, d: ReturnType<typeof drawBatch>, n: number, rows: number, cols: number): Record<string, OrtCommon.Tensor> {
  const feeds: Record<string, OrtCommon.Tensor> = { [AUGMENT_INPUTS.theta]: new ort.Tensor("float32", d.theta, [n, 2, 3]) };
  if (d.noise) feeds[AUGMENT_INPUTS.noise] = new ort.Tensor("float32", d.noise, [n, 2, rows, cols]);
  if (d.stroke) feeds[AUGMENT_INPUTS.stroke] = new ort.Tensor("float32", d.stroke, [n, 1, 1, 1]);
  return feeds;
}

/**
 * The augmentation as a session of its own; `apply` replaces a batch with its augmented version. For training
 * steps without augmentation inside (build-graph's artifacts): a run of its own costs more than the same ops in
 * the step (measured: 1.22x the time of an epoch without augmentation for mycnn, against 1.07-1.10x inside).
 */
export class Augmenter {
  private constructor(
    private readonly ort: Ort,
    private readonly session: OrtCommon.InferenceSession,
    readonly config: AugmentConfig,
    private readonly rows: number,
    private readonly cols: number,
  ) {}

  static async create(ort: Ort, config: AugmentConfig, o: { rows?: number; cols?: number; threads?: number; sessionOptions?: OrtCommon.InferenceSession.SessionOptions } = {}): Promise<Augmenter> {
    checkAugmentConfig(config);
    const rows = o.rows ?? MNIST_SIDE;
    const cols = o.cols ?? MNIST_SIDE;
    const session = await ort.InferenceSession.create(buildAugmentGraph(config, rows, cols), {
      graphOptimizationLevel: "extended",
      ...(o.threads ? { intraOpNumThreads: o.threads, interOpNumThreads: 1 } : {}),
      ...o.sessionOptions,
    });
    return new Augmenter(ort, session, config, rows, cols);
  }

  /** Augments the first n images of x ([n, 1, rows, cols]) in place with the random draws of `rng`. */
  async apply(x: Float32Array, n: number, rng: Rng): Promise<void> {
    const { rows, cols } = this;
    const feeds: Record<string, OrtCommon.Tensor> = {
      images: new this.ort.Tensor("float32", x.subarray(0, n * rows * cols), [n, 1, rows, cols]),
      ...augmentFeeds(this.ort, drawBatch(this.config, rng, n, rows, cols), n, rows, cols),
    };
    const out = await this.session.run(feeds);
    x.set(out.augmented.data as Float32Array);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
