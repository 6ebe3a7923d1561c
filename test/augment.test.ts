/**
 * The augmentation graph (src/augment) against PyTorch on the same parameters and real MNIST digits:
 * torchvision's functional affine for the affine part, and affine_grid + conv + grid_sample + max_pool2d for the
 * whole graph; then determinism and exact resume of training with augmentation on.
 * Needs Debian's /usr/bin/python3 with torch and torchvision.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web";
import { AUGMENT_NONE, AUGMENT_PRESET, Augmenter, affineTheta, augmentFeeds, batchRng, buildAugmentGraph, drawAffine, drawBatch, gaussianTaps, STRETCH_FLOOR, type AffineParams, type AugmentConfig } from "../src/augment/augment.ts";
import { loadMnist } from "../src/data/node.ts";
import { fillBatch } from "../src/data/dataset.ts";
import { buildProgram, initialValues } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { Trainer } from "../src/runtime/trainer.ts";
import { fit, startPosition, type Position } from "../src/runtime/fit.ts";
import { Rng } from "../src/random.ts";
import { PYTHON } from "../bench/harness.ts";
import { augmentConfigOf } from "../cli/train.ts";

const root = mkdtempSync(join(tmpdir(), "augment-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const data = loadMnist(undefined, { trainLimit: 1024, testLimit: 200 });
const N = 24;
const images = new Float32Array(N * 784);
fillBatch(data.train, Uint32Array.from({ length: N }, (_, i) => i), 0, N, images, new BigInt64Array(N));

async function runGraph(c: AugmentConfig, feeds: { theta: Float32Array; noise?: Float32Array; stroke?: Float32Array }): Promise<Float32Array> {
  const s = await ort.InferenceSession.create(buildAugmentGraph(c, 28, 28));
  const f: Record<string, ort.Tensor> = { images: new ort.Tensor("float32", images, [N, 1, 28, 28]), ...augmentFeeds(ort, feeds, N, 28, 28) };
  const out = (await s.run(f)).augmented.data as Float32Array;
  await s.release();
  return out;
}

/** Runs `code` in Debian's python with the arrays in `inputs` (float32 files) and returns the float32 array it writes to OUT. */
function python(code: string, inputs: Record<string, Float32Array>, meta: unknown): Float32Array {
  for (const [k, v] of Object.entries(inputs)) writeFileSync(join(root, `${k}.f32`), v);
  writeFileSync(join(root, "meta.json"), JSON.stringify(meta));
  const prelude = `import json, numpy as np, torch\nD = ${JSON.stringify(root)}\nload = lambda k, *s: torch.from_numpy(np.fromfile(D + "/" + k + ".f32", dtype=np.float32).reshape(*s))\nmeta = json.load(open(D + "/meta.json"))\n`;
  const r = spawnSync(PYTHON, ["-c", prelude + code + `\nOUT.numpy().astype(np.float32).tofile(D + "/out.f32")\n`], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
  return new Float32Array(readFileSync(join(root, "out.f32")).buffer.slice(0));
}

/** The preset with Simard's elastic distortion on: every part of the graph. */
const FULL: AugmentConfig = { ...AUGMENT_PRESET, elasticAlpha: 34, elasticSigma: 4 };

const maxAbsDiff = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0);

/** Each image through torchvision's functional affine with its own draws (RandomAffine's path), in Debian's python. */
function torchvisionAffine(params: AffineParams[], mode: "BILINEAR" | "NEAREST"): Float32Array {
  return python(
    `import torchvision.transforms.functional as F
from torchvision.transforms import InterpolationMode
x = load("images", ${N}, 1, 28, 28)
OUT = torch.cat([F.affine(x[i:i+1], angle=p["angle"], translate=[p["tx"], p["ty"]], scale=p["scale"], shear=[p["shear"], p.get("shearY", 0.0)], interpolation=InterpolationMode.${mode}) for i, p in enumerate(meta)])`,
    { images },
    params,
  );
}

