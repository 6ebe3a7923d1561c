/**
 * G: the graph builder with one camelCase method per op (g.conv, g.reduceSum, ...) and the tape that
 * reverse-mode autodiff walks. While a tape is recording, every differentiable op applied to a value that
 * depends on a watched value is taped; the backward pass itself is emitted with the tape paused.
 */
import { Graph, OPSET } from "../graph/graph.ts";
import { isStatic, numel, type Dim, type DType, type Value } from "../graph/value.ts";
import type { OpDef } from "./op.ts";
import * as ew from "./elementwise.ts";
import * as sh from "./shape.ts";
import * as rd from "./reduce.ts";
import * as cv from "./conv.ts";
import * as pl from "./pool.ts";
import * as nm from "./norm.ts";
import * as la from "./linalg.ts";
import * as ls from "./loss.ts";

export interface TapeEntry {
  op: OpDef<any>;
  /** The ONNX node that produced `outputs` (unique: `${op_type}_${k}`), for error messages. */
  node: string;
  inputs: (Value | undefined)[];
  outputs: Value[];
  attrs: any;
}

export class Tape {
  readonly entries: TapeEntry[] = [];
  readonly requiresGrad = new Set<string>();
  paused = false;
}

type Operand = Value | number;

/**
 * Alternative lowerings of a few ops: the same maths in other ONNX nodes, each a switch so that the two forms can
 * be compared (correctness in the gradient tests, speed in the whole training step). A bare G has them all off;
 * the program's training step takes its own (DEFAULT_LOWERING in src/program/program.ts).
 */
export interface Lowering {
  /**
   * The input gradient of a stride-1 ungrouped Conv as MatMul + Col2Im (W^T dY as columns, summed back onto the
   * image) instead of a Conv with flipped weights. Col2Im needs opset 18: the graph is emitted at opset 18.
   */
  col2im: boolean;
  /**
   * A 2x2 stride-2 max pool that needs a gradient (no padding or dilation, even height and width) as
   * SpaceToDepth and a ReduceMax over each window's four cells, its gradient routed to the first maximum and put
   * back by DepthToSpace, instead of MaxPool with Indices and MaxUnpool.
   */
  blockPool: boolean;
}

export const PLAIN_LOWERING: Readonly<Lowering> = { col2im: false, blockPool: false };

export class G extends Graph {
  tape: Tape | undefined;
  readonly lowering: Readonly<Lowering>;

  constructor(name: string, lowering: Partial<Lowering> = {}) {
    const l = { ...PLAIN_LOWERING, ...lowering };
    super(name, l.col2im ? 18 : OPSET);
    this.lowering = l;
  }

  /** Starts recording; `watch` the values to differentiate with respect to. */
  record(): Tape {
    this.tape = new Tape();
    return this.tape;
  }

  watch(v: Value): Value {
    if (!this.tape) throw new Error("internal error: watch() without a tape");
    if (v.dtype !== "float32") throw new Error(`internal error: cannot differentiate with respect to ${v.dtype} ${v.name}`);
    this.tape.requiresGrad.add(v.name);
    return v;
  }

  requiresGrad(v: Value | undefined): boolean {
    return !!v && !!this.tape && this.tape.requiresGrad.has(v.name);
  }

  /** Runs `f` without taping (backward passes, optimizer updates, running statistics). */
  untaped<T>(f: () => T): T {
    const t = this.tape;
    if (!t) return f();
    const was = t.paused;
    t.paused = true;
    try {
      return f();
    } finally {
      t.paused = was;
    }
  }

  apply<A>(op: OpDef<A>, inputs: (Value | undefined)[], attrs: A): Value[] {
    const outs = op.infer(inputs, attrs);
    const outputs = op.emit ? op.emit(this, inputs, attrs, outs) : this.node(op.onnx, inputs, op.attrs ? op.attrs(attrs) : {}, outs);
    const t = this.tape;
    if (t && !t.paused && op.vjp !== "none" && inputs.some((x) => this.requiresGrad(x))) {
      t.entries.push({ op, node: this.producer(outputs[0]), inputs, outputs, attrs });
      for (const o of outputs) if (o.dtype === "float32") t.requiresGrad.add(o.name);
    }
    return outputs;
  }

  /** The name of the node that outputs v (a custom emission's last node, usually: searched from the end). */
  private producer(v: Value): string {
    for (let i = this.nodes.length - 1; i >= 0; i--) if (this.nodes[i].output.includes(v.name)) return this.nodes[i].name;
    return v.name;
  }

  private lift(x: Operand, like: Operand): Value {
    if (typeof x !== "number") return x;
    const dtype: DType = typeof like === "number" ? "float32" : like.dtype;
    return this.scalar(x, dtype === "bool" ? "float32" : dtype);
  }

