/**
 * Training steps per second in Chromium (the Train page: onnxruntime-web WASM in a Web Worker) against Node
 * (onnxruntime-node, and onnxruntime-web's WASM in Node), on the same model, batch size and MNIST images.
 * Candidates run interleaved (A B A B ...); each measurement is one epoch over the first `steps x batch` training
 * images, timed per step (batch filling + session run, as the fit loop does it), the first 5 steps left out as
 * warm-up. Prints a markdown table for the README.
 * Then the first epoch of a freshly opened Train page against its third, with the page's warm-up (worker.ts: warm)
 * and without it (?warm=0), each in a new browser context after the same idle time.
 *   npx tsx bench/web-train.ts [--rounds 5] [--batch-size 64] [--steps 120] [--model mycnn] [--first-epoch-rounds 3]
 */
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web";
import { chromium, type Page } from "playwright-core";
import { serveDemo } from "../src/server/demo.ts";
import { buildProgram, initialValues } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";
import { Trainer, type Ort, type TrainerOptions } from "../src/runtime/trainer.ts";
import { fit, startPosition } from "../src/runtime/fit.ts";
import { loadMnist } from "../src/data/node.ts";
import { SUBSET_TRAIN } from "../src/web-assets/mnist-subset.ts";
import { interleave, markdownTable, median } from "./harness.ts";
import type { StepPoint } from "../web/train/protocol.ts";

const { values: a } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    "batch-size": { type: "string", default: "64" },
    steps: { type: "string", default: "120" },
    model: { type: "string", default: "mycnn" },
    "first-epoch-rounds": { type: "string", default: "3" },
  },
});
const rounds = Number(a.rounds);
const batchSize = Number(a["batch-size"]);
const trainCount = Math.min(SUBSET_TRAIN, Number(a.steps) * batchSize);
const steps = Math.ceil(trainCount / batchSize);
const WARMUP = 5;
if (!(Number.isInteger(batchSize) && batchSize >= 1 && steps > WARMUP + 5)) {
  console.error(`--batch-size and --steps give ${steps} steps; need more than ${WARMUP + 5} (at most ${SUBSET_TRAIN} images)`);
  process.exit(2);
}
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

/** Mean ms per step after the warm-up steps. */
function msPerStep(ms: number[]): number {
  const rest = ms.slice(WARMUP);
  return rest.reduce((s, x) => s + x, 0) / rest.length;
}

// ---- Node: the same fit loop with onnxruntime-node or onnxruntime-web (WASM)
const data = loadMnist(undefined, { trainLimit: trainCount, testLimit: 100 });
const program = buildProgram(builtinSpec(a.model!), optimizerConfig("adam"));
ortWeb.env.wasm.numThreads = 1;
async function nodeRun(ort: Ort, opts: TrainerOptions): Promise<number> {
  const init = initialValues(program.plan, 0);
  const trainer = await Trainer.create(ort, program, Trainer.freshState(program, init.params, init.buffers), opts);
  const ms: number[] = [];
  let last = performance.now();
  await fit(trainer, data.train, data.test, {
    epochs: 1,
    batchSize,
    position: startPosition(0),
    skipEval: true,
    onStep: () => {
      const now = performance.now();
      ms.push(now - last);
      last = now;
    },
  });
  await trainer.release();
  return msPerStep(ms);
}

// ---- Chromium: the Train page, driven like a user
const server = await serveDemo({ port: 0, log: (l) => process.stderr.write(l + "\n") });
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
async function openPage(threads: number, query = "", epochs = 1): Promise<Page> {
  const page = await browser.newPage(); // a new browser context: nothing compiled or cached from another page
  await page.goto(`${server.url}train.html?threads=${threads}${query}`);
  await page.waitForFunction(() => document.documentElement.dataset.ready === "yes", null, { timeout: 60_000 });
  await page.getByTestId("model").selectOption(a.model!);
  await page.getByTestId("epochs").fill(String(epochs));
  await page.getByTestId("batch-size").fill(String(batchSize));
  await page.getByTestId("train-count").fill(String(trainCount));
  await page.getByTestId("test-count").fill("100");
  return page;
}
async function chromiumRun(page: Page, epochs = 1): Promise<number> {
  const before = await page.evaluate(() => (globalThis as any).onnxMnistTrain.ends as number);
  await page.getByTestId("train-start").click();
  await page.waitForFunction((n) => (globalThis as any).onnxMnistTrain.ends > n, before, { timeout: 600_000 });
  const pts: StepPoint[] = await page.evaluate(() => (globalThis as any).onnxMnistTrain.steps);
  if (pts.length !== steps * epochs) throw new Error(`the page ran ${pts.length} steps, expected ${steps * epochs}: ${await page.getByTestId("train-status").textContent()}`);
  return msPerStep(pts.map((p) => p.ms));
}

