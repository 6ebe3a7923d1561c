/**
 * The training dashboard: smoothing and decimation worked out by hand, metrics files, the SSE protocol
 * (resume by Last-Event-ID without duplicates), and, in real headless Chromium, a live `train --dashboard`
 * (points arrive and grow, a reload mid-run gets the whole curve, the panels after the run), report.html from
 * file://, and `onnx-mnist dashboard` overlaying two runs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { Ema, Series, decimate } from "../src/dashboard/series.ts";
import { DashboardState } from "../src/dashboard/state.ts";
import { parseRecord, type EpochRecord, type MetricsRecord } from "../src/dashboard/records.ts";
import { MetricsTail, expandRunDirs, readMetrics } from "../src/dashboard/run-files.ts";
import { writeReport } from "../src/dashboard/report.ts";
import { startDashboard } from "../src/dashboard/server.ts";
import { scriptJson } from "../src/dashboard/bundle.ts";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const BIN = join(ROOT, "bin", "onnx-mnist.js");
/**
 * Deadlines for what the pages wait for. Under load (a full `npm test` on two cores: Chromium, a training
 * process and other test files at once), a redraw after new data or a click can take seconds, so every wait
 * names a generous deadline; a broken page still fails, only later.
 */
const REDRAW = { timeout: 30_000 }; // the page shows what it has been sent, or reacts to a click
const FIRST_POINTS = { timeout: 90_000 }; // a training process starts (onnxruntime, graph build) and streams its first steps
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];

describe("smoothing", () => {
  it("is TensorBoard's debiased EMA, worked by hand", () => {
    // w = 0.5, y = 2, 4, 6:
    //   m1 = 0.5*0 + 0.5*2 = 1      s1 = 1 / (1 - 0.5)     = 2
    //   m2 = 0.5*1 + 0.5*4 = 2.5    s2 = 2.5 / (1 - 0.25)  = 3.3333
    //   m3 = 0.5*2.5 + 0.5*6 = 4.25 s3 = 4.25 / (1 - 0.125) = 4.857142857
    const ema = new Ema(0.5);
    expect(ema.next(2)).toBeCloseTo(2, 12);
    expect(ema.next(4)).toBeCloseTo(10 / 3, 12);
    expect(ema.next(NaN)).toBeNaN(); // passes through, does not poison the average
    expect(ema.next(6)).toBeCloseTo(4.25 / 0.875, 12);
    expect(() => new Ema(1)).toThrow(/\[0, 1\)/);
  });

  it("recomputes on a new weight and when a resumed run redoes steps", () => {
    const s = new Series(0.9);
    for (let i = 1; i <= 10; i++) s.push(i, i);
    s.setWeight(0);
    expect(Array.from(s.smooth.subarray(0, s.length))).toEqual(Array.from(s.y.subarray(0, s.length)));
    const state = new DashboardState(0);
    state.apply({ r: 0, meta: { name: "a", dir: "a" } });
    for (const step of [1, 2, 3, 4, 5, 3, 4]) state.apply({ r: 0, rec: { type: "step", step, epoch: 1, loss: step * 10, lr: 1e-3, images_per_s: 1, time: 0 } });
    const loss = state.runs.get(0)!.loss;
    expect(Array.from(loss.x.subarray(0, loss.length))).toEqual([1, 2, 3, 4]);
    expect(state.lossPoints()).toBe(4);
  });
});

