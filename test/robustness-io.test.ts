/**
 * Issue 12, servers, inputs and the command line, tried as a hostile but fair user would: ports that are bad,
 * busy or forbidden (bound before anything is created), DNS-rebinding Host headers, the security headers and
 * CSP (checked in real Chromium: the pages still work under them), 20 slow downloads of a 50 MB model,
 * images too large or endless (`/dev/zero`), a gzip bomb inside an IDX file, and every usage error:
 * one line, the right exit code, no stack.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync, copyFileSync, chmodSync } from "node:fs";
import { request, type IncomingMessage } from "node:http";
import { createServer as createNetServer, connect, type Server as NetServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createGzip, gzipSync } from "node:zlib";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { chromium } from "playwright-core";
import { listen } from "../src/server/listen.ts";
import { serveDemo } from "../src/server/demo.ts";
import { startDashboard } from "../src/dashboard/server.ts";
import { decodeImage, readImageFile } from "../src/image/decode.ts";
import { parseIdx } from "../src/data/idx.ts";
import { defaultMnistDir, loadMnist, MNIST_FILES } from "../src/data/node.ts";
import { buildInferenceModel, initialValues, planModel } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";

const ROOT = join(import.meta.dirname, "..");
const BIN = join(ROOT, "bin", "onnx-mnist.js");
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
const work = mkdtempSync(join(tmpdir(), "onnx-mnist-io-"));
chmodSync(work, 0o755); // the permission test runs the CLI as nobody
const model = join(work, "model.onnx");

beforeAll(() => {
  // An untrained mycnn: a real model.onnx (input [N,1,28,28], logits [N,10]) without a training run.
  const plan = planModel(builtinSpec("mycnn"));
  const { params, buffers } = initialValues(plan, 0);
  writeFileSync(model, buildInferenceModel(plan, params, buffers));
});
afterAll(() => rmSync(work, { recursive: true, force: true }));

function cli(args: string[], o: { uid?: number; timeout?: number } = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: "utf8", timeout: o.timeout ?? 90_000, uid: o.uid, gid: o.uid, env: { ...process.env, ONNX_MNIST_DEBUG: "" } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** One line `error: ...` on stderr, matching `message`, without a stack trace. */
function expectOneLine(err: string, message: RegExp): void {
  const lines = err.trim().split("\n");
  expect(lines, err).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(message);
}

/** A port some other program holds. */
async function busyPort(): Promise<{ port: number; server: NetServer }> {
  const server = createNetServer();
  await new Promise<void>((ok) => server.listen(0, "127.0.0.1", ok));
  return { port: (server.address() as { port: number }).port, server };
}

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; headers: IncomingMessage["headers"]; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on("error", reject);
    req.end();
  });
}

