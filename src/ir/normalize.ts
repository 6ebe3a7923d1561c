/**
 * One rule per IR op for the importer: how any opset (7 to 21) writes the op, normalised into the IR's form
 * (attributes in ONNX spelling with every default written out, inputs that newer opsets pass as tensors turned
 * into attributes), and the op's output shape. Shapes are static except the batch, "N". The table is typed as
 * complete over IR_OPS, so an op added to the IR without an import rule does not compile.
 */
import { broadcastShapes, shapeToString, type Dim } from "../graph/value.ts";
import type { IrAttr, IrOp } from "./ir.ts";
import { numbersOf, shortestFloat32, unsqueezeDims, type Known } from "./fold.ts";

export type Shape = Dim[];

export interface NormCtx {
  /** The node's ONNX name (unique), for messages. */
  name: string;
  opset: number;
  /** Attribute values as decoded from the proto (tensor attributes as Known). */
  attrs: Record<string, number | number[] | string | Known>;
  /** Input names ("" for an omitted optional input). */
  inputs: string[];
  /** Number of outputs the node declares. */
  outputs: number;
  shape(i: number): Shape;
  /** The input's value when known at import time (a constant or a folded chain), else undefined. */
  value(i: number): Known | undefined;
  /** The batch size the model was exported with, when its input had a fixed one (see import.ts). */
  exportedBatch?: number;
  /** A ModelError naming the node. */
  fail(message: string): never;
}

export interface Normalized {
  inputs: string[];
  attrs: Record<string, IrAttr>;
  /** Shapes of the outputs the IR node keeps (optional training outputs are dropped). */
  shapes: Shape[];
}

type Rule = (c: NormCtx) => Normalized;

// ---- attribute access ------------------------------------------------------------------------------------------

const num = (c: NormCtx, name: string, dflt: number): number => {
  const v = c.attrs[name];
  return typeof v === "number" ? v : dflt;
};
const list = (c: NormCtx, name: string): number[] | undefined => {
  const v = c.attrs[name];
  return Array.isArray(v) ? v : undefined;
};
const str = (c: NormCtx, name: string, dflt: string): string => {
  const v = c.attrs[name];
  return typeof v === "string" ? v : dflt;
};

/** A constant input's numbers (an axes or pads tensor); fails naming the node if it is computed at run time. */
function constInput(c: NormCtx, i: number, what: string): number[] | undefined {
  if (!c.inputs[i]) return undefined;
  const k = c.value(i);
  if (!k) c.fail(`${what} must be a constant (it is computed from the input at run time)`);
  try {
    return k.dtype === "float32" ? numbersOf(k, what).map(shortestFloat32) : numbersOf(k, what);
  } catch (e) {
    return c.fail((e as Error).message);
  }
}

function constScalar(c: NormCtx, i: number, what: string): number | undefined {
  const v = constInput(c, i, what);
  if (v && v.length !== 1) c.fail(`${what} must be a single value, got ${v.length}`);
  return v?.[0];
}

// ---- shape helpers ----------------------------------------------------------------------------------------------

const axis = (c: NormCtx, a: number, rank: number) => {
  const r = a < 0 ? a + rank : a;
  if (r < 0 || r >= rank) c.fail(`axis ${a} is out of range for a rank-${rank} input`);
  return r;
};

/** Product of dims; "N" allowed at most once and only as a factor of 1 otherwise ("N" * 1 = "N"). */
function product(c: NormCtx, dims: Shape, what: string): Dim {
  const n = dims.filter((d) => d === "N").length;
  const k = dims.reduce<number>((a, d) => (typeof d === "number" ? a * d : a), 1);
  if (n === 0) return k;
  if (n === 1 && k === 1) return "N";
  return c.fail(`${what} would merge the batch dimension with others (size N*${k}), which a per-image model cannot do`);
}

const same: Rule = (c) => ({ inputs: [c.inputs[0]], attrs: {}, shapes: [c.shape(0)] });

function broadcastRule(c: NormCtx): Normalized {
  try {
    return { inputs: c.inputs.slice(0, 2), attrs: {}, shapes: [broadcastShapes(c.shape(0), c.shape(1))] };
  } catch (e) {
    const fixed = c.exportedBatch !== undefined ? ` (the model was exported with a fixed batch of ${c.exportedBatch}: export it with dynamic_axes for the batch)` : "";
    return c.fail(`${(e as Error).message}${fixed}`);
  }
}

