/**
 * An op is one object: its shape rule (`infer`), how it is emitted as ONNX, and its vector-Jacobian
 * product (`vjp`), side by side. `vjp: "none"` is an explicit statement that the op is not differentiable
 * (integer/boolean outputs) or is only ever emitted inside a backward pass.
 *
 * The contract the backward driver (src/autodiff/backward.ts) enforces, at graph-build time:
 * - `vjp` returns exactly one entry per input, in input order (undefined for an omitted optional input).
 * - For every input with needs[i] true the entry is a gradient; leaving it undefined is an error, never a
 *   silent zero. Entries for inputs that need no gradient may be anything (they are ignored), so a rule can
 *   compute a cheap term unconditionally. Inputs that the output does not depend on differentiably (read
 *   for their shape only, or integer/boolean) are listed in `nonDifferentiableInputs`: needs[i] is always
 *   false for them, so their gradient is a true zero by declaration, not by omission.
 * - `vjp` receives cotangents only for the outputs listed in `differentiableOutputs` (default: output 0).
 *   A cotangent that reaches any other output (say, a batch mean that a graph goes on to use) is an error:
 *   the rule would ignore it. A rule that handles several outputs lists them and must cope with any subset
 *   of them being undefined.
 * Errors name the ONNX node (`${op_type}_${k}`) and the values involved.
 */
import type { Attrs } from "../graph/graph.ts";
import type { DType, Shape, Value } from "../graph/value.ts";
import type { G } from "./builder.ts";

export interface OutSpec {
  shape: Shape;
  dtype: DType;
}

export interface VjpContext<A> {
  inputs: (Value | undefined)[];
  outputs: Value[];
  attrs: A;
  /** needs[i]: whether input i requires a gradient (rules may skip the others; their result is ignored). Never
   * true for `nonDifferentiableInputs`. */
  needs: boolean[];
}

/** Cotangents of the outputs (undefined where an output does not reach the loss) -> cotangents of the inputs. */
export type Vjp<A> = (g: G, dys: (Value | undefined)[], ctx: VjpContext<A>) => (Value | undefined)[];

export interface OpDef<A = Record<string, never>> {
  /** The ONNX op_type emitted by default. */
  onnx: string;
  infer: (inputs: (Value | undefined)[], attrs: A) => OutSpec[];
  /** ONNX attributes for the default emission (default: none). */
  attrs?: (a: A) => Attrs;
  /** Custom emission (several nodes); default is one `onnx` node. */
  emit?: (g: G, inputs: (Value | undefined)[], attrs: A, outs: OutSpec[]) => Value[];
  vjp: Vjp<A> | "none";
  /** Indices of the inputs that get no gradient because the output does not depend on their values. */
  nonDifferentiableInputs?: readonly number[];
  /** Indices of the outputs whose cotangents `vjp` handles (default [0]). */
  differentiableOutputs?: readonly number[];
}

export function defineOp<A = Record<string, never>>(def: OpDef<A>): OpDef<A> {
  return def;
}

/** The shape rule of ops whose output has its (first) input's shape and dtype. */
export function sameAsInput(inputs: (Value | undefined)[]): OutSpec[] {
  const x = req(inputs[0], "x");
  return [{ shape: x.shape, dtype: x.dtype }];
}

/** The cotangent of output 0, which the driver guarantees is present when it is the only handled output. */
export function one(dys: (Value | undefined)[]): Value {
  const dy = dys[0];
  if (!dy) throw new Error("internal error: vjp called without a cotangent");
  return dy;
}

export function req(x: Value | undefined, what: string): Value {
  if (!x) throw new Error(`internal error: missing input ${what}`);
  return x;
}