/** The affine draws of N images and their thetas. */
function drawThetas(c: AugmentConfig, seed: number): { params: AffineParams[]; theta: Float32Array } {
  const rng = new Rng(seed);
  const params = Array.from({ length: N }, () => drawAffine(c, rng, 28, 28));
  return { params, theta: Float32Array.from(params.flatMap((p) => affineTheta(p, 28, 28))) };
}

describe("the augmentation graph agrees with PyTorch", () => {
  it("random affine: torchvision's functional affine (bilinear, zeros outside) on the same angle, translation, scale and shear, < 1e-4 per pixel", async () => {
    const c: AugmentConfig = { ...AUGMENT_NONE, degrees: 30, translate: 0.15, scale: [0.7, 1.3], shear: 25 };
    const { params, theta } = drawThetas(c, 5);
    const ours = await runGraph(c, { theta });
    expect(maxAbsDiff(ours, torchvisionAffine(params, "BILINEAR"))).toBeLessThan(1e-4);
    expect(maxAbsDiff(ours, images)).toBeGreaterThan(0.5); // the digits did move
  });

  it("nearest interpolation (RandomAffine's default): torchvision's functional affine with InterpolationMode.NEAREST, < 1e-4 per pixel", async () => {
    const c: AugmentConfig = { ...AUGMENT_NONE, degrees: 30, translate: 0.15, scale: [0.7, 1.3], shear: 25, shearY: 10, interpolation: "nearest" };
    const { params, theta } = drawThetas(c, 8);
    const ours = await runGraph(c, { theta });
    expect(maxAbsDiff(ours, torchvisionAffine(params, "NEAREST"))).toBeLessThan(1e-4);
    // nearest copies pixels: every output value is one of the image's own
    const own = new Set(images);
    expect(ours.every((v) => own.has(v))).toBe(true);
    expect(maxAbsDiff(ours, await runGraph({ ...c, interpolation: "bilinear" }, { theta }))).toBeGreaterThan(0.2);
  });

  it("vertical shear (torchvision's four-number shear): functional affine with shear [sx, sy], < 1e-4 per pixel", async () => {
    const c: AugmentConfig = { ...AUGMENT_NONE, degrees: 20, scale: [0.8, 1.2], shear: 15, shearY: 20 };
    const { params, theta } = drawThetas(c, 6);
    expect(params.every((p) => p.shearY !== undefined && Math.abs(p.shearY) <= 20)).toBe(true);
    const ours = await runGraph(c, { theta });
    expect(maxAbsDiff(ours, torchvisionAffine(params, "BILINEAR"))).toBeLessThan(1e-4);
    expect(maxAbsDiff(ours, await runGraph(c, { theta: Float32Array.from(params.flatMap((p) => affineTheta({ ...p, shearY: 0 }, 28, 28))) }))).toBeGreaterThan(0.5);
  });

  it("aspect ratio: the digit stretched to width/height r at constant area, then rotated, sheared, scaled and moved about the centre; the inverse map built and inverted in numpy, affine_grid + grid_sample, < 1e-4 per pixel", async () => {
    const c: AugmentConfig = { ...AUGMENT_NONE, degrees: 15, translate: 0.1, scale: [0.9, 1.1], shear: 10, shearY: 5, aspect: [0.5, 2] };
    const { params, theta } = drawThetas(c, 7);
    const r = params.map((p) => p.aspect!);
    expect(Math.min(...r)).toBeGreaterThanOrEqual(0.5);
    expect(Math.max(...r)).toBeLessThanOrEqual(2);
    expect(r.filter((v) => v > 1).length).toBeGreaterThan(3); // log-uniform: about as many wider as narrower
    expect(r.filter((v) => v < 1).length).toBeGreaterThan(3);
    const ours = await runGraph(c, { theta });
    const ref = python(
      `import math
import torch.nn.functional as F
x = load("images", ${N}, 1, 28, 28)
out = []
for i, p in enumerate(meta):
    a, sx, sy = (math.radians(p[k]) for k in ("angle", "shear", "shearY"))
    R = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    SHx = np.array([[1, -math.tan(sx)], [0, 1]])
    SHy = np.array([[1, 0], [-math.tan(sy), 1]])
    A = np.diag([math.sqrt(p["aspect"]), 1 / math.sqrt(p["aspect"])])
    fwd = np.eye(3)
    fwd[:2, :2] = p["scale"] * R @ SHy @ SHx @ A  # output pixel = fwd @ input pixel, both centred
    fwd[:2, 2] = [p["tx"], p["ty"]]
    inv = np.linalg.inv(fwd)[:2]  # input = inv @ output, centred pixels; normalised = pixel / 14 on a 28x28 image
    theta = torch.tensor(inv, dtype=torch.float32).reshape(1, 2, 3)
    theta[0, :, 2] /= 14
    grid = F.affine_grid(theta, [1, 1, 28, 28], align_corners=False)
    out.append(F.grid_sample(x[i:i+1], grid, mode="bilinear", padding_mode="zeros", align_corners=False))
OUT = torch.cat(out)`,
      { images },
      params,
    );
    expect(maxAbsDiff(ours, ref)).toBeLessThan(1e-4);
    expect(maxAbsDiff(ours, await runGraph(c, { theta: Float32Array.from(params.flatMap((p) => affineTheta({ ...p, aspect: 1 }, 28, 28))) }))).toBeGreaterThan(0.5);
  });

  it("every part at once (the preset's affine and stroke jitter, plus Simard's elastic 34,4): affine_grid + Gaussian conv of the noise + grid_sample + max_pool2d, < 1e-4 per pixel", async () => {
    const c = FULL;
    const d = drawBatch(c, batchRng(3, 1, 4), N, 28, 28);
    const ours = await runGraph(c, d);
    const taps = gaussianTaps(c.elasticSigma);
    const ref = python(
      `import torch.nn.functional as Fn
x, theta, noise, w = load("images", ${N}, 1, 28, 28), load("theta", ${N}, 2, 3), load("noise", ${N}, 2, 28, 28), load("stroke", ${N}, 1, 1, 1)
taps = torch.tensor(meta["taps"], dtype=torch.float32)
r = (len(taps) - 1) // 2
k = (taps[:, None] * taps[None, :])[None, None]   # separable Gaussian, zeros beyond the edge
field = Fn.conv2d(noise.reshape(-1, 1, 28, 28), k, padding=r).reshape(${N}, 2, 28, 28) * (2 * meta["alpha"] / 28)
grid = Fn.affine_grid(theta, [${N}, 1, 28, 28], align_corners=False) + field.permute(0, 2, 3, 1)
s = Fn.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
dil = Fn.max_pool2d(s, 3, 1, 1)
ero = -Fn.max_pool2d(-s, 3, 1, 1)
y = s + torch.relu(w) * (dil - s) + torch.relu(-w) * (ero - s)
OUT = y / y.amax(dim=(1, 2, 3), keepdim=True).clamp(min=meta["floor"])`,
      { images, theta: d.theta, noise: d.noise!, stroke: d.stroke! },
      { taps: Array.from(taps), alpha: c.elasticAlpha, floor: STRETCH_FLOOR },
    );
    expect(maxAbsDiff(ours, ref)).toBeLessThan(1e-4);
    // the elastic field is the size Simard's parameters give (~1.4 px standard deviation), not a no-op
    expect(maxAbsDiff(ours, await runGraph({ ...c, elasticAlpha: 0 }, d))).toBeGreaterThan(0.3);
  });
});

