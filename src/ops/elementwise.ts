/** Elementwise ops with numpy broadcasting. The autodiff driver sums gradients back to each input's shape. */
import { broadcastShapes, shapeToString, type DType, type Value } from "../graph/value.ts";
import { defineOp, one, req, sameAsInput as same, type OutSpec } from "./op.ts";
import { dataTypeOf } from "../onnx/tensor.ts";

function binary(inputs: (Value | undefined)[], dtype?: DType): OutSpec[] {
  const [a, b] = [req(inputs[0], "a"), req(inputs[1], "b")];
  if (a.dtype !== b.dtype) throw new Error(`internal error: dtype mismatch ${a.dtype} vs ${b.dtype}`);
  return [{ shape: broadcastShapes(a.shape, b.shape), dtype: dtype ?? a.dtype }];
}

// d(a+b) = da + db
export const add = defineOp({ onnx: "Add", infer: (i) => binary(i), vjp: (g, dys) => [one(dys), one(dys)] });

// d(a-b) = da - db
export const sub = defineOp({ onnx: "Sub", infer: (i) => binary(i), vjp: (g, dys) => [one(dys), g.neg(one(dys))] });

// d(ab) = b da + a db
export const mul = defineOp({
  onnx: "Mul",
  infer: (i) => binary(i),
  vjp: (g, dys, { inputs: [a, b], needs }) => [needs[0] ? g.mul(one(dys), b!) : undefined, needs[1] ? g.mul(one(dys), a!) : undefined],
});

// d(a/b) = da / b - (a/b) db / b
export const div = defineOp({
  onnx: "Div",
  infer: (i) => binary(i),
  vjp: (g, dys, { inputs: [, b], outputs: [y], needs }) => {
    const dyOverB = g.div(one(dys), b!);
    return [dyOverB, needs[1] ? g.neg(g.mul(dyOverB, y)) : undefined];
  },
});

// d(-x) = -dx
export const neg = defineOp({ onnx: "Neg", infer: same, vjp: (g, dys) => [g.neg(one(dys))] });

// d exp(x) = exp(x) dx
export const exp = defineOp({ onnx: "Exp", infer: same, vjp: (g, dys, { outputs: [y] }) => [g.mul(one(dys), y)] });

// d log(x) = dx / x
export const log = defineOp({ onnx: "Log", infer: same, vjp: (g, dys, { inputs: [x] }) => [g.div(one(dys), x!)] });

// d sqrt(x) = dx / (2 sqrt(x))
export const sqrt = defineOp({
  onnx: "Sqrt",
  infer: same,
  vjp: (g, dys, { outputs: [y] }) => [g.div(one(dys), g.mul(y, 2))],
});

// d tanh(x) = (1 - tanh(x)^2) dx
export const tanh = defineOp({
  onnx: "Tanh",
  infer: same,
  vjp: (g, dys, { outputs: [y] }) => [g.mul(one(dys), g.sub(1, g.mul(y, y)))],
});

// d sigmoid(x) = s (1 - s) dx
export const sigmoid = defineOp({
  onnx: "Sigmoid",
  infer: same,
  vjp: (g, dys, { outputs: [y] }) => [g.mul(one(dys), g.mul(y, g.sub(1, y)))],
});

// d relu(x) = dx if x > 0 else 0  (the subgradient at 0 is 0, as in PyTorch)
export const relu = defineOp({
  onnx: "Relu",
  infer: same,
  vjp: (g, dys, { outputs: [y] }) => [g.where(g.greater(y, 0), one(dys), 0)],
});

// d leakyRelu(x) = dx if x > 0 else alpha dx
export const leakyRelu = defineOp<{ alpha: number }>({
  onnx: "LeakyRelu",
  infer: same,
  attrs: ({ alpha }) => ({ alpha: { float: alpha } }),
  vjp: (g, dys, { inputs: [x], attrs: { alpha } }) => {
    const dy = one(dys);
    return [g.where(g.greater(x!, 0), dy, g.mul(dy, alpha))];
  },
});

// d prelu(x, s) = dx if x > 0 else s dx;  ds = x dy where x <= 0 (summed back to s's shape by the driver)
export const prelu = defineOp({
  onnx: "PRelu",
  infer: (inputs) => {
    const [x, s] = [req(inputs[0], "x"), req(inputs[1], "slope")];
    // ONNX broadcasts the slope to x one way only: it must not grow x
    const shape = broadcastShapes(x.shape, s.shape);
    if (shape.length !== x.shape.length || shape.some((d, i) => d !== x.shape[i]))
      throw new Error(`PRelu slope ${shapeToString(s.shape)} does not broadcast to its input ${shapeToString(x.shape)}`);
    return [{ shape: x.shape, dtype: x.dtype }];
  },
  vjp: (g, dys, { inputs: [x, s], needs }) => {
    const dy = one(dys);
    const positive = g.greater(x!, 0);
    return [needs[0] ? g.where(positive, dy, g.mul(dy, s!)) : undefined, needs[1] ? g.where(positive, 0, g.mul(dy, x!)) : undefined];
  },
});

