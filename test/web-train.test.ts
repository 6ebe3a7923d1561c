/**
 * Training in the browser (issue 6): the MNIST subset asset on its own, then the Train page end to end in real
 * headless Chromium (Debian's, driven by playwright-core) against `serveDemo`: one epoch in a Web Worker with
 * onnxruntime-web, the downloaded model.onnx read by `onnx-mnist eval` and the downloaded checkpoint continued
 * by `onnx-mnist train --resume`, Stop and Continue (bit for bit the same as an uninterrupted run), the
 * freshly trained model in the draw pad and in the draw demo, and the messages for bad settings and a browser
 * without WebAssembly SIMD.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser, type Page } from "playwright-core";
import { serveDemo, type DemoServer } from "../src/server/demo.ts";
import { DIST_DIR } from "../src/server/build.ts";
import { decodeSubset, encodeSubset, SUBSET_FILE, SUBSET_TEST, SUBSET_TRAIN } from "../src/web-assets/mnist-subset.ts";
import { buildSubsetAsset } from "../src/web-assets/mnist-subset-node.ts";
import { loadMnist } from "../src/data/node.ts";
import { decodeCheckpoint } from "../src/runtime/checkpoint.ts";
import { AUGMENT_PRESET } from "../src/augment/augment.ts";
import { summarizeModel } from "../src/onnx/summary.ts";
import type { Snapshot, StepPoint } from "../web/train/protocol.ts";
import { importModel } from "./helpers/import-models.ts";
import { decodeModel } from "../src/onnx/proto.ts";

const ROOT = join(import.meta.dirname, "..");
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const run = promisify(execFile);

function cli(args: string[]) {
  return run(process.execPath, ["bin/onnx-mnist.js", ...args], { cwd: ROOT, maxBuffer: 64 << 20 });
}

describe("MNIST subset asset", () => {
  const mnist = loadMnist();

  it("holds exactly the first N training and test images of MNIST (as --train-limit/--test-limit take them), same bytes every time", () => {
    const bytes = buildSubsetAsset(300, 120);
    expect(buildSubsetAsset(300, 120)).toEqual(bytes);
    const d = decodeSubset(bytes);
    expect([d.train.count, d.test.count]).toEqual([300, 120]);
    expect(d.train.labels).toEqual(mnist.train.labels.subarray(0, 300));
    expect(d.train.images).toEqual(mnist.train.images.subarray(0, 300 * 784));
    expect(d.test.labels).toEqual(mnist.test.labels.subarray(0, 120));
    expect(d.test.images).toEqual(mnist.test.images.subarray(0, 120 * 784));
    expect([d.train.rows, d.train.cols]).toEqual([28, 28]);
    expect(bytes.length).toBeLessThan(0.4 * 420 * 785); // compressed
  });

  it("rejects files that are not a subset with one line that says to rebuild the page", () => {
    const good = encodeSubset({ train: mnist.train, test: mnist.test }, 50, 20);
    const bad = (b: Uint8Array) => () => decodeSubset(b);
    expect(bad(new TextEncoder().encode("MNGL and more bytes here"))).toThrow(/^not an MNIST subset file \(magic "MNGL", expected "MNSB"\); rebuild the web page$/);
    const version = good.slice();
    version[4] = 9;
    expect(bad(version)).toThrow(/^MNIST subset format version 9 is not supported \(expected 1\); rebuild the web page$/);
    expect(bad(good.subarray(0, good.length - 30))).toThrow(/^MNIST subset file is corrupt .*; rebuild the web page$/);
    const count = good.slice();
    count[8] = 51; // the header says 51 training images; the data holds 50 (and 20 test): 70 x 785 bytes
    expect(bad(count)).toThrow(/^MNIST subset holds 54950 bytes, expected 55735 for 51 \+ 20 images; rebuild the web page$/);
  });
});

/**
 * Deadlines for what the page waits for: under load (two cores shared by Chromium's worker, the CLI and other
 * test files) a redraw or a reaction to a click can take seconds; a broken page still fails, only later.
 */