describe("stroke jitter past one step", () => {
  it("--stroke 2: thinner by at most one erosion, thicker by up to two dilations, then stretched; PyTorch max_pool2d, < 1e-4", async () => {
    const c: AugmentConfig = { ...AUGMENT_NONE, stroke: 2 };
    const d = drawBatch(c, batchRng(9, 0, 2), N, 28, 28);
    expect(Math.min(...d.stroke!)).toBeLessThan(-1); // the draws cover both ends past one step
    expect(Math.max(...d.stroke!)).toBeGreaterThan(1);
    const ours = await runGraph(c, d);
    const ref = python(
      `import torch.nn.functional as Fn
x, w = load("images", ${N}, 1, 28, 28), load("stroke", ${N}, 1, 1, 1)
d1 = Fn.max_pool2d(x, 3, 1, 1)
d2 = Fn.max_pool2d(d1, 3, 1, 1)
e1 = -Fn.max_pool2d(-x, 3, 1, 1)
y = x + w.clamp(0, 1) * (d1 - x) + (-w).clamp(0, 1) * (e1 - x) + torch.relu(w - 1) * (d2 - d1)
OUT = y / y.amax(dim=(1, 2, 3), keepdim=True).clamp(min=meta["floor"])`,
      { images, stroke: d.stroke! },
      { floor: STRETCH_FLOOR },
    );
    expect(maxAbsDiff(ours, ref)).toBeLessThan(1e-4);
    // an image drawn past +1 has more ink than its one-step dilation
    const i = d.stroke!.findIndex((v) => v > 1.5);
    const one = await runGraph({ ...c, stroke: 1 }, { ...d, stroke: d.stroke!.map((v) => Math.min(1, Math.max(-1, v))) });
    const ink = (a: Float32Array) => a.subarray(i * 784, (i + 1) * 784).reduce((s, v) => s + v, 0);
    expect(ink(ours)).toBeGreaterThan(ink(one) + 5);
  });
});

