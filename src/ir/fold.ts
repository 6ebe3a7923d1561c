/**
 * Constant folding for the importer: the shape-computing chains exporters write around a model
 * (`x.view(x.size(0), -1)` becomes Shape -> Gather -> Unsqueeze -> Concat -> Reshape) are evaluated here, in JS,
 * so they never reach the IR. Every image dim is known when importing; only the batch is symbolic, written "N".
 * An integer value may hold "N" as an element (a shape's leading entry) as long as the arithmetic keeps it
 * exactly N (N * 1, N + 0, N / 1, min/max with itself); anything else (N * 32 as a size) cannot be expressed in a
 * static Reshape target and is a FoldError, which the importer turns into an error naming the node.
 */

/** An element of a folded integer tensor: a number, or the batch size N itself. */
export type Sym = number | "N";

/** ONNX element types the folder handles, by their TensorProto.DataType names. */
export type ElemType = "float32" | "float64" | "float16" | "int64" | "int32" | "int16" | "int8" | "uint8" | "bool";

/** A tensor whose value is known at import time. */
export interface Known {
  dtype: ElemType;
  dims: number[];
  /** Elements in row-major order (booleans as 0/1). */
  data: ArrayLike<Sym>;
}

export class FoldError extends Error {
  override name = "FoldError";
}

export const FLOAT_TYPES: ReadonlySet<ElemType> = new Set(["float32", "float64", "float16"]);

const size = (dims: readonly number[]) => dims.reduce((a, b) => a * b, 1);

export function scalarOf(k: Known): Sym {
  if (k.data.length !== 1) throw new FoldError(`expected a single value, got ${k.data.length} (shape [${k.dims}])`);
  return k.data[0];
}

/** The elements as plain numbers; a FoldError if one of them is the batch size. */
export function numbersOf(k: Known, what: string): number[] {
  return Array.from(k.data, (v) => {
    if (v === "N") throw new FoldError(`${what} depends on the batch size`);
    return v;
  });
}

function known(dtype: ElemType, dims: number[], data: ArrayLike<Sym>): Known {
  if (data.length !== size(dims)) throw new Error(`internal error: ${data.length} values for dims [${dims}]`);
  return { dtype, dims, data };
}

/**
 * Float attributes (and float tensors turned into attributes) are float32 in ONNX: PyTorch's momentum 0.1 arrives as 0.8999999761581421. The shortest
 * decimal that rounds to the same float32 (0.9) is what the exporter meant, and keeps the arithmetic done in
 * float64 from those attributes (1 - momentum) exactly PyTorch's.
 */
export function shortestFloat32(f: number): number {
  if (!Number.isFinite(f)) return f;
  for (let digits = 1; digits <= 9; digits++) {
    const d = Number(f.toPrecision(digits));
    if (Math.fround(d) === Math.fround(f)) return d;
  }
  return f;
}

// ---- arithmetic on numbers and N, rounded to the element type -------------------------------------------------

function round(dtype: ElemType, v: number): number {
  if (FLOAT_TYPES.has(dtype)) return dtype === "float32" ? Math.fround(v) : v;
  if (dtype === "bool") return v ? 1 : 0;
  return Math.trunc(v);
}

type Binary = (a: Sym, b: Sym, dtype: ElemType) => Sym;

const inexpressible = (op: string, a: Sym, b: Sym) => new FoldError(`${op}(${a}, ${b}) depends on the batch size in a way a static shape cannot express`);

const arith =
  (op: string, f: (a: number, b: number) => number, identity: (a: Sym, b: Sym) => Sym | undefined): Binary =>
  (a, b, dtype) => {
    // (Integer Div truncates toward zero, as ONNX's does: round() does that for integer types.)
    if (a !== "N" && b !== "N") return round(dtype, f(a, b));
    const r = identity(a, b);
    if (r === undefined) throw inexpressible(op, a, b);
    return r;
  };

const BINARY: Record<string, Binary> = {
  Add: arith("Add", (a, b) => a + b, (a, b) => (b === 0 ? a : a === 0 ? b : undefined)),
  Sub: arith("Sub", (a, b) => a - b, (a, b) => (b === 0 ? a : undefined)),
  Mul: arith("Mul", (a, b) => a * b, (a, b) => (b === 1 ? a : a === 1 ? b : undefined)),
  Div: arith("Div", (a, b) => a / b, (a, b) => (b === 1 ? a : a === b ? 1 : undefined)),
  Max: arith("Max", Math.max, (a, b) => (a === b ? a : undefined)),
  Min: arith("Min", Math.min, (a, b) => (a === b ? a : undefined)),
  Equal: (a, b) => {
    if (a === b) return 1;
    if (a === "N" || b === "N") throw inexpressible("Equal", a, b);
    return 0;
  },
};

