/**
 * Batch normalisation over [N, C, ...]: NCHW (BatchNorm2d) or [N, C] (BatchNorm1d), statistics per channel
 * over every axis but C.
 */
import { shapeToString, type Value } from "../graph/value.ts";
import { defineOp, one, req } from "./op.ts";
import type { G } from "./builder.ts";

/** [C] -> [C,1,1] for NCHW; [C] already broadcasts over [N, C]. */
const perChannel = (g: G, v: Value, x: Value) => (x.shape.length === 2 ? v : g.reshape(v, [v.shape[0], ...x.shape.slice(2).map(() => 1)]));
/** The axes a channel's statistics run over: all but axis 1 ([0, 2, 3] for NCHW, [0] for [N, C]). */
const statAxes = (x: Value) => [...x.shape.keys()].filter((i) => i !== 1);

function checkBn(x: Value, gamma: Value): void {
  if (x.shape.length !== 4 && x.shape.length !== 2 && x.shape.length !== 3)
    throw new Error(`BatchNorm expects a [N, C], [N, C, L] or [N, C, H, W] input, got ${shapeToString(x.shape)}`);
  if (x.shape[1] !== gamma.shape[0]) throw new Error(`BatchNorm has ${gamma.shape[0]} channels, the previous layer gives ${x.shape[1]}`);
}

/**
 * Training-mode BatchNormalization: y = gamma (x - mean) / sqrt(var + eps) + beta with the batch's mean and
 * biased variance, which are also outputs (the layer turns them into running statistics).
 *
 * One ONNX node computes all three. onnxruntime writes the "running" statistics into the buffers of its
 * input_mean/input_var inputs (shared initializers included: it silently corrupts gradients), so those are
 * fresh run-time tensors made for this node alone (gamma*0 and gamma*0+1) and momentum is 0, which makes the
 * running outputs exactly the batch statistics.
 */
export const batchNormTrain = defineOp<{ eps: number }>({
  onnx: "BatchNormalization",
  infer: ([x, gamma]) => {
    checkBn(req(x, "x"), req(gamma, "gamma"));
    const c = gamma!.shape;
    return [
      { shape: x!.shape, dtype: "float32" },
      { shape: c, dtype: "float32" },
      { shape: c, dtype: "float32" },
    ];
  },
  emit: (g, [x, gamma, beta], { eps }, outs) => {
    const scratchMean = g.node("Mul", [gamma, g.scalar(0)], {}, [{ shape: gamma!.shape, dtype: "float32" }])[0];
    const scratchVar = g.node("Add", [scratchMean, g.scalar(1)], {}, [{ shape: gamma!.shape, dtype: "float32" }])[0];
    return g.node("BatchNormalization", [x, gamma, beta, scratchMean, scratchVar], { epsilon: { float: eps }, momentum: { float: 0 }, training_mode: 1 }, outs);
  },
  /**
   * With xhat = (x - mu) * r, r = 1/sqrt(var + eps), M = N*H*W and means over (N, H, W) (over N for [N, C]):
   *   dgamma = sum(dy * xhat),  dbeta = sum(dy)
   *   dx = gamma r (dy - mean(dy) - xhat mean(dy xhat)) = A dy + B x + C   (per-channel A, B, C)
   * so the full-size work is one product dy*x, two reductions and one affine map.
   */
  vjp: (g, dys, { inputs: [x, gamma], outputs: [, mu, variance], attrs: { eps }, needs }) => {
    const dy = one(dys);
    const r = g.reciprocal(g.sqrt(g.add(variance, eps)));
    const mdy = g.reduceMean(dy, statAxes(x!), false);
    const mdyx = g.reduceMean(g.mul(dy, x!), statAxes(x!), false);
    const k = g.mul(r, g.sub(mdyx, g.mul(mu, mdy))); // mean(dy * xhat)
    const m = g.countRatio(x!, mu); // M as float
    const a = g.mul(gamma!, r);
    const b = g.neg(g.mul(g.mul(a, r), k));
    const c = g.sub(g.neg(g.mul(a, mdy)), g.mul(b, mu));
    // B x + C as an inference-mode BatchNormalization (mean 0, variance 1, epsilon 0): one fused pass.
    const dx = needs[0] ? g.add(g.mul(dy, perChannel(g, a, x!)), g.affine(x!, b, c)) : undefined;
    return [dx, needs[1] ? g.mul(k, m) : undefined, needs[2] ? g.mul(mdy, m) : undefined];
  },
});

/** y = scale[c] x + bias[c] over [N, C, ...], as one inference-mode BatchNormalization (mean 0, variance 1, eps 0). */
export const affine = defineOp({
  onnx: "BatchNormalization",
  infer: ([x]) => [{ shape: req(x, "x").shape, dtype: "float32" }],
  emit: (g, [x, scale, bias], _a, outs) => {
    const zero = g.node("Mul", [scale, g.scalar(0)], {}, [{ shape: scale!.shape, dtype: "float32" }])[0];
    const one = g.node("Add", [zero, g.scalar(1)], {}, [{ shape: scale!.shape, dtype: "float32" }])[0];
    return g.node("BatchNormalization", [x, scale, bias, zero, one], { epsilon: { float: 0 } }, outs);
  },
  // d(s x + b) = s dx, dscale = sum(dy x), dbias = sum(dy)
  vjp: (g, dys, { inputs: [x, scale], needs }) => {
    const dy = one(dys);
    return [
      needs[0] ? g.mul(dy, perChannel(g, scale!, x!)) : undefined,
      needs[1] ? g.reduceSum(g.mul(dy, x!), statAxes(x!), false) : undefined,
      needs[2] ? g.reduceSum(dy, statAxes(x!), false) : undefined,
    ];
  },
});

/** Inference-mode BatchNormalization with given (running) statistics. */
export const batchNormInfer = defineOp<{ eps: number }>({
  onnx: "BatchNormalization",
  infer: ([x, gamma]) => {
    checkBn(req(x, "x"), req(gamma, "gamma"));
    return [{ shape: x!.shape, dtype: "float32" }];
  },
  attrs: ({ eps }) => ({ epsilon: { float: eps } }),
  /**
   * y = gamma (x - mean) r + beta with r = 1/sqrt(var + eps):
   *   dx = gamma r dy, dgamma = sum(dy (x - mean) r), dbeta = sum(dy),
   *   dmean = -gamma r sum(dy), dvar = -gamma r^3 sum(dy (x - mean)) / 2
   * The statistics are usually buffers (no gradient needed); they get one when something watched feeds them.
   */
  vjp: (g, dys, { inputs: [x, gamma, , mean, variance], attrs: { eps }, needs }) => {
    const dy = one(dys);
    const axes = statAxes(x!);
    const r = g.reciprocal(g.sqrt(g.add(variance!, eps)));
    const centred = () => g.sub(x!, perChannel(g, mean!, x!));
    const gr = () => g.mul(gamma!, r);
    return [
      needs[0] ? g.mul(dy, perChannel(g, gr(), x!)) : undefined,
      needs[1] ? g.reduceSum(g.mul(dy, g.mul(centred(), perChannel(g, r, x!))), axes, false) : undefined,
      needs[2] ? g.reduceSum(dy, axes, false) : undefined,
      needs[3] ? g.neg(g.mul(gr(), g.reduceSum(dy, axes, false))) : undefined,
      needs[4] ? g.mul(g.mul(gr(), g.mul(r, r)), g.mul(g.reduceSum(g.mul(dy, centred()), axes, false), -0.5)) : undefined,
    ];
  },
});