  private binary(op: OpDef, a: Operand, b: Operand): Value {
    return this.apply(op, [this.lift(a, b), this.lift(b, a)], {})[0];
  }

  // elementwise
  add = (a: Operand, b: Operand): Value => this.binary(ew.add, a, b);
  sub = (a: Operand, b: Operand): Value => this.binary(ew.sub, a, b);
  mul = (a: Operand, b: Operand): Value => this.binary(ew.mul, a, b);
  div = (a: Operand, b: Operand): Value => this.binary(ew.div, a, b);
  pow = (a: Operand, b: Operand): Value => this.binary(ew.pow, a, b);
  greater = (a: Operand, b: Operand): Value => this.binary(ew.greater, a, b);
  equal = (a: Operand, b: Operand): Value => this.binary(ew.equal, a, b);
  less = (a: Operand, b: Operand): Value => this.binary(ew.less, a, b);
  greaterOrEqual = (a: Operand, b: Operand): Value => this.binary(ew.greaterOrEqual, a, b);
  lessOrEqual = (a: Operand, b: Operand): Value => this.binary(ew.lessOrEqual, a, b);
  and = (a: Value, b: Value): Value => this.binary(ew.and, a, b);
  neg = (x: Value): Value => this.apply(ew.neg, [x], {})[0];
  exp = (x: Value): Value => this.apply(ew.exp, [x], {})[0];
  log = (x: Value): Value => this.apply(ew.log, [x], {})[0];
  sqrt = (x: Value): Value => this.apply(ew.sqrt, [x], {})[0];
  reciprocal = (x: Value): Value => this.apply(ew.reciprocal, [x], {})[0];
  tanh = (x: Value): Value => this.apply(ew.tanh, [x], {})[0];
  sigmoid = (x: Value): Value => this.apply(ew.sigmoid, [x], {})[0];
  relu = (x: Value): Value => this.apply(ew.relu, [x], {})[0];
  leakyRelu = (x: Value, alpha: number): Value => this.apply(ew.leakyRelu, [x], { alpha })[0];
  /** slope broadcasts to x one way ([C,1,1] or [1] for NCHW, [C] for [N, C]). */
  prelu = (x: Value, slope: Value): Value => this.apply(ew.prelu, [x, slope], {})[0];
  elu = (x: Value, alpha = 1): Value => this.apply(ew.elu, [x], { alpha })[0];
  /** Either bound may be left out (Clip with no min, or no max). */
  clip = (x: Value, min?: number, max?: number): Value => this.apply(ew.clip, [x], { min, max })[0];
  hardSigmoid = (x: Value, alpha = 0.2, beta = 0.5): Value => this.apply(ew.hardSigmoid, [x], { alpha, beta })[0];
  hardSwish = (x: Value): Value => this.apply(ew.hardSwish, [x], {})[0];
  where = (c: Value, a: Operand, b: Operand): Value => this.apply(ew.where, [c, this.lift(a, b), this.lift(b, a)], {})[0];
  cast = (x: Value, to: DType): Value => this.apply(ew.cast, [x], { to })[0];

  // shape
  reshape = (x: Value, shape: Dim[]): Value => this.apply(sh.reshape, [x], { shape })[0];
  reshapeLike = (x: Value, like: Value): Value => this.apply(sh.reshapeLike, [x, like], {})[0];
  flatten = (x: Value, axis = 1): Value => this.apply(sh.flatten, [x], { axis })[0];
  transpose = (x: Value, perm: number[]): Value => this.apply(sh.transpose, [x], { perm })[0];
  unsqueeze = (x: Value, axes: number[]): Value => this.apply(sh.unsqueeze, [x], { axes })[0];
  squeeze = (x: Value, axes: number[]): Value => this.apply(sh.squeeze, [x], { axes })[0];
  expandLike = (x: Value, like: Value): Value => this.apply(sh.expandLike, [x, like], {})[0];
  concat = (xs: Value[], axis: number): Value => this.apply(sh.concat, xs, { axis })[0];
  slice = (x: Value, starts: number[], ends: number[], axes: number[]): Value => this.apply(sh.slice, [x], { starts, ends, axes })[0];
  flip = (x: Value, axes: number[]): Value => this.apply(sh.flip, [x], { axes })[0];
  spaceToDepth = (x: Value, blocksize: number): Value => this.apply(sh.spaceToDepth, [x], { blocksize })[0];
  depthToSpace = (x: Value, blocksize: number): Value => this.apply(sh.depthToSpace, [x], { blocksize })[0];
  /** Constant mode; pads in ONNX order (all begins, then all ends), negative ones crop. */
  pad = (x: Value, pads: number[], value = 0): Value => this.apply(sh.pad, [x], { pads, value })[0];
  identity = (x: Value): Value => this.apply(sh.identity, [x], {})[0];
  shape = (x: Value): Value => this.apply(sh.shape, [x], {})[0];
  size = (x: Value): Value => this.apply(sh.size, [x], {})[0];

