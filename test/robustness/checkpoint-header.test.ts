/**
 * Malformed checkpoint headers (issue 12: a header without `config` overwrote config.json with {}, a negative
 * offset loaded header bytes as weights, four headers crashed with a TypeError). Each is crafted from a real
 * checkpoint with a valid CRC, so only the header check stands between it and the trainer. And metrics logs
 * torn by the old appender are read back whole.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildProgram, initialValues } from "../../src/program/program.ts";
import { builtinSpec } from "../../src/nn/spec.ts";
import { optimizerConfig } from "../../src/optim/optimizer.ts";
import { checkpointData, Trainer } from "../../src/runtime/trainer.ts";
import { CheckpointError, crc32, decodeCheckpoint, encodeCheckpoint } from "../../src/runtime/checkpoint.ts";
import { readMetrics } from "../../src/dashboard/run-files.ts";
import { cli, expectOneLineError, hashTree, makeBase } from "./harness.ts";

const root = mkdtempSync(join(tmpdir(), "robust-ck-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const program = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam", {}));
const init = initialValues(program.plan, 0);
const good = encodeCheckpoint(checkpointData(program, Trainer.freshState(program, init.params, init.buffers), { epoch: 0, stepInEpoch: 0, epochRng: [1, 2, 3, 4], config: { model: "mycnn" } }));

/** The checkpoint with its header changed by `edit` (data section kept, CRC recomputed). */
function craft(edit: (h: any) => void, bytes = good): Uint8Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset);
  const hlen = dv.getUint32(12, true);
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(16, 16 + hlen)));
  edit(header);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const data = bytes.subarray(16 + hlen, bytes.length - 4);
  const out = new Uint8Array(16 + json.length + data.length + 4);
  out.set(bytes.subarray(0, 16));
  new DataView(out.buffer).setUint32(12, json.length, true);
  out.set(json, 16);
  out.set(data, 16 + json.length);
  new DataView(out.buffer).setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

const first = (h: any) => h.tensors[0];
const cases: [string, (h: any) => void, RegExp][] = [
  ["no config", (h) => delete h.config, /"config" must be an object/],
  ["config not an object", (h) => (h.config = "batch 64"), /"config" must be an object/],
  ["no model", (h) => delete h.model, /"model" must be an object/],
  ["model a string", (h) => (h.model = "mycnn"), /"model" must be an object/],
  ["no optimizer", (h) => delete h.optimizer, /"optimizer" must be an object with a "type"/],
  ["a negative learning rate", (h) => (h.optimizer.lr = -1), /"optimizer.lr" must be a positive number/],
  ["step a string", (h) => (h.step = "12"), /"step" must be a non-negative integer, got "12"/],
  ["a negative epoch", (h) => (h.epoch = -1), /"epoch" must be a non-negative integer/],
  ["a fractional stepInEpoch", (h) => (h.stepInEpoch = 1.5), /"stepInEpoch" must be a non-negative integer/],
  ["a short RNG state", (h) => (h.epochRng = [1, 2]), /"epochRng" must be four unsigned 32-bit integers/],
  ["epochStats with a string", (h) => (h.epochStats = { lossSum: 0, correct: "3", seen: 0 }), /"epochStats" must be/],
  ["tensors not an array", (h) => (h.tensors = {}), /"tensors" must be an array/],
  ["a tensor without a name", (h) => delete first(h).name, /tensors\[0\] must be an object with a "name"/],
  ["a tensor named twice", (h) => (h.tensors[1].name = first(h).name), /tensor 'conv\.0\.weight' appears twice/],
  ["a float64 tensor", (h) => (first(h).dtype = "float64"), /has dtype "float64"/],
  ["a negative dimension", (h) => (first(h).shape = [-4, 2]), /needs a shape of non-negative integers, got \[-4,2\]/],
  ["a fractional dimension", (h) => (first(h).shape = [1.5]), /needs a shape of non-negative integers/],
  ["a shape that is not a list", (h) => (first(h).shape = "3x3"), /needs a shape of non-negative integers/],
  ["a shape whose product does not fit", (h) => (first(h).shape = [1e6, 1e6, 1e6]), /more than 2147483648 values/],
  ["a negative offset (read header bytes as weights)", (h) => (first(h).offset = -64), /has offset -64; offsets are non-negative integers/],
  ["a fractional offset", (h) => (first(h).offset = 2.5), /has offset 2\.5/],
  ["an offset past the data", (h) => (first(h).offset = 1e9), /runs past the end of the data section/],
  ["overlapping tensors", (h) => (h.tensors[1].offset = first(h).offset + 4), /tensors 'conv\.0\.weight' and '.*' overlap/],
  ["a format that is not ours", (h) => (h.format = "safetensors"), /"format" is "safetensors"/],
];

