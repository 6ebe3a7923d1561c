/**
 * Any single-input MNIST classifier, made to look like ours: 784 pixels in [0, 1] per image in, 10 scores out.
 *
 * What differs between classifiers found in the wild, and how each is settled:
 * - the input: its name, its layout ([N,1,28,28], [N,28,28], [N,784], [N,28,28,1]: with one channel all four
 *   hold the same 784 numbers per image in the same order, so only the tensor's dims differ) and its batch,
 *   dynamic or fixed (a fixed batch B runs in chunks of B, the last padded with blank images);
 * - the output: the one with 10 scores per image (by a trial run), or, among several, the one named like
 *   logits/output/probs; what it holds (logits, probabilities, log-probabilities: from the op that makes it,
 *   else from the values). Probabilities become scores as log p, so that softmax(scores) = p: everything
 *   downstream treats scores as logits and never takes a softmax of probabilities;
 * - the pixel convention (src/image/convention.ts): given by the user, ours for onnx-mnist models (their
 *   metadata says so), else detected by classifying a calibration sample of training images under every
 *   preset and keeping the most accurate.
 * Browser-safe: the page and the CLI both use it, each with its own `ort` module.
 */
import type { InferenceSession, Tensor } from "onnxruntime-common";
import { ModelError } from "../runtime/check-model.ts";
import { decodeModel } from "../onnx/proto.ts";
import { applyConvention, describeConvention, OWN_CONVENTION, PRESET_NAMES, PRESETS, presetOf, type PixelConvention, type PresetName } from "../image/convention.ts";
import type { OutputKind } from "../ir/ir.ts";

export type { OutputKind };
export type Layout = "nchw" | "nhw" | "flat" | "nhwc";

const PX = 28 * 28;
/** MNIST's digits: what a classifier from elsewhere must score. Our own models may have more classes (a spec's `classes`). */
const CLASSES = 10;
const LAYOUT_DIMS: Record<Layout, number[]> = { nchw: [1, 28, 28], nhw: [28, 28], flat: [784], nhwc: [28, 28, 1] };
const EXPECTED = "a classifier of 28x28 grey images: one float input [N,1,28,28], [N,28,28], [N,784] or [N,28,28,1] and an output of 10 scores per image";

export class NonFiniteError extends Error {
  override name = "NonFiniteError";
}

/** What we learn from the model's bytes without running it (optional: the page and the CLI both have them). */
export interface GraphFacts {
  metadata: Map<string, string>;
  /** The op type that produces each graph output. */
  producers: Map<string, string>;
}

export function graphFacts(bytes: Uint8Array): GraphFacts {
  const m = decodeModel(bytes);
  const producers = new Map<string, string>();
  for (const n of m.graph.node) for (const o of n.output) producers.set(o, n.op_type);
  return { metadata: new Map(m.metadata_props.map((p) => [p.key, p.value])), producers };
}

export interface Calibration {
  /** Pixels in [0, 1], 784 per image. */
  images: Float32Array;
  labels: ArrayLike<number>;
  count: number;
}

export interface PixelHandling {
  convention: PixelConvention;
  preset?: PresetName;
  source: "given" | "onnx-mnist" | "detected";
  /** Accuracy on the calibration images under each preset (detected only). */
  calibration?: { images: number; accuracy: Partial<Record<PresetName, number>> };
}

type OrtLike = { Tensor: new (type: "float32", data: Float32Array, dims: readonly number[]) => Tensor };

/** A model ready to classify: `scores` takes pixels in [0, 1] and gives logits-like scores [n, 10]. */
export class ClassifierAdapter {
  private constructor(
    private readonly ort: OrtLike,
    private readonly session: InferenceSession,
    readonly name: string,
    readonly input: { name: string; shape: (number | string)[]; layout: Layout; fixedBatch?: number },
    readonly output: { name: string; kind: OutputKind },
    public pixels: PixelHandling,
    /** Scores per image: 10, or an onnx-mnist model's own number of classes. */
    readonly classes: number,
  ) {}