  // reductions
  reduceSum = (x: Value, axes: number[], keepdims = false): Value => this.apply(rd.reduceSum, [x], { axes, keepdims })[0];
  reduceMean = (x: Value, axes: number[], keepdims = false): Value => this.apply(rd.reduceMean, [x], { axes, keepdims })[0];
  /** The maximum along one axis; its gradient goes to the first maximum (as ArgMax, MaxPool's Indices and PyTorch's max(dim)). */
  reduceMax = (x: Value, axis: number, keepdims = false): Value => this.apply(rd.reduceMax, [x], { axes: [axis], keepdims })[0];
  argMax = (x: Value, axis: number, keepdims = false): Value => this.apply(rd.argMax, [x], { axis, keepdims })[0];

  // neural-network ops
  conv = (x: Value, w: Value, b: Value | undefined, a: cv.ConvAttrs): Value => this.apply(cv.conv, [x, w, b], a)[0];
  convTranspose = (dy: Value, w: Value, a: Parameters<typeof cv.convTranspose.infer>[1]): Value => this.apply(cv.convTranspose, [dy, w], a)[0];
  col2im = (cols: Value, a: cv.Col2ImAttrs): Value => this.apply(cv.col2im, [cols], a)[0];
  maxPool = (x: Value, a: pl.PoolAttrs): Value =>
    this.lowering.blockPool && this.requiresGrad(x) && pl.isBlockPool(x, a) ? pl.blockMaxPool(this, x) : this.apply(pl.maxPool, [x], { ...a, indices: this.requiresGrad(x) })[0];
  maxUnpool = (dy: Value, indices: Value, like: Value, a: pl.PoolAttrs): Value => this.apply(pl.maxUnpool, [dy, indices, like], a)[0];
  scatterAdd = (data: Value, indices: Value, updates: Value): Value => this.apply(pl.scatterAdd, [data, indices, updates], {})[0];
  averagePool = (x: Value, a: pl.AveragePoolAttrs): Value => this.apply(pl.averagePool, [x], a)[0];
  /** The mean over every spatial axis, keeping them as size 1 ([N, C, H, W] -> [N, C, 1, 1]). */
  globalAveragePool = (x: Value): Value => this.reduceMean(x, [...x.shape.keys()].slice(2), true);
  /** Returns [y, batchMean, batchVarBiased]. */
  batchNormTrain = (x: Value, gamma: Value, beta: Value, eps: number): Value[] => this.apply(nm.batchNormTrain, [x, gamma, beta], { eps });
  batchNormInfer = (x: Value, gamma: Value, beta: Value, mean: Value, variance: Value, eps: number): Value =>
    this.apply(nm.batchNormInfer, [x, gamma, beta, mean, variance], { eps })[0];
  affine = (x: Value, scale: Value, bias: Value): Value => this.apply(nm.affine, [x, scale, bias], {})[0];
  gemm = (a: Value, b: Value, c: Value | undefined, t: la.GemmAttrs): Value => this.apply(la.gemm, [a, b, c], t)[0];
  matMul = (a: Value, b: Value): Value => this.apply(la.matMul, [a, b], {})[0];
  softmax = (x: Value, axis = -1): Value => this.apply(ls.softmax, [x], { axis })[0];
  logSoftmax = (x: Value, axis = -1): Value => this.apply(ls.logSoftmax, [x], { axis })[0];
  /** Returns [meanLoss, logProb]. */
  softmaxCrossEntropy = (logits: Value, labels: Value): Value[] => this.apply(ls.softmaxCrossEntropy, [logits, labels], {});
  oneHot = (labels: Value, depth: number): Value => this.apply(ls.oneHot, [labels], { depth })[0];

  /** v's shape as an int64 vector: a constant when it is static, else read at run time (Shape). */
  shapeOf(v: Value): Value {
    return isStatic(v.shape) ? this.ints(v.shape) : this.shape(v);
  }

  /** |x| / |y| as a float32 scalar: a constant when both shapes are static, else read at run time. */
  countRatio(x: Value, y: Value): Value {
    if (isStatic(x.shape) && isStatic(y.shape)) return this.scalar(numel(x.shape) / numel(y.shape));
    const sx = this.cast(this.size(x), "float32");
    return isStatic(y.shape) ? this.div(sx, numel(y.shape)) : this.div(sx, this.cast(this.size(y), "float32"));
  }
}