// ---- broadcasting and indexing ------------------------------------------------------------------------------

function broadcast(a: number[], b: number[]): number[] {
  const n = Math.max(a.length, b.length);
  return Array.from({ length: n }, (_, i) => {
    const da = a[i - (n - a.length)] ?? 1;
    const db = b[i - (n - b.length)] ?? 1;
    if (da !== db && da !== 1 && db !== 1) throw new FoldError(`shapes [${a}] and [${b}] do not broadcast`);
    return Math.max(da, db);
  });
}

/** Row-major strides of `dims`. */
function strides(dims: number[]): number[] {
  const s = new Array<number>(dims.length);
  let acc = 1;
  for (let i = dims.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= dims[i];
  }
  return s;
}

/** Elementwise over broadcast inputs. */
function elementwise(xs: Known[], dtype: ElemType, f: (vals: Sym[]) => Sym): Known {
  const dims = xs.map((x) => x.dims).reduce(broadcast);
  const out = new Array<Sym>(size(dims));
  const os = strides(dims);
  const xStrides = xs.map((x) => {
    const s = strides(x.dims);
    const pad = dims.length - x.dims.length;
    return dims.map((_, i) => (i < pad || x.dims[i - pad] === 1 ? 0 : s[i - pad]));
  });
  for (let i = 0; i < out.length; i++) {
    const vals = xs.map((x, k) => {
      let off = 0;
      let rem = i;
      for (let d = 0; d < dims.length; d++) {
        const q = Math.floor(rem / os[d]);
        rem -= q * os[d];
        off += q * xStrides[k][d];
      }
      return x.data[off];
    });
    out[i] = f(vals);
  }
  return known(dtype, dims, out);
}

const axisOf = (axis: number, rank: number) => {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new FoldError(`axis ${axis} is out of range for rank ${rank}`);
  return a;
};

/** Gathers slices along `axis` at `indices` (negative indices count from the end). */
function gather(x: Known, indices: Known, axis: number): Known {
  const ax = axisOf(axis, x.dims.length);
  const idx = numbersOf(indices, "a Gather index").map((i) => (i < 0 ? i + x.dims[ax] : i));
  if (idx.some((i) => i < 0 || i >= x.dims[ax])) throw new FoldError(`Gather index out of range [0, ${x.dims[ax]})`);
  const outer = size(x.dims.slice(0, ax));
  const inner = size(x.dims.slice(ax + 1));
  const out: Sym[] = [];
  for (let o = 0; o < outer; o++) for (const i of idx) for (let k = 0; k < inner; k++) out.push(x.data[(o * x.dims[ax] + i) * inner + k]);
  return known(x.dtype, [...x.dims.slice(0, ax), ...indices.dims, ...x.dims.slice(ax + 1)], out);
}

function concat(xs: Known[], axis: number): Known {
  const rank = xs[0].dims.length;
  const ax = axisOf(axis, rank);
  const outer = size(xs[0].dims.slice(0, ax));
  const out: Sym[] = [];
  for (let o = 0; o < outer; o++)
    for (const x of xs) {
      const chunk = size(x.dims.slice(ax));
      for (let k = 0; k < chunk; k++) out.push(x.data[o * chunk + k]);
    }
  const dims = [...xs[0].dims];
  dims[ax] = xs.reduce((a, x) => a + x.dims[ax], 0);
  return known(xs[0].dtype, dims, out);
}

/** ONNX Slice on one tensor: starts/ends clamped, negative steps allowed. */
function slice(x: Known, starts: number[], ends: number[], axes: number[], steps: number[]): Known {
  const rank = x.dims.length;
  const ranges = x.dims.map((d) => ({ start: 0, step: 1, count: d }));
  axes.forEach((a, i) => {
    const ax = axisOf(a, rank);
    const d = x.dims[ax];
    const step = steps[i] ?? 1;
    if (step === 0) throw new FoldError("Slice step 0");
    const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v < 0 ? v + d : v, lo), hi);
    const start = step > 0 ? clamp(starts[i], 0, d) : clamp(starts[i], -1, d - 1);
    const end = step > 0 ? clamp(ends[i], 0, d) : clamp(ends[i], -1, d - 1);
    const count = Math.max(0, Math.ceil((end - start) / step));
    ranges[ax] = { start, step, count };
  });
  const dims = ranges.map((r) => r.count);
  const xs = strides(x.dims);
  const out: Sym[] = [];
  const visit = (d: number, off: number) => {
    if (d === rank) return void out.push(x.data[off]);
    const r = ranges[d];
    for (let i = 0; i < r.count; i++) visit(d + 1, off + (r.start + i * r.step) * xs[d]);
  };
  visit(0, 0);
  return known(x.dtype, dims, out);
}