describe("decimation", () => {
  // 20,000 noisy points with one spike up and one down: both must survive, at most 2 points per column.
  const n = 20_000;
  const x = Float64Array.from({ length: n }, (_, i) => i + 1);
  const y = Float64Array.from({ length: n }, (_, i) => Math.exp(-i / 3000) + 0.1 * Math.sin(i * 7.3));
  y[12_345] = 50;
  y[777] = -50;

  it("keeps every column's min and max, the ends, and stays small", () => {
    const idx = decimate(x, y, n, 300);
    expect(idx.length).toBeLessThanOrEqual(2 * 300 + 4);
    expect(idx[0]).toBe(0);
    expect(idx[idx.length - 1]).toBe(n - 1);
    expect(idx).toContain(12_345);
    expect(idx).toContain(777);
    for (let k = 1; k < idx.length; k++) expect(idx[k]).toBeGreaterThan(idx[k - 1]);
    // Per column, the drawn extremes equal the true extremes.
    const width = (n - 1) / 300;
    for (const col of [0, 17, 150, 299]) {
      const lo = 1 + col * width;
      const hi = 1 + (col + 1) * width;
      const inCol = (i: number) => x[i] > lo && x[i] < hi;
      const all = Array.from({ length: n }, (_, i) => i).filter(inCol).map((i) => y[i]);
      const drawn = idx.filter(inCol).map((i) => y[i]);
      expect(Math.max(...drawn)).toBe(Math.max(...all));
      expect(Math.min(...drawn)).toBe(Math.min(...all));
    }
  });

  it("decimates a zoomed range with one neighbour outside on each side", () => {
    const idx = decimate(x, y, n, 100, 5000, 6000);
    expect(idx[0]).toBe(4998); // x = 4999, just left of the range
    expect(idx[idx.length - 1]).toBe(6000); // x = 6001
    expect(idx.slice(1, -1).every((i) => x[i] >= 5000 && x[i] <= 6000)).toBe(true);
    // Few enough points: all of them.
    expect(decimate(x, y, 50, 100)).toEqual(Array.from({ length: 50 }, (_, i) => i));
  });
});

describe("metrics files", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "dash-files-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("follows a growing file in whole lines only", () => {
    const path = join(dir, "metrics.jsonl");
    writeFileSync(path, '{"type":"resume","step":3,"time":0}\n{"type":"step","step":4,"epoch":1,"lo');
    const tail = new MetricsTail(path);
    expect(tail.read().map((r) => r.type)).toEqual(["resume"]);
    appendFileSync(path, 'ss":0.5,"lr":0.001,"images_per_s":10,"time":1}\n{"type":"future-kind"}\n');
    const more = tail.read();
    expect(more).toHaveLength(1); // the unknown record type is skipped
    expect(more[0]).toMatchObject({ type: "step", step: 4, loss: 0.5 });
    expect(tail.read()).toEqual([]);
  });

  it("names the file and line of a broken record", () => {
    const bad = join(dir, "bad");
    mkdirSync(bad);
    writeFileSync(join(bad, "metrics.jsonl"), '{"type":"resume","step":3,"time":0}\n\nnot json\n');
    expect(() => readMetrics(bad)).toThrow(/bad\/metrics\.jsonl:3: not a JSON object/);
    expect(() => parseRecord("[1]", "x:1")).toThrow(/x:1: a record must be a JSON object with a "type" field/);
    expect(() => readMetrics(join(dir, "nope"))).toThrow(/nope: does not exist; pass a run directory written by onnx-mnist train/);
  });

  it("expands a parent directory into its runs, each once", () => {
    const parent = join(dir, "runs");
    for (const name of ["b", "a"]) {
      mkdirSync(join(parent, name), { recursive: true });
      writeFileSync(join(parent, name, "metrics.jsonl"), "");
    }
    symlinkSync("b", join(parent, "latest"));
    expect(expandRunDirs([parent])).toEqual([join(parent, "a"), join(parent, "b")]);
    expect(expandRunDirs([join(parent, "latest"), parent])).toEqual([join(parent, "latest"), join(parent, "a")]);
    expect(() => expandRunDirs([join(dir, "missing")])).toThrow(/missing: no such directory/);
    mkdirSync(join(dir, "empty"));
    expect(() => expandRunDirs([join(dir, "empty")])).toThrow(/empty: no metrics\.jsonl in it or in its subdirectories/);
  });

  it("embeds JSON that cannot end its script element", () => {
    const s = scriptJson({ a: "</script><script>alert(1)</script>", b: "<!--" });
    expect(s).not.toMatch(/</);
    expect(JSON.parse(s)).toEqual({ a: "</script><script>alert(1)</script>", b: "<!--" });
  });
});

// ---- Real runs, real browser ----

function spawnCli(args: string[]): ChildProcess & { output: () => string } {
  const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return Object.assign(child, { output: () => out });
}

