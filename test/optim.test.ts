/**
 * The optimizer update graphs on a two-element parameter, two steps, against numbers worked out by hand
 * with PyTorch's formulas (torch.optim.Adam/AdamW/SGD). Run through onnxruntime-node.
 */
import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { G } from "../src/ops/builder.ts";
import { encodeModel } from "../src/onnx/proto.ts";
import { emitUpdate, optimizerConfig, optimizerState, type OptimizerConfig } from "../src/optim/optimizer.ts";

async function twoSteps(c: OptimizerConfig, grads: number[][]) {
  const g = new G("update");
  const p = g.input("p", [2], "float32");
  const grad = g.input("grad", [2], "float32");
  const names = optimizerState(c);
  const state = names.map((n) => g.input(n, [2], "float32"));
  const t = g.input("t", [], "float32");
  const lr = g.input("lr", [], "float32");
  const out = emitUpdate(g, c, { params: p, grads: grad, state, t, lr });
  g.output(out.params, "p.next");
  out.state.forEach((s, i) => g.output(s, `${names[i]}.next`));
  const s = await ort.InferenceSession.create(encodeModel(g.toModel()));
  const f32 = (xs: ArrayLike<number>, dims: number[] = [2]) => new ort.Tensor("float32", Float32Array.from(xs), dims);
  let params: ort.Tensor = f32([1, -2]);
  let st: ort.Tensor[] = names.map(() => f32([0, 0]));
  const history: { p: number[]; state: number[][] }[] = [];
  for (let k = 0; k < grads.length; k++) {
    const feeds: Record<string, ort.Tensor> = { p: params, grad: f32(grads[k]), t: f32([k + 1], []), lr: f32([c.lr], []) };
    names.forEach((n, i) => (feeds[n] = st[i]));
    const r = await s.run(feeds);
    params = r["p.next"];
    st = names.map((n) => r[`${n}.next`]);
    history.push({ p: Array.from(params.data as Float32Array), state: st.map((x) => Array.from(x.data as Float32Array)) });
  }
  return history;
}

const grads = [
  [0.5, -1],
  [0.1, 0.3],
];

