/**
 * Each speed lever on against off, in the whole training step (or the whole epoch, for the batch assembly);
 * prints medians, the median per-round ratio on/off and the 1-minute load average (the machine may be shared:
 * compare ratios, not times).
 *   tsx bench/levers.ts [--lever col2im,block-pool,float-images] [--rounds 5] [--steps 200] [--threads 2] [--model mycnn] [--paired]
 * Default: one process per measurement, interleaved (on off on off ...), `--steps` steps (or an epoch) each.
 * With --paired, on and off alternate in one process in blocks of 10 steps (`--rounds` x 4 blocks each; see
 * paired()): under load that changes by the second, pairing adjacent blocks cancels far more of it.
 */
import * as ort from "onnxruntime-node";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import { interleave, markdownTable, median, runOurs } from "./harness.ts";
import { buildProgram, initialValues } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { Trainer } from "../src/runtime/trainer.ts";
import { loadMnist } from "../src/data/node.ts";
import type { Lowering } from "../src/ops/builder.ts";
import { fillBatch, scaledImages } from "../src/data/dataset.ts";
import { Rng } from "../src/random.ts";

const { values: a } = parseArgs({
  options: {
    lever: { type: "string", default: "col2im,block-pool,float-images" },
    rounds: { type: "string", default: "5" },
    steps: { type: "string", default: "200" },
    threads: { type: "string", default: "2" },
    model: { type: "string", default: "mycnn" },
    paired: { type: "boolean", default: false },
  },
});

const switchOf: Record<string, keyof Lowering> = { col2im: "col2im", "block-pool": "blockPool" };

type Step = () => Promise<void>;

/** Alternating blocks of 10 steps of `on` and `off`, in this process: per block, the mean ms of a step. */
async function alternate(steps: { on: Step; off: Step }, blocks: number): Promise<{ on: number[]; off: number[] }> {
  for (let i = 0; i < 10; i++) for (const k of ["on", "off"] as const) await steps[k](); // warm-up
  const ms: { on: number[]; off: number[] } = { on: [], off: [] };
  for (let b = 0; b < blocks; b++) {
    for (const k of b % 2 ? (["off", "on"] as const) : (["on", "off"] as const)) {
      const t0 = performance.now();
      for (let i = 0; i < 10; i++) await steps[k]();
      ms[k].push((performance.now() - t0) / 10);
    }
  }
  return ms;
}

async function trainerFor(lowering: Partial<Lowering>): Promise<Trainer> {
  const program = buildProgram(builtinSpec(a.model!), optimizerConfig("adam"), lowering);
  const init = initialValues(program.plan, 0);
  return Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), { threads: Number(a.threads) });
}

/**
 * --paired: a graph lever as two Trainers (on, off) on one fixed batch; the float-images lever as one Trainer
 * whose steps each assemble their batch of the shuffled 60k images first, from the float32 copy or from bytes
 * (the one-time copy is left out here; the epoch measure without --paired includes it).
 */
async function paired(lever: string, blocks: number): Promise<{ on: number[]; off: number[] }> {
  const B = 128;
  if (lever === "float-images") {
    const { train } = loadMnist();
    const trainer = await trainerFor({});
    const scaled = scaledImages(train);
    const order = new Rng(1).permutation(train.count);
    const x = new Float32Array(B * 784);
    const y = new BigInt64Array(B);
    let at = 0;
    const step = (from?: Float32Array) => async () => {
      if (at + B > train.count) at = 0;
      fillBatch(train, order, at, at + B, x, y, from);
      at += B;
      await trainer.trainStep(x, y, B);
    };
    const ms = await alternate({ on: step(scaled), off: step() }, blocks);
    await trainer.release();
    return ms;
  }
  const data = loadMnist(undefined, { trainLimit: B, testLimit: 1 });
  const x = Float32Array.from(data.train.images, (v) => v / 255);
  const y = BigInt64Array.from(data.train.labels, (v) => BigInt(v));
  const on = await trainerFor({ [switchOf[lever]]: true });
  const off = await trainerFor({ [switchOf[lever]]: false });
  const ms = await alternate({ on: () => on.trainStep(x, y, B).then(() => {}), off: () => off.trainStep(x, y, B).then(() => {}) }, blocks);
  await Promise.all([on.release(), off.release()]);
  return ms;
}

const rows: Record<string, unknown>[] = [];
for (const lever of a.lever!.split(",")) {
  if (a.paired) {
    const blocks = 4 * Number(a.rounds);
    const before = loadavg()[0];
    process.stderr.write(`${lever}: ${blocks} paired blocks of 10 steps in one process...\n`);
    const ms = await paired(lever, blocks);
    const ratios = ms.on.map((v, i) => v / ms.off[i]);
    rows.push({
      lever,
      measured: lever === "float-images" ? "batch assembly + step, paired blocks of 10 (ms)" : "step, paired blocks of 10 (ms)",
      off: median(ms.off),
      on: median(ms.on),
      "on / off (median of per-round ratios)": median(ratios),
      "per-round on / off": `quartiles ${[0.25, 0.75].map((q) => [...ratios].sort((p, r) => p - r)[Math.floor(q * ratios.length)].toFixed(3)).join(" ")}, ${blocks} blocks`,
      "load avg before rounds": `${before.toFixed(2)} .. ${loadavg()[0].toFixed(2)}`,
    });
    continue;
  }
  // The batch assembly only shows in fit(): a whole epoch. The graph lowerings: the step on a fixed batch.
  const what = lever === "float-images" ? "epoch" : "step";
  const key = what === "step" ? "ms" : "seconds";
  const loads: number[] = [];
  const candidate = (state: "on" | "off") => ({
    name: state,
    run: async () => {
      if (state === "off") loads.push(loadavg()[0]);
      const recs = await runOurs(["--what", what, "--model", a.model!, "--threads", a.threads!, "--batch-size", "128", "--steps", a.steps!, `--${lever}`, state]);
      return Number(recs.find((r) => r.what === what)?.[key]);
    },
  });
  process.stderr.write(`${lever}: ${a.rounds} interleaved rounds of the ${what}...\n`);
  const r = await interleave(Number(a.rounds), [candidate("on"), candidate("off")]);
  rows.push({
    lever,
    measured: what === "step" ? `step, median of ${a.steps} (ms)` : "epoch, 60k images (s)",
    off: r.medians.off,
    on: r.medians.on,
    "on / off (median of per-round ratios)": r.ratios["on/off"],
    "per-round on / off": r.samples.on.map((x, i) => (x / r.samples.off[i]).toFixed(3)).join(" "),
    "load avg before rounds": loads.map((l) => l.toFixed(2)).join(" "),
  });
}
console.log(markdownTable(rows));