/** Explicit pads from auto_pad (SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the start). */
function padsOf(c: NormCtx, spatial: Shape, kernel: number[], strides: number[], dilations: number[]): number[] {
  const autoPad = str(c, "auto_pad", "NOTSET");
  const n = kernel.length;
  if (autoPad === "NOTSET") return list(c, "pads") ?? new Array(2 * n).fill(0);
  if (autoPad === "VALID") return new Array(2 * n).fill(0);
  if (autoPad !== "SAME_UPPER" && autoPad !== "SAME_LOWER") c.fail(`unknown auto_pad ${autoPad}`);
  const begin: number[] = [];
  const end: number[] = [];
  spatial.forEach((d, i) => {
    if (typeof d !== "number") c.fail(`auto_pad needs static image dims, got ${shapeToString(spatial)}`);
    const out = Math.ceil(d / strides[i]);
    const total = Math.max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - d);
    const small = Math.floor(total / 2);
    begin.push(autoPad === "SAME_UPPER" ? small : total - small);
    end.push(autoPad === "SAME_UPPER" ? total - small : small);
  });
  return [...begin, ...end];
}

/** Output size of a sliding window; ceil_mode drops a last window that would start in the end padding. */
function windowOut(d: number, k: number, s: number, dil: number, pb: number, pe: number, ceil: boolean): number {
  const span = d + pb + pe - ((k - 1) * dil + 1);
  let out = (ceil ? Math.ceil(span / s) : Math.floor(span / s)) + 1;
  if (ceil && (out - 1) * s >= d + pb) out--;
  return out;
}

function imageOf(c: NormCtx, what: string): Shape {
  const x = c.shape(0);
  if (x.length !== 4) c.fail(`${what} supports 2-D images [N, C, H, W], got ${shapeToString(x)}`);
  return x;
}

function windowAttrs(c: NormCtx, op: string, kernel: number[], withDilations: boolean) {
  const x = imageOf(c, op);
  const strides = list(c, "strides") ?? [1, 1];
  const dilations = withDilations ? (list(c, "dilations") ?? [1, 1]) : [1, 1];
  const pads = padsOf(c, x.slice(2), kernel, strides, dilations);
  return { x, strides, dilations, pads };
}

function spatialOut(c: NormCtx, x: Shape, kernel: number[], w: { strides: number[]; dilations: number[]; pads: number[] }, ceil: boolean): number[] {
  return [0, 1].map((i) => {
    const d = x[2 + i];
    if (typeof d !== "number") return c.fail(`needs static image dims, got ${shapeToString(x)}`);
    const out = windowOut(d, kernel[i], w.strides[i], w.dilations[i], w.pads[i], w.pads[i + 2], ceil);
    if (out < 1) c.fail(`kernel ${kernel[i]} does not fit the input size ${d}`);
    return out;
  });
}

function pool(op: "MaxPool" | "AveragePool"): Rule {
  return (c: NormCtx) => {
    const kernel = list(c, "kernel_shape");
    if (!kernel || kernel.length !== 2) c.fail("supports 2-D kernels only");
    if (c.outputs > 1 && op === "MaxPool") c.fail("its Indices output is not supported");
    const w = windowAttrs(c, op, kernel, op === "MaxPool");
    if (op === "AveragePool" && (list(c, "dilations") ?? [1, 1]).some((d) => d !== 1)) c.fail("dilated average pooling is not supported");
    const ceil = num(c, "ceil_mode", 0);
    const [h, wOut] = spatialOut(c, w.x, kernel, w, ceil === 1);
    const attrs: Record<string, IrAttr> = { kernel_shape: kernel, strides: w.strides, pads: w.pads, ceil_mode: ceil };
    if (op === "MaxPool") attrs.dilations = w.dilations;
    else attrs.count_include_pad = num(c, "count_include_pad", 0);
    return { inputs: [c.inputs[0]], attrs, shapes: [[w.x[0], w.x[1], h, wOut]] };
  };
}

/**
 * Softmax before opset 13 flattens the input to 2-D at `axis`; that equals a softmax over one axis only when
 * `axis` is the last one (the classifier case). The importer rewrites the other cases as Flatten -> Softmax ->
 * Reshape before they get here (see import.ts).
 */
function softmax(c: NormCtx): Normalized {
  const x = c.shape(0);
  const a = axis(c, num(c, "axis", c.opset >= 13 ? -1 : 1), x.length);
  if (c.opset < 13 && a !== x.length - 1) c.fail(`a softmax over the flattened dims ${a}.. of ${shapeToString(x)} (opset < 13) is not supported`);
  return { inputs: [c.inputs[0]], attrs: { axis: a }, shapes: [x] };
}