describe("optimizers, two steps by hand (p0 = [1, -2], g1 = [0.5, -1], g2 = [0.1, 0.3], lr 0.1)", () => {
  it("Adam (betas 0.9, 0.999, eps 1e-8)", async () => {
    const [s1, s2] = await twoSteps(optimizerConfig("adam", { lr: 0.1 }), grads);
    // step 1: m = 0.1 g1 = [0.05, -0.1];  v = 0.001 g1^2 = [0.00025, 0.001]
    //   bias corrections 1 - 0.9 = 0.1 and sqrt(1 - 0.999) = 0.0316228: sqrt(v)/0.0316228 = [0.5, 1]
    //   p -= (0.1 / 0.1) * m / ([0.5, 1] + 1e-8) = [0.1, -0.1]   ->  p1 = [0.9, -1.9]
    expect(s1.state[0][0]).toBeCloseTo(0.05, 7);
    expect(s1.state[1][1]).toBeCloseTo(0.001, 9);
    expect(s1.p[0]).toBeCloseTo(0.9, 6);
    expect(s1.p[1]).toBeCloseTo(-1.9, 6);
    // step 2: m = 0.9 m + 0.1 g2 = [0.055, -0.06];  v = 0.999 v + 0.001 g2^2 = [0.00025975, 0.001089]
    //   bias corrections 1 - 0.81 = 0.19 and sqrt(1 - 0.998001) = 0.0447102: sqrt(v)/0.0447102 = [0.360472, 0.738087]
    //   p -= (0.1 / 0.19) * m / denom = [0.0803041, -0.0427849]   ->  p2 = [0.8196959, -1.8572151]
    expect(s2.state[0][0]).toBeCloseTo(0.055, 7);
    expect(s2.state[1][0]).toBeCloseTo(0.00025975, 9);
    expect(s2.p[0]).toBeCloseTo(0.8196959, 5);
    expect(s2.p[1]).toBeCloseTo(-1.8572151, 5);
  });

  it("AdamW (decoupled weight decay 0.1)", async () => {
    const [s1, s2] = await twoSteps(optimizerConfig("adamw", { lr: 0.1, weightDecay: 0.1 }), grads);
    // each step first p *= 1 - lr wd = 0.99, then the Adam step above:
    //   p1 = 0.99 [1, -2] - [0.1, -0.1] = [0.89, -1.88];   p2 = 0.99 p1 - [0.0803041, -0.0427849] = [0.8007959, -1.8184151]
    expect(s1.p[0]).toBeCloseTo(0.89, 6);
    expect(s1.p[1]).toBeCloseTo(-1.88, 6);
    expect(s2.p[0]).toBeCloseTo(0.8007959, 5);
    expect(s2.p[1]).toBeCloseTo(-1.8184151, 5);
  });

  it("Adam with L2 weight decay adds wd p to the gradient", async () => {
    const [s1] = await twoSteps(optimizerConfig("adam", { lr: 0.1, weightDecay: 1 }), grads);
    // g1 + 1 * p0 = [1.5, -3]: m = [0.15, -0.3], sqrt(v)/0.0316228 = [1.5, 3]: the step is still lr * sign = [0.1, -0.1]
    expect(s1.state[0][0]).toBeCloseTo(0.15, 6);
    expect(s1.p[0]).toBeCloseTo(0.9, 6);
  });

  it("SGD with Nesterov momentum 0.9", async () => {
    const [s1, s2] = await twoSteps(optimizerConfig("sgd", { lr: 0.1, momentum: 0.9, nesterov: true }), grads);
    // step 1: b = g1 = [0.5, -1]; update = g1 + 0.9 b = [0.95, -1.9]; p1 = p0 - 0.1 update = [0.905, -1.81]
    expect(s1.state[0]).toEqual([0.5, -1]);
    expect(s1.p[0]).toBeCloseTo(0.905, 6);
    expect(s1.p[1]).toBeCloseTo(-1.81, 6);
    // step 2: b = 0.9 b + g2 = [0.55, -0.6]; update = g2 + 0.9 b = [0.595, -0.24]; p2 = [0.8455, -1.786]
    expect(s2.state[0][0]).toBeCloseTo(0.55, 6);
    expect(s2.p[0]).toBeCloseTo(0.8455, 6);
    expect(s2.p[1]).toBeCloseTo(-1.786, 6);
  });

  it("plain SGD (PyTorch's default: no momentum, no state)", async () => {
    const c = optimizerConfig("sgd", { lr: 0.1 });
    expect(optimizerState(c)).toEqual([]);
    const [s1, s2] = await twoSteps(c, grads);
    expect(s1.p[0]).toBeCloseTo(0.95, 6); // 1 - 0.1 * 0.5
    expect(s2.p[1]).toBeCloseTo(-1.93, 6); // -2 + 0.1 - 0.03
  });
});

describe("learning-rate schedules", () => {
  it("cosine follows CosineAnnealingLR stepped per batch: lr0 at the start, lr0/2 halfway, -> 0 at the end", async () => {
    const { lrAt } = await import("../src/optim/schedule.ts");
    expect(lrAt("cosine", 1e-3, 0, 100)).toBe(1e-3);
    expect(lrAt("cosine", 1e-3, 50, 100)).toBeCloseTo(5e-4, 12);
    expect(lrAt("cosine", 1e-3, 99, 100)).toBeCloseTo(1e-3 * (1 + Math.cos((Math.PI * 99) / 100)) / 2, 15);
    expect(lrAt("cosine", 1e-3, 99, 100)).toBeLessThan(1e-6);
    expect(lrAt("constant", 1e-3, 99, 100)).toBe(1e-3);
  });
});