function transpose(x: Known, perm: number[]): Known {
  const dims = perm.map((p) => x.dims[p]);
  const xs = strides(x.dims);
  const out: Sym[] = [];
  const visit = (d: number, off: number) => {
    if (d === dims.length) return void out.push(x.data[off]);
    for (let i = 0; i < dims[d]; i++) visit(d + 1, off + i * xs[perm[d]]);
  };
  visit(0, 0);
  return known(x.dtype, dims, out);
}

/** A static reshape of a known tensor (0 copies the input dim, -1 is inferred). */
export function reshapeDims(dims: number[], target: number[], allowzero = false): number[] {
  const out = target.map((d, i) => (d === 0 && !allowzero ? dims[i] : d));
  const inferred = out.indexOf(-1);
  if (inferred >= 0) {
    const rest = size(out.filter((_, i) => i !== inferred));
    if (rest === 0 || size(dims) % rest) throw new FoldError(`cannot reshape [${dims}] to [${target}]`);
    out[inferred] = size(dims) / rest;
  }
  if (size(out) !== size(dims)) throw new FoldError(`cannot reshape [${dims}] to [${target}]`);
  return out;
}

function castTo(dtype: ElemType, v: Sym): Sym {
  if (v === "N") {
    if (FLOAT_TYPES.has(dtype) || dtype === "bool") throw new FoldError(`Cast of the batch size to ${dtype}`);
    return v;
  }
  if (FLOAT_TYPES.has(dtype)) return round(dtype, v);
  if (dtype === "bool") return v ? 1 : 0;
  return Math.trunc(v);
}

// ---- the folding table -------------------------------------------------------------------------------------------

export interface FoldCtx {
  /** Attribute lookup (already decoded to numbers, number lists or strings). */
  attr(name: string): number | number[] | string | Known | undefined;
  opset: number;
}

type FoldRule = (xs: (Known | undefined)[], ctx: FoldCtx) => Known[];

const int = (ctx: FoldCtx, name: string, dflt: number): number => {
  const v = ctx.attr(name);
  return typeof v === "number" ? v : dflt;
};
const ints = (ctx: FoldCtx, name: string): number[] | undefined => {
  const v = ctx.attr(name);
  return Array.isArray(v) ? v : undefined;
};
const need = (x: Known | undefined, what: string): Known => {
  if (!x) throw new FoldError(`missing input ${what}`);
  return x;
};

/** Axes from the attribute (old opsets) or from the second input (newer ones). */
function axesOf(xs: (Known | undefined)[], ctx: FoldCtx, at: number): number[] | undefined {
  return ints(ctx, "axes") ?? (xs[at] ? numbersOf(xs[at]!, "axes") : undefined);
}

export function unsqueezeDims(dims: number[], axes: number[]): number[] {
  const rank = dims.length + axes.length;
  const norm = axes.map((a) => axisOf(a, rank)).sort((a, b) => a - b);
  const out = [...dims];
  for (const a of norm) out.splice(a, 0, 1);
  return out;
}

const binary =
  (op: string): FoldRule =>
  ([a, b]) => {
    const x = need(a, "A");
    const y = need(b, "B");
    const dtype = op === "Equal" ? "bool" : x.dtype;
    return [elementwise([x, y], dtype, ([p, q]) => BINARY[op](p, q, x.dtype))];
  };