function matmulShape(c: NormCtx, a: Shape, b: Shape): Shape {
  if (a.length < 2 || b.length < 2) c.fail("supports operands of rank 2 or more");
  if (a[a.length - 1] !== b[b.length - 2]) c.fail(`inner dims differ: ${shapeToString(a)} x ${shapeToString(b)}`);
  let batch: Dim[];
  try {
    batch = broadcastShapes(a.slice(0, -2), b.slice(0, -2));
  } catch (e) {
    return c.fail((e as Error).message);
  }
  return [...batch, a[a.length - 2], b[b.length - 1]];
}

/** Resolves a static Reshape target against a shape with a symbolic batch, into the IR's ONNX-semantics form. */
function reshape(c: NormCtx, x: Shape, target: readonly (number | "N")[], allowzero: boolean): { shape: number[]; out: Shape } {
  if (allowzero && target.includes(0)) c.fail("allowzero with a 0 in the target is not supported");
  // The batch: a leading target entry that is N (from a Shape chain) or the exported fixed batch, applied to a
  // tensor that leads with the batch, copies the batch dim (0).
  const t = target.map((d, i) => {
    if (i === 0 && x[0] === "N" && (d === "N" || (c.exportedBatch !== undefined && d === c.exportedBatch))) return 0;
    if (d === "N") return x[i] === "N" ? 0 : target.includes(-1) ? c.fail(`target [${target}] puts the batch size at position ${i}`) : -1;
    return d;
  });
  const dims: Dim[] = t.map((d, i) => (d === 0 ? x[i] : d));
  const inferred = dims.indexOf(-1);
  const staticIn = x.reduce<number>((a, d) => (typeof d === "number" ? a * d : a), 1);
  const batchIn = x.includes("N");
  const batchOut = dims.includes("N");
  const known = dims.reduce<number>((a, d) => (typeof d === "number" && d > 0 ? a * d : a), 1);
  if (inferred >= 0) {
    if (batchIn && !batchOut) {
      if (staticIn !== known) c.fail(`target [${target}] of ${shapeToString(x)} would mix the batch into other dims`);
      dims[inferred] = "N";
    } else {
      if (staticIn % known) c.fail(`cannot reshape ${shapeToString(x)} to [${target}]`);
      dims[inferred] = staticIn / known;
    }
  } else if (batchIn !== batchOut || staticIn !== known) {
    const fixed = c.exportedBatch !== undefined ? ` (the model was exported with a fixed batch of ${c.exportedBatch}; export it with dynamic_axes for the batch)` : "";
    c.fail(`cannot reshape ${shapeToString(x)} to [${target}] for every batch size${fixed}`);
  }
  return { shape: t, out: dims };
}

// ---- the table ----------------------------------------------------------------------------------------------------