try {
  const pages = { 1: await openPage(1), 2: await openPage(2) };
  const webOpts = { sessionOptions: { executionProviders: ["wasm"] } };
  const candidates = [
    { name: "Chromium, onnxruntime-web (WASM), 1 thread", run: () => chromiumRun(pages[1]) },
    { name: "Chromium, onnxruntime-web (WASM), 2 threads", run: () => chromiumRun(pages[2]) },
    { name: "Node, onnxruntime-web (WASM), 1 thread", run: () => nodeRun(ortWeb as unknown as Ort, webOpts) },
    { name: "Node, onnxruntime-node, 1 thread", run: () => nodeRun(ortNode, { threads: 1 }) },
    { name: "Node, onnxruntime-node, 2 threads", run: () => nodeRun(ortNode, { threads: 2 }) },
  ];
  process.stderr.write(`${rounds} interleaved rounds of ${steps} steps (batch ${batchSize}, ${a.model}) per candidate...\n`);
  const r = await interleave(rounds, candidates);
  const base = candidates[0].name;
  const rows = candidates.map((c) => {
    const ms = r.medians[c.name];
    const perRound = r.samples[c.name].map((x, i) => r.samples[base][i] / x);
    return {
      runtime: c.name,
      "steps/s": 1000 / ms,
      "ms/step": ms,
      "images/s": Math.round((1000 * batchSize) / ms),
      "speed vs Chromium 1 thread (median of per-round ratios)": median(perRound),
    };
  });
  // The first epoch of a new page against its third: the WASM code is compiled on first call and optimised once hot.
  const IDLE_MS = 8000; // the time a user takes to choose settings; the warm-up runs in it (at most 6 s)
  const firstEpoch = async (query: string) => {
    const page = await openPage(1, query, 3);
    await page.waitForTimeout(IDLE_MS);
    await chromiumRun(page, 3);
    const pts: StepPoint[] = await page.evaluate(() => (globalThis as any).onnxMnistTrain.steps);
    await page.context().close();
    const sum = (e: number) => pts.filter((p) => p.epoch === e).reduce((t, p) => t + p.ms, 0);
    return sum(1) / sum(3);
  };
  const fr = await interleave(Number(a["first-epoch-rounds"]), [
    { name: "with the warm-up", run: () => firstEpoch("") },
    { name: "without (?warm=0)", run: () => firstEpoch("&warm=0") },
  ]);
  const web = JSON.parse(readFileSync(new URL("../node_modules/onnxruntime-web/package.json", import.meta.url), "utf8")).version;
  const chromiumVersion = browser.version();
  console.log(`\nTraining ${a.model}, batch ${batchSize}, Adam: steps per second, median of ${rounds} interleaved rounds of ${steps} steps`);
  console.log(`(Chromium ${chromiumVersion}, onnxruntime-web ${web} in a Web Worker; Node ${process.versions.node}, onnxruntime-node ${ortNode.env.versions.node ?? "?"})\n`);
  console.log(markdownTable(rows));
  console.log(`\nFirst epoch of a newly opened Train page / its third epoch (1 thread, ${steps} steps of ${batchSize}, ${IDLE_MS / 1000} s idle before Start), median of ${fr.load.length} interleaved rounds\n`);
  console.log(markdownTable(Object.entries(fr.medians).map(([page, ratio]) => ({ page, "first epoch / third epoch": ratio }))));
} finally {
  await browser.close();
  await server.close();
}