  /**
   * Works out input, output and pixel convention. `calibration` is called only when the convention must be
   * detected (neither given nor an onnx-mnist model), so callers can read training images lazily.
   */
  static async create(
    ort: OrtLike,
    session: InferenceSession,
    name: string,
    o: { facts?: GraphFacts; convention?: PixelConvention; calibration?: () => Promise<Calibration> } = {},
  ): Promise<ClassifierAdapter> {
    const input = findInput(session, name);
    // Two blank images (or the fixed batch): enough to tell a per-image output from a fixed one.
    const n = input.fixedBatch ?? 2;
    const trial = new Float32Array(n * PX);
    let outs: InferenceSession.ReturnType;
    try {
      outs = await session.run({ [input.name]: new ort.Tensor("float32", trial, [n, ...LAYOUT_DIMS[input.layout]]) });
    } catch (e) {
      throw new ModelError(`${name}: running it on ${n} blank image(s) of shape [${n},${LAYOUT_DIMS[input.layout]}] failed (${firstLine(e)}); expected ${EXPECTED}`);
    }
    // A model.onnx written by onnx-mnist says how many classes it scores (a spec may have more than 10).
    const meta = o.facts?.metadata;
    const ownClasses = Number(meta?.get("onnx_mnist.classes"));
    const classes = Number.isInteger(ownClasses) && ownClasses >= CLASSES ? ownClasses : CLASSES;
    const outName = pickOutput(session, outs, n, name, classes);
    const raw = outs[outName].data as Float32Array;
    const kind = outputKind(o.facts?.producers.get(outName), raw, classes);
    // A model.onnx written by onnx-mnist says what it takes: [0,1] for our specs, an imported model's own
    // convention (`onnx_mnist.pixels`) for one fine-tuned here.
    const own = meta?.has("onnx_mnist.model") ? (meta.has("onnx_mnist.pixels") ? (JSON.parse(meta.get("onnx_mnist.pixels")!) as PixelConvention) : OWN_CONVENTION) : undefined;
    const pixels: PixelHandling = o.convention
      ? { convention: o.convention, preset: presetOf(o.convention), source: "given" }
      : own
        ? { convention: own, preset: presetOf(own), source: "onnx-mnist" }
        : { convention: OWN_CONVENTION, preset: "unit", source: "detected" };
    const adapter = new ClassifierAdapter(ort, session, name, input, { name: outName, kind }, pixels, classes);
    if (pixels.source === "detected") {
      if (!o.calibration) throw new ModelError(`${name}: its pixel convention must be detected on training images, and none are available; give it (--input-preset)`);
      adapter.pixels = await adapter.detectConvention(await o.calibration());
    }
    return adapter;
  }

  /** Scores [n, classes] (logits or log-probabilities) for n images of 784 pixels in [0, 1], under `convention`. */
  async scores(pixels: Float32Array, n: number, convention: PixelConvention = this.pixels.convention, o: { allowNonFinite?: boolean } = {}): Promise<Float32Array> {
    const b = this.input.fixedBatch ?? n;
    const dims = LAYOUT_DIMS[this.input.layout];
    const out = new Float32Array(n * this.classes);
    const x = new Float32Array(b * PX);
    let bad = 0;
    for (let start = 0; start < n; start += b) {
      const m = Math.min(b, n - start);
      applyConvention(convention, pixels.subarray(start * PX, (start + m) * PX), x.subarray(0, m * PX));
      // Padding: blank images under the same convention (their scores are dropped).
      if (m < b) applyConvention(convention, new Float32Array((b - m) * PX), x.subarray(m * PX));
      const res = await this.session.run({ [this.input.name]: new this.ort.Tensor("float32", x, [this.input.fixedBatch ?? m, ...dims]) }, [this.output.name]);
      const raw = res[this.output.name].data as Float32Array;
      if (raw.length !== (this.input.fixedBatch ?? m) * this.classes) throw new ModelError(`${this.name}: output ${this.output.name} gave ${raw.length} values for ${this.input.fixedBatch ?? m} images, expected ${this.classes} each`);
      for (let i = 0; i < m * this.classes; i++) {
        const v = raw[i];
        if (!Number.isFinite(v)) bad++;
        // log p of a probability: softmax(log p) = p. A p of 0 (underflow) becomes float32's smallest log.
        out[start * this.classes + i] = this.output.kind === "probabilities" ? Math.log(Math.max(v, 1e-45)) : v;
      }
    }
    if (bad && !o.allowNonFinite) throw new NonFiniteError(`${this.name}: the model produced non-finite outputs (NaN or Infinity: ${bad} of ${n * this.classes} values); its weights may have diverged, or its inputs are not what it expects (${describeConvention(convention)})`);
    return out;
  }