describe("onnxruntime-web", () => {
  it("runs the augmentation graph (GridSample, MatMul, MaxPool) as onnxruntime-node does, to 1e-5", async () => {
    ortWeb.env.wasm.numThreads = 1; // Node has no cross-origin isolation: single-threaded WASM
    const [web, node] = await Promise.all([
      Augmenter.create(ortWeb as unknown as typeof ort, FULL, { sessionOptions: { executionProviders: ["wasm"] } }),
      Augmenter.create(ort, FULL),
    ]);
    const [x, y] = [images.slice(), images.slice()];
    await web.apply(x, N, batchRng(0, 0, 0));
    await node.apply(y, N, batchRng(0, 0, 0));
    expect(maxAbsDiff(x, y)).toBeLessThan(1e-5);
    expect(maxAbsDiff(x, images)).toBeGreaterThan(0.5);
  });
});

describe("augmented training is reproducible", () => {
  it("a batch's draws depend on (seed, epoch, batch) alone, and the same draws give the same pixels, bit for bit", async () => {
    const a = drawBatch(FULL, batchRng(0, 2, 7), N, 28, 28);
    const b = drawBatch(FULL, batchRng(0, 2, 7), N, 28, 28);
    expect(Buffer.from(a.noise!.buffer).equals(Buffer.from(b.noise!.buffer))).toBe(true);
    expect(a.theta).toEqual(b.theta);
    expect(a.stroke).toEqual(b.stroke);
    for (const other of [batchRng(1, 2, 7), batchRng(0, 3, 7), batchRng(0, 2, 8)]) expect(drawBatch(FULL, other, N, 28, 28).theta).not.toEqual(a.theta);
    const aug = await Augmenter.create(ort, FULL, { threads: 2 });
    const [x, y] = [images.slice(), images.slice()];
    await aug.apply(x, N, batchRng(0, 2, 7));
    await aug.apply(y, N, batchRng(0, 2, 7));
    expect(Buffer.from(x.buffer).equals(Buffer.from(y.buffer))).toBe(true);
    expect(maxAbsDiff(x, images)).toBeGreaterThan(0.5);
    await aug.release();
  });

  it("augmentation inside the training step (one run a step) gives the parameters, bit for bit, of a separate augmentation session before each plain step; without it they differ", async () => {
    const plainProgram = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"));
    const inStep = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"), {}, { config: FULL, rows: 28, cols: 28 });
    expect(inStep.opTypes.trainStep).toContain("GridSample");
    expect(plainProgram.opTypes.trainStep).not.toContain("GridSample");
    const init = initialValues(plainProgram.plan, 3);
    const make = (p: typeof plainProgram) => Trainer.create(ort, p, Trainer.freshState(p, init.params, init.buffers), { threads: 2, noiseSeed: 3 });
    const o = { epochs: 2, batchSize: 100, skipEval: true, position: startPosition(3) }; // 11 steps an epoch, the last one of 24
    const aug = await Augmenter.create(ort, FULL, { threads: 2 });
    const separate = await make(plainProgram);
    await fit(separate, data.train, data.test, { ...o, augment: (x, n, at) => aug.apply(x, n, batchRng(3, at.epoch, at.batch)) });
    const fused = await make(inStep);
    await fit(fused, data.train, data.test, o);
    expect(fused.step).toBe(22);
    expect(Buffer.from(fused.getParameters().buffer).equals(Buffer.from(separate.getParameters().buffer))).toBe(true);
    const plain = await make(plainProgram);
    await fit(plain, data.train, data.test, o);
    expect(Buffer.from(plain.getParameters().buffer).equals(Buffer.from(fused.getParameters().buffer))).toBe(false);
    await expect(fused.trainStep(new Float32Array(784), new BigInt64Array(1), 1)).rejects.toThrow(/^trainStep: this program augments inside its training step.*pass it as the fourth argument/);
    // both ways at once would augment twice: refused before any step
    const before = fused.step;
    await expect(fit(fused, data.train, data.test, { ...o, augment: () => {} })).rejects.toThrow(/^fit: the trainer's program already augments inside its training step .* leave one of them out$/);
    expect(fused.step).toBe(before);
    await aug.release();
  });

  it("a checkpoint of a run augmented inside its training step resumes augmented from its bytes alone (Trainer.fromCheckpoint: the run's augmentation and seed): the same parameters, bit for bit, as the uninterrupted run", async () => {
    const program = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"), {}, { config: AUGMENT_PRESET, rows: 28, cols: 28 });
    const init = initialValues(program.plan, 11);
    const o = { epochs: 2, batchSize: 128, skipEval: true };
    const fresh = () => Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), { threads: 2, noiseSeed: 11 });
    const whole = await fresh();
    await fit(whole, data.train, data.test, { ...o, position: startPosition(11) });
    const first = await fresh();
    let steps = 0;
    const cut = await fit(first, data.train, data.test, { ...o, position: startPosition(11), shouldStop: () => ++steps === 11 });
    expect(cut.status).toBe("interrupted");
    const ck = first.saveCheckpoint({ ...cut.position, config: { augment: AUGMENT_PRESET, seed: 11 } });
    const { trainer: second, checkpoint } = await Trainer.fromCheckpoint(ort, ck, { threads: 2 });
    expect(second.program.augment?.config).toEqual(AUGMENT_PRESET);
    const position: Position = { epoch: checkpoint.header.epoch, stepInEpoch: checkpoint.header.stepInEpoch, epochRng: checkpoint.header.epochRng, epochStats: checkpoint.header.epochStats! };
    await fit(second, data.train, data.test, { ...o, position });
    expect(Buffer.from(second.getParameters().buffer).equals(Buffer.from(whole.getParameters().buffer))).toBe(true);
    // a damaged augmentation in the header is named, not trained with
    const bad = first.saveCheckpoint({ ...cut.position, config: { augment: { ...AUGMENT_PRESET, stroke: 7 }, seed: 11 } });
    await expect(Trainer.fromCheckpoint(ort, bad)).rejects.toThrow(/checkpoint: the run's augmentation is not valid \(--stroke must be in \[0, 2\]/);
  });

  it("training interrupted mid-epoch and resumed from its saved state ends with the same parameters, bit for bit, as an uninterrupted run; without augmentation they differ", async () => {
    const program = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam"));
    const init = initialValues(program.plan, 11);
    const aug = await Augmenter.create(ort, AUGMENT_PRESET, { threads: 2 });
    const o = { epochs: 2, batchSize: 128, skipEval: true, augment: (x: Float32Array, n: number, at: { epoch: number; batch: number }) => aug.apply(x, n, batchRng(11, at.epoch, at.batch)) };
    const fresh = () => Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), { threads: 2 });

    const whole = await fresh();
    expect((await fit(whole, data.train, data.test, { ...o, position: startPosition(11) })).status).toBe("completed");

    const first = await fresh();
    let steps = 0;
    const cut = await fit(first, data.train, data.test, { ...o, position: startPosition(11), shouldStop: () => ++steps === 11 }); // epoch 2, batch 3
    expect(cut.status).toBe("interrupted");
    expect(cut.position).toMatchObject({ epoch: 1, stepInEpoch: 3 });
    const ck = first.saveCheckpoint({ ...cut.position, config: {} });
    const { trainer: second, checkpoint } = await Trainer.fromCheckpoint(ort, ck, { threads: 2 });
    const position: Position = { epoch: checkpoint.header.epoch, stepInEpoch: checkpoint.header.stepInEpoch, epochRng: checkpoint.header.epochRng, epochStats: checkpoint.header.epochStats! };
    expect((await fit(second, data.train, data.test, { ...o, position })).status).toBe("completed");
    expect(second.step).toBe(whole.step);
    expect(Buffer.from(second.getParameters().buffer).equals(Buffer.from(whole.getParameters().buffer))).toBe(true);

    const plain = await fresh();
    await fit(plain, data.train, data.test, { ...o, augment: undefined, position: startPosition(11) });
    expect(Buffer.from(plain.getParameters().buffer).equals(Buffer.from(whole.getParameters().buffer))).toBe(false);
    await aug.release();
  });
});

