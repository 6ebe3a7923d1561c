/** Shape ops: reshape, flatten, transpose, (un)squeeze, expand, concat, slice, pad, space/depth, and shape queries. */
import { isStatic, numel, shapeToString, type Dim, type Value } from "../graph/value.ts";
import { defineOp, one, req, sameAsInput, type OutSpec } from "./op.ts";

/**
 * Reshape to `shape`, where at most one dim is symbolic (like "N" or "N*3"): it is emitted as -1 and
 * ONNX infers it at run time. The symbolic name is what the builder records for later shape checks.
 */
export const reshape = defineOp<{ shape: Dim[] }>({
  onnx: "Reshape",
  infer: ([x], { shape }) => {
    const v = req(x, "x");
    if (shape.filter((d) => typeof d !== "number").length > 1)
      throw new Error(`internal error: reshape to ${shapeToString(shape)} has more than one symbolic dim`);
    if (isStatic(v.shape) && isStatic(shape) && numel(v.shape) !== numel(shape))
      throw new Error(`cannot reshape ${shapeToString(v.shape)} to ${shapeToString(shape)}`);
    return [{ shape, dtype: v.dtype }];
  },
  emit: (g, [x], { shape }, [out]) => g.node("Reshape", [x, g.ints(shape.map((d) => (typeof d === "number" ? d : -1)))], {}, [out]),
  // The gradient is reshaped back; a symbolic input shape is read at run time.
  vjp: (g, dys, { inputs: [x] }) => [g.reshapeLike(one(dys), x!)],
});

/** Flatten(axis): [d0..d(axis-1)] and [d(axis)..] each collapsed into one dim. */
export const flatten = defineOp<{ axis: number }>({
  onnx: "Flatten",
  infer: ([x], { axis }) => {
    const v = req(x, "x");
    const prod = (ds: readonly Dim[]) =>
      ds.length === 0 ? 1 : isStatic(ds) ? numel(ds) : ds.length === 1 ? ds[0] : ds.join("*");
    return [{ shape: [prod(v.shape.slice(0, axis)), prod(v.shape.slice(axis))], dtype: v.dtype }];
  },
  attrs: ({ axis }) => ({ axis }),
  vjp: (g, dys, { inputs: [x] }) => [g.reshapeLike(one(dys), x!)],
});

/** Reshape to another value's (possibly symbolic) shape, read at run time when needed. Backward helper. */
export const reshapeLike = defineOp({
  onnx: "Reshape",
  infer: ([x, like]) => [{ shape: req(like, "like").shape, dtype: req(x, "x").dtype }],
  emit: (g, [x, like], _a, [out]) => g.node("Reshape", [x, g.shapeOf(like!)], {}, [out]),
  nonDifferentiableInputs: [1],
  vjp: (g, dys, { inputs: [x] }) => [g.reshapeLike(one(dys), x!), undefined],
});

// d transpose(x, p) = transpose(dy, p^-1)
export const transpose = defineOp<{ perm: number[] }>({
  onnx: "Transpose",
  infer: ([x], { perm }) => [{ shape: perm.map((p) => req(x, "x").shape[p]), dtype: req(x, "x").dtype }],
  attrs: ({ perm }) => ({ perm }),
  vjp: (g, dys, { attrs: { perm } }) => {
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [g.transpose(one(dys), inv)];
  },
});

// Unsqueeze inserts size-1 axes; its gradient just removes them again.
export const unsqueeze = defineOp<{ axes: number[] }>({
  onnx: "Unsqueeze",
  infer: ([x], { axes }) => {
    const v = req(x, "x");
    const rank = v.shape.length + axes.length;
    const out: Dim[] = [];
    const norm = axes.map((a) => (a < 0 ? a + rank : a));
    let j = 0;
    for (let i = 0; i < rank; i++) out.push(norm.includes(i) ? 1 : v.shape[j++]);
    return [{ shape: out, dtype: v.dtype }];
  },
  emit: (g, [x], { axes }, [out]) => g.node("Unsqueeze", [x, g.ints(axes)], {}, [out]),
  vjp: (g, dys, { inputs: [x] }) => [g.reshapeLike(one(dys), x!)],
});