function waitForUrl(child: ChildProcess & { output: () => string }): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = /^dashboard: (\S+)/m.exec(child.output());
      if (m) {
        child.stdout!.off("data", check);
        resolve(m[1]);
      }
    };
    child.stdout!.on("data", check);
    child.once("exit", (code) => reject(new Error(`exited (${code}) before printing the dashboard URL:\n${child.output()}`)));
  });
}

function exited(child: ChildProcess & { output: () => string }): Promise<number> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve(child.exitCode);
    else child.once("exit", (code) => resolve(code ?? -1));
  });
}

async function lossPoints(page: Page): Promise<number> {
  return Number(await page.getByTestId("loss-points").textContent());
}

/** Pixels of a canvas inside the element that are close to an RGB colour: data drawn in that run's colour. */
async function pixelsOfColour(page: Page, testId: string, rgb: [number, number, number]): Promise<number> {
  return page.getByTestId(testId).evaluate((el, [r, g, b]) => {
    let n = 0;
    for (const c of el.querySelectorAll("canvas")) {
      const d = c.getContext("2d")!.getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 200 && Math.abs(d[i] - r) < 30 && Math.abs(d[i + 1] - g) < 30 && Math.abs(d[i + 2] - b) < 30) n++;
    }
    return n;
  }, rgb);
}
const BLUE: [number, number, number] = [31, 119, 180]; // first run
const RED: [number, number, number] = [214, 39, 40]; // second run

function records(runDir: string): MetricsRecord[] {
  return readMetrics(runDir);
}

