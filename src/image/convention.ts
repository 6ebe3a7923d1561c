/**
 * Pixel conventions: how a model wants its 28x28 grey pixels. Our images are p in [0, 1], white ink on black
 * (MNIST's own); a model trained elsewhere may want [0, 255], MNIST's mean/std normalisation, or dark ink on
 * white. A convention maps p to
 *
 *   ((invert ? 1 - p : p) * scale - mean) / std
 *
 * This is the single source of truth for the named presets, the CLI flags (eval, predict and train/build-graph
 * reuse `conventionOptions` verbatim) and their parsing. Browser-safe.
 */
import type { Options } from "yargs";

export interface PixelConvention {
  scale: number;
  mean: number;
  std: number;
  invert: boolean;
}

export class ConventionError extends Error {
  override name = "ConventionError";
}

/** MNIST's training-set pixel mean and standard deviation on [0, 1] (the tutorials' Normalize((0.1307,), (0.3081,))). */
export const MNIST_MEAN = 0.1307;
export const MNIST_STD = 0.3081;

export const PRESETS = {
  unit: { scale: 1, mean: 0, std: 1, invert: false },
  byte: { scale: 255, mean: 0, std: 1, invert: false },
  mnist: { scale: 1, mean: MNIST_MEAN, std: MNIST_STD, invert: false },
  "unit-inverted": { scale: 1, mean: 0, std: 1, invert: true },
  "byte-inverted": { scale: 255, mean: 0, std: 1, invert: true },
  "mnist-inverted": { scale: 1, mean: MNIST_MEAN, std: MNIST_STD, invert: true },
} as const satisfies Record<string, PixelConvention>;
export type PresetName = keyof typeof PRESETS;
export const PRESET_NAMES = Object.keys(PRESETS) as PresetName[];

/** What onnx-mnist's own models take. */
export const OWN_CONVENTION: PixelConvention = PRESETS.unit;

/** Applies `c` to pixels in [0, 1]: into `out` (default: in place). Returns `out`. */
export function applyConvention(c: PixelConvention, pixels: Float32Array, out: Float32Array = pixels): Float32Array {
  // ((invert ? 1 - p : p) * scale - mean) / std = a * p + b, one multiply-add per pixel.
  const k = c.scale / c.std;
  const a = c.invert ? -k : k;
  const b = ((c.invert ? c.scale : 0) - c.mean) / c.std;
  if (a === 1 && b === 0) {
    if (out !== pixels) out.set(pixels.subarray(0, out.length));
    return out;
  }
  const n = Math.min(pixels.length, out.length);
  for (let i = 0; i < n; i++) out[i] = a * pixels[i] + b;
  return out;
}

export function sameConvention(a: PixelConvention, b: PixelConvention): boolean {
  return a.scale === b.scale && a.mean === b.mean && a.std === b.std && a.invert === b.invert;
}

/** The preset `c` is, if any. */
export function presetOf(c: PixelConvention): PresetName | undefined {
  return PRESET_NAMES.find((n) => sameConvention(PRESETS[n], c));
}

/** A short description for printing: `pixels 0-255`, `pixels (p-0.1307)/0.3081`, `pixels 0-1, inverted`. */
export function describeConvention(c: PixelConvention): string {
  let range: string;
  if (c.mean === 0 && c.std === 1) range = `0-${fmt(c.scale)}`;
  else if (c.scale === 1) range = `(p-${fmt(c.mean)})/${fmt(c.std)}`;
  else range = `(${fmt(c.scale)}p-${fmt(c.mean)})/${fmt(c.std)}`;
  return `pixels ${range}${c.invert ? ", inverted (dark ink on white)" : ""}`;
}

const fmt = (x: number) => String(Number(x.toPrecision(6)));

/** The flags, for yargs: `train`, `build-graph`, `eval` and `predict` spread these into their options. */
export const conventionOptions = {
  "input-preset": {
    type: "string",
    choices: PRESET_NAMES as unknown as string[],
    describe: "pixels the model takes: unit [0,1], byte [0,255], mnist (p-0.1307)/0.3081, or one of them -inverted [default: detected, or unit for onnx-mnist models]",
    requiresArg: true,
  },
  "input-scale": { type: "number", describe: "pixels p in [0,1] are fed as (p*scale-mean)/std: the scale [default: 1]", requiresArg: true },
  "input-mean": { type: "number", describe: "the mean subtracted after scaling [default: 0]", requiresArg: true },
  "input-std": { type: "number", describe: "the standard deviation divided by [default: 1]", requiresArg: true },
  invert: { type: "boolean", describe: "feed 1-p: the model expects dark ink on a light background" },
} as const satisfies Record<string, Options>;

export interface ConventionFlags {
  inputPreset?: string;
  inputScale?: number;
  inputMean?: number;
  inputStd?: number;
  invert?: boolean;
}

/**
 * The convention the flags ask for, or undefined when none was given (detect it). A preset can be adjusted by
 * the other flags (`--input-preset byte --invert`); `--invert` alone means [0,1] inverted.
 */
export function conventionFromFlags(f: ConventionFlags): PixelConvention | undefined {
  const given = f.inputPreset !== undefined || f.inputScale !== undefined || f.inputMean !== undefined || f.inputStd !== undefined || f.invert !== undefined;
  if (!given) return undefined;
  let base: PixelConvention = PRESETS.unit;
  if (f.inputPreset !== undefined) {
    if (!(f.inputPreset in PRESETS)) throw new ConventionError(`--input-preset ${f.inputPreset}: unknown; choose one of ${PRESET_NAMES.join(", ")}`);
    base = PRESETS[f.inputPreset as PresetName];
  }
  const c = { scale: f.inputScale ?? base.scale, mean: f.inputMean ?? base.mean, std: f.inputStd ?? base.std, invert: f.invert ?? base.invert };
  for (const [flag, v] of [["input-scale", c.scale], ["input-mean", c.mean], ["input-std", c.std]] as const) {
    if (!Number.isFinite(v)) throw new ConventionError(`--${flag} must be a number, got ${v}`);
  }
  if (c.scale === 0) throw new ConventionError("--input-scale must not be 0 (every image would be the same)");
  if (!(c.std > 0)) throw new ConventionError(`--input-std must be greater than 0, got ${c.std}`);
  return c;
}
