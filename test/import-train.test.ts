/**
 * Imported models end to end, through the same program builder and Trainer as specs: the inference model
 * equals onnxruntime on the original file; the loss gradient of every parameter agrees with finite
 * differences through onnxruntime; one Adam step from the exported weights equals PyTorch's; and the mycnn
 * spec, exported to model.onnx and imported back, trains exactly as the spec does.
 */
import { beforeAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { importOnnx } from "../src/ir/import.ts";
import type { ModelIR } from "../src/ir/ir.ts";
import { analyze } from "../src/ir/passes.ts";
import { buildGraph, buildInferenceModel, buildProgram, initialValues, planModel } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { Trainer } from "../src/runtime/trainer.ts";
import { encodeModel } from "../src/onnx/proto.ts";
import { loadMnist } from "../src/data/node.ts";
import { Rng } from "../src/random.ts";
import { maxAbsDiff, normal, paramTangent, relNorm } from "./helpers/gradcheck.ts";
import { firstTestImages, importModels, type ImportModel } from "./helpers/import-models.ts";

const N = 1000;
let models: ImportModel[];
let images: Float32Array;
beforeAll(async () => {
  models = await importModels();
  images = firstTestImages(N);
});
const byFile = (f: string) => models.find((m) => m.file === f)!;
const importIt = (m: ImportModel) => importOnnx(m.bytes(), { source: m.file });

async function infer(bytes: Uint8Array, ir: ModelIR, x: Float32Array, n: number, batch1 = false): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
  const dims = (k: number) => [k, ...(ir.input.shape.slice(1) as number[])];
  const out = new Float32Array(n * ir.classes);
  try {
    const step = batch1 ? 1 : n; // a fixed-batch export takes one image per run
    for (let i = 0; i < n; i += step) {
      const r = await session.run({ [ir.input.name]: new ort.Tensor("float32", x.slice(i * 784, (i + step) * 784), dims(step)) });
      out.set(r[ir.output.name].data as Float32Array, i * ir.classes);
    }
  } finally {
    await session.release();
  }
  return out;
}


describe("the inference model of an imported model (buildInferenceModel)", () => {
  it("equals onnxruntime on the original file (eval-mode exports, 1,000 MNIST test images) and PyTorch's scores", async () => {
    for (const m of models.filter((x) => x.family !== "resnet18")) {
      const ir = importIt(m);
      const plan = planModel(ir);
      const { params, buffers } = initialValues(plan, 0);
      const ours = buildInferenceModel(plan, params, buffers);
      if (m.mode === "eval") {
        const theirs = await infer(m.bytes(), ir, images, N, m.batch === "fixed");
        const diff = maxAbsDiff(await infer(ours, ir, images, N), theirs);
        expect(diff, `${m.file}: max |ours - onnxruntime on the original| = ${diff}`).toBeLessThan(1e-4);
      }
      // Against PyTorch (eval mode) on the reference batch, through the output (scores for logits outputs).
      const ref = m.ref();
      const x = ref.get("images")!;
      const out = await infer(ours, ir, x.data, x.shape[0]);
      const logits = Float32Array.from(ref.get("logits")!.data);
      const expected = ir.output.kind === "logits" ? logits : softmaxRows(logits, ir.classes, ir.output.kind === "log-probabilities");
      const diff = maxAbsDiff(out, expected);
      expect(diff, `${m.file}: max |ours - PyTorch| = ${diff}`).toBeLessThan(1e-4);
    }
  }, 900_000);
});

function softmaxRows(z: Float32Array, k: number, log: boolean): Float32Array {
  const out = new Float32Array(z.length);
  for (let r = 0; r < z.length / k; r++) {
    const row = z.subarray(r * k, (r + 1) * k);
    const max = Math.max(...row);
    const lse = max + Math.log(row.reduce((a, v) => a + Math.exp(v - max), 0));
    row.forEach((v, i) => (out[r * k + i] = log ? v - lse : Math.exp(v - lse)));
  }
  return out;
}