// d elu(x) = dx if x > 0 else alpha exp(x) dx = (y + alpha) dx
export const elu = defineOp<{ alpha: number }>({
  onnx: "Elu",
  infer: same,
  attrs: ({ alpha }) => ({ alpha: { float: alpha } }),
  vjp: (g, dys, { inputs: [x], outputs: [y], attrs: { alpha } }) => {
    const dy = one(dys);
    return [g.where(g.greater(x!, 0), dy, g.mul(dy, g.add(y, alpha)))];
  },
});

/**
 * Clip (opset 11+: min and max are inputs, either may be absent). Gradient as PyTorch's clamp: dy passes
 * where min <= x <= max (both bounds inclusive), 0 elsewhere.
 */
export const clip = defineOp<{ min?: number; max?: number }>({
  onnx: "Clip",
  infer: same,
  emit: (g, [x], { min, max }, outs) => g.node("Clip", [x, min === undefined ? undefined : g.scalar(min), max === undefined ? undefined : g.scalar(max)], {}, outs),
  vjp: (g, dys, { inputs: [x], attrs: { min, max } }) => {
    const dy = one(dys);
    const low = min === undefined ? undefined : g.greaterOrEqual(x!, min);
    const high = max === undefined ? undefined : g.lessOrEqual(x!, max);
    const inside = low && high ? g.and(low, high) : (low ?? high);
    return [inside ? g.where(inside, dy, 0) : dy];
  },
});

// hardSigmoid(x) = max(0, min(1, alpha x + beta)); d = alpha dx strictly inside (0, 1), as PyTorch
export const hardSigmoid = defineOp<{ alpha: number; beta: number }>({
  onnx: "HardSigmoid",
  infer: same,
  attrs: ({ alpha, beta }) => ({ alpha: { float: alpha }, beta: { float: beta } }),
  vjp: (g, dys, { outputs: [y], attrs: { alpha } }) => [g.where(g.and(g.greater(y, 0), g.less(y, 1)), g.mul(one(dys), alpha), 0)],
});

/**
 * hardSwish(x) = x hardSigmoid(x) with alpha 1/6, beta 1/2 (opset 14). As PyTorch's hardswish backward
 * (measured on 1.13 at the corners): d = 0 for x < -3, (x/3 + 1/2) dx for -3 <= x < 3, dx from 3 on.
 */
export const hardSwish = defineOp({
  onnx: "HardSwish",
  infer: same,
  vjp: (g, dys, { inputs: [x] }) => {
    const dy = one(dys);
    const ramp = g.mul(dy, g.add(g.div(x!, 3), 0.5));
    return [g.where(g.less(x!, -3), 0, g.where(g.less(x!, 3), ramp, dy))];
  },
});

// where(c, a, b): the gradient flows to whichever branch was taken; c is boolean.
export const where = defineOp({
  onnx: "Where",
  infer: (inputs) => {
    const [c, a, b] = inputs.map((x, i) => req(x, `where input ${i}`));
    return [{ shape: broadcastShapes(c.shape, broadcastShapes(a.shape, b.shape)), dtype: a.dtype }];
  },
  nonDifferentiableInputs: [0],
  vjp: (g, dys, { inputs: [c], needs }) => {
    const dy = one(dys);
    return [undefined, needs[1] ? g.where(c!, dy, 0) : undefined, needs[2] ? g.where(c!, 0, dy) : undefined];
  },
});

// Comparisons and casts have no gradient (boolean or integer results).
export const greater = defineOp({ onnx: "Greater", infer: (i) => binary(i, "bool"), vjp: "none" });
export const equal = defineOp({ onnx: "Equal", infer: (i) => binary(i, "bool"), vjp: "none" });
export const less = defineOp({ onnx: "Less", infer: (i) => binary(i, "bool"), vjp: "none" });
export const greaterOrEqual = defineOp({ onnx: "GreaterOrEqual", infer: (i) => binary(i, "bool"), vjp: "none" });
export const lessOrEqual = defineOp({ onnx: "LessOrEqual", infer: (i) => binary(i, "bool"), vjp: "none" });
export const and = defineOp({ onnx: "And", infer: (i) => binary(i, "bool"), vjp: "none" });
export const cast = defineOp<{ to: DType }>({
  onnx: "Cast",
  infer: ([x], { to }) => [{ shape: req(x, "x").shape, dtype: to }],
  attrs: ({ to }) => ({ to: dataTypeOf[to] }),
  vjp: "none",
});

// d(1/x) = -dx / x^2
export const reciprocal = defineOp({
  onnx: "Reciprocal",
  infer: same,
  vjp: (g, dys, { outputs: [y] }) => [g.neg(g.mul(one(dys), g.mul(y, y)))],
});

// d a^b = b a^(b-1) da + a^b log(a) db
export const pow = defineOp({
  onnx: "Pow",
  infer: (i) => binary(i),
  vjp: (g, dys, { inputs: [a, b], outputs: [y], needs }) => {
    const dy = one(dys);
    return [
      needs[0] ? g.mul(dy, g.mul(b!, g.div(y, a!))) : undefined,
      needs[1] ? g.mul(dy, g.mul(y, g.log(a!))) : undefined,
    ];
  },
});