describe("listen: one port check for the demo, the dashboard and a run's live dashboard", () => {
  it.each([-1, 65536, 1.5, NaN])("refuses port %s with the valid range", async (port) => {
    await expect(listen({ port, what: "demo" })).rejects.toThrow(/^demo: port must be a whole number from 0 to 65535, got/);
  });

  it("says a busy port is in use and how to pick another", async () => {
    const busy = await busyPort();
    try {
      await expect(listen({ port: busy.port, what: "dashboard" })).rejects.toThrow(`dashboard: port ${busy.port} on 127.0.0.1 is in use; pass --port N (0 picks a free port)`);
      // Both servers go through it before anything else: no web build, no model check, no run read.
      await expect(serveDemo({ port: busy.port, modelPath: "/no/such/model.onnx" })).rejects.toThrow(/is in use/);
      await expect(startDashboard({ port: busy.port, runDirs: [], live: true })).rejects.toThrow(/is in use/);
    } finally {
      busy.server.close();
    }
  });

  it("says a port below 1024 needs privileges", () => {
    // As root (CI), the CLI runs as nobody; any other user is refused port 80 already.
    const r = cli(["serve", "--port", "80", "--model", model], { uid: process.getuid?.() === 0 ? 65534 : undefined });
    expect(r.code).toBe(1);
    expectOneLine(r.err, /^error: demo: not allowed to listen on port 80; ports below 1024 need privileges/);
  });

  it("says an address that is not this machine's cannot be listened on", async () => {
    await expect(listen({ port: 0, host: "192.0.2.1", what: "demo" })).rejects.toThrow(/demo: cannot listen on 192\.0\.2\.1: not an address of this machine/);
  });

  it("answers 503 until the handler is installed, and only loopback Host names on a loopback address", async () => {
    const l = await listen({ port: 0, what: "demo" });
    try {
      expect((await get(l.url)).status).toBe(503);
      l.handle((_req, res) => res.end("ok"));
      const p = l.port;
      for (const host of [`127.0.0.1:${p}`, `localhost:${p}`, "LOCALHOST.", `127.8.9.10:${p}`, `[::1]:${p}`, `app.localhost:${p}`]) {
        const r = await get(l.url, { host });
        expect([host, r.status, r.body.toString()]).toEqual([host, 200, "ok"]);
      }
      // A rebinding page: its own name resolves to 127.0.0.1, the browser sends that name.
      for (const host of [`evil.example:${p}`, "127.0.0.1.evil.example", "[::2]", "localhost.evil.example", "0.0.0.0"]) {
        const r = await get(l.url, { host });
        expect([host, r.status]).toEqual([host, 421]);
        expect(r.body.toString()).toMatch(/answers only requests for localhost.*--host/);
      }
      // No Host header at all (HTTP/1.0): refused too.
      const raw = await new Promise<string>((resolve) => {
        const s = connect(p, "127.0.0.1", () => s.end("GET / HTTP/1.0\r\n\r\n"));
        let text = "";
        s.on("data", (d) => (text += d));
        s.on("close", () => resolve(text));
      });
      expect(raw).toMatch(/^HTTP\/1\.1 421/);
    } finally {
      await l.close();
    }
  });

  it("answers any Host name when told to listen on a non-loopback address (--host)", async () => {
    const l = await listen({ port: 0, host: "0.0.0.0", what: "demo" });
    try {
      l.handle((_req, res) => res.end("ok"));
      expect(l.url).toBe(`http://127.0.0.1:${l.port}/`);
      expect((await get(l.url, { host: "my-laptop.lan" })).status).toBe(200);
    } finally {
      await l.close();
    }
  });
});

describe("the CLI binds ports before it creates anything", () => {
  it("train --dashboard on a busy port fails before the run directory exists", async () => {
    const busy = await busyPort();
    try {
      const out = join(work, "busy-train");
      const r = cli(["train", "--dashboard", "--port", String(busy.port), "--epochs", "1", "--train-limit", "200", "--test-limit", "100", "--out", out]);
      expect(r.code).toBe(1);
      expectOneLine(r.err, new RegExp(`dashboard: port ${busy.port} on 127\\.0\\.0\\.1 is in use`));
      expect(existsSync(out)).toBe(false);
    } finally {
      busy.server.close();
    }
  });

  it("start on a busy port fails before training, and with a bad port as a usage error", async () => {
    const busy = await busyPort();
    try {
      const out = join(work, "busy-start");
      const r = cli(["start", "--port", String(busy.port), "--epochs", "1", "--train-limit", "200", "--test-limit", "100", "--out", out]);
      expect(r.code).toBe(1);
      expectOneLine(r.err, /demo: port \d+ on 127\.0\.0\.1 is in use/);
      expect(r.out).not.toMatch(/epoch|training/);
      expect(existsSync(out)).toBe(false);
    } finally {
      busy.server.close();
    }
    const bad = cli(["start", "--port", "99999", "--out", join(work, "bad-port-start")]);
    expect(bad.code).toBe(2);
    expectOneLine(bad.err, /--port must be at most 65535, got 99999/);
    expect(existsSync(join(work, "bad-port-start"))).toBe(false);
  });
});

