/**
 * `onnx-mnist train` and `eval` end to end, with real MNIST and onnxruntime-node: accuracy on a subset,
 * Ctrl-C and bit-identical resume, divergence, model.onnx agreeing with the trainer, and bad input.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, mkdirSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { decodeCheckpoint } from "../src/runtime/checkpoint.ts";
import { Trainer } from "../src/runtime/trainer.ts";
import { loadMnist } from "../src/data/node.ts";
import { defaultMnistDir } from "../src/data/node.ts";

const root = mkdtempSync(join(tmpdir(), "train-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/onnx-mnist.js", ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}
const records = (dir: string) =>
  readFileSync(join(dir, "metrics.jsonl"), "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
const checkpoint = (dir: string) => decodeCheckpoint(new Uint8Array(readFileSync(join(dir, "checkpoint"))), dir);

/**
 * Every test here runs the CLI, most of them several times (train, resume, eval): seconds on a calm machine,
 * minutes when the whole suite and other work share two cores. A hung run still fails, at this deadline.
 */
const CLI_RUNS = { timeout: 600_000 };

describe("onnx-mnist train", CLI_RUNS, () => {
  it("reaches > 90% on 1,000 test images after training on 2,000 images, and writes the run directory", () => {
    const dir = join(root, "small");
    const r = cli("train", "--epochs", "5", "--train-limit", "2000", "--test-limit", "1000", "--batch-size", "32", "--lr", "3e-3", "--out", dir);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/epoch 5\/5 .*test acc/);
    for (const f of ["model.onnx", "checkpoint", "config.json", "metrics.jsonl"]) expect(existsSync(join(dir, f)), f).toBe(true);
    expect(readdirSync(dir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    const recs = records(dir);
    expect(recs[0].type).toBe("run");
    expect(recs.filter((x) => x.type === "step")).toHaveLength(5 * Math.ceil(2000 / 32)); // the last partial batch is used
    const epochs = recs.filter((x) => x.type === "epoch");
    expect(epochs).toHaveLength(5);
    expect(epochs[4].test_accuracy).toBeGreaterThan(0.9);
    expect(epochs[4].confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(1000);
    expect(recs[recs.length - 1]).toMatchObject({ type: "end", status: "completed" });
    expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8"))).toMatchObject({ model: "mycnn", batch_size: 32, epochs: 5 });
    const ck = checkpoint(dir);
    expect(ck.header).toMatchObject({ epoch: 5, stepInEpoch: 0, step: 5 * 63 });
  });

  it("eval --suite scores the run's model on every digit of the handwriting-from-elsewhere suite, by class and by part", () => {
    const drawn = JSON.parse(readFileSync("src/data/suite/suite.json", "utf8")) as { groups: { name: string; start: number; count: number }[] };
    expect(drawn.groups.map((g) => g.name)).toEqual(["fonts", "pen"]);
    // then the writers: the 1,797 digits of UCI's test set, one per line of its CSV
    const writers = gunzipSync(readFileSync("src/data/suite/optdigits-test.csv.gz")).toString().trim().split("\n").length;
    expect(writers).toBe(1797);
    const meta = { groups: [...drawn.groups, { name: "writers", count: writers }] };
    const total = meta.groups.reduce((n, g) => n + g.count, 0);
    const r = cli("eval", "--model", join(root, "small", "model.onnx"), "--suite", "--json");
    expect(r.code, r.err).toBe(0);
    const j = JSON.parse(r.out);
    expect(j.count).toBe(total);
    const confusion = j.confusion as number[][];
    expect(confusion.flat().reduce((a, b) => a + b, 0)).toBe(total);
    const correct = confusion.reduce((n, row, i) => n + row[i], 0);
    expect(j.accuracy).toBeCloseTo(correct / total, 10);
    expect(j.per_class_accuracy).toHaveLength(10);
    expect(j.groups.map((g: { name: string; count: number }) => [g.name, g.count])).toEqual(meta.groups.map((g) => [g.name, g.count]));
    expect(j.accuracy).toBeGreaterThan(0.5); // 2,000 MNIST images already read most of these digits
    expect(j.accuracy).toBeLessThan(1);
    const text = cli("eval", "--model", join(root, "small", "model.onnx"), "--suite");
    expect(text.out).toMatch(new RegExp(`suite accuracy [\\d.]+% on ${total.toLocaleString("en-US")} images .*; fonts [\\d.]+% \\(1,407\\), pen [\\d.]+% \\(500\\), writers [\\d.]+% \\(1,797\\)`));
  });

  it("model.onnx of a run predicts exactly what the trainer's eval step does", async () => {
    const dir = join(root, "small");
    const bytes = new Uint8Array(readFileSync(join(dir, "checkpoint")));
    const { trainer } = await Trainer.fromCheckpoint(ort, bytes);
    // loadCheckpoint restores the same state into a trainer that has moved on
    const before = trainer.getParameters();
    await trainer.trainStep(Float32Array.from({ length: 32 * 784 }, (_, i) => (i % 97) / 97), BigInt64Array.from({ length: 32 }, (_, i) => BigInt(i % 10)));
    expect(trainer.getParameters()).not.toEqual(before);
    trainer.loadCheckpoint(bytes);
    expect(trainer.getParameters()).toEqual(before);
    expect(trainer.step).toBe(checkpoint(dir).header.step);
    const data = loadMnist(undefined, { trainLimit: 1, testLimit: 500 });
    const x = Float32Array.from(data.test.images, (v) => v / 255);
    const y = BigInt64Array.from(data.test.labels, (v) => BigInt(v));
    const fromTrainer = (await trainer.evalStep(x, y)).logits;
    const s = await ort.InferenceSession.create(join(dir, "model.onnx"));
    const fromModel = (await s.run({ input: new ort.Tensor("float32", x, [500, 1, 28, 28]) })).logits.data as Float32Array;
    let worst = 0;
    for (let i = 0; i < fromModel.length; i++) worst = Math.max(worst, Math.abs(fromModel[i] - fromTrainer[i]));
    expect(worst).toBeLessThan(1e-5);
  });

  it.each([["", []], [" (with --augment, inside the training step)", ["--augment"]]])("Ctrl-C saves a valid checkpoint and exits 130; --resume ends with the same parameters, bit for bit, as an uninterrupted run%s", async (what, extra) => {
    const flags = ["--epochs", "2", "--train-limit", "16000", "--test-limit", "500", "--seed", "7", "--threads", "2", ...(extra as string[])];
    const tag = what ? "-aug" : "";
    const whole = join(root, `whole${tag}`);
    expect(cli("train", ...flags, "--out", whole).code).toBe(0);

    const cut = join(root, `cut${tag}`);
    const child = spawn(process.execPath, ["bin/onnx-mnist.js", "train", ...flags, "--out", cut], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    child.stdout.on("data", (d) => (stdout += d));
    // Interrupt once the first step records have been flushed (about a second into the first epoch).
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !(existsSync(join(cut, "metrics.jsonl")) && readFileSync(join(cut, "metrics.jsonl"), "utf8").includes('"type":"step"'))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    child.kill("SIGINT");
    const code = await new Promise<number | null>((r) => child.on("exit", (c) => r(c)));
    expect(code).toBe(130);
    expect(stdout).toMatch(/resume with: (npx )?onnx-mnist train --resume /); // npx when run through npm (npm test)
    const mid = checkpoint(cut);
    expect(mid.header.epoch * 125 + mid.header.stepInEpoch).toBeGreaterThan(0);
    expect(mid.header.epoch * 125 + mid.header.stepInEpoch).toBeLessThan(250); // it really stopped early
    expect(records(cut).at(-1)).toMatchObject({ type: "end", status: "interrupted" });

    const resumed = cli("train", "--resume", cut);
    expect(resumed.code, resumed.err).toBe(0);
    const [a, b] = [checkpoint(whole), checkpoint(cut)];
    expect(b.header.step).toBe(a.header.step);
    expect(b.tensors.map((t) => t.name)).toEqual(a.tensors.map((t) => t.name));
    a.tensors.forEach((t, i) => expect(Buffer.from(b.tensors[i].data.buffer).equals(Buffer.from(t.data.buffer)), t.name).toBe(true));
    expect(readFileSync(join(cut, "model.onnx")).equals(readFileSync(join(whole, "model.onnx")))).toBe(true);
  });

  it("stops on a NaN or infinite loss with a clear message and keeps the last good checkpoint", () => {
    const dir = join(root, "diverge");
    const r = cli("train", "--epochs", "1", "--train-limit", "3000", "--test-limit", "100", "--optimizer", "sgd", "--lr", "1e6", "--out", dir);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/the loss became (NaN|Infinity) at step \d+ .*last good checkpoint .*Try a lower --lr/);
    const ck = checkpoint(dir); // still readable: the one written before training
    expect(ck.header.step).toBe(0);
    expect(records(dir).at(-1)).toMatchObject({ type: "end", status: "diverged" });
  });

  it("trains the artifacts that build-graph wrote (--graph)", () => {
    const g = join(root, "graph");
    expect(cli("build-graph", "--model", "lenet5", "--optimizer", "sgd", "--lr", "0.05", "--out", g).code).toBe(0);
    const dir = join(root, "from-graph");
    const r = cli("train", "--graph", g, "--epochs", "1", "--train-limit", "2000", "--test-limit", "200", "--out", dir);
    expect(r.code, r.err).toBe(0);
    expect(r.out).toMatch(/training lenet5/);
    expect(checkpoint(dir).header.optimizer).toMatchObject({ type: "sgd", lr: 0.05 });
  });
});

describe("bad input", CLI_RUNS, () => {
  const bad = (name: string, make: (dir: string) => void) => {
    const dir = join(root, `data-${name}`);
    mkdirSync(dir, { recursive: true });
    for (const f of ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]) copyFileSync(join(defaultMnistDir(), f), join(dir, f));
    make(dir);
    return dir;
  };
  const cases: [string, string[], RegExp][] = [
    ["a data directory without the IDX files", ["--data", root], /train-images-idx3-ubyte/],
    ["a truncated IDX file", ["--data", bad("truncated", (d) => writeFileSync(join(d, "t10k-labels-idx1-ubyte"), readFileSync(join(d, "t10k-labels-idx1-ubyte")).subarray(0, 5000)))], /t10k-labels-idx1-ubyte.*(truncated|expected)/i],
    ["a corrupt IDX file", ["--data", bad("corrupt", (d) => writeFileSync(join(d, "train-images-idx3-ubyte"), "hello, not an IDX file at all"))], /train-images-idx3-ubyte/],
    ["a zero batch size", ["--batch-size", "0"], /--batch-size must be at least 1/],
    ["a fractional epoch count", ["--epochs", "1.5"], /--epochs must be a whole number/],
    ["resuming a directory without a checkpoint", ["--resume", join(root, "nothing-here")], /no checkpoint to resume from/],
  ];
  it.each(cases)("train rejects %s with a one-line reason and a non-zero exit", (_w, args, message) => {
    const out = join(root, `bad-${Math.random().toString(36).slice(2)}`);
    const r = cli("train", ...args, "--out", out, ...(args.includes("--epochs") ? [] : ["--epochs", "1"]));
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(message);
    expect(r.err.trim().split("\n")[0]).toMatch(/^error: /);
    expect(r.err).not.toMatch(/\n\s+at /);
  });

  it("--graph rejects graphs that do not match the directory's checkpoint", () => {
    const g = join(root, "graph");
    const mixed = join(root, "graph-mixed");
    mkdirSync(mixed, { recursive: true });
    for (const f of ["train_step.onnx", "eval_step.onnx", "model.onnx"]) copyFileSync(join(g, f), join(mixed, f)); // lenet5 graphs
    expect(cli("build-graph", "--model", "mycnn", "--out", join(root, "graph-mycnn")).code).toBe(0);
    copyFileSync(join(root, "graph-mycnn", "checkpoint"), join(mixed, "checkpoint")); // mycnn checkpoint
    const r = cli("train", "--graph", mixed, "--epochs", "1", "--train-limit", "500", "--out", join(root, "mixed-run"));
    expect(r.code).toBe(1);
    expect(r.err.trim()).toMatch(/^error: .*train_step\.onnx does not match .*checkpoint: it takes 61706 parameters, the checkpoint's mycnn has 8110/);
  });

  it("resume rejects a corrupt or truncated checkpoint, and leaves it as it was", () => {
    const dir = join(root, "corrupt-ck");
    mkdirSync(dir, { recursive: true });
    const good = readFileSync(join(root, "small", "checkpoint"));
    const bad = Buffer.from(good);
    bad[bad.length >> 1] ^= 0xff; // one flipped byte in the tensor data
    writeFileSync(join(dir, "checkpoint"), bad);
    const r = cli("train", "--resume", dir);
    expect(r.code).toBe(1);
    expect(r.err.trim()).toMatch(/^error: .*checkpoint: checkpoint is corrupt or truncated \(CRC mismatch\)/);
    expect(readFileSync(join(dir, "checkpoint")).equals(bad)).toBe(true);
    writeFileSync(join(dir, "checkpoint"), good.subarray(0, 1000));
    expect(cli("train", "--resume", dir).err).toMatch(/corrupt or truncated/);
    writeFileSync(join(dir, "checkpoint"), "not a checkpoint at all");
    expect(cli("train", "--resume", dir).err).toMatch(/not an onnx-mnist checkpoint/);
  });

  it("eval rejects a file that is not ONNX and a model with the wrong inputs", () => {
    const notOnnx = join(root, "not.onnx");
    writeFileSync(notOnnx, "definitely not protobuf");
    const r1 = cli("eval", "--model", notOnnx);
    expect(r1.code).not.toBe(0);
    expect(r1.err).toMatch(/not\.onnx: not a loadable ONNX model/);
    const g = join(root, "graph");
    const r2 = cli("eval", "--model", join(g, "train_step.onnx")); // an ONNX model, but not an MNIST classifier
    expect(r2.code).not.toBe(0);
    expect(r2.err).toMatch(/train_step\.onnx/);
    expect(r2.err).toMatch(/input/);
  });

  it("eval prints accuracy, per-class accuracy and the confusion matrix; --json is machine-readable", () => {
    const model = join(root, "small", "model.onnx");
    const t = cli("eval", "--model", model, "--test-limit", "1000");
    expect(t.code, t.err).toBe(0);
    expect(t.out).toMatch(/test accuracy \d+\.\d\d% on 1,000 images/);
    expect(t.out.split("\n").filter((l) => /^\s+\d( +\d+){10} +\d+\.\d$/.test(l))).toHaveLength(10);
    const j = cli("eval", "--model", model, "--test-limit", "1000", "--json");
    const parsed = JSON.parse(j.out);
    expect(parsed.count).toBe(1000);
    expect(parsed.confusion.flat().reduce((a: number, b: number) => a + b, 0)).toBe(1000);
    expect(parsed.accuracy).toBeGreaterThan(0.9);
  });
});