describe("whole-model gradient of an imported model, every parameter, against finite differences", () => {
  const cases = ["mycnn_train_op9_fixed.onnx", "mycnn_eval_op13_dynamic.onnx", "lenet5_eval_op13_dynamic.onnx", "rescnn_train_op13_dynamic.onnx", "mlp_train_op13_dynamic.onnx"];
  it.each(cases)("%s", async (file) => {
    const ir = importIt(byFile(file));
    const plan = planModel(ir);
    const opt = optimizerConfig("adam");
    const noise: { name: string; shape: (number | string)[] }[] = [];
    const fwd = await ort.InferenceSession.create(encodeModel(buildGraph(plan, true, opt, true, noise).toModel()));
    const rng = new Rng(3);
    const { params, buffers } = initialValues(plan, 0);
    const n = 8;
    const x = Float32Array.from({ length: n * 784 }, () => normal(rng));
    const base: Record<string, ort.Tensor> = {
      input: new ort.Tensor("float32", x, [n, ...plan.inputShape]),
      labels: new ort.Tensor("int64", BigInt64Array.from({ length: n }, (_, i) => BigInt((i * 7) % 10)), [n]),
      ...(buffers.length ? { buffers: new ort.Tensor("float32", buffers, [buffers.length]) } : {}),
    };
    // Dropout: one fixed mask for all runs (the noise the Trainer would feed for one step).
    for (const z of noise) {
      const dims = z.shape.map((d) => (typeof d === "number" ? d : n));
      base[z.name] = new ort.Tensor("float32", Float32Array.from({ length: dims.reduce((a, b) => a * b, 1) }, () => rng.next()), dims);
    }
    const run = async (p: Float32Array) => (await fwd.run({ ...base, params: new ort.Tensor("float32", p, [p.length]) })) as Record<string, ort.Tensor>;
    const grad = (await run(params))["params.grad"].data as Float32Array;
    const bnBias = biasesBeforeBatchNorm(ir);
    let clear = 0;
    for (const spec of plan.params) {
      // As test/model-grad.test.ts: along the analytic gradient plus a random direction, no element moved by
      // more than h; float32 rounding of the loss over 2h bounds the absolute tolerance.
      const t = paramTangent(grad, spec, params.length, rng);
      const h = 3e-5;
      const lossAt = async (s: number) => (await run(params.map((p, i) => p + s * t[i]))).loss.data[0] as number;
      const numeric = ((await lossAt(h)) - (await lossAt(-h))) / (2 * h);
      let analytic = 0;
      for (let i = spec.offset; i < spec.offset + spec.size; i++) analytic += grad[i] * t[i];
      const tol = (4 * 2.4e-7) / (2 * h) + 1e-2 * Math.max(Math.abs(numeric), Math.abs(analytic));
      expect(Math.abs(numeric - analytic), `${file} ${spec.name}: numeric ${numeric}, analytic ${analytic}`).toBeLessThan(tol);
      if (Math.abs(analytic) > 2e-2 && !bnBias.has(spec.name)) clear++;
    }
    expect(clear, "most parameters have a clearly non-zero directional derivative").toBeGreaterThan(plan.params.length / 2);
  }, 600_000);
});

/** Conv biases whose output feeds a training-mode BatchNorm alone (see the README), and that BatchNorm's running mean. */
function biasesBeforeBatchNorm(ir: ModelIR): Set<string> {
  const out = new Set<string>();
  for (const [conv, bn] of analyze(ir).foldBiasInto) {
    const c = ir.nodes.find((n) => n.name === conv)!;
    const b = ir.nodes.find((n) => n.name === bn)!;
    if (c.inputs[2]) out.add(c.inputs[2]).add(b.inputs[3]);
  }
  return out;
}

