/**
 * The web demo, end to end, in real headless Chromium (Debian's, driven by playwright-core) against
 * `serveDemo` with a model trained by our CLI: drawing, model loading and its errors, the gallery,
 * diagnostics, keyboard and a phone-sized screen. Plus the server and the gallery asset on their own.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { copyFileSync, existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { createServer } from "node:net";
import * as ort from "onnxruntime-node";
import { chromium, type Browser, type Page } from "playwright-core";
import { serveDemo, type DemoServer } from "../src/server/demo.ts";
import { decodeGallery, encodeGallery, selectGallery } from "../src/web-assets/gallery.ts";
import { buildGalleryAsset } from "../src/web-assets/gallery-node.ts";
import { loadMnist } from "../src/data/node.ts";
import { ModelProto } from "../src/onnx/proto.ts";
import { summarizeModel } from "../src/onnx/summary.ts";
import { trainedModel } from "./helpers/trained-model.ts";
import { torchModels } from "./helpers/torch-models.ts";
import { createServer as createHttpServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { basename, join } from "node:path";

const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

let modelPath: string;
let server: DemoServer;
let browser: Browser;

beforeAll(async () => {
  // A private copy: the shared cache keeps only the newest few models, and parallel test runs prune it.
  modelPath = join(mkdtempSync(join(tmpdir(), "web-demo-")), "model.onnx");
  copyFileSync(await trainedModel(), modelPath);
  server = await serveDemo({ modelPath, port: 0 });
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
});

/** Uncaught errors of any page of the current test: there must be none. */
let pageErrors: string[] = [];
afterEach(() => {
  const errors = pageErrors;
  pageErrors = [];
  expect(errors).toEqual([]);
});

afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** A fresh page with the model loaded; page errors fail the test. */
async function openDemo(query = "", viewport = { width: 1100, height: 900 }): Promise<Page> {
  const page = await browser.newPage({ viewport });
  page.on("pageerror", (e) => pageErrors.push(e.message));
  await page.goto(server.url + query);
  await page.waitForFunction(() => document.documentElement.dataset.loads === "1", null, { timeout: 60_000 });
  return page;
}

/** Strokes in canvas fractions (0..1), drawn with mouse events (short polylines in several steps per segment). */
async function draw(page: Page, strokes: [number, number][][]): Promise<void> {
  const box = (await page.getByTestId("canvas").boundingBox())!;
  for (const points of strokes) {
    const at = ([x, y]: [number, number]) => [box.x + x * box.width, box.y + y * box.height] as const;
    await page.mouse.move(...at(points[0]));
    await page.mouse.down();
    const steps = points.length > 5 ? 1 : 6;
    for (const p of points.slice(1)) await page.mouse.move(...at(p), { steps });
    await page.mouse.up();
  }
}

/** Waits until the shown prediction is settled (no run queued) and returns it. */
async function prediction(page: Page): Promise<string> {
  await page.waitForTimeout(100);
  await page.evaluate(() => new Promise(requestAnimationFrame));
  return (await page.getByTestId("prediction").textContent()) ?? "";
}

function ellipse(cx: number, cy: number, rx: number, ry: number, n = 36): [number, number][] {
  return Array.from({ length: n + 1 }, (_, i) => {
    const t = (2 * Math.PI * i) / n;
    return [cx + rx * Math.sin(t), cy - ry * Math.cos(t)] as [number, number];
  });
}

const DIGITS: { digit: string; strokes: [number, number][][] }[] = [
  { digit: "1", strokes: [[[0.5, 0.18], [0.5, 0.82]]] },
  { digit: "1", strokes: [[[0.56, 0.15], [0.46, 0.85]]] },
  { digit: "0", strokes: [ellipse(0.5, 0.5, 0.2, 0.3)] },
  { digit: "0", strokes: [ellipse(0.48, 0.5, 0.26, 0.33)] },
  { digit: "7", strokes: [[[0.3, 0.2], [0.7, 0.2], [0.45, 0.82]]] },
  { digit: "7", strokes: [[[0.25, 0.25], [0.72, 0.22], [0.5, 0.55], [0.42, 0.85]]] },
];

