/**
 * Our training step against PyTorch's (Debian python3-torch via bench/torch_ref.py): the same initial weights
 * and the same two batches of real MNIST, two optimizer steps, then every parameter, running statistic and
 * optimizer-state tensor compared. Float32 agreement (~1e-5 relative) is expected, except for conv biases that
 * feed BatchNorm: their true gradient is 0, both frameworks compute ~1e-9 of float noise, and Adam normalises
 * that noise into steps of +-lr (see ORT-FACTS.md), so those are compared loosely.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { hasTorch, runPython } from "../bench/harness.ts";
import { readTensorDir, writeTensorDir } from "../bench/tensor-dir.ts";
import { buildProgram, initialValues } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig, type OptimizerConfig } from "../src/optim/optimizer.ts";
import { Trainer } from "../src/runtime/trainer.ts";
import { loadMnist } from "../src/data/node.ts";
import { maxAbsDiff, relNorm } from "./helpers/gradcheck.ts";

const B = 64;
const K = 2;
let dir: string;
beforeAll(() => {
  if (!hasTorch()) throw new Error("/usr/bin/python3 cannot import torch: apt-get install -y python3-torch (as .ci/run does)");
  dir = mkdtempSync(join(tmpdir(), "parity-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function pyArgs(o: OptimizerConfig): string[] {
  if (o.type === "sgd") return ["--optimizer", "sgd", "--lr", String(o.lr), "--momentum", String(o.momentum), "--weight-decay", String(o.weightDecay), ...(o.nesterov ? ["--nesterov"] : [])];
  return ["--optimizer", o.type, "--lr", String(o.lr), "--betas", String(o.betas[0]), String(o.betas[1]), "--eps", String(o.eps), "--weight-decay", String(o.weightDecay)];
}

const cases: [string, string, OptimizerConfig][] = [
  ["mycnn", "adam", optimizerConfig("adam")],
  ["mycnn", "adam, weight decay 1e-2", optimizerConfig("adam", { weightDecay: 1e-2 })],
  ["mycnn", "adamw", optimizerConfig("adamw", { lr: 2e-3 })],
  ["mycnn", "sgd momentum 0.9 nesterov", optimizerConfig("sgd", { lr: 0.05, momentum: 0.9, nesterov: true, weightDecay: 1e-3 })],
  ["lenet5", "adam", optimizerConfig("adam")],
];

describe("a training step equals PyTorch's", () => {
  const data = loadMnist(undefined, { trainLimit: B * K, testLimit: 1 });
  it.each(cases)("%s, %s", async (model, _label, opt) => {
    const spec = builtinSpec(model);
    const program = buildProgram(spec, opt);
    const { plan } = program;
    const init = initialValues(plan, 11);
    const trainer = await Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), { threads: 1 });
    const x = Float32Array.from(data.train.images.subarray(0, B * K * 784), (v) => v / 255);
    const y = BigInt64Array.from(data.train.labels.subarray(0, B * K), (v) => BigInt(v));
    const losses: number[] = [];
    for (let k = 0; k < K; k++) losses.push((await trainer.trainStep(x.subarray(k * B * 784), y.subarray(k * B), B)).loss);

    const work = mkdtempSync(join(dir, `${model}-`));
    const named = (list: typeof plan.params, flat: Float32Array) => list.map((t) => ({ name: t.name, shape: t.shape, data: flat.slice(t.offset, t.offset + t.size) }));
    writeTensorDir(join(work, "state"), [...named(plan.params, init.params), ...named(plan.buffers, init.buffers)]);
    writeTensorDir(join(work, "batches"), [
      { name: "images", shape: [K, B, 1, 28, 28], data: x },
      { name: "labels", shape: [K, B], data: Float32Array.from(y, Number) },
    ]);
    const specPath = join(work, "spec.json");
    (await import("node:fs")).writeFileSync(specPath, JSON.stringify(spec));
    await runPython(["step", "--spec", specPath, "--state", join(work, "state"), "--batches", join(work, "batches"), "--steps", String(K), "--out", join(work, "out"), ...pyArgs(opt)]);
    const ref = readTensorDir(join(work, "out"));
    const refLosses = JSON.parse(readFileSync(join(work, "out", "losses.json"), "utf8")) as number[];
    losses.forEach((l, k) => expect(l).toBeCloseTo(refLosses[k], 5));

    const state = trainer.getState();
    const ours = new Map<string, Float32Array>();
    for (const t of named(plan.params, state.params)) ours.set(t.name, t.data);
    for (const t of named(plan.buffers, state.buffers)) ours.set(t.name, t.data);
    program.stateNames.forEach((n, i) => {
      for (const t of named(plan.params, state.optimizer[i])) ours.set(`${n}.${t.name}`, t.data);
    });
    // Conv biases that feed BatchNorm (the known exception) and what they touch: their optimizer state and the
    // running mean of that BatchNorm (a constant shift of its input moves the batch mean, nothing else).
    const exceptions = new Set<string>();
    spec.layers.forEach((l, i) => {
      const next = spec.layers[i + 1];
      if (l.type === "conv2d" && next?.type === "batchnorm2d") exceptions.add(`${l.name}.bias`).add(`${next.name}.running_mean`);
    });
    let compared = 0;
    for (const [name, mine] of ours) {
      const theirs = ref.get(name)?.data;
      expect(theirs, `PyTorch output lacks ${name}`).toBeDefined();
      const stateOf = name.match(/^(?:adam|adamw)\.[mv]\.(.*)$|^sgd\.momentum\.(.*)$/);
      const base = stateOf ? (stateOf[1] ?? stateOf[2]) : name;
      const msg = `${name}: relative error ${relNorm(mine, theirs!)}, max |ours - PyTorch| ${maxAbsDiff(mine, theirs!)}`;
      if (exceptions.has(base)) {
        // Adam turns ~1e-9 gradient noise into steps of up to ~3 lr each (|m^| / sqrt(v^) <= (1-b1)/sqrt(1-b2)).
        if (!stateOf) expect(maxAbsDiff(mine, theirs!), msg).toBeLessThanOrEqual(4 * K * opt.lr);
        else expect(mine.every(Number.isFinite), msg).toBe(true);
      } else if (stateOf) {
        // gradient statistics: reductions over up to 64*30*30 terms, summed in a different order
        expect(relNorm(mine, theirs!), msg).toBeLessThan(1e-4);
      } else {
        expect(relNorm(mine, theirs!), msg).toBeLessThan(2e-5);
      }
      compared++;
    }
    expect(compared).toBe(ref.size);
    await trainer.release();
  });
});
