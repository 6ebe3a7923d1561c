/** `onnx-mnist build-graph`: byte-identical output for identical flags, a readable summary, and bad input rejected with nothing written. */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import * as ort from "onnxruntime-node";
import { decodeModel } from "../src/onnx/proto.ts";

const root = mkdtempSync(join(tmpdir(), "build-graph-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function cli(...args: string[]) {
  const r = spawnSync(process.execPath, ["bin/onnx-mnist.js", ...args], { encoding: "utf8" });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

// Each test runs the CLI (a process that loads onnxruntime and builds graphs): minutes when two cores are shared.
describe("build-graph", { timeout: 300_000 }, () => {
  it("writes train_step.onnx, eval_step.onnx, model.onnx and checkpoint, byte-identical for the same flags", () => {
    const [a, b, c] = ["a", "b", "c"].map((d) => join(root, d));
    const ra = cli("build-graph", "--model", "mycnn", "--optimizer", "adam", "--lr", "1e-3", "--seed", "0", "--out", a);
    expect(ra.code, ra.err).toBe(0);
    expect(ra.out).toMatch(/8,110 parameters/);
    expect(ra.out).toMatch(/train_step\s+\d+ nodes: .*MaxUnpool/);
    expect(ra.out).toMatch(/opset\s+17/);
    expect(cli("build-graph", "--model", "mycnn", "--optimizer", "adam", "--lr", "1e-3", "--seed", "0", "--out", b).code).toBe(0);
    expect(cli("build-graph", "--model", "mycnn", "--seed", "1", "--out", c).code).toBe(0);
    for (const f of ["train_step.onnx", "eval_step.onnx", "model.onnx", "checkpoint"]) {
      expect(readFileSync(join(a, f)).equals(readFileSync(join(b, f))), f).toBe(true);
    }
    // another seed: other initial weights, same graphs
    expect(readFileSync(join(a, "model.onnx")).equals(readFileSync(join(c, "model.onnx")))).toBe(false);
    expect(readFileSync(join(a, "train_step.onnx")).equals(readFileSync(join(c, "train_step.onnx")))).toBe(true);
  });

  it("model.onnx follows the contract: input [N,1,28,28] -> logits [N,10], default domain, value_info for Netron", async () => {
    const bytes = readFileSync(join(root, "a", "model.onnx"));
    const m = decodeModel(bytes);
    expect(m.opset_import).toEqual([{ domain: "", version: 17 }]);
    expect(m.graph.node.every((n) => !n.domain)).toBe(true);
    expect(m.graph.input.map((i) => i.name)).toEqual(["input"]);
    expect(m.graph.output.map((o) => o.name)).toEqual(["logits"]);
    expect(m.graph.input[0].type.tensor_type.shape!.dim.map((d) => d.dim_param || Number(d.dim_value))).toEqual(["N", 1, 28, 28]);
    expect(m.graph.initializer.map((t) => t.name)).toContain("conv.1.running_var");
    expect(m.graph.value_info.length).toBeGreaterThan(10);
    const s = await ort.InferenceSession.create(bytes);
    const out = await s.run({ input: new ort.Tensor("float32", new Float32Array(3 * 784), [3, 1, 28, 28]) });
    expect(out.logits.dims).toEqual([3, 10]);
  });

  it("names parameters like PyTorch's state_dict", () => {
    const m = decodeModel(readFileSync(join(root, "a", "model.onnx")));
    const names = m.graph.initializer.map((t) => t.name).filter((n) => !n!.startsWith("const_"));
    expect(names).toEqual(
      ["conv.0", "conv.1", "conv.4", "conv.5", "conv.8", "conv.9"].flatMap((l) =>
        l === "conv.0" || l === "conv.4" || l === "conv.8" ? [`${l}.weight`, `${l}.bias`] : [`${l}.weight`, `${l}.bias`, `${l}.running_mean`, `${l}.running_var`],
      ).concat(["lin.weight", "lin.bias"]),
    );
  });

  const bad: [string, string[], RegExp, (() => void)?][] = [
    ["an unknown model name", ["--model", "resnet"], /unknown model 'resnet': use one of mycnn, lenet5/],
    [
      "a spec that violates the schema (says where)",
      ["--model", join(root, "bad-schema.json")],
      /bad-schema\.json: \/layers\/1\/kernel_size must be integer/,
      () => writeFileSync(join(root, "bad-schema.json"), JSON.stringify({ layers: [{ type: "flatten" }, { type: "maxpool2d", kernel_size: "2" }] })),
    ],
    [
      "layers whose shapes do not fit",
      ["--model", join(root, "bad-shape.json")],
      /layer lin \(linear\): Linear expects 288 inputs, the previous layer gives 512/,
      () =>
        writeFileSync(
          join(root, "bad-shape.json"),
          JSON.stringify({
            layers: [
              { type: "conv2d", out_channels: 32, kernel_size: 3, padding: 1 },
              { type: "maxpool2d", kernel_size: 7 },
              { type: "flatten" },
              { type: "linear", name: "lin", in_features: 288, out_features: 10 },
            ],
          }),
        ),
    ],
    ["a spec that is not JSON", ["--model", join(root, "not-json.json")], /not-json\.json: not valid JSON/, () => writeFileSync(join(root, "not-json.json"), "{ layers: ")],
    ["a bad flag value", ["--lr", "-1"], /--lr must be greater than 0/],
    ["an unknown optimizer", ["--optimizer", "rmsprop"], /Invalid values:[\s\S]*optimizer/],
  ];
  it.each(bad)("rejects %s with a clear message, non-zero exit and no files", (_what, args, message, setup) => {
    setup?.();
    const out = join(root, `out-${Math.random().toString(36).slice(2)}`);
    const r = cli("build-graph", ...args, "--out", out);
    expect(r.code).not.toBe(0);
    expect(r.err).toMatch(message);
    expect(r.err.split("\n").filter((l) => l.startsWith("    at ")).length).toBe(0); // no stack trace
    expect(existsSync(out) ? readdirSync(out) : []).toEqual([]);
  });
});

describe("the training step", () => {
  it("runs at any batch size (1, 7, 128), one graph for all", async () => {
    const { buildProgram, initialValues } = await import("../src/program/program.ts");
    const { builtinSpec } = await import("../src/nn/spec.ts");
    const { optimizerConfig } = await import("../src/optim/optimizer.ts");
    const { Trainer } = await import("../src/runtime/trainer.ts");
    for (const model of ["mycnn", "lenet5"]) {
      const program = buildProgram(builtinSpec(model), optimizerConfig("adam"));
      const init = initialValues(program.plan, 0);
      const trainer = await Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers));
      const x = Float32Array.from({ length: 128 * 784 }, (_, i) => ((i * 7919) % 256) / 255);
      const y = BigInt64Array.from({ length: 128 }, (_, i) => BigInt(i % 10));
      for (const n of [1, 7, 128]) {
        const r = await trainer.trainStep(x, y, n);
        expect(Number.isFinite(r.loss), `${model} batch ${n}`).toBe(true);
        expect(r.correct).toBeLessThanOrEqual(n);
      }
      expect(trainer.step).toBe(3);
      expect(trainer.getState().buffers.every(Number.isFinite)).toBe(true);
      await trainer.release();
    }
  });
});
