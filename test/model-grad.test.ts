/**
 * The whole model's loss gradient with respect to every parameter, against finite differences through
 * onnxruntime-node: the backward pass that the training step uses (buildGraph(..., gradOnly)).
 * Inputs are random normal images (no ties in max-pooling, no activations exactly at 0).
 */
import { describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { buildGraph, initialValues, planModel } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { encodeModel } from "../src/onnx/proto.ts";
import { Rng } from "../src/random.ts";
import { normal, paramTangent } from "./helpers/gradcheck.ts";

async function check(modelName: string) {
  const plan = planModel(builtinSpec(modelName));
  const opt = optimizerConfig("adam");
  const fwd = await ort.InferenceSession.create(encodeModel(buildGraph(plan, true, opt, true).toModel()));
  const rng = new Rng(3);
  const { params, buffers } = initialValues(plan, 1);
  const n = 8;
  const feeds = (p: Float32Array) => ({
    input: new ort.Tensor("float32", Float32Array.from({ length: n * 784 }, () => normal(rng)), [n, 1, 28, 28]),
    labels: new ort.Tensor("int64", BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 7) % 10)), [n]),
    params: new ort.Tensor("float32", p, [p.length]),
    ...(buffers.length ? { buffers: new ort.Tensor("float32", buffers, [buffers.length]) } : {}),
  });
  const base = feeds(params);
  const run = async (p: Float32Array) => (await fwd.run({ ...base, params: new ort.Tensor("float32", p, [p.length]) })) as Record<string, ort.Tensor>;
  const grad = (await run(params))["params.grad"].data as Float32Array;
  const results = [];
  for (const spec of plan.params) {
    // Tangent on this parameter only (see paramTangent), no element moved by more than h. h is small so that few
    // ReLU/max-pool kinks are crossed (their error grows with h) while float32 rounding of the loss
    // (~ulp(L) / 2h) stays well below the tolerance.
    const t = paramTangent(grad, spec, params.length, rng);
    const h = 3e-5;
    const lossAt = async (step: number) => (await run(params.map((p, i) => p + step * t[i]))).loss.data[0] as number;
    const numeric = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
    let analytic = 0;
    let scale = 0;
    for (let i = spec.offset; i < spec.offset + spec.size; i++) {
      analytic += grad[i] * t[i];
      scale += Math.abs(grad[i] * t[i]);
    }
    results.push({ name: spec.name, numeric, analytic, scale });
  }
  return results;
}

describe("whole-model gradient of the mean cross-entropy, every parameter", () => {
  for (const model of ["mycnn", "lenet5"]) {
    it(model, async () => {
      const results = await check(model);
      for (const r of results) {
        const roundingNoise = (4 * 2.4e-7) / (2 * 3e-5); // a few ulps of a loss near 2.3, over 2h
        const tol = roundingNoise + 1e-2 * Math.max(Math.abs(r.numeric), Math.abs(r.analytic));
        // A conv bias that feeds BatchNorm has a true gradient of 0: both sides must be ~0 then.
        expect(Math.abs(r.numeric - r.analytic), `${r.name}: numeric ${r.numeric} vs analytic ${r.analytic} (scale ${r.scale})`).toBeLessThan(tol);
      }
      // the check is not vacuous: most parameters have a clearly non-zero directional derivative
      expect(results.filter((r) => Math.abs(r.analytic) > 2e-2).length).toBeGreaterThan(results.length / 2);
    });
  }
});