  /**
   * Accuracy under each preset; keeps the best. Within a point of the best accuracy the lower cross-entropy
   * decides: a ReLU network without normalisation is nearly scale-invariant in its argmax (0-1 and 0-255 rank
   * alike), but fed 255x its inputs it is absurdly overconfident, and its loss says so. Exact ties: the earlier preset.
   */
  private async detectConvention(c: Calibration): Promise<PixelHandling> {
    const accuracy: Partial<Record<PresetName, number>> = {};
    const loss: Partial<Record<PresetName, number>> = {};
    for (const p of PRESET_NAMES) {
      const s = await this.scores(c.images, c.count, PRESETS[p], { allowNonFinite: true });
      let right = 0;
      let nll = 0;
      for (let i = 0; i < c.count; i++) {
        const row = s.subarray(i * this.classes, (i + 1) * this.classes);
        let arg = 0;
        for (let k = 1; k < this.classes; k++) if (row[k] > row[arg]) arg = k;
        if (!row.every(Number.isFinite)) {
          nll += Infinity;
          continue;
        }
        let z = 0;
        for (let k = 0; k < this.classes; k++) z += Math.exp(row[k] - row[arg]);
        nll += Math.log(z) + row[arg] - row[c.labels[i]]; // -log softmax(row)[label]
        if (arg === c.labels[i]) right++;
      }
      accuracy[p] = right / c.count;
      loss[p] = nll / c.count;
    }
    const top = Math.max(...PRESET_NAMES.map((p) => accuracy[p]!));
    const close = PRESET_NAMES.filter((p) => accuracy[p]! >= top - 0.01);
    const best = close.reduce((a, b) => (loss[b]! < loss[a]! ? b : a));
    return { convention: PRESETS[best], preset: best, source: "detected", calibration: { images: c.count, accuracy } };
  }

  /** One line: `input x [1,1,28,28] fixed batch 1 -> chunks of 1; output 37: log-probabilities; pixels 0-255 (detected: ...)`. */
  describe(): string {
    const i = this.input;
    const shape = `[${i.shape.map((d) => (typeof d === "number" && d >= 0 ? d : "N")).join(",")}]`;
    const batch = i.fixedBatch ? `fixed batch ${i.fixedBatch} -> chunks of ${i.fixedBatch}` : "dynamic batch";
    return `input ${i.name} ${shape} ${batch}; output ${this.output.name}: ${this.output.kind}; ${describeConvention(this.pixels.convention)} (${this.pixelSource()})`;
  }

  private pixelSource(): string {
    const p = this.pixels;
    if (p.source === "given") return "given";
    if (p.source === "onnx-mnist") return "onnx-mnist model";
    const acc = p.calibration!.accuracy;
    const ranked = PRESET_NAMES.filter((n) => n !== p.preset).sort((a, b) => acc[b]! - acc[a]!);
    const pct = (x: number) => `${(100 * x).toFixed(1)} %`;
    const other = ranked[0];
    return `detected: ${pct(acc[p.preset!]!)} on ${p.calibration!.images} calibration images vs ${pct(acc[other]!)} for ${describeConvention(PRESETS[other]).replace(/^pixels /, "")}`;
  }

  /** The handling as JSON fields (eval --json). */
  toJSON() {
    const p = this.pixels;
    return {
      input: { name: this.input.name, shape: this.input.shape, layout: this.input.layout, batch: this.input.fixedBatch ?? "dynamic" },
      output: { name: this.output.name, kind: this.output.kind },
      pixels: { ...p.convention, preset: p.preset ?? null, source: p.source, calibration: p.calibration ?? null, description: describeConvention(p.convention) },
      handling: this.describe(),
    };
  }
}