describe("servers", () => {
  it("the dashboard sends nosniff, COOP/COEP/CORP and a CSP that admits exactly its inline script", async () => {
    const dir = join(work, "dash-run");
    mkdirSync(dir, { recursive: true });
    const dash = await startDashboard({ port: 0, runDirs: [dir], live: true, flushMs: 20 });
    try {
      const page = await get(dash.url);
      expect(page.status).toBe(200);
      expect(page.headers).toMatchObject({
        "x-content-type-options": "nosniff",
        "cross-origin-opener-policy": "same-origin",
        "cross-origin-embedder-policy": "require-corp",
        "cross-origin-resource-policy": "same-origin",
      });
      const csp = String(page.headers["content-security-policy"]);
      const inline = [...page.body.toString().matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash("sha256").update(m[1]).digest("base64")}'`);
      expect(inline).toHaveLength(1);
      expect(csp).toContain(`script-src ${inline[0]}`);
      expect(csp).toMatch(/default-src 'none'.*connect-src 'self'.*frame-ancestors 'none'/);
      expect((await get(`${dash.url}api/runs`)).headers["x-content-type-options"]).toBe("nosniff");
      for (const path of ["", "events", "api/runs"]) expect((await get(dash.url + path, { host: "rebind.example" })).status).toBe(421);
    } finally {
      await dash.close();
    }
  });

  it("both pages work in Chromium under their CSP: no violation, the model loads, the run list fills", async () => {
    const dir = join(work, "csp-run");
    mkdirSync(dir, { recursive: true });
    const [demo, dash] = [await serveDemo({ port: 0, modelPath: model }), await startDashboard({ port: 0, runDirs: [dir], live: true, flushMs: 20 })];
    const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
    try {
      const problems: string[] = [];
      const page = await browser.newPage();
      page.on("console", (m) => /Content Security Policy|Refused to/i.test(m.text()) && problems.push(m.text()));
      page.on("pageerror", (e) => problems.push(e.message));
      const demoPage = await get(demo.url);
      expect(demoPage.headers["content-security-policy"]).toMatch(/script-src 'self' .*'wasm-unsafe-eval'/);
      expect(demoPage.headers["x-content-type-options"]).toBe("nosniff");
      await page.goto(demo.url);
      await page.waitForFunction(() => document.documentElement.dataset.loads === "1", null, { timeout: 60_000 });
      // Loaded for real: protobufjs read the model and onnxruntime-web's WASM runs it.
      expect(await page.getByTestId("backend").textContent()).toBe("wasm");
      expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
      await page.goto(dash.url);
      await expect.poll(() => page.getByTestId("run-list").textContent(), { timeout: 30_000 }).toContain("csp-run");
      expect(problems).toEqual([]);
    } finally {
      await browser.close();
      await demo.close();
      await dash.close();
    }
  });

  it("streams /model.onnx: 20 slow downloads of a 50 MB model do not hold 20 copies, and each arrives whole", async () => {
    // The model plus an unknown protobuf field of 50 MB (field 99, length-delimited): onnxruntime skips it.
    const big = join(work, "big.onnx");
    const pad = 50 << 20;
    const varint = (n: number) => {
      const out: number[] = [];
      for (; n >= 0x80; n = Math.floor(n / 128)) out.push((n & 0x7f) | 0x80);
      return [...out, n];
    };
    writeFileSync(big, Buffer.concat([readFileSync(model), Buffer.from(varint((99 << 3) | 2)), Buffer.from(varint(pad)), Buffer.alloc(pad, 7)]));
    const expected = createHash("sha256").update(readFileSync(big)).digest("hex");
    const size = readFileSync(big).length;
    const demo = await serveDemo({ port: 0, modelPath: big });
    try {
      global.gc?.();
      const before = process.memoryUsage().rss;
      // 20 clients that read a little and stall, as slow connections do.
      const clients = await Promise.all(
        Array.from({ length: 20 }, () => new Promise<IncomingMessage>((resolve, reject) => request(`${demo.url}model.onnx`, (res) => { res.pause(); resolve(res); }).on("error", reject).end())),
      );
      await new Promise((r) => setTimeout(r, 1500));
      const grown = (process.memoryUsage().rss - before) / 2 ** 20;
      expect(grown, `RSS grew by ${grown.toFixed(0)} MB with 20 stalled downloads`).toBeLessThan(250); // read whole per request: ~1000 MB
      for (const res of clients) expect(Number(res.headers["content-length"])).toBe(size);
      const hashes = await Promise.all(
        clients.map((res) => new Promise<string>((resolve) => {
          const h = createHash("sha256");
          res.on("data", (c: Buffer) => h.update(c));
          res.on("end", () => resolve(h.digest("hex")));
          res.resume();
        })),
      );
      expect(new Set(hashes)).toEqual(new Set([expected]));
    } finally {
      await demo.close();
    }
  });
});