// Squeeze removes size-1 axes (opset 13: axes as an input); its gradient puts them back.
export const squeeze = defineOp<{ axes: number[] }>({
  onnx: "Squeeze",
  infer: ([x], { axes }) => {
    const v = req(x, "x");
    const norm = axes.map((a) => (a < 0 ? a + v.shape.length : a));
    for (const a of norm)
      if (a < 0 || a >= v.shape.length || v.shape[a] !== 1) throw new Error(`cannot squeeze axis ${a} of ${shapeToString(v.shape)}: it is not of size 1`);
    return [{ shape: v.shape.filter((_, i) => !norm.includes(i)), dtype: v.dtype }];
  },
  emit: (g, [x], { axes }, [out]) => g.node("Squeeze", [x, g.ints(axes)], {}, [out]),
  vjp: (g, dys, { inputs: [x] }) => [g.reshapeLike(one(dys), x!)],
});

/** Broadcast x to `like`'s shape. The driver's unbroadcast sums the gradient back. */
export const expandLike = defineOp({
  onnx: "Expand",
  infer: ([x, like]) => [{ shape: req(like, "like").shape, dtype: req(x, "x").dtype }],
  emit: (g, [x, like], _a, [out]) => g.node("Expand", [x, g.shapeOf(like!)], {}, [out]),
  nonDifferentiableInputs: [1],
  vjp: (g, dys) => [one(dys), undefined],
});

// d concat(xs) = the matching slices of dy
export const concat = defineOp<{ axis: number }>({
  onnx: "Concat",
  infer: (xs, { axis }) => {
    const vs = xs.map((x, i) => req(x, `concat input ${i}`));
    const shape = [...vs[0].shape];
    const parts = vs.map((v) => v.shape[axis]);
    shape[axis] = parts.every((p) => typeof p === "number") ? (parts as number[]).reduce((a, b) => a + b, 0) : parts.join("+");
    return [{ shape, dtype: vs[0].dtype }];
  },
  attrs: ({ axis }) => ({ axis }),
  vjp: (g, dys, { inputs, attrs: { axis }, needs }) => {
    let start = 0;
    return inputs.map((x, i) => {
      const len = x!.shape[axis];
      if (typeof len !== "number") throw new Error("internal error: concat gradient needs static sizes");
      const dx = needs[i] ? g.slice(one(dys), [start], [start + len], [axis]) : undefined;
      start += len;
      return dx;
    });
  },
});

/** Static slice along `axes`. Its gradient pads the cotangent with zeros. */
export const slice = defineOp<{ starts: number[]; ends: number[]; axes: number[] }>({
  onnx: "Slice",
  infer: ([x], { starts, ends, axes }) => {
    const v = req(x, "x");
    const shape = [...v.shape];
    axes.forEach((a, k) => (shape[a] = ends[k] - starts[k]));
    return [{ shape, dtype: v.dtype }];
  },
  emit: (g, [x], { starts, ends, axes }, [out]) => g.node("Slice", [x, g.ints(starts), g.ints(ends), g.ints(axes)], {}, [out]),
  vjp: (g, dys, { inputs: [x], attrs: { starts, ends, axes } }) => {
    const rank = x!.shape.length;
    const pads = new Array(2 * rank).fill(0);
    axes.forEach((a, k) => {
      const full = x!.shape[a];
      if (typeof full !== "number") throw new Error("internal error: slice gradient needs a static axis");
      pads[a] = starts[k];
      pads[rank + a] = full - ends[k];
    });
    return [g.pad(one(dys), pads)];
  },
});

/**
 * Constant-mode Pad. pads: ONNX order [begin of each axis..., end of each axis...]; a negative pad crops.
 * The gradient undoes it: the cotangent cropped where x was padded and zero-padded where x was cropped.
 */