describe("in Chromium", () => {
  let browser: Browser;
  let work: string;
  let runA: string;
  let runB: string;
  const pageErrors: string[] = [];

  async function newPage(): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
    page.on("pageerror", (e) => pageErrors.push(e.message));
    return page;
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "dash-e2e-"));
    runA = join(work, "runs", "a");
    runB = join(work, "runs", "b");
    browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("streams a live training run, survives a reload mid-run, and shows the evaluation after it", async () => {
    // ~750 steps: long enough (several seconds) to watch the curve grow and reload in the middle.
    const train = spawnCli(["train", "--dashboard", "--port", "0", "--epochs", "2", "--batch-size", "64", "--train-limit", "24000", "--test-limit", "1000", "--out", runA]);
    try {
      const url = await waitForUrl(train);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      const page = await newPage();
      await page.goto(url);
      await expect.poll(() => lossPoints(page), FIRST_POINTS).toBeGreaterThan(0);
      const first = await lossPoints(page);
      await expect.poll(() => lossPoints(page), REDRAW).toBeGreaterThan(first);

      // Reload while the run is still going: the page gets the whole history again, then the live tail.
      const beforeReload = await lossPoints(page);
      expect(await page.getByTestId("run-list").textContent()).toContain("running");
      await page.reload();
      await expect.poll(() => lossPoints(page), REDRAW).toBeGreaterThanOrEqual(beforeReload);
      const chart = page.getByTestId("loss-chart");
      // Complete: the curve starts at step 1 and has one point per step up to its last.
      expect(await chart.getAttribute("data-x-min")).toBe("1");
      const shown = await lossPoints(page);
      expect(Number(await chart.getAttribute("data-x-max"))).toBeGreaterThanOrEqual(shown);

      expect(await exited(train)).toBe(0);
      const recs = records(runA);
      const steps = recs.filter((r) => r.type === "step").length;
      expect(steps).toBe(2 * Math.ceil(24000 / 64));
      await expect.poll(() => lossPoints(page), REDRAW).toBe(steps);
      expect(await chart.getAttribute("data-x-min")).toBe("1");
      expect(await chart.getAttribute("data-x-max")).toBe(String(steps));
      await expect.poll(() => page.getByTestId("run-list").textContent(), REDRAW).toContain("completed");

      const last = recs.filter((r): r is EpochRecord => r.type === "epoch").at(-1)!;
      expect(await page.getByTestId("test-accuracy").textContent()).toBe((100 * last.test_accuracy).toFixed(2));
      const cells = await page.getByTestId("confusion-matrix").locator("td").evaluateAll((tds) => tds.map((td) => Number((td as HTMLElement).dataset.count)));
      expect(cells).toHaveLength(100);
      expect(cells.reduce((a, b) => a + b, 0)).toBe(1000);
      expect(cells).toEqual(last.confusion.flat());
      const gallery = page.getByTestId("misclassified").locator("figure.mistake");
      expect(last.misclassified.length).toBeGreaterThan(0);
      await expect.poll(() => gallery.count(), REDRAW).toBe(last.misclassified.length);
      expect(await gallery.first().locator("figcaption").textContent()).toContain(`${last.misclassified[0].label} → ${last.misclassified[0].prediction}`);
      expect(await page.getByTestId("model-summary").textContent()).toContain("conv.0");
      expect(await pixelsOfColour(page, "loss-chart", BLUE)).toBeGreaterThan(100);
      await page.close();
    } finally {
      train.kill("SIGKILL");
    }
    expect(pageErrors).toEqual([]);
  }, 300_000); // ~750 training steps with the page open, on a loaded machine

  it("writes a self-contained report.html that renders from file:// without any network", async () => {
    const html = readFileSync(join(runA, "report.html"), "utf8");
    expect(html).not.toMatch(/<script[^>]+src=|<link[^>]+href="(?!data:)/); // nothing to fetch
    const page = await newPage();
    const requests: string[] = [];
    page.on("request", (r) => requests.push(r.url()));
    await page.goto(pathToFileURL(join(runA, "report.html")).href);
    const steps = records(runA).filter((r) => r.type === "step").length;
    await expect.poll(() => lossPoints(page), REDRAW).toBe(steps);
    expect(await pixelsOfColour(page, "loss-chart", BLUE)).toBeGreaterThan(100);
    expect(await pixelsOfColour(page, "accuracy-chart", BLUE)).toBeGreaterThan(20);
    expect(await page.getByTestId("confusion-matrix").locator("td").count()).toBe(100);
    expect(await page.getByTestId("misclassified").locator("canvas").count()).toBeGreaterThan(0);
    expect(requests.every((u) => u.startsWith("file:") || u.startsWith("data:"))).toBe(true);
    await page.close();
    expect(pageErrors).toEqual([]);

    // Same records, same bytes.
    const copy = join(work, "copy", "a");
    cpSync(runA, copy, { recursive: true });
    await writeReport(copy);
    expect(readFileSync(join(copy, "report.html"), "utf8")).toBe(html);
  });

  it("keeps hostile text in the records inert", async () => {
    const dir = join(work, "hostile", "a");
    mkdirSync(dir, { recursive: true });
    const lines = readFileSync(join(runA, "metrics.jsonl"), "utf8").split("\n");
    const run = JSON.parse(lines[0]);
    run.config.model = "</script><script>document.title='pwned'</script>";
    lines[0] = JSON.stringify(run);
    writeFileSync(join(dir, "metrics.jsonl"), lines.join("\n"));
    await writeReport(dir);
    const page = await newPage();
    await page.goto(pathToFileURL(join(dir, "report.html")).href);
    await expect.poll(() => page.getByTestId("model-summary").textContent(), REDRAW).toContain("</script><script>document.title='pwned'</script>");
    expect(await page.title()).not.toBe("pwned");
    await page.close();
    expect(pageErrors).toEqual([]);
  });

  it("onnx-mnist dashboard overlays two finished runs from their parent directory", async () => {
    const trainB = spawnCli(["train", "--epochs", "1", "--train-limit", "3000", "--test-limit", "500", "--seed", "1", "--out", runB]);
    expect(await exited(trainB), trainB.output()).toBe(0);
    const dash = spawnCli(["dashboard", join(work, "runs"), "--port", "0"]);
    try {
      const url = await waitForUrl(dash);
      const page = await newPage();
      await page.goto(url);
      const stepsA = records(runA).filter((r) => r.type === "step").length;
      const stepsB = records(runB).filter((r) => r.type === "step").length;
      await expect.poll(() => lossPoints(page), REDRAW).toBe(stepsA + stepsB);
      const runList = page.getByTestId("run-list").locator("li");
      expect(await runList.count()).toBe(2); // runs/latest is the same run as runs/b
      expect(await runList.locator("button.name").allTextContents()).toEqual(["a", "b"]);
      const chart = page.getByTestId("loss-chart");
      expect(await chart.getAttribute("data-series")).toBe("4"); // raw + smoothed per run
      expect(await pixelsOfColour(page, "loss-chart", BLUE)).toBeGreaterThan(100);
      expect(await pixelsOfColour(page, "loss-chart", RED)).toBeGreaterThan(100);

      // Hide run b; show run b's evaluation.
      await runList.nth(1).locator("input[type=checkbox]").uncheck();
      await expect.poll(() => chart.getAttribute("data-series"), REDRAW).toBe("2");
      await runList.nth(1).locator("button.name").click();
      await expect.poll(() => page.locator("#focus-name").textContent(), REDRAW).toBe("b");
      const lastB = records(runB).filter((r): r is EpochRecord => r.type === "epoch").at(-1)!;
      await expect.poll(() => page.getByTestId("test-accuracy").textContent(), REDRAW).toBe((100 * lastB.test_accuracy).toFixed(2));
      const cells = await page.getByTestId("confusion-matrix").locator("td").evaluateAll((tds) => tds.map((td) => Number((td as HTMLElement).dataset.count)));
      expect(cells.reduce((a, b) => a + b, 0)).toBe(500);
      await page.close();
      dash.kill("SIGINT");
      expect(await exited(dash)).toBe(0);
    } finally {
      dash.kill("SIGKILL");
    }
    expect(pageErrors).toEqual([]);
  }, 240_000); // a short training run, then the dashboard server and the page

  it("resumes a dropped event stream by Last-Event-ID without duplicates or gaps", async () => {
    // The trainer's API, fed the records of the real run above.
    const recs = records(runA);
    const dir = join(work, "sse");
    mkdirSync(dir);
    const dash = await startDashboard({ host: "127.0.0.1", port: 0, runDirs: [dir], live: true, flushMs: 20 });
    try {
      const half = Math.floor(recs.length / 2);
      recs.slice(0, half).forEach((r) => dash.publish(dir, r));
      const first = await readEvents(`${dash.url}events`, {}, 1 + half); // the run's name, then the records
      expect(first.messages[0]).toEqual({ r: 0, meta: { name: "sse", dir } });
      recs.slice(half).forEach((r) => dash.publish(dir, r));
      const rest = await readEvents(`${dash.url}events`, { "last-event-id": first.lastId }, recs.length - half);
      expect(rest.reset).toBe(false);
      const got = [...first.messages.slice(1), ...rest.messages].map((m) => (m as { rec: unknown }).rec);
      expect(got).toEqual(recs);
      // An id from another server process: told to reset, then everything again.
      const fresh = await readEvents(`${dash.url}events`, { "last-event-id": "feedbeef-3" }, 1 + recs.length);
      expect(fresh.reset).toBe(true);
      expect(fresh.messages.slice(1).map((m) => (m as { rec: unknown }).rec)).toEqual(recs);
    } finally {
      await dash.close();
    }
  });
});

/** Reads an SSE stream until `count` messages have arrived. */
async function readEvents(url: string, headers: Record<string, string>, count: number): Promise<{ messages: unknown[]; lastId: string; reset: boolean }> {
  const ac = new AbortController();
  const res = await fetch(url, { headers, signal: ac.signal });
  expect(res.headers.get("content-type")).toBe("text/event-stream");
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  const messages: unknown[] = [];
  let buf = "";
  let lastId = "";
  let reset = false;
  const deadline = Date.now() + 20_000;
  while (messages.length < count && Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let end: number;
    while ((end = buf.indexOf("\n\n")) >= 0) {
      const event = buf.slice(0, end);
      buf = buf.slice(end + 2);
      let data = "";
      let type = "message";
      for (const line of event.split("\n")) {
        if (line.startsWith("id: ")) lastId = line.slice(4);
        else if (line.startsWith("data: ")) data += line.slice(6);
        else if (line.startsWith("event: ")) type = line.slice(7);
      }
      if (type === "reset") reset = true;
      else if (data) messages.push(...(JSON.parse(data) as unknown[]));
    }
  }
  ac.abort();
  return { messages, lastId, reset };
}