describe("images: bounded before decoding and before reading", () => {
  /** A PNG signature and IHDR chunk declaring width x height (8-bit RGBA), nothing after it. */
  const pngHeader = (width: number, height: number) => {
    const ihdr = Buffer.alloc(25);
    ihdr.writeUInt32BE(13, 0);
    ihdr.write("IHDR", 4, "latin1");
    ihdr.writeUInt32BE(width, 8);
    ihdr.writeUInt32BE(height, 12);
    ihdr[16] = 8; // bit depth
    ihdr[17] = 6; // RGBA
    return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), ihdr]);
  };
  /** SOI, an APP0 segment, and a baseline SOF0 declaring width x height with 3 components. */
  const jpegHeader = (width: number, height: number) =>
    Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 16, ...Buffer.from("JFIF\0"), 1, 1, 0, 0, 1, 0, 1, 0, 0, 0xff, 0xc0, 0, 17, 8, height >> 8, height & 255, width >> 8, width & 255, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);

  it("refuses PNG and JPEG over 40 megapixels from their headers, before decoding", () => {
    expect(() => decodeImage(pngHeader(12000, 12000), "huge.png")).toThrow("huge.png: 12000x12000 is 144 megapixels, over the limit of 40; scale the image down");
    expect(() => decodeImage(jpegHeader(9000, 9000), "huge.jpg")).toThrow(/^huge\.jpg: 9000x9000 is 81 megapixels, over the limit of 40/);
    const file = join(work, "huge.png");
    writeFileSync(file, Buffer.concat([pngHeader(12000, 12000), Buffer.alloc(1 << 16)]));
    expect(() => readImageFile(file)).toThrow(/12000x12000 is 144 megapixels/);
  });

  it("reads a file only as far as a PNG or JPEG of its declared size can need", () => {
    const padded = join(work, "padded.png");
    writeFileSync(padded, Buffer.concat([pngHeader(28, 28), Buffer.alloc(12 << 20)]));
    expect(() => readImageFile(padded)).toThrow(/padded\.png: over \d+ MB, more than a PNG or JPEG of its declared size can need/);
    // Real images still read and decode.
    const png = new PNG({ width: 28, height: 28 });
    png.data.fill(255);
    const okPng = join(work, "ok.png");
    writeFileSync(okPng, PNG.sync.write(png));
    expect(decodeImage(readImageFile(okPng), okPng)).toMatchObject({ width: 28, height: 28 });
    const okJpg = join(work, "ok.jpg");
    writeFileSync(okJpg, jpeg.encode({ data: Buffer.alloc(40 * 30 * 4, 200), width: 40, height: 30 }, 90).data);
    expect(decodeImage(readImageFile(okJpg), okJpg)).toMatchObject({ width: 40, height: 30 });
  });

  it("predict /dev/zero and a 144-megapixel PNG end at once with one line", () => {
    const zero = cli(["predict", "--model", model, "/dev/zero"], { timeout: 60_000 });
    expect(zero.code).toBe(1); // before: read forever (killed by the timeout: null)
    expectOneLine(zero.err, /\/dev\/zero: not a PNG or JPEG image/);
    const huge = cli(["predict", "--model", model, join(work, "huge.png")]);
    expect(huge.code).toBe(1);
    expectOneLine(huge.err, /144 megapixels, over the limit of 40/);
  });
});