/** Op type -> how to evaluate it on known inputs. */
export const FOLD: Record<string, FoldRule> = {
  Identity: ([x]) => [need(x, "input")],
  Add: binary("Add"),
  Sub: binary("Sub"),
  Mul: binary("Mul"),
  Div: binary("Div"),
  Max: binary("Max"),
  Min: binary("Min"),
  Equal: binary("Equal"),
  Neg: ([x]) => [elementwise([need(x, "X")], x!.dtype, ([v]) => {
    if (v === "N") throw new FoldError("Neg of the batch size");
    return -v;
  })],
  Floor: ([x]) => [elementwise([need(x, "X")], x!.dtype, ([v]) => (v === "N" ? v : Math.floor(v)))],
  Ceil: ([x]) => [elementwise([need(x, "X")], x!.dtype, ([v]) => (v === "N" ? v : Math.ceil(v)))],
  Sqrt: ([x]) => [elementwise([need(x, "X")], x!.dtype, ([v]) => {
    if (v === "N") throw new FoldError("Sqrt of the batch size");
    return round(x!.dtype, Math.sqrt(v));
  })],
  Not: ([x]) => [elementwise([need(x, "X")], "bool", ([v]) => (v ? 0 : 1))],
  Where: ([c, a, b]) => [elementwise([need(c, "condition"), need(a, "X"), need(b, "Y")], a!.dtype, ([p, q, r]) => {
    if (p === "N") throw new FoldError("Where on the batch size");
    return p ? q : r;
  })],
  Cast: ([x], ctx) => {
    const to = ctx.attr("to");
    if (typeof to !== "string") throw new FoldError("Cast without a supported 'to' type");
    const dtype = to as ElemType;
    return [known(dtype, need(x, "input").dims, Array.from(x!.data, (v) => castTo(dtype, v)))];
  },
  Shape: ([x], ctx) => {
    const dims = need(x, "data").dims;
    const rank = dims.length;
    const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
    const start = clamp(int(ctx, "start", 0));
    const end = clamp(int(ctx, "end", rank));
    const out = dims.slice(start, end);
    return [known("int64", [out.length], out)];
  },
  Size: ([x]) => [known("int64", [], [size(need(x, "data").dims)])],
  Gather: ([x, i], ctx) => [gather(need(x, "data"), need(i, "indices"), int(ctx, "axis", 0))],
  Unsqueeze: (xs, ctx) => {
    const x = need(xs[0], "data");
    const axes = axesOf(xs, ctx, 1);
    if (!axes) throw new FoldError("Unsqueeze without axes");
    return [known(x.dtype, unsqueezeDims(x.dims, axes), x.data)];
  },
  Squeeze: (xs, ctx) => {
    const x = need(xs[0], "data");
    const axes = (axesOf(xs, ctx, 1) ?? x.dims.flatMap((d, i) => (d === 1 ? [i] : []))).map((a) => axisOf(a, x.dims.length));
    return [known(x.dtype, x.dims.filter((_, i) => !axes.includes(i)), x.data)];
  },
  Concat: (xs, ctx) => [concat(xs.map((x, i) => need(x, `input ${i}`)), int(ctx, "axis", 0))],
  Reshape: (xs, ctx) => {
    const x = need(xs[0], "data");
    const target = ints(ctx, "shape") ?? numbersOf(need(xs[1], "shape"), "the Reshape target");
    return [known(x.dtype, reshapeDims(x.dims, target, int(ctx, "allowzero", 0) === 1), x.data)];
  },
  Flatten: ([x], ctx) => {
    const k = need(x, "input");
    const axis = int(ctx, "axis", 1);
    const ax = axis < 0 ? axis + k.dims.length : axis;
    return [known(k.dtype, [size(k.dims.slice(0, ax)), size(k.dims.slice(ax))], k.data)];
  },
  Transpose: ([x], ctx) => {
    const k = need(x, "data");
    return [transpose(k, ints(ctx, "perm") ?? k.dims.map((_, i) => k.dims.length - 1 - i))];
  },
  Slice: (xs, ctx) => {
    const x = need(xs[0], "data");
    // opset < 10: starts/ends/axes as attributes; from 10: inputs.
    const starts = ints(ctx, "starts") ?? numbersOf(need(xs[1], "starts"), "Slice starts");
    const ends = ints(ctx, "ends") ?? numbersOf(need(xs[2], "ends"), "Slice ends");
    const axes = ints(ctx, "axes") ?? (xs[3] ? numbersOf(xs[3], "Slice axes") : starts.map((_, i) => i));
    const steps = xs[4] ? numbersOf(xs[4], "Slice steps") : axes.map(() => 1);
    // Exporters write INT64_MAX-ish ends for "to the end"; they clamp like any other value.
    return [slice(x, starts, ends, axes, steps)];
  },
  ConstantOfShape: ([shape], ctx) => {
    const dims = numbersOf(need(shape, "input"), "the ConstantOfShape shape");
    const v = ctx.attr("value");
    const fill = v && typeof v === "object" && !Array.isArray(v) ? v : known("float32", [1], [0]);
    return [known(fill.dtype, dims, new Array<Sym>(size(dims)).fill(fill.data[0]))];
  },
  Range: ([start, limit, delta]) => {
    const [s, l, d] = [start, limit, delta].map((k, i) => Number(numbersOf(need(k, ["start", "limit", "delta"][i]), "Range")[0]));
    const n = Math.max(Math.ceil((l - s) / d), 0);
    return [known(start!.dtype, [n], Array.from({ length: n }, (_, i) => s + i * d))];
  },
  Expand: ([x, shape]) => {
    const k = need(x, "input");
    const dims = numbersOf(need(shape, "shape"), "the Expand shape");
    const target = broadcast(k.dims, dims);
    return [elementwise([k, known(k.dtype, target, new Array<Sym>(size(target)).fill(0))], k.dtype, ([v]) => v)];
  },
};

/** Ops that only produce constants from shapes or constants: the importer folds them and never emits them. */
export const FOLD_ONLY = new Set(["Shape", "Size", "Gather", "Cast", "Slice", "ConstantOfShape", "Range", "Expand", "Equal", "Where", "Not", "Neg", "Floor", "Ceil", "Sqrt", "Max", "Min", "Constant"]);
