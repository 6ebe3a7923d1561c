/**
 * Web demo latency in real Chromium (onnxruntime-web, WASM): the median time of one single-image run (what
 * each stroke of a drawn digit costs, aim < 1 ms), the canvas preprocessing of a 280x280 drawing, and the
 * throughput of 100-image batches, for several WASM thread counts. Pages with different thread counts are
 * measured interleaved (A B A B ...) so the machine's drifts hit them alike.
 *
 *   npx tsx bench/web-latency.ts [--model FILE] [--threads 1,2] [--rounds 15]
 * Default model: runs/latest/model.onnx, else one trained by the CLI (as the tests do).
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { chromium, type Page } from "playwright-core";
import { serveDemo } from "../src/server/demo.ts";
import { interleave, markdownTable, median } from "./harness.ts";

const { values } = parseArgs({
  options: { model: { type: "string" }, threads: { type: "string", default: "1,2" }, rounds: { type: "string", default: "15" } },
});
const threadCounts = values.threads!.split(",").map(Number);
const rounds = Number(values.rounds);
if (!threadCounts.every((t) => Number.isInteger(t) && t >= 1)) throw new Error(`--threads must list whole numbers >= 1, e.g. 1,2; got ${values.threads}`);
if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds must be a whole number >= 1, got ${values.rounds}`);

let modelPath = values.model ?? (existsSync("runs/latest/model.onnx") ? "runs/latest/model.onnx" : undefined);
if (!modelPath) modelPath = await (await import("../test/helpers/trained-model.ts")).trainedModel();

const SINGLES = 50; // single-image runs per round
const BATCHES = 3; // 100-image runs per round

const server = await serveDemo({ modelPath, port: 0 });
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});

interface Sample {
  single: number[];
  batch: number[];
  preprocess: number[];
}

/** One round in the page: SINGLES single-image runs, BATCHES 100-image runs, and preprocessing; times in ms. */
function measure(page: Page): Promise<Sample> {
  return page.evaluate(
    async ({ singles, batches }) => {
      const { ort, session, toMnistInput } = (globalThis as any).onnxMnist;
      const s = session();
      // A real digit: the first gallery digit, drawn large on a 280x280 canvas for the preprocessing.
      const btn = document.querySelector<HTMLButtonElement>("[data-testid=gallery-item] canvas")!.parentElement!;
      const small = btn.querySelector("canvas")!.getContext("2d")!.getImageData(0, 0, 28, 28).data;
      const one = new Float32Array(784);
      for (let i = 0; i < 784; i++) one[i] = small[4 * i] / 255;
      const big = document.createElement("canvas");
      big.width = big.height = 280;
      const g = big.getContext("2d")!;
      g.imageSmoothingEnabled = true;
      g.drawImage(btn.querySelector("canvas")!, 0, 0, 280, 280);
      const rgba = g.getImageData(0, 0, 280, 280).data;
      const batch = new Float32Array(100 * 784);
      for (let k = 0; k < 100; k++) batch.set(one, k * 784);
      const x1 = new ort.Tensor("float32", one, [1, 1, 28, 28]);
      const x100 = new ort.Tensor("float32", batch, [100, 1, 28, 28]);
      const out: Sample = { single: [], batch: [], preprocess: [] };
      for (let i = 0; i < singles; i++) {
        const t0 = performance.now();
        await s.run({ input: x1 });
        out.single.push(performance.now() - t0);
      }
      for (let i = 0; i < batches; i++) {
        const t0 = performance.now();
        await s.run({ input: x100 });
        out.batch.push(performance.now() - t0);
      }
      for (let i = 0; i < 10; i++) {
        const t0 = performance.now();
        toMnistInput(rgba, 280, 280);
        out.preprocess.push(performance.now() - t0);
      }
      return out;
    },
    { singles: SINGLES, batches: BATCHES },
  );
}

try {
  const pages = new Map<number, Page>();
  for (const t of threadCounts) {
    const page = await browser.newPage();
    await page.goto(`${server.url}?threads=${t}`);
    await page.waitForFunction(() => document.documentElement.dataset.loads === "1", null, { timeout: 60_000 });
    const shown = await page.getByTestId("threads").textContent();
    if (shown !== String(t)) throw new Error(`asked for ${t} threads, the page uses ${shown} (is it cross-origin isolated?)`);
    await measure(page); // warm-up
    pages.set(t, page);
  }
  const all = new Map<number, Sample>(threadCounts.map((t) => [t, { single: [], batch: [], preprocess: [] }]));
  await interleave(
    rounds,
    threadCounts.map((t) => ({
      name: `${t}`,
      run: async () => {
        const s = await measure(pages.get(t)!);
        const acc = all.get(t)!;
        acc.single.push(...s.single);
        acc.batch.push(...s.batch);
        acc.preprocess.push(...s.preprocess);
        return median(s.single);
      },
    })),
  );
  const p90 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(0.9 * (xs.length - 1))];
  const base = median(all.get(threadCounts[0])!.batch);
  const rows = threadCounts.map((t) => {
    const s = all.get(t)!;
    return {
      "WASM threads": t,
      "single image, median ms": median(s.single),
      "single, p90 ms": p90(s.single),
      "preprocess 280x280, median ms": median(s.preprocess),
      "batch of 100, median ms": median(s.batch),
      "images/s (batch 100)": Math.round(100_000 / median(s.batch)),
      [`batch speed-up vs ${threadCounts[0]} thread(s)`]: base / median(s.batch),
    };
  });
  const ua = await pages.get(threadCounts[0])!.evaluate(() => navigator.userAgent.match(/Chrome\/[\d.]+/)?.[0] ?? "?");
  console.log(`\nonnxruntime-web WASM in ${ua}, ${rounds} interleaved rounds of ${SINGLES} single runs and ${BATCHES} batch runs; model ${modelPath}\n`);
  console.log(markdownTable(rows));
} finally {
  await browser.close();
  await server.close();
}