describe("IDX: a gzip bomb is stopped at the size its header declares", () => {
  it("stops inflating a 1 GiB bomb after one step past the header's 10,008 bytes", async () => {
    // An IDX label header for 10,000 labels, then 1 GiB of zeros, gzipped (about 1 MB).
    const header = Buffer.from([0, 0, 8, 1, 0, 0, 0x27, 0x10]);
    const gz = createGzip({ level: 9 });
    const parts: Buffer[] = [];
    gz.on("data", (c: Buffer) => parts.push(c));
    const done = new Promise((r) => gz.on("end", r));
    gz.write(header);
    const zeros = Buffer.alloc(1 << 20);
    for (let i = 0; i < 1024; i++) if (!gz.write(zeros)) await new Promise((r) => gz.once("drain", r));
    gz.end();
    await done;
    const bomb = new Uint8Array(Buffer.concat(parts));
    expect(bomb.length).toBeLessThan(2 << 20);
    global.gc?.();
    const before = process.memoryUsage().rss;
    expect(() => parseIdx(bomb, "bomb.gz")).toThrow("bomb.gz: corrupt: the gzip stream expands past the 10008 bytes its IDX header declares; re-download the file");
    const grown = (process.memoryUsage().rss - before) / 2 ** 20;
    expect(grown, `RSS grew by ${grown.toFixed(0)} MB`).toBeLessThan(200); // inflated whole: over 1024 MB
    // A gzipped real label file still reads.
    const labels = readFileSync(join(defaultMnistDir(), MNIST_FILES.testLabels));
    expect(parseIdx(new Uint8Array(gzipSync(labels)), "labels.gz").dims).toEqual([10000]);
  });

  it("refuses a raw IDX file larger than any MNIST-format set before reading it", () => {
    const dir = join(work, "data-huge");
    mkdirSync(dir, { recursive: true });
    for (const f of Object.values(MNIST_FILES)) copyFileSync(join(defaultMnistDir(), f), join(dir, f));
    truncateSync(join(dir, MNIST_FILES.trainImages), 4 * 2 ** 30); // sparse: 4 GiB that take no disk
    expect(() => loadMnist(dir)).toThrow(/train-images-idx3-ubyte: 4096 MB, more than any MNIST-format file/);
  });
});

describe("usage errors: one line, exit 2", () => {
  const cases: [string[], RegExp][] = [
    [["train", "--batch-size"], /^error: --batch-size needs a value \(see onnx-mnist train --help\)$/],
    [["trian"], /^error: unknown command "trian"; did you mean train\?/],
    [["train", "--batchsize", "3"], /^error: unknown option --batchsize \(did you mean --batch-size\?\)/],
    [["serve", "--potr", "9000"], /unknown option --potr \(did you mean --port\?\)/],
    [["eval"], /Missing required argument: model/],
    [["serve", "--port", "70000"], /--port must be at most 65535, got 70000/],
    [["eval", "--model", "m.onnx", "--batch-size", "0"], /--batch-size must be at least 1, got 0/],
    [[], /name a command/],
  ];
  it.each(cases)("onnx-mnist %j", (args, message) => {
    const r = cli(args);
    expect(r.code).toBe(2);
    expectOneLine(r.err, message);
  });

  it("--version prints the package version, -h the help, on stdout with exit 0", () => {
    const v = cli(["--version"]);
    expect([v.code, v.out.trim()]).toEqual([0, JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version]);
    const h = cli(["-h"]);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/^onnx-mnist <command> \[options\]/);
    const th = cli(["train", "-h"]);
    expect(th.code).toBe(0);
    expect(th.out).toContain("--batch-size");
  });

  it("a closed stdout (`eval ... | head -1`) ends quietly with exit 0", async () => {
    const child = spawn(process.execPath, [BIN, "eval", "--model", model, "--test-limit", "500"], { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] });
    child.stdout.destroy(); // the reader is gone before the first line is written
    let err = "";
    child.stderr.on("data", (d) => (err += d));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(err).toBe("");
    expect(code).toBe(0);
  });
});
