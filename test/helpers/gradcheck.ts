/**
 * Directional finite-difference gradient check through onnxruntime-node.
 * For random x, tangent t and cotangent u:  <u, (f(x + eps t) - f(x - eps t)) / 2 eps>  must equal  <vjp(u), t>.
 * Two forward runs and one backward run per case, whatever the tensor sizes.
 */
import * as ort from "onnxruntime-node";
import { G, type Lowering } from "../../src/ops/builder.ts";
import { gradients } from "../../src/autodiff/backward.ts";
import { encodeModel } from "../../src/onnx/proto.ts";
import type { DType, Value } from "../../src/graph/value.ts";
import { Rng } from "../../src/random.ts";

export interface InputSpec {
  shape: number[];
  dtype?: DType;
  /** Values to use (default: standard normal); for int64 inputs, the integer values. */
  values?: number[];
  /** Differentiate with respect to this input (default: float inputs). */
  diff?: boolean;
  /** Map a raw normal sample to the input domain, e.g. (z) => 1 + Math.abs(z) for log. */
  domain?: (z: number) => number;
}

export function normal(rng: Rng): number {
  const u = 1 - rng.next();
  const v = rng.next();
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
}

/**
 * A tangent on one parameter of a flat vector of `total`: its analytic gradient's direction plus a random
 * direction, scaled so that no element moves by more than 1 (the caller's h). Along the gradient a wrong gradient
 * shows most; the random part catches errors in other directions.
 */
export function paramTangent(grad: Float32Array, spec: { offset: number; size: number }, total: number, rng: Rng): Float32Array {
  const t = new Float32Array(total);
  const r = Array.from({ length: spec.size }, () => normal(rng));
  const gNorm = Math.hypot(...grad.subarray(spec.offset, spec.offset + spec.size)) || 1;
  const rNorm = Math.hypot(...r);
  for (let k = 0; k < spec.size; k++) t[spec.offset + k] = grad[spec.offset + k] / gNorm + r[k] / rNorm;
  const tMax = t.reduce((a, v) => Math.max(a, Math.abs(v)), 0);
  for (let k = 0; k < t.length; k++) t[k] /= tMax;
  return t;
}

/** max |a - b| over the elements. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** ||a - b|| / ||b||. */
export function relNorm(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / Math.max(den, 1e-30));
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

function tensor(dtype: DType, data: number[], shape: number[]): ort.Tensor {
  if (dtype === "int64") return new ort.Tensor("int64", BigInt64Array.from(data.map((x) => BigInt(x))), shape);
  if (dtype === "bool") return new ort.Tensor("bool", Uint8Array.from(data), shape);
  return new ort.Tensor("float32", Float32Array.from(data), shape);
}

export interface GradCheckResult {
  numeric: number;
  analytic: number;
  perInput: { numeric: number; analytic: number; scale: number }[];
  /** Sum of |dx_i t_i| over all inputs: the size of the terms that <vjp(u), t> adds up (cancellation-aware tolerance). */
  scale: number;
}

/**
 * Builds f(inputs) with `build`, checks the directional derivative along a random tangent of all
 * differentiable inputs at once and along each one separately. `lowering` selects alternative lowerings.
 */
export async function gradCheck(inputs: InputSpec[], build: (g: G, xs: Value[]) => Value, seed = 0, eps = 1e-2, lowering: Partial<Lowering> = {}): Promise<GradCheckResult> {
  const rng = new Rng(seed);
  const xs0 = inputs.map((s) => s.values ?? Array.from({ length: size(s.shape) }, () => (s.domain ?? ((z) => z))(normal(rng))));
  const diff = inputs.map((s) => s.diff ?? (s.dtype ?? "float32") === "float32");
  // forward graph
  const fwd = new G("fwd", lowering);
  const fx = inputs.map((s, i) => fwd.input(`x${i}`, s.shape, s.dtype ?? "float32"));
  const fy = build(fwd, fx);
  fwd.output(fy, "y");
  // backward graph: same forward, plus cotangent input u and gradient outputs
  const bwd = new G("bwd", lowering);
  const bx = inputs.map((s, i) => bwd.input(`x${i}`, s.shape, s.dtype ?? "float32"));
  bwd.record();
  bx.forEach((x, i) => diff[i] && bwd.watch(x));
  const by = build(bwd, bx);
  const u = bwd.input("u", by.shape, "float32"); // symbolic dims keep y's names: the cotangent has y's shape
  const grads = gradients(bwd, by, bx.filter((_, i) => diff[i]), u);
  bx.forEach((x, i) => diff[i] && bwd.output(grads.get(x.name)!, `dx${i}`));
  const [fs, bs] = await Promise.all([ort.InferenceSession.create(encodeModel(fwd.toModel())), ort.InferenceSession.create(encodeModel(bwd.toModel()))]);
  const tangents0 = inputs.map((s, i) => [`x${i}`, tensor(s.dtype ?? "float32", xs0[i], s.shape)] as const);
  const yShape = [...(await fs.run(Object.fromEntries(tangents0))).y.dims]; // actual dims (the builder's may be symbolic)
  const uVals = Array.from({ length: size(yShape) }, () => normal(rng));
  const tangents = inputs.map((s, i) => (diff[i] ? Array.from({ length: size(s.shape) }, () => normal(rng)) : undefined));
  const feeds = (k: number, only?: number, eps = 0) =>
    Object.fromEntries(
      inputs.map((s, i) => {
        const t = tangents[i];
        const vals = t && (only === undefined || only === i) ? xs0[i].map((x, j) => x + k * eps * t[j]) : xs0[i];
        return [`x${i}`, tensor(s.dtype ?? "float32", vals, s.shape)];
      }),
    );
  const dot = (a: ArrayLike<number>, b: ArrayLike<number>) => {
    let s = 0;
    for (let i = 0; i < a.length; i++) s += a[i] * b[i];
    return s;
  };
  const central = async (h: number, only?: number) => {
    const plus = (await fs.run(feeds(1, only, h))).y.data as Float32Array;
    const minus = (await fs.run(feeds(-1, only, h))).y.data as Float32Array;
    return dot(uVals, Array.from(plus, (p, j) => (p - minus[j]) / (2 * h)));
  };
  // Richardson extrapolation of two central differences cancels the eps^2 error term, so eps can be large
  // enough that float32 rounding in the outputs does not dominate.
  const directional = async (only?: number) => (4 * (await central(eps / 2, only)) - (await central(eps, only))) / 3;
  const back = await bs.run({ ...feeds(0, undefined, 0), u: tensor("float32", uVals, yShape) });
  const perInput: GradCheckResult["perInput"] = [];
  let analytic = 0;
  for (let i = 0; i < inputs.length; i++) {
    const t = tangents[i];
    if (!t) continue;
    const dx = back[`dx${i}`].data as Float32Array;
    const a = dot(dx, t);
    const scale = dx.reduce((acc, d, j) => acc + Math.abs(d * t[j]), 0);
    analytic += a;
    perInput.push({ numeric: await directional(i), analytic: a, scale });
  }
  return { numeric: await directional(), analytic, perInput, scale: perInput.reduce((a, p) => a + p.scale, 0) };
}

/** |a - b| <= atol + rtol * max(|a|, |b|, scale); `scale` is the size of the terms a sum cancelled. */
export function close(a: number, b: number, rtol = 3e-4, atol = 2e-4, scale = 0): boolean {
  return Math.abs(a - b) <= atol + rtol * Math.max(Math.abs(a), Math.abs(b), scale);
}
