/**
 * Reverse-mode automatic differentiation over the tape of a G builder.
 * Walks the taped nodes from last to first, calls each op's VJP with the cotangents of its outputs,
 * sums broadcast gradients back to their input's shape, checks every gradient's shape and dtype, and
 * accumulates cotangents of values used more than once.
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
      const { op, inputs, outputs, attrs } = tape.entries[e];
      const dys = outputs.map((o) => cot.get(o.name));
      if (dys.every((d) => d === undefined)) continue;
      const needs = inputs.map((x) => g.requiresGrad(x));
      if (op.vjp === "none") throw new Error(`internal error: ${op.onnx} is taped but has no gradient`);
      const dxs = op.vjp(g, dys, { inputs, outputs, attrs, needs });
      inputs.forEach((x, i) => {
        const dx = dxs[i];
        if (!x || !needs[i] || !dx) return;
        const fitted = unbroadcast(g, dx, x);
        if (!sameShape(fitted.shape, x.shape) || fitted.dtype !== x.dtype)
          throw new Error(
            `internal error: ${op.onnx} gradient for ${x.name} is ${fitted.dtype}${shapeToString(fitted.shape)}, expected ${x.dtype}${shapeToString(x.shape)}`,
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
