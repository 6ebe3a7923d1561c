/**
 * Reverse-mode automatic differentiation over the tape of a G builder.
 * Walks the taped nodes from last to first, calls each op's VJP with the cotangents of its outputs,
 * sums broadcast gradients back to their input's shape, checks every gradient's shape and dtype, and
 * accumulates cotangents of values used more than once. It enforces the VJP contract stated in
 * src/ops/op.ts (one entry per input, no needed gradient left out, no cotangent on an output a rule ignores).
 */
import { sameShape, shapeToString, type Value } from "../graph/value.ts";
import type { G } from "../ops/builder.ts";

/** Gradients of the scalar `loss` with respect to each of `wrt` (watched values), by value name. */
export function gradients(g: G, loss: Value, wrt: Value[], seed?: Value): Map<string, Value> {
  const tape = g.tape;
  if (!tape) throw new Error("internal error: gradients() needs a recorded tape");
  const cot = new Map<string, Value>();
  return g.untaped(() => {
    cot.set(loss.name, seed ?? g.constant([1], loss.shape as number[]));
    for (let e = tape.entries.length - 1; e >= 0; e--) {
      const { op, node, inputs, outputs, attrs } = tape.entries[e];
      const dys = outputs.map((o) => cot.get(o.name));
      if (dys.every((d) => d === undefined)) continue;
      const where = `${node} (${op.onnx} -> ${outputs.map((o) => o.name).join(", ")})`;
      if (op.vjp === "none") throw new Error(`cannot differentiate ${where}: ${op.onnx} has no gradient rule`);
      const handled = op.differentiableOutputs ?? [0];
      dys.forEach((d, k) => {
        if (d && !handled.includes(k))
          throw new Error(`cannot differentiate ${where}: its output ${k} (${outputs[k].name}) reaches the loss, but the ${op.onnx} gradient handles only output ${handled.join(", ")}`);
      });
      const needs = inputs.map((x, i) => !op.nonDifferentiableInputs?.includes(i) && g.requiresGrad(x));
      const dxs = op.vjp(g, dys, { inputs, outputs, attrs, needs });
      if (!Array.isArray(dxs) || dxs.length !== inputs.length)
        throw new Error(`internal error: the ${op.onnx} gradient of ${where} returned ${Array.isArray(dxs) ? dxs.length : "no"} entries for ${inputs.length} inputs`);
      inputs.forEach((x, i) => {
        const dx = dxs[i];
        if (!x) {
          if (dx) throw new Error(`internal error: the ${op.onnx} gradient of ${where} returned a gradient for its omitted input ${i}`);
          return;
        }
        if (!needs[i]) return;
        if (!dx) throw new Error(`cannot differentiate ${where}: the gradient for its input ${i} (${x.name}) is needed, but the ${op.onnx} rule gives none`);
        const fitted = unbroadcast(g, dx, x);
        if (!sameShape(fitted.shape, x.shape) || fitted.dtype !== x.dtype)
          throw new Error(
            `internal error: the ${op.onnx} gradient of ${where} for input ${i} (${x.name}) is ${fitted.dtype}${shapeToString(fitted.shape)}, expected ${x.dtype}${shapeToString(x.shape)}`,
          );
        const prev = cot.get(x.name);
        cot.set(x.name, prev ? g.add(prev, fitted) : fitted);
      });
    }
    const out = new Map<string, Value>();
    for (const w of wrt) {
      const d = cot.get(w.name);
      // A parameter the loss does not depend on has a zero gradient.
      out.set(w.name, d ?? g.mul(w, 0));
    }
    return out;
  });
}

/** Sums dx over the axes along which x was broadcast, so that it has x's shape. */
function unbroadcast(g: G, dx: Value, x: Value): Value {
  if (sameShape(dx.shape, x.shape)) return dx;
  const lead = dx.shape.length - x.shape.length;
  if (lead < 0) return dx; // cannot fix: the shape check reports it
  let out = dx;
  if (lead > 0) out = g.reduceSum(out, [...Array(lead).keys()], false);
  const ones = x.shape.flatMap((d, i) => (d === 1 && out.shape[i] !== 1 ? [i] : []));
  if (ones.length) out = g.reduceSum(out, ones, true);
  return out;
}