export const NORMALIZE: { [K in IrOp]: Rule } = {
  Add: broadcastRule,
  Sub: broadcastRule,
  Mul: broadcastRule,
  Div: broadcastRule,
  Relu: same,
  Sigmoid: same,
  Tanh: same,
  HardSwish: same,
  Identity: same,
  LeakyRelu: (c) => ({ ...same(c), attrs: { alpha: num(c, "alpha", 0.01) } }),
  Elu: (c) => ({ ...same(c), attrs: { alpha: num(c, "alpha", 1) } }),
  HardSigmoid: (c) => ({ ...same(c), attrs: { alpha: num(c, "alpha", 0.2), beta: num(c, "beta", 0.5) } }),
  PRelu: (c: NormCtx) => {
    const r = broadcastRule(c);
    return { ...r, shapes: [c.shape(0)] };
  },
  // Clip: min/max attributes before opset 11, optional inputs from 11.
  Clip: (c: NormCtx) => {
    const attrs: Record<string, IrAttr> = {};
    const min = c.opset < 11 ? (typeof c.attrs.min === "number" ? c.attrs.min : undefined) : constScalar(c, 1, "Clip min");
    const max = c.opset < 11 ? (typeof c.attrs.max === "number" ? c.attrs.max : undefined) : constScalar(c, 2, "Clip max");
    if (min !== undefined) attrs.min = min;
    if (max !== undefined) attrs.max = max;
    return { inputs: [c.inputs[0]], attrs, shapes: [c.shape(0)] };
  },
  Conv: (c: NormCtx) => {
    const wShape = c.shape(1);
    if (wShape.length !== 4) c.fail(`supports 2-D convolutions only (weight ${shapeToString(wShape)})`);
    const kernel = list(c, "kernel_shape") ?? (wShape.slice(2) as number[]);
    const w = windowAttrs(c, "Conv", kernel, true);
    const group = num(c, "group", 1);
    if (w.x[1] !== (wShape[1] as number) * group) c.fail(`input has ${w.x[1]} channels, the weight ${shapeToString(wShape)} with group ${group} expects ${(wShape[1] as number) * group}`);
    const [h, wOut] = spatialOut(c, w.x, kernel, w, false);
    return {
      inputs: c.inputs.slice(0, c.inputs[2] ? 3 : 2),
      attrs: { kernel_shape: kernel, strides: w.strides, pads: w.pads, dilations: w.dilations, group },
      shapes: [[w.x[0], wShape[0], h, wOut]],
    };
  },
  // BatchNormalization: opset 7-8 have `spatial` (0 = per-activation statistics, not supported); opsets 7-13 in
  // training exports declare up to 5 outputs, 14+ has training_mode and 3. The IR keeps only Y: the replay mode
  // decides between batch and running statistics.
  BatchNormalization: (c: NormCtx) => {
    if (num(c, "spatial", 1) !== 1) c.fail("spatial=0 (per-activation statistics) is not supported");
    const x = c.shape(0);
    if (x.length < 2) c.fail(`expects [N, C, ...], got ${shapeToString(x)}`);
    return { inputs: c.inputs.slice(0, 5), attrs: { epsilon: num(c, "epsilon", 1e-5), momentum: num(c, "momentum", 0.9) }, shapes: [x] };
  },
  MaxPool: pool("MaxPool"),
  AveragePool: pool("AveragePool"),
  GlobalAveragePool: (c: NormCtx) => {
    const x = imageOf(c, "GlobalAveragePool");
    return { inputs: [c.inputs[0]], attrs: {}, shapes: [[x[0], x[1], 1, 1]] };
  },
  Gemm: (c: NormCtx) => {
    const [a, b] = [c.shape(0), c.shape(1)];
    if (a.length !== 2 || b.length !== 2) c.fail(`expects 2-D operands, got ${shapeToString(a)} and ${shapeToString(b)}`);
    const transA = num(c, "transA", 0);
    const transB = num(c, "transB", 0);
    const [m, ka] = transA ? [a[1], a[0]] : [a[0], a[1]];
    const [kb, n] = transB ? [b[1], b[0]] : [b[0], b[1]];
    if (ka !== kb) c.fail(`inner dims differ: ${shapeToString(a)} x ${shapeToString(b)} (transA ${transA}, transB ${transB})`);
    return { inputs: c.inputs.slice(0, c.inputs[2] ? 3 : 2), attrs: { alpha: num(c, "alpha", 1), beta: num(c, "beta", 1), transA, transB }, shapes: [[m, n]] };
  },
  MatMul: (c) => ({ inputs: c.inputs.slice(0, 2), attrs: {}, shapes: [matmulShape(c, c.shape(0), c.shape(1))] }),
  Flatten: (c: NormCtx) => {
    const x = c.shape(0);
    const a = num(c, "axis", 1);
    const ax = a < 0 ? a + x.length : a;
    if (ax < 0 || ax > x.length) c.fail(`axis ${a} is out of range for ${shapeToString(x)}`);
    return { inputs: [c.inputs[0]], attrs: { axis: ax }, shapes: [[product(c, x.slice(0, ax), "Flatten"), product(c, x.slice(ax), "Flatten")]] };
  },
  // Reshape: the target is an input from opset 5; it must fold to a constant (see fold.ts).
  Reshape: (c: NormCtx) => {
    const k = c.value(1);
    if (!k) c.fail("its target shape is computed at run time and could not be folded to a constant");
    const target = Array.from(k.data);
    const { shape, out } = reshape(c, c.shape(0), target, num(c, "allowzero", 0) === 1);
    return { inputs: [c.inputs[0]], attrs: { shape }, shapes: [out] };
  },
  Squeeze: (c: NormCtx) => {
    const x = c.shape(0);
    const given = list(c, "axes") ?? constInput(c, 1, "Squeeze axes");
    const axes = (given ?? x.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => axis(c, a, x.length)).sort((p, q) => p - q);
    if (axes.some((a) => x[a] !== 1)) c.fail(`cannot squeeze axes [${axes}] of ${shapeToString(x)}`);
    return { inputs: [c.inputs[0]], attrs: { axes }, shapes: [x.filter((_, i) => !axes.includes(i))] };
  },
  Unsqueeze: (c: NormCtx) => {
    const x = c.shape(0);
    const given = list(c, "axes") ?? constInput(c, 1, "Unsqueeze axes");
    if (!given) c.fail("has no axes");
    const rank = x.length + given.length;
    const axes = given.map((a) => axis(c, a, rank)).sort((p, q) => p - q);
    // unsqueezeDims works on numbers; the batch stays where it was relative to the other dims.
    const marks = unsqueezeDims(x.map((_, i) => i + 2), axes);
    return { inputs: [c.inputs[0]], attrs: { axes }, shapes: [marks.map((m) => (m === 1 ? 1 : x[m - 2]))] };
  },
  Transpose: (c: NormCtx) => {
    const x = c.shape(0);
    const perm = list(c, "perm") ?? x.map((_, i) => x.length - 1 - i);
    if (perm.length !== x.length || [...perm].sort().some((p, i) => p !== i)) c.fail(`perm [${perm}] is not a permutation of ${x.length} axes`);
    return { inputs: [c.inputs[0]], attrs: { perm }, shapes: [perm.map((p) => x[p])] };
  },
  Concat: (c: NormCtx) => {
    const xs = c.inputs.map((_, i) => c.shape(i));
    const ax = axis(c, num(c, "axis", 1), xs[0].length);
    const out = [...xs[0]];
    for (const s of xs.slice(1)) {
      if (s.length !== out.length || s.some((d, i) => i !== ax && d !== out[i])) c.fail(`inputs ${xs.map(shapeToString).join(", ")} do not concatenate on axis ${ax}`);
      const [p, q] = [out[ax], s[ax]];
      if (typeof p !== "number" || typeof q !== "number") c.fail("cannot concatenate along the batch");
      out[ax] = p + q;
    }
    return { inputs: c.inputs, attrs: { axis: ax }, shapes: [out] };
  },
  // Pad: pads/value attributes before opset 11, inputs from 11 (`axes` from 18). Constant mode only.
  Pad: (c: NormCtx) => {
    const x = c.shape(0);
    const mode = str(c, "mode", "constant");
    if (mode !== "constant") c.fail(`mode '${mode}' is not supported (constant only)`);
    let pads = c.opset < 11 ? (list(c, "pads") ?? list(c, "paddings")) : constInput(c, 1, "Pad pads");
    if (!pads) c.fail("has no pads");
    const value = c.opset < 11 ? num(c, "value", 0) : (constScalar(c, 2, "Pad constant_value") ?? 0);
    const axes = c.opset >= 18 ? constInput(c, 3, "Pad axes") : undefined;
    if (axes) {
      const full = new Array(2 * x.length).fill(0);
      axes.forEach((a, i) => {
        const ax = axis(c, a, x.length);
        full[ax] = pads![i];
        full[ax + x.length] = pads![i + axes.length];
      });
      pads = full;
    }
    if (pads.length !== 2 * x.length) c.fail(`has ${pads.length} pads for a rank-${x.length} input`);
    const out = x.map((d, i) => {
      if (pads![i] === 0 && pads![i + x.length] === 0) return d;
      if (typeof d !== "number") return c.fail("cannot pad the batch dimension");
      return d + pads![i] + pads![i + x.length];
    });
    return { inputs: [c.inputs[0]], attrs: { pads, value }, shapes: [out] };
  },
  // ReduceMean: axes attribute up to opset 17, input from 18 (empty = all axes unless noop_with_empty_axes).
  ReduceMean: (c: NormCtx) => {
    const x = c.shape(0);
    const given = c.opset < 18 ? list(c, "axes") : constInput(c, 1, "ReduceMean axes");
    if ((!given || given.length === 0) && num(c, "noop_with_empty_axes", 0) === 1) c.fail("noop_with_empty_axes is not supported");
    const axes = (given && given.length ? given : x.map((_, i) => i)).map((a) => axis(c, a, x.length)).sort((p, q) => p - q);
    if (axes.includes(0)) c.fail("averaging over the batch is not a per-image model");
    const keepdims = num(c, "keepdims", 1);
    const out = keepdims ? x.map((d, i) => (axes.includes(i) ? 1 : d)) : x.filter((_, i) => !axes.includes(i));
    return { inputs: [c.inputs[0]], attrs: { axes, keepdims }, shapes: [out] };
  },
  // Dropout: ratio attribute before opset 12, then an optional input (with training_mode, which the replay mode
  // replaces: train mode drops, eval and inference do not).
  Dropout: (c: NormCtx) => {
    const ratio = c.opset < 12 ? num(c, "ratio", 0.5) : (constScalar(c, 1, "Dropout ratio") ?? 0.5);
    return { inputs: [c.inputs[0]], attrs: { ratio }, shapes: [c.shape(0)] };
  },
  Softmax: softmax,
  LogSoftmax: softmax,
};