describe("the augmentation flags", () => {
  it("--shear-y and --aspect add torchvision's vertical shear and RandomResizedCrop's ratio to the preset or alone; bad values are named", () => {
    expect(augmentConfigOf({})).toBeUndefined();
    expect(augmentConfigOf({ aspect: "1,1" })).toBeUndefined(); // the identity is no augmentation
    expect(augmentConfigOf({ shearY: 5 })).toEqual({ ...AUGMENT_NONE, shearY: 5 });
    expect(augmentConfigOf({ augment: true, aspect: "0.5, 2" })).toEqual({ ...AUGMENT_PRESET, aspect: [0.5, 2] });
    expect(() => augmentConfigOf({ aspect: "2,1" })).toThrow("--aspect must be LO,HI with 0 < LO <= HI");
    expect(() => augmentConfigOf({ aspect: "0,1" })).toThrow("--aspect must be LO,HI with 0 < LO <= HI");
    expect(() => augmentConfigOf({ aspect: "1.5" })).toThrow("--aspect must be LO,HI");
    expect(() => augmentConfigOf({ shearY: 90 })).toThrow("--shear-y must be a number of degrees in [0, 90), got 90");
    expect(() => augmentConfigOf({ shearY: NaN })).toThrow("--shear-y must be");
  });

  it("--shear-y 0 and --aspect 1,1 draw nothing: the random stream stays that of the configuration without them", () => {
    const c: AugmentConfig = { ...AUGMENT_NONE, degrees: 10, scale: [0.9, 1.1], shear: 10 };
    const plain = drawBatch(c, batchRng(4, 0, 1), N, 28, 28).theta;
    expect(drawBatch({ ...c, shearY: 0, aspect: [1, 1] }, batchRng(4, 0, 1), N, 28, 28).theta).toEqual(plain);
    expect(drawBatch({ ...c, aspect: [0.8, 1.25] }, batchRng(4, 0, 1), N, 28, 28).theta).not.toEqual(plain);
  });
});
