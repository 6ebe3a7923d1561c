/**
 * Our side of the benchmarks, one measurement per process (like bench/torch_ref.py bench): prints JSON lines.
 *   tsx bench/ours.ts --what step|epoch|eval [--model mycnn | --from model.onnx] [--threads 2] [--batch-size 128] [--rounds 1]
 *     [--col2im on|off] [--block-pool on|off] [--float-images on|off]
 * step: median ms of a training step on one fixed batch (after warm-up); epoch: one full shuffled epoch of the
 * 60k training images through fit() (batch assembly included, no evaluation); eval: the 10k test set through
 * model.onnx at batch 1000 and 10000. Ends with the process's peak RSS.
 * --col2im, --block-pool: the training step's lowerings (default: DEFAULT_LOWERING); --float-images: fit's
 * batch assembly from a float32 copy of the images (default off, as fit).
 */
import * as ort from "onnxruntime-node";
import { parseArgs } from "node:util";
import { buildInferenceModel, buildProgram, initialValues } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { Trainer } from "../src/runtime/trainer.ts";
import { fit, startPosition } from "../src/runtime/fit.ts";
import { loadMnist } from "../src/data/node.ts";
import { importOnnxFile } from "../src/node/onnx-file.ts";

const { values: a } = parseArgs({
  options: {
    what: { type: "string", default: "epoch" },
    model: { type: "string", default: "mycnn" },
    threads: { type: "string", default: "2" },
    "batch-size": { type: "string", default: "128" },
    rounds: { type: "string", default: "1" },
    steps: { type: "string", default: "50" },
    from: { type: "string" },
    col2im: { type: "string" },
    "block-pool": { type: "string" },
    "float-images": { type: "string" },
  },
});
const onOff = (name: string, v: string | undefined): boolean | undefined => {
  if (v === undefined) return undefined;
  if (v !== "on" && v !== "off") throw new Error(`--${name} takes on or off, got ${v}`);
  return v === "on";
};
const lowering = Object.fromEntries(
  Object.entries({ col2im: onOff("col2im", a.col2im), blockPool: onOff("block-pool", a["block-pool"]) }).filter(([, v]) => v !== undefined),
);
const floatImages = onOff("float-images", a["float-images"]);
const threads = Number(a.threads);
const B = Number(a["batch-size"]);
const emit = (r: object) => console.log(JSON.stringify({ ...r, threads, batch: B, model: a.model, ort: ort.env.versions.node, lowering: program.lowering }));
const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[xs.length >> 1];

// --from: an ONNX model imported into the model IR, trained from its own weights (as `train --from`).
const program = buildProgram(a.from ? importOnnxFile(a.from) : builtinSpec(a.model!), optimizerConfig("adam"), lowering);
const init = initialValues(program.plan, 0);
const data = loadMnist();

if (a.what === "step" || a.what === "epoch") {
  const trainer = await Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), { threads });
  const x = Float32Array.from(data.train.images.subarray(0, B * 784), (v) => v / 255);
  const y = BigInt64Array.from(data.train.labels.subarray(0, B), (v) => BigInt(v));
  for (let i = 0; i < 5; i++) await trainer.trainStep(x, y, B); // warm-up
  for (let r = 0; r < Number(a.rounds); r++) {
    if (a.what === "step") {
      const times: number[] = [];
      for (let i = 0; i < Number(a.steps); i++) {
        const t0 = performance.now();
        await trainer.trainStep(x, y, B);
        times.push(performance.now() - t0);
      }
      emit({ what: "step", ms: median(times), steps: times.length });
    } else {
      const t0 = performance.now();
      const res = await fit(trainer, data.train, data.test, { epochs: 1, batchSize: B, position: startPosition(r), evalBatchSize: 1000, skipEval: true, floatImages });
      emit({ what: "epoch", seconds: (performance.now() - t0) / 1000, images: data.train.count, loss: res.lastLoss });
    }
  }
} else {
  const session = await ort.InferenceSession.create(buildInferenceModel(program.plan, init.params, init.buffers), { intraOpNumThreads: threads, interOpNumThreads: 1 });
  const x = Float32Array.from(data.test.images, (v) => v / 255);
  await session.run({ input: new ort.Tensor("float32", x.subarray(0, 1000 * 784), [1000, 1, 28, 28]) }); // warm-up
  for (let r = 0; r < Number(a.rounds); r++) {
    for (const eb of [1000, data.test.count]) {
      const t0 = performance.now();
      for (let i = 0; i < data.test.count; i += eb) {
        const n = Math.min(eb, data.test.count - i);
        await session.run({ input: new ort.Tensor("float32", x.subarray(i * 784, (i + n) * 784), [n, 1, 28, 28]) });
      }
      emit({ what: "eval", seconds: (performance.now() - t0) / 1000, eval_batch: eb });
    }
  }
}
emit({ what: "peak_rss", mb: process.resourceUsage().maxRSS / 1024 });