describe("decodeCheckpoint validates the header before using it", () => {
  it("accepts the checkpoint the crafting starts from", () => {
    expect(decodeCheckpoint(craft(() => {}), "ck")).toEqual(decodeCheckpoint(good, "ck"));
  });

  it.each(cases)("%s: one CheckpointError line", (_what, edit, message) => {
    let err: unknown;
    try {
      decodeCheckpoint(craft(edit), "run/checkpoint");
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(/^run\/checkpoint: malformed checkpoint header: /);
    expect((err as Error).message).toMatch(message);
    expect((err as Error).message).not.toMatch(/\n/);
  });

  it("a header length past the end of the file", () => {
    const bad = craft(() => {});
    new DataView(bad.buffer).setUint32(12, 1e8, true);
    new DataView(bad.buffer).setUint32(bad.length - 4, crc32(bad.subarray(0, bad.length - 4)), true);
    expect(() => decodeCheckpoint(bad, "ck")).toThrow(/header length 100000000 runs past the end of the file/);
  });
});

describe("train --resume with a malformed header", () => {
  let dir = "";
  let saved = new Uint8Array();
  beforeAll(() => {
    dir = makeBase(join(root, "run"));
    saved = new Uint8Array(readFileSync(join(dir, "checkpoint")));
  });
  it("without config: one line, and config.json (and everything else) stays as it was", () => {
    writeFileSync(join(dir, "checkpoint"), craft((h) => delete h.config, saved));
    const before = hashTree(dir);
    expectOneLineError(cli(["train", "--resume", dir, "--epochs", "2"]), /malformed checkpoint header: "config" must be an object/);
    expect(hashTree(dir)).toEqual(before);
  });
  it("with a negative offset: one line", () => {
    writeFileSync(join(dir, "checkpoint"), craft((h) => (h.tensors[0].offset = -64), saved));
    expectOneLineError(cli(["train", "--resume", dir, "--epochs", "2"]), /has offset -64/);
  });
});

describe("reading a metrics log torn by an older version", () => {
  const run = { type: "run", version: 1, config: {}, model: { name: "m", params: 1, layers: [] } };
  const step = (n: number) => ({ type: "step", step: n, epoch: 1, loss: 1, lr: 0.001, images_per_s: 1, time: n });

  it("keeps the record glued after a torn one (a resume after a full disk) and says so once", () => {
    const dir = mkdtempSync(join(root, "glued-"));
    const lines = [run, step(1), step(2)].map((r) => JSON.stringify(r));
    const torn = JSON.stringify(step(3)).slice(0, 20);
    writeFileSync(join(dir, "metrics.jsonl"), [...lines, torn + JSON.stringify({ type: "resume", step: 2, epoch: 0, time: 0 }), JSON.stringify(step(3)), torn].join("\n"));
    const warnings: string[] = [];
    const write = process.stderr.write.bind(process.stderr);
    process.stderr.write = ((s: string) => (warnings.push(s), true)) as typeof process.stderr.write;
    let recs;
    try {
      recs = readMetrics(dir);
    } finally {
      process.stderr.write = write;
    }
    expect(recs.map((r) => r.type)).toEqual(["run", "step", "step", "resume", "step"]);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/^warning: .*metrics\.jsonl:4: dropped the torn start of this line \(20 bytes/);
  });
});