describe("web demo in Chromium", () => {
  it("runs on the WASM backend in a cross-origin isolated page and shows its diagnostics", async () => {
    const page = await openDemo();
    expect(await page.evaluate(() => globalThis.crossOriginIsolated)).toBe(true);
    expect(await page.getByTestId("isolated").textContent()).toBe("true");
    expect(await page.getByTestId("backend").textContent()).toBe("wasm");
    const webVersion = JSON.parse(readFileSync(new URL("../node_modules/onnxruntime-web/package.json", import.meta.url), "utf8")).version;
    expect(await page.getByTestId("ort-version").textContent()).toBe(webVersion);
    expect(await page.getByTestId("simd").textContent()).toBe("yes");
    expect(Number(await page.getByTestId("threads").textContent())).toBeGreaterThanOrEqual(1);
    const s = summarizeModel(readFileSync(modelPath));
    expect(await page.getByTestId("opset").textContent()).toBe("ai.onnx 17");
    expect(await page.getByTestId("params").textContent()).toBe(s.parameters.toLocaleString("en-US"));
    expect(await page.getByTestId("model-error").isHidden()).toBe(true);
    await page.close();
  });

  it("uses the thread count asked for with ?threads=2", async () => {
    const page = await openDemo("?threads=2");
    expect(await page.getByTestId("threads").textContent()).toBe("2");
    await draw(page, DIGITS[0].strokes);
    expect(await prediction(page)).toBe("1");
    await page.close();
  });

  it("predicts drawn 1, 0 and 7, while drawing, with probabilities, latency and the 28x28 input", async () => {
    const page = await openDemo();
    expect(await prediction(page)).toBe("");
    for (const { digit, strokes } of DIGITS) {
      await page.getByTestId("clear").click();
      await draw(page, strokes);
      expect(await prediction(page), `drawn ${digit}`).toBe(digit);
      const bars = await page.getByTestId("probabilities").locator("li").evaluateAll((lis) =>
        lis.map((li) => ({ digit: li.getAttribute("data-digit"), p: parseFloat(li.querySelector(".p")!.textContent!), top: li.classList.contains("top") })),
      );
      expect(bars).toHaveLength(10);
      expect(bars.reduce((s, b) => s + b.p, 0)).toBeCloseTo(100, 0);
      expect(bars.filter((b) => b.top).map((b) => b.digit)).toEqual([digit]);
      expect(Math.max(...bars.map((b) => b.p))).toBe(bars[Number(digit)].p);
      const ms = Number(await page.getByTestId("latency-ms").textContent());
      expect(ms).toBeGreaterThan(0);
      const ink = await page.locator("#input-view").evaluate((c: HTMLCanvasElement) => {
        const d = c.getContext("2d")!.getImageData(0, 0, 28, 28).data;
        let sum = 0;
        for (let i = 0; i < d.length; i += 4) sum += d[i];
        return sum / 255;
      });
      expect(ink).toBeGreaterThan(20);
    }
    // The prediction follows the stroke while it is drawn: mid-stroke, before the mouse is released.
    await page.getByTestId("clear").click();
    expect(await prediction(page)).toBe("");
    const box = (await page.getByTestId("canvas").boundingBox())!;
    await page.mouse.move(box.x + 0.5 * box.width, box.y + 0.18 * box.height);
    await page.mouse.down();
    await page.mouse.move(box.x + 0.5 * box.width, box.y + 0.82 * box.height, { steps: 6 });
    expect(await prediction(page)).toBe("1");
    await page.mouse.up();
    await page.close();
  });

  it("clears with the button and with the keyboard", async () => {
    const page = await openDemo();
    await draw(page, DIGITS[2].strokes);
    expect(await prediction(page)).toBe("0");
    await page.getByTestId("clear").click();
    expect(await prediction(page)).toBe("");
    await draw(page, DIGITS[2].strokes);
    expect(await prediction(page)).toBe("0");
    await page.getByTestId("canvas").focus();
    await page.keyboard.press("Escape");
    expect(await prediction(page)).toBe("");
    // Keyboard reaches the controls: Tab from the canvas lands on Clear.
    await page.getByTestId("canvas").focus();
    await page.keyboard.press("Tab");
    expect(await page.evaluate(() => document.activeElement?.getAttribute("data-testid"))).toBe("clear");
    await page.close();
  });

  it("shows a clear message for a corrupt or unfitting model and keeps the previous one working", async () => {
    const page = await openDemo();
    const good = readFileSync(modelPath);
    const loads = async (n: number) => page.waitForFunction((n) => document.documentElement.dataset.loads === String(n), n, { timeout: 60_000 }); // a model load, under load
    const error = page.getByTestId("model-error");

    await page.getByTestId("model-file").setInputFiles({ name: "broken.onnx", mimeType: "application/octet-stream", buffer: good.subarray(0, good.length >> 1) });
    await loads(2);
    expect(await error.isVisible()).toBe(true);
    expect(await error.textContent()).toMatch(/^broken\.onnx is not an ONNX model \(truncated/);

    await page.getByTestId("model-file").setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not a model at all\n") });
    await loads(3);
    expect(await error.textContent()).toMatch(/^notes\.txt is not an ONNX model/);

    // A real ONNX model with a second input: loads in onnxruntime, but it is not a classifier of one image.
    const model = ModelProto.decode(good) as any;
    model.graph.input.push({ ...model.graph.input[0], name: "extra" });
    const add = { input: ["input", "extra"], output: ["input_plus"], op_type: "Add", name: "extra_add" };
    model.graph.node.unshift(add);
    for (const node of model.graph.node.slice(1)) node.input = node.input.map((n: string) => (n === "input" ? "input_plus" : n));
    await page.getByTestId("model-file").setInputFiles({ name: "two.onnx", mimeType: "application/octet-stream", buffer: Buffer.from(ModelProto.encode(model).finish()) });
    await loads(4);
    expect(await error.textContent()).toMatch(/^two\.onnx: has 2 inputs \(input float32 \[N,1,28,28\], extra float32 \[N,1,28,28\] -> logits .*expected a classifier of 28x28 grey images/);

    // The previous model still predicts.
    expect(await page.getByTestId("model-name").textContent()).toMatch(/^model\.onnx: /);
    await draw(page, DIGITS[4].strokes);
    expect(await prediction(page)).toBe("7");

    // Dropping a good model on the page loads it and clears the message.
    await page.evaluate(async (b64) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const dt = new DataTransfer();
      dt.items.add(new File([bytes], "dropped.onnx"));
      document.body.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
    }, good.toString("base64"));
    await loads(5);
    expect(await error.isHidden()).toBe(true);
    expect(await page.getByTestId("model-name").textContent()).toMatch(/^dropped\.onnx: /);
    expect(await prediction(page)).toBe("7");
    await page.close();
  });

  it("loads the model named by ?model=URL, and says so when there is none", async () => {
    const page = await openDemo("?model=./model.onnx");
    expect(await page.getByTestId("model-name").textContent()).toMatch(/^\.\/model\.onnx: /);
    expect(await page.getByTestId("model-origin").textContent()).toBe("this server (/model.onnx)");
    expect(await page.getByTestId("model-handling").textContent()).toBe("input input [N,1,28,28] dynamic batch; output logits: logits; pixels 0-1 (onnx-mnist model)");
    await page.close();
    const missing = await openDemo("?model=./no-such-model.onnx");
    expect(await missing.getByTestId("model-error").textContent()).toMatch(/no model at \.\/no-such-model\.onnx \(404\)/);
    await missing.close();
  });

  it("classifies the gallery of real MNIST digits as onnxruntime-node does", async () => {
    const page = await openDemo();
    const gallery = decodeGallery(new Uint8Array(await (await fetch(server.url + "mnist-gallery.bin")).arrayBuffer()));
    expect(gallery.count).toBe(300);
    const session = await ort.InferenceSession.create(modelPath);
    const x = Float32Array.from(gallery.images, (v) => v / 255);
    const logits = (await session.run({ input: new ort.Tensor("float32", x, [gallery.count, 1, 28, 28]) })).logits.data as Float32Array;
    const predicted = Array.from({ length: gallery.count }, (_, k) => {
      const row = Array.from(logits.subarray(10 * k, 10 * k + 10));
      return row.indexOf(Math.max(...row));
    });
    const right = predicted.filter((p, k) => p === gallery.labels[k]).length;
    expect(right / gallery.count).toBeGreaterThan(0.85);
    expect(await page.getByTestId("gallery-accuracy").textContent()).toBe(`${((100 * right) / gallery.count).toFixed(1)}% (${right}/${gallery.count})`);

    const items = page.getByTestId("gallery-item");
    expect(await items.count()).toBe(gallery.count);
    const wrong = predicted.findIndex((p, k) => p !== gallery.labels[k]);
    for (const k of [0, 1, 17, ...(wrong >= 0 ? [wrong] : [])]) {
      await items.nth(k).click();
      expect(await prediction(page)).toBe(String(predicted[k]));
      expect(await items.nth(k).getAttribute("data-correct")).toBe(String(predicted[k] === gallery.labels[k]));
      expect(await page.locator("#confidence").textContent()).toContain(`is a ${gallery.labels[k]}: ${predicted[k] === gallery.labels[k] ? "right" : "wrong"}`);
    }
    // Keyboard: a focused gallery digit is classified with Enter.
    await items.nth(5).focus();
    await page.keyboard.press("Enter");
    expect(await prediction(page)).toBe(String(predicted[5]));
    await session.release();
    await page.close();
  });

  it("fits a phone-sized screen", async () => {
    const page = await openDemo("", { width: 375, height: 740 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(375);
    const box = (await page.getByTestId("canvas").boundingBox())!;
    expect(box.x).toBeGreaterThanOrEqual(0);
    expect(box.x + box.width).toBeLessThanOrEqual(375);
    expect(box.width).toBeGreaterThan(250);
    await draw(page, DIGITS[0].strokes);
    expect(await prediction(page)).toBe("1");
    await page.close();
  });
});

describe("models exported by PyTorch, in the page", () => {
  let torch: Awaited<ReturnType<typeof torchModels>>;
  let cors: Server;
  let corsUrl: string;
  beforeAll(async () => {
    torch = await torchModels();
    // Another origin that allows CORS, as a model host on the web would.
    cors = createHttpServer((req, res) => {
      const file = join(torch.dir, basename(req.url ?? ""));
      res.setHeader("Access-Control-Allow-Origin", "*");
      res.setHeader("Cross-Origin-Resource-Policy", "cross-origin");
      if (!existsSync(file)) return void res.writeHead(404).end();
      res.writeHead(200, { "Content-Type": "application/octet-stream" }).end(readFileSync(file));
    });
    await new Promise<void>((resolve) => cors.listen(0, "127.0.0.1", resolve));
    corsUrl = `http://127.0.0.1:${(cors.address() as AddressInfo).port}`;
  }, 600_000);
  afterAll(() => new Promise<void>((resolve) => (cors ? cors.close(() => resolve()) : resolve())));

  const cases: [string, RegExp][] = [
    ["tutorial.onnx", /^input input\.1 \[1,1,28,28\] fixed batch 1 -> chunks of 1; output \d+: logits; pixels 0-1 \(detected: [\d.]+ % on 500 calibration images vs/],
    ["byte.onnx", /; output \d+: logits; pixels 0-255 \(detected: /],
    ["softmax.onnx", /^input x \[N,28,28\] dynamic batch; output probs: probabilities; pixels 0-1 \(detected: /],
    ["logsoftmax.onnx", /output Plus214_Output_0: log-probabilities; pixels \(p-0\.1307\)\/0\.3081 \(detected: /],
  ];
  it.each(cases)("%s loaded from another origin: detected handling shown, drawn 1, 0 and 7 classified", async (file, handling) => {
    const page = await openDemo(`?model=${encodeURIComponent(`${corsUrl}/${file}`)}`);
    expect(await page.getByTestId("model-error").isHidden(), await page.getByTestId("model-error").textContent() ?? "").toBe(true);
    expect(await page.getByTestId("model-origin").textContent()).toBe(`${corsUrl} (not this server)`);
    expect(await page.getByTestId("model-handling").textContent()).toMatch(handling);
    for (const k of [0, 2, 4]) {
      await page.getByTestId("clear").click();
      await draw(page, DIGITS[k].strokes);
      expect(await prediction(page), `${file}: drawn ${DIGITS[k].digit}`).toBe(DIGITS[k].digit);
    }
    // The model's probabilities are shown as they are (they sum to 100 %).
    const shown = await page.getByTestId("probabilities").locator(".p").allTextContents();
    expect(shown.reduce((a, b) => a + parseFloat(b), 0)).toBeCloseTo(100, 0);
    await page.close();
  }, 120_000);

  it("lets the user override the pixel convention, and go back to the detected one", async () => {
    const page = await openDemo(`?model=${encodeURIComponent(`${corsUrl}/byte.onnx`)}`);
    const accuracy = async () => parseFloat((await page.getByTestId("gallery-accuracy").textContent()) ?? "");
    const detected = await accuracy();
    expect(detected).toBeGreaterThan(85);
    await page.getByTestId("pixels").selectOption("unit");
    await page.waitForFunction(() => document.getElementById("model-handling")!.textContent!.includes("(given)"));
    await expect.poll(accuracy).toBeLessThan(50); // trained on 0-255, fed 0-1
    await page.getByTestId("pixels").selectOption("auto");
    await expect.poll(accuracy).toBe(detected);
    expect(await page.getByTestId("model-handling").textContent()).toMatch(/pixels 0-255 \(detected/);
    await page.close();
  }, 120_000);
});

describe("demo server", () => {
  it("serves the page, ORT's wasm and the model with cross-origin isolation headers", async () => {
    for (const [path, type] of [["", "text/html; charset=utf-8"], ["ort/ort-wasm-simd-threaded.wasm", "application/wasm"], ["ort/ort-wasm-simd-threaded.mjs", "text/javascript; charset=utf-8"], ["model.onnx", "application/octet-stream"]]) {
      const res = await fetch(server.url + path);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-type"), path).toBe(type);
      expect(res.headers.get("cross-origin-opener-policy")).toBe("same-origin");
      expect(res.headers.get("cross-origin-embedder-policy")).toBe("require-corp");
    }
    expect(Buffer.from(await (await fetch(server.url + "model.onnx")).arrayBuffer()).equals(readFileSync(modelPath))).toBe(true);
    expect((await fetch(server.url + "no/such/file")).status).toBe(404);
    expect((await fetch(server.url, { method: "POST" })).status).toBe(405);
    expect(new URL(server.url).hostname).toBe("127.0.0.1");
  });

  it("refuses a missing model, a file that is not a model and a busy port with one-line messages", async () => {
    await expect(serveDemo({ modelPath: "/no/such/model.onnx", port: 0 })).rejects.toThrow(/^\/no\/such\/model\.onnx: no such file; train a model/);
    const notModel = new URL("../package.json", import.meta.url).pathname;
    await expect(serveDemo({ modelPath: notModel, port: 0 })).rejects.toThrow(/not a loadable ONNX model/);
    const busy = createServer().listen(0, "127.0.0.1");
    await new Promise((r) => busy.once("listening", r));
    const port = (busy.address() as { port: number }).port;
    await expect(serveDemo({ modelPath, port })).rejects.toThrow(`port ${port} on 127.0.0.1 is in use; pass --port N`);
    busy.close();
  });
});

describe("gallery asset", () => {
  it("is 300 real MNIST test digits, the same bytes every build, and round-trips", () => {
    const a = buildGalleryAsset();
    expect(Buffer.from(a).equals(Buffer.from(buildGalleryAsset()))).toBe(true);
    const g = decodeGallery(a);
    expect(g.count).toBe(300);
    const test = loadMnist(undefined, { trainLimit: 1 }).test;
    for (const k of [0, 150, 299]) {
      const i = g.indices[k];
      expect(g.labels[k]).toBe(test.labels[i]);
      expect(Buffer.from(g.images.subarray(784 * k, 784 * (k + 1))).equals(Buffer.from(test.images.subarray(784 * i, 784 * (i + 1))))).toBe(true);
    }
    expect(new Set(g.indices).size).toBe(300);
    expect(new Set(g.labels).size).toBe(10);
    expect(Buffer.from(encodeGallery(selectGallery(test))).equals(Buffer.from(a))).toBe(true);
    expect(() => decodeGallery(a.subarray(0, 1000))).toThrow(/expected .* for 300 digits/);
    expect(() => decodeGallery(new TextEncoder().encode("hello world"))).toThrow(/not a gallery file/);
  });
});