describe("one Adam step from the exported weights equals PyTorch's", () => {
  const cases = ["mycnn_train_op9_fixed.onnx", "mycnn_train_op17_dynamic.onnx", "rescnn_train_op13_dynamic.onnx", "resnet18_train_op13_dynamic.onnx"];
  it.each(cases)("%s", async (file) => {
    const m = byFile(file);
    const ir = importIt(m);
    const program = buildProgram(ir, optimizerConfig("adam", { lr: 1e-3 }));
    const { params, buffers } = initialValues(program.plan, 0);
    const trainer = await Trainer.create(ort, program, Trainer.freshState(program, params, buffers), { threads: 2 });
    const ref = m.ref();
    const x = ref.get("images")!;
    const y = BigInt64Array.from(ref.get("labels")!.data, (v) => BigInt(v));
    await trainer.trainStep(x.data, y, y.length);
    const state = trainer.getState();
    await trainer.release();
    const exceptions = biasesBeforeBatchNorm(ir);
    let compared = 0;
    let noisy = 0;
    for (const [list, flat] of [
      [program.plan.params, state.params],
      [program.plan.buffers, state.buffers],
    ] as const) {
      for (const t of list) {
        const mine = flat.subarray(t.offset, t.offset + t.size);
        const theirs = ref.get(`after.${t.name}`)?.data;
        expect(theirs, `PyTorch's reference lacks ${t.name}`).toBeDefined();
        // Adam's first step is lr * g / (|g| + eps): about +-lr whatever |g| is. Where PyTorch's gradient is
        // below 1e-4 of the tensor's RMS (a sum that cancelled to float noise, ~1e-7), the sign and size of
        // that step are noise in both frameworks; those elements only have to stay within a step of lr.
        const g = ref.get(`grad.${t.name}`)?.data;
        const rms = g ? Math.sqrt(g.reduce((a, v) => a + v * v, 0) / g.length) : 0;
        // (An exact 0, such as a 3x3 tap that only ever sees padding on a 1x1 image, is no noise: both keep it.)
        const keep = (i: number) => !g || g[i] === 0 || Math.abs(g[i]) >= 1e-4 * rms;
        const a = mine.filter((_, i) => keep(i));
        const b = theirs!.filter((_, i) => keep(i));
        const dropped = mine.length - a.length;
        noisy += dropped;
        if (dropped) expect(maxAbsDiff(mine, theirs!), `${t.name}: noise-dominated elements move by at most 2 lr`).toBeLessThanOrEqual(2e-3);
        const msg = `${file} ${t.name}: relative error ${relNorm(a, b)}, max abs ${maxAbsDiff(a, b)} (${dropped} noise-dominated elements left out)`;
        // Adam turns PyTorch's ~1e-9 gradient noise on such a bias into a step of up to ~3 lr (README).
        if (exceptions.has(t.name)) expect(maxAbsDiff(mine, theirs!), msg).toBeLessThanOrEqual(4e-3);
        else expect(relNorm(a, b), msg).toBeLessThan(2e-5);
        compared++;
      }
    }
    // Few elements are noise-dominated: the comparison above covers nearly everything.
    expect(noisy, "noise-dominated elements").toBeLessThan(2e-4 * program.plan.paramCount + 10);
    expect(compared).toBe([...ref.keys()].filter((k) => k.startsWith("after.")).length);
  }, 900_000);
});

describe("round trip: the mycnn spec, exported and imported back", () => {
  it("trains exactly as the spec does", async () => {
    const spec = builtinSpec("mycnn");
    const opt = optimizerConfig("adam");
    const specProgram = buildProgram(spec, opt);
    const init = initialValues(specProgram.plan, 5);
    const exported = buildInferenceModel(specProgram.plan, init.params, init.buffers);
    const ir = importOnnx(exported, { source: "model.onnx" });
    expect(ir.params.map((p) => p.name)).toEqual(specProgram.plan.params.map((p) => p.name));
    expect(ir.buffers.map((p) => p.name)).toEqual(specProgram.plan.buffers.map((p) => p.name));
    const importedProgram = buildProgram(ir, opt);
    const back = initialValues(importedProgram.plan, 123); // the seed does not matter: the values are the file's
    expect(back.params).toEqual(init.params);
    expect(back.buffers).toEqual(init.buffers);

    const data = loadMnist(undefined, { trainLimit: 3 * 64, testLimit: 1 });
    const x = Float32Array.from(data.train.images.subarray(0, 3 * 64 * 784), (v) => v / 255);
    const y = BigInt64Array.from(data.train.labels.subarray(0, 3 * 64), (v) => BigInt(v));
    const runs = [];
    for (const program of [specProgram, importedProgram]) {
      const trainer = await Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), { threads: 1 });
      const losses = [];
      for (let k = 0; k < 3; k++) losses.push((await trainer.trainStep(x.subarray(k * 64 * 784), y.subarray(k * 64), 64)).loss);
      runs.push({ losses, state: trainer.getState() });
      await trainer.release();
    }
    expect(runs[1].losses).toEqual(runs[0].losses);
    expect(maxAbsDiff(runs[1].state.params, runs[0].state.params)).toBe(0);
    expect(maxAbsDiff(runs[1].state.buffers, runs[0].state.buffers)).toBe(0);
    expect(runs[0].losses[2]).toBeLessThan(runs[0].losses[0]); // it did train
  }, 600_000);
});