export const pad = defineOp<{ pads: number[]; value: number }>({
  onnx: "Pad",
  infer: ([x], { pads }) => {
    const v = req(x, "x");
    const r = v.shape.length;
    if (pads.length !== 2 * r) throw new Error(`Pad needs ${2 * r} pads for a ${r}-D input, got ${pads.length}`);
    const shape = v.shape.map((d, i) => {
      if (typeof d === "number") return d + pads[i] + pads[r + i];
      if (pads[i] !== 0 || pads[r + i] !== 0) throw new Error(`Pad cannot pad the dynamic axis ${i} (${d}) of ${shapeToString(v.shape)}`);
      return d;
    });
    if (shape.some((d) => typeof d === "number" && d < 0)) throw new Error(`Pad ${shapeToString(pads)} crops more than all of ${shapeToString(v.shape)}`);
    return [{ shape, dtype: v.dtype }];
  },
  // the padding value is an input only when it is not the default 0 (existing graphs keep their bytes)
  emit: (g, [x], { pads, value }, [out]) => g.node("Pad", [x, g.ints(pads), value === 0 ? undefined : g.scalar(value, x!.dtype)], {}, [out]),
  vjp: (g, dys, { inputs: [x], attrs: { pads } }) => {
    const dy = one(dys);
    if (pads.some((p) => p < 0)) return [g.pad(dy, pads.map((p) => -p))];
    const r = x!.shape.length;
    const axes = [...Array(r).keys()];
    const starts = axes.map((i) => pads[i]);
    const ends = axes.map((i) => pads[i] + (x!.shape[i] as number));
    return [g.slice(dy, starts, ends, axes)];
  },
});

export const identity = defineOp({ onnx: "Identity", infer: sameAsInput, vjp: (g, dys) => [one(dys)] });

// Shape queries: integer results, no gradient.
export const shape = defineOp({ onnx: "Shape", infer: ([x]) => [{ shape: [req(x, "x").shape.length], dtype: "int64" }], vjp: "none" });
export const size = defineOp({ onnx: "Size", infer: () => [{ shape: [], dtype: "int64" }], vjp: "none" });

/** Reverses the order along `axes` (Slice with step -1). Its own inverse, so its gradient flips dy back. */
export const flip = defineOp<{ axes: number[] }>({
  onnx: "Slice",
  infer: sameAsInput,
  emit: (g, [x], { axes }, [out]) =>
    g.node("Slice", [x, g.ints(axes.map(() => -1)), g.ints(axes.map(() => Number.MIN_SAFE_INTEGER)), g.ints(axes), g.ints(axes.map(() => -1))], {}, [out]),
  vjp: (g, dys, { attrs: { axes } }) => [g.flip(one(dys), axes)],
});

function blocks(x: Value, blocksize: number, toDepth: boolean): OutSpec {
  const [n, c, h, w] = x.shape;
  if (x.shape.length !== 4 || typeof c !== "number" || typeof h !== "number" || typeof w !== "number")
    throw new Error(`internal error: ${toDepth ? "SpaceToDepth" : "DepthToSpace"} of ${shapeToString(x.shape)}`);
  const b2 = blocksize * blocksize;
  if (toDepth ? h % blocksize || w % blocksize : c % b2) throw new Error(`internal error: ${shapeToString(x.shape)} does not divide into ${blocksize}x${blocksize} blocks`);
  return { shape: toDepth ? [n, c * b2, h / blocksize, w / blocksize] : [n, c / b2, h * blocksize, w * blocksize], dtype: x.dtype };
}

/**
 * SpaceToDepth: each b x b block of every channel becomes b*b channels, y[n, (i b + j) C + c, p, q] =
 * x[n, c, p b + i, q b + j]. A permutation of x, so its gradient is the inverse permutation, DepthToSpace (DCR).
 */
export const spaceToDepth = defineOp<{ blocksize: number }>({
  onnx: "SpaceToDepth",
  infer: ([x], { blocksize }) => [blocks(req(x, "x"), blocksize, true)],
  attrs: ({ blocksize }) => ({ blocksize }),
  vjp: (g, dys, { attrs: { blocksize } }) => [g.depthToSpace(one(dys), blocksize)],
});

/** DepthToSpace in DCR mode (the default): the inverse of SpaceToDepth, and its gradient is SpaceToDepth. */
export const depthToSpace = defineOp<{ blocksize: number }>({
  onnx: "DepthToSpace",
  infer: ([x], { blocksize }) => [blocks(req(x, "x"), blocksize, false)],
  attrs: ({ blocksize }) => ({ blocksize }),
  vjp: (g, dys, { attrs: { blocksize } }) => [g.spaceToDepth(one(dys), blocksize)],
});