function findInput(session: InferenceSession, name: string): ClassifierAdapter["input"] {
  const meta = (n: string) => session.inputMetadata?.find((m) => m.name === n);
  const has = () => `${describeValues(session.inputNames, session.inputMetadata)} -> ${describeValues(session.outputNames, session.outputMetadata)}`;
  if (session.inputNames.length !== 1) throw new ModelError(`${name}: has ${session.inputNames.length} inputs (${has()}); expected ${EXPECTED}`);
  const inName = session.inputNames[0];
  const m = meta(inName);
  if (m && !m.isTensor) throw new ModelError(`${name}: its input ${inName} is not a tensor (${has()}); expected ${EXPECTED}`);
  if (m?.isTensor && m.type !== "float32") throw new ModelError(`${name}: its input ${inName} is ${m.type}, not float32 (${has()}); expected ${EXPECTED}`);
  const shape = m?.isTensor ? [...m.shape] : [];
  if (shape.length === 0) return { name: inName, shape: ["N", 1, 28, 28], layout: "nchw" }; // unknown: the trial run will tell
  const rest = shape.slice(1).join(",");
  const layout = (Object.keys(LAYOUT_DIMS) as Layout[]).find((l) => LAYOUT_DIMS[l].join(",") === rest);
  if (!layout) throw new ModelError(`${name}: its input ${inName} has shape [${shape.map(dimText)}] (${has()}); expected ${EXPECTED}`);
  const b = shape[0];
  return { name: inName, shape, layout, fixedBatch: typeof b === "number" && b > 0 ? b : undefined };
}

/** The output with 10 scores per image; among several, the one named like logits/output/probs/scores. */
function pickOutput(session: InferenceSession, outs: InferenceSession.ReturnType, n: number, name: string, classes: number): string {
  const tens = session.outputNames.filter((o) => {
    const t = outs[o];
    return t && t.type === "float32" && (t.data as Float32Array).length === n * classes;
  });
  const has = () => session.outputNames.map((o) => `${o} ${outs[o]?.type ?? "?"} [${outs[o]?.dims?.join(",") ?? "?"}]`).join(", ");
  if (tens.length === 0) throw new ModelError(`${name}: no output gives ${classes} float scores per image (for ${n} image${n === 1 ? "" : "s"}: ${has()}); expected ${EXPECTED}`);
  if (tens.length === 1) return tens[0];
  for (const re of [/logit/i, /prob/i, /output|score|pred/i]) {
    const named = tens.filter((o) => re.test(o));
    if (named.length === 1) return named[0];
  }
  throw new ModelError(`${name}: ${tens.length} outputs give ${classes} scores per image (${tens.join(", ")}) and none is named like logits, probs or output; expected one`);
}

/** From the op that makes the output, else from its values on the trial batch. */
function outputKind(producer: string | undefined, raw: Float32Array, classes: number): OutputKind {
  if (producer === "Softmax") return "probabilities";
  if (producer === "LogSoftmax") return "log-probabilities";
  const rows = raw.length / classes;
  let probs = true;
  let logProbs = true;
  for (let r = 0; r < rows; r++) {
    const row = raw.subarray(r * classes, (r + 1) * classes);
    const sum = row.reduce((a, b) => a + b, 0);
    const expSum = row.reduce((a, b) => a + Math.exp(b), 0);
    if (!(row.every((v) => v >= 0 && v <= 1) && Math.abs(sum - 1) < 1e-3)) probs = false;
    if (!(row.every((v) => v <= 0) && Math.abs(expSum - 1) < 1e-3)) logProbs = false;
  }
  return probs ? "probabilities" : logProbs ? "log-probabilities" : "logits";
}

function describeValues(names: readonly string[], meta: readonly InferenceSession.ValueMetadata[] | undefined): string {
  if (names.length === 0) return "(none)";
  return names
    .map((n) => {
      const m = meta?.find((x) => x.name === n);
      if (!m) return n;
      if (!m.isTensor) return `${n} (not a tensor)`;
      return `${n} ${m.type} [${m.shape.map(dimText).join(",")}]`;
    })
    .join(", ");
}

const dimText = (d: number | string) => (typeof d === "number" && d >= 0 ? String(d) : d === "" || d === -1 ? "?" : String(d));

function firstLine(e: unknown): string {
  return String((e as Error)?.message ?? e).split("\n")[0].slice(0, 300);
}