const REDRAW = { timeout: 30_000 };

describe("Train page in Chromium", () => {
  let server: DemoServer;
  let browser: Browser;
  let tmp: string;

  beforeAll(async () => {
    server = await serveDemo({ port: 0 });
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
    tmp = mkdtempSync(join(tmpdir(), "onnx-mnist-web-train-"));
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  /** A fresh Train page, ready; page errors fail the test. */
  async function openTrain(init?: () => void): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("close", () => expect(errors).toEqual([]));
    if (init) await page.addInitScript(init);
    await page.goto(server.url + "train.html");
    await page.waitForFunction(() => document.documentElement.dataset.ready, null, { timeout: 60_000 });
    return page;
  }

  async function settings(page: Page, s: { epochs: number; batchSize: number; train: number; test: number; model?: string }): Promise<void> {
    if (s.model) await page.getByTestId("model").selectOption(s.model);
    await page.getByTestId("epochs").fill(String(s.epochs));
    await page.getByTestId("batch-size").fill(String(s.batchSize));
    await page.getByTestId("train-count").fill(String(s.train));
    await page.getByTestId("test-count").fill(String(s.test));
  }

  const status = (page: Page) => page.getByTestId("train-status").textContent() as Promise<string>;
  const ends = (page: Page) => page.evaluate(() => (globalThis as any).onnxMnistTrain.ends as number);
  async function waitForEnd(page: Page, count: number): Promise<void> {
    await page.waitForFunction((n) => (globalThis as any).onnxMnistTrain.ends >= n, count, { timeout: 240_000 });
  }
  const snapshot = (page: Page) => page.evaluate(() => {
    const s = (globalThis as any).onnxMnistTrain.snapshot as Snapshot;
    return { ...s, model: Array.from(s.model), checkpoint: Array.from(s.checkpoint) };
  });

  async function download(page: Page, testId: string, path: string): Promise<string> {
    const [d] = await Promise.all([page.waitForEvent("download"), page.getByTestId(testId).click()]);
    await d.saveAs(path);
    return d.suggestedFilename();
  }

  it("serves the subset asset: the first 10,000 training and 2,000 test images of MNIST", () => {
    const d = decodeSubset(new Uint8Array(readFileSync(join(DIST_DIR, SUBSET_FILE))));
    const mnist = loadMnist(undefined, { trainLimit: SUBSET_TRAIN, testLimit: SUBSET_TEST });
    expect([d.train.count, d.test.count]).toEqual([10_000, 2_000]);
    expect(d.train.labels).toEqual(mnist.train.labels);
    expect(d.test.images).toEqual(mnist.test.images);
  });

  it("trains one epoch in a Web Worker to above 90 % test accuracy; eval reads the model, train --resume continues the checkpoint", async () => {
    const page = await openTrain();
    expect(await status(page)).toMatch(/^ready/);
    await settings(page, { epochs: 1, batchSize: 32, train: 10_000, test: 1_000, model: "mycnn" });
    await page.getByTestId("train-start").click();
    expect(await page.getByTestId("train-stop").isEnabled()).toBe(true);
    await waitForEnd(page, 1);
    expect(await status(page)).toMatch(/^trained 1 epoch \(313 steps\) in [\d.]+ s: done$/);
    const accuracy = Number(await page.getByTestId("test-accuracy").textContent());
    expect(accuracy).toBeGreaterThan(90);
    expect(await page.getByTestId("epoch-rows").locator("tr").count()).toBe(1);

    // The live curve got every step, and the loss came down.
    const steps: StepPoint[] = await page.evaluate(() => (globalThis as any).onnxMnistTrain.steps);
    expect(steps.map((s) => s.step)).toEqual(Array.from({ length: 313 }, (_, i) => i + 1));
    expect(await page.getByTestId("loss-chart").getAttribute("data-points")).toBe("313");
    const mean = (xs: StepPoint[]) => xs.reduce((a, s) => a + s.loss, 0) / xs.length;
    expect(mean(steps.slice(-50))).toBeLessThan(0.5 * mean(steps.slice(0, 20)));

    // Downloads: model.onnx for eval, the checkpoint for train --resume (DIR/checkpoint).
    const dir = join(tmp, "resume");
    mkdirSync(dir);
    expect(await download(page, "download-model", join(tmp, "model.onnx"))).toBe("model.onnx");
    expect(await download(page, "download-checkpoint", join(dir, "checkpoint"))).toBe("checkpoint");
    expect(summarizeModel(readFileSync(join(tmp, "model.onnx"))).opsets).toEqual([{ domain: "", version: 17 }]);
    const ck = decodeCheckpoint(new Uint8Array(readFileSync(join(dir, "checkpoint"))), "checkpoint");
    expect(ck.header).toMatchObject({ step: 313, epoch: 1, stepInEpoch: 0, model: { kind: "spec", spec: { name: "mycnn" } }, optimizer: { type: "adam", lr: 0.001 } });
    expect(ck.header.config).toMatchObject({ model: "mycnn", epochs: 1, batch_size: 32, data: null, train_limit: 10_000, test_limit: 1_000, seed: 0 });

    const evalOut = await cli(["eval", "--model", join(tmp, "model.onnx"), "--json"]);
    const e = JSON.parse(evalOut.stdout);
    expect(e.count).toBe(10_000);
    expect(e.accuracy).toBeGreaterThan(0.9);

    const resumed = await cli(["train", "--resume", dir, "--epochs", "2"]);
    expect(resumed.stdout).toMatch(/resuming mycnn .* from epoch 2, step 0/);
    expect(resumed.stdout).toMatch(/epoch 2\/2 /);
    const after = decodeCheckpoint(new Uint8Array(readFileSync(join(dir, "checkpoint"))), "checkpoint");
    expect(after.header).toMatchObject({ step: 626, epoch: 2, stepInEpoch: 0 });
    const records = readFileSync(join(dir, "metrics.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    const epoch2 = records.find((r) => r.type === "epoch" && r.epoch === 2);
    expect(epoch2.test_accuracy).toBeGreaterThan(0.9);
    expect(records.filter((r) => r.type === "step").map((r) => r.step)).toEqual(Array.from({ length: 313 }, (_, i) => 314 + i));
    expect(existsSync(join(dir, "model.onnx"))).toBe(true);

    // The freshly trained model is in the draw pad at once...
    await page.waitForFunction(() => Number(document.documentElement.dataset.models) >= 1, null, REDRAW);
    await page.getByTestId("canvas").scrollIntoViewIfNeeded();
    const box = (await page.getByTestId("canvas").boundingBox())!;
    await page.mouse.move(box.x + 0.5 * box.width, box.y + 0.18 * box.height);
    await page.mouse.down();
    await page.mouse.move(box.x + 0.5 * box.width, box.y + 0.82 * box.height, { steps: 8 });
    await page.mouse.up();
    await expect.poll(() => page.getByTestId("prediction").textContent(), REDRAW).toBe("1");

    // ...and in the draw demo, which classifies its gallery of real test digits with it.
    const [demo] = await Promise.all([page.waitForEvent("popup"), page.getByTestId("open-demo").click()]);
    await demo.waitForFunction(() => document.documentElement.dataset.loads === "1", null, { timeout: 60_000 });
    expect(await demo.getByTestId("model-error").isHidden()).toBe(true);
    await expect.poll(() => demo.getByTestId("gallery-accuracy").textContent(), REDRAW).toMatch(/%/);
    expect(parseFloat((await demo.getByTestId("gallery-accuracy").textContent())!)).toBeGreaterThan(85);
    await demo.close();
    await page.close();
  }, 600_000); // training in the browser and on the command line, on a loaded machine

  it("gets onnxruntime-web's WASM compiled while the settings are chosen (blank steps, nothing kept); ?warm=0 skips it", async () => {
    const page = await openTrain();
    await page.waitForFunction(() => (globalThis as any).onnxMnistTrain.warmed, null, { timeout: 120_000 });
    const w = await page.evaluate(() => (globalThis as any).onnxMnistTrain.warmed);
    expect(w.runs).toBeGreaterThanOrEqual(1);
    expect(w.firstMs).toBeGreaterThan(0);
    expect(await page.evaluate(() => (globalThis as any).onnxMnistTrain.steps)).toEqual([]); // no step was shown
    await page.close();
    const cold = await browser.newPage();
    await cold.goto(server.url + "train.html?warm=0");
    await cold.waitForFunction(() => document.documentElement.dataset.ready, null, { timeout: 60_000 });
    await cold.waitForTimeout(2000);
    expect(await cold.evaluate(() => (globalThis as any).onnxMnistTrain.warmed)).toBeNull();
    await cold.close();
  }, 180_000);

  it("stops mid-epoch and continues exactly where it stopped: the same model as an uninterrupted run", async () => {
    const page = await openTrain();
    const s = { epochs: 2, batchSize: 32, train: 6_000, test: 500 }; // 188 steps per epoch: Stop lands well inside the first
    await settings(page, s);
    await page.getByTestId("train-start").click();
    await page.waitForFunction(() => (globalThis as any).onnxMnistTrain.steps.length >= 10, null, { timeout: 60_000 });
    await page.getByTestId("train-stop").click();
    await waitForEnd(page, 1);
    expect(await status(page)).toMatch(/^stopped at epoch 1, step \d+\/188: Continue goes on from here$/);
    const stopped = await snapshot(page);
    expect(stopped.epoch).toBe(0);
    expect(stopped.stepInEpoch).toBeGreaterThanOrEqual(10);
    expect(stopped.stepInEpoch).toBeLessThan(188);
    const ck = decodeCheckpoint(Uint8Array.from(stopped.checkpoint), "checkpoint");
    expect(ck.header).toMatchObject({ step: stopped.step, epoch: 0, stepInEpoch: stopped.stepInEpoch });
    expect(await page.getByTestId("download-checkpoint").getAttribute("aria-disabled")).toBe("false");
    expect(await page.getByTestId("train-continue").isEnabled()).toBe(true);

    await page.getByTestId("train-continue").click();
    await waitForEnd(page, 2);
    expect(await status(page)).toMatch(/^trained 2 epochs \(376 steps\) in [\d.]+ s: done$/);
    const steps: StepPoint[] = await page.evaluate(() => (globalThis as any).onnxMnistTrain.steps);
    expect(steps.map((p) => p.step)).toEqual(Array.from({ length: 376 }, (_, i) => i + 1));
    const continued = await snapshot(page);
    expect(await page.getByTestId("epoch-rows").locator("tr").count()).toBe(2);

    // Continue with nothing left to do says so.
    await page.getByTestId("train-continue").click();
    await expect.poll(() => status(page), REDRAW).toBe("error: this run has already trained 2 epochs; set Epochs higher to continue it");

    // A fresh, uninterrupted run with the same settings: the very same bytes.
    await page.getByTestId("train-start").click();
    await waitForEnd(page, 3);
    const straight = await snapshot(page);
    expect(straight.step).toBe(376);
    expect(Buffer.from(Uint8Array.from(straight.model)).equals(Buffer.from(Uint8Array.from(continued.model)))).toBe(true);
    expect(Buffer.from(Uint8Array.from(straight.checkpoint)).equals(Buffer.from(Uint8Array.from(continued.checkpoint)))).toBe(true);
    await page.close();
  }, 600_000); // training in the browser and on the command line, on a loaded machine

  it("fine-tunes an ONNX classifier exported by PyTorch, picked in the page: accuracy rises, the model keeps its own names", async () => {
    const m = await importModel("mycnn_train_op13_dynamic.onnx");
    const page = await openTrain();
    await settings(page, { epochs: 1, batchSize: 32, train: 3000, test: 300, model: "onnx-file" });
    await page.getByTestId("lr").fill("0.003");
    await page.getByTestId("onnx-file").setInputFiles(m.path);
    await expect.poll(() => status(page), REDRAW).toMatch(/mycnn_train_op13_dynamic\.onnx .* will be fine-tuned/);
    await page.getByTestId("train-start").click();
    await waitForEnd(page, 1);
    const epochs = await page.evaluate(() => (globalThis as any).onnxMnistTrain.epochs as { testAccuracy: number }[]);
    expect(epochs.length).toBe(1);
    expect(epochs[0].testAccuracy).toBeGreaterThan(0.75); // from random initial weights, 94 steps
    const s = await snapshot(page);
    const exported = decodeModel(Uint8Array.from(s.model));
    expect(exported.graph.input.map((i) => i.name)).toEqual(["input"]);
    expect(exported.graph.output.map((o) => o.name)).toEqual(["output"]);
    expect(exported.graph.initializer.map((t) => t.name)).toContain("conv.0.weight");
    expect(decodeCheckpoint(Uint8Array.from(s.checkpoint), "checkpoint").header.model.kind).toBe("onnx");
    await page.close();
  }, 300_000);

  it("the Augment switch trains on augmented batches (the preset, recorded in the checkpoint's config), reproducibly", async () => {
    const page = await openTrain();
    await settings(page, { epochs: 1, batchSize: 32, train: 640, test: 200, model: "mycnn" });
    const run = async (augment: boolean, n: number) => {
      await page.getByTestId("augment").setChecked(augment);
      await page.getByTestId("train-start").click();
      await waitForEnd(page, n);
      expect(await status(page)).toMatch(/^trained 1 epoch \(20 steps\) in [\d.]+ s: done$/);
      return snapshot(page);
    };
    const [a, b, plain] = [await run(true, 1), await run(true, 2), await run(false, 3)];
    expect(decodeCheckpoint(Uint8Array.from(a.checkpoint), "checkpoint").header.config.augment).toEqual(AUGMENT_PRESET);
    expect(decodeCheckpoint(Uint8Array.from(plain.checkpoint), "checkpoint").header.config.augment).toBeNull();
    expect(Buffer.from(Uint8Array.from(a.model)).equals(Buffer.from(Uint8Array.from(b.model)))).toBe(true);
    expect(Buffer.from(Uint8Array.from(a.model)).equals(Buffer.from(Uint8Array.from(plain.model)))).toBe(false);
    await page.close();
  });

  it("says in one line what is wrong with a setting, and starts nothing", async () => {
    const page = await openTrain();
    await settings(page, { epochs: 1, batchSize: 0, train: 1000, test: 200 });
    await page.getByTestId("train-start").click();
    expect(await status(page)).toBe('error: Batch size must be a whole number from 1 to 1024, got "0"');
    await settings(page, { epochs: 1, batchSize: 32, train: 20_000, test: 200 });
    await page.getByTestId("train-start").click();
    expect(await status(page)).toBe('error: Training images must be a whole number from 1 to 10000, got "20000"');
    expect(await ends(page)).toBe(0);
    expect(await page.getByTestId("train-stop").isDisabled()).toBe(true);
    expect(await page.getByTestId("download-model").getAttribute("aria-disabled")).toBe("true");
    await page.close();
  });

  it("tells a browser without WebAssembly SIMD what it lacks, and does not offer to train", async () => {
    const page = await openTrain(() => {
      WebAssembly.validate = () => false; // what a browser without SIMD answers to the SIMD probe
    });
    expect(await page.getByTestId("env-error").isVisible()).toBe(true);
    expect(await page.getByTestId("env-error").textContent()).toMatch(/^This browser's WebAssembly lacks SIMD, which onnxruntime-web needs; /);
    expect(await status(page)).toBe("cannot train in this browser (see above)");
    expect(await page.getByTestId("train-start").isDisabled()).toBe(true);
    await page.close();
  });
});
