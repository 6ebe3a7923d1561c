/**
 * The package as a user gets it. `npm pack` (whose prepack builds dist/: compiled JavaScript, declarations and
 * the web pages), then the tarball installed into an empty project with production dependencies only, and
 * there: the CLI (--version, --help, a short train, eval on MNIST and on the handwriting suite, serve with a
 * digit drawn and classified in Chromium, dashboard), and a Node script and a browser bundle that import the
 * library entries, are type-checked by tsc against the shipped declarations, and each run one training step.
 * Nothing from the checkout's sources or node_modules is used by the package itself; the checkout only lends
 * the test its tools (tsc, Vite, Chromium).
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { tmpdir } from "node:os";
import { extname, join } from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser } from "playwright-core";
import { trainedModel } from "./helpers/trained-model.ts";

const ROOT = join(import.meta.dirname, "..");
const VERSION = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version as string;
const CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"];
/** Deadlines for what the pages wait for, generous because the whole suite shares two cores. */
const PAGE = { timeout: 60_000 };

let work: string; // temporary: the tarball and the consumer project
let app: string; // the consumer project
let browser: Browser;

/**
 * The environment of a command run as a user would: without the npm_* variables of the `npm test` that may be
 * running us (npm reads npm_config_* as its own configuration). ONNXRUNTIME_NODE_INSTALL=skip keeps npm 10 from
 * running onnxruntime-node's download of CUDA binaries (npm 11 obeys the project's allowScripts instead).
 */
function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ONNXRUNTIME_NODE_INSTALL: "skip" };
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return env;
}

async function run(cmd: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string }> {
  try {
    return await promisify(execFile)(cmd, args, { cwd, env: userEnv(), maxBuffer: 64 << 20 });
  } catch (e) {
    const err = e as Error & { stdout?: string; stderr?: string };
    throw new Error(`${cmd} ${args.join(" ")} failed in ${cwd}: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`);
  }
}

const npm = (args: string[], cwd: string) => run("npm", args, cwd);
/** The installed bin, as `npx onnx-mnist` runs it. */
const cli = (args: string[]) => run("npx", ["--no-install", "onnx-mnist", ...args], app);

/** A long-running command, started through the installed bin without npx in between, so Ctrl-C reaches it. */
function spawnCli(args: string[]): ChildProcess & { output: () => string } {
  const bin = join(app, "node_modules", ".bin", "onnx-mnist");
  const child = spawn(process.execPath, [bin, ...args], { cwd: app, env: userEnv(), stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout!.on("data", (d) => (out += d));
  child.stderr!.on("data", (d) => (out += d));
  return Object.assign(child, { output: () => out });
}

/** The URL a server command prints on the line starting with `label:`. */
function printedUrl(child: ChildProcess & { output: () => string }, label: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = new RegExp(`^${label}: (\\S+)`, "m").exec(child.output());
      if (m) resolve(m[1]);
    };
    child.stdout!.on("data", check);
    child.once("exit", (code) => reject(new Error(`exited (${code}) before printing the ${label} URL:\n${child.output()}`)));
  });
}

function stop(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once("exit", () => resolve());
    child.kill("SIGINT");
  });
}

function duBytes(dir: string): number {
  let total = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) total += duBytes(p);
    else if (e.isFile()) total += statSync(p).size;
  }
  return total;
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), "onnx-mnist-consumer-"));
  const { stdout } = await npm(["pack", "--json", "--pack-destination", work], ROOT);
  const [packed] = JSON.parse(stdout.slice(stdout.indexOf("["))) as { filename: string; size: number; entryCount: number }[];
  console.log(`npm pack: ${packed.filename}, ${(packed.size / 1e6).toFixed(1)} MB, ${packed.entryCount} files`);

  app = join(work, "app");
  mkdirSync(app);
  // What the README tells a user to write: allowScripts keeps npm 11 from running onnxruntime-node's CUDA download.
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "app", private: true, type: "module", allowScripts: { "onnxruntime-node": false } }, null, 2));
  // Production dependencies only; npm's cache makes this a local copy when the registry was seen before.
  await npm(["install", "--omit=dev", "--prefer-offline", "--no-audit", "--no-fund", join(work, packed.filename)], app);
  console.log(`consumer install: ${(duBytes(join(app, "node_modules")) / 1e6).toFixed(0)} MB in node_modules`);
  browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: CHROMIUM_ARGS });
}, 900_000); // building dist/ (tsc, two Vite builds) and installing ~370 MB of dependencies, on a loaded machine

afterAll(async () => {
  await browser?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the installed package", () => {
  it("ships compiled JavaScript, declarations, the built pages and a LICENSE, and no TypeScript sources or dev tools", () => {
    const pkg = join(app, "node_modules", "onnx-mnist");
    for (const f of ["LICENSE", "README.md", "dist/src/index.js", "dist/src/index.d.ts", "dist/src/node/index.js", "dist/cli/main.js", "dist/web/index.html", "dist/web/train.html", "dist/dashboard/bundle.json"]) {
      expect(existsSync(join(pkg, f)), f).toBe(true);
    }
    expect(existsSync(join(pkg, "src")) || existsSync(join(pkg, "cli"))).toBe(false);
    for (const dev of ["tsx", "vite", "uplot", "typescript", "onnxruntime-web"]) expect(existsSync(join(app, "node_modules", dev)), dev).toBe(false);
  });

  it("answers --version", async () => {
    expect((await cli(["--version"])).stdout.trim()).toBe(VERSION);
  });

  it("answers --help", async () => {
    const help = (await cli(["--help"])).stdout;
    for (const command of ["train", "eval", "predict", "serve", "dashboard", "start"]) expect(help).toContain(`onnx-mnist ${command}`);
  });

  it("trains, writes the report, and evaluates the model it wrote", async () => {
    const train = await cli(["train", "--train-limit", "2000", "--test-limit", "500", "--epochs", "1", "--out", "runs/a"]);
    expect(train.stdout).toContain("evaluate with: npx onnx-mnist eval --model runs/a/model.onnx"); // as the user ran it
    for (const f of ["model.onnx", "checkpoint", "metrics.jsonl", "report.html"]) expect(existsSync(join(app, "runs", "a", f)), f).toBe(true);
    expect(readFileSync(join(app, "runs", "a", "report.html"), "utf8")).toContain('id="dashboard-data"');
    const { stdout } = await cli(["eval", "--model", "runs/a/model.onnx", "--json"]);
    const r = JSON.parse(stdout);
    expect(r.count).toBe(10_000);
    expect(r.accuracy).toBeGreaterThan(0);
    // the handwriting suite ships with the package: its data files are read at run time
    const suite = JSON.parse((await cli(["eval", "--model", "runs/a/model.onnx", "--suite", "--json"])).stdout);
    expect(suite.groups.map((g: { name: string }) => g.name)).toEqual(["fonts", "pen", "writers"]);
    expect(suite.count).toBe(suite.groups.reduce((n: number, g: { count: number }) => n + g.count, 0));
  }, 300_000);

  it("serves the demo from the shipped pages: a drawn 1 is classified as 1 in Chromium", async () => {
    const server = spawnCli(["serve", "--model", await trainedModel(), "--port", "0"]);
    try {
      const url = await printedUrl(server, "demo");
      const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(e.message));
      await page.goto(url);
      await page.waitForFunction(() => document.documentElement.dataset.loads === "1", null, PAGE);
      const box = (await page.getByTestId("canvas").boundingBox())!;
      await page.mouse.move(box.x + 0.5 * box.width, box.y + 0.18 * box.height);
      await page.mouse.down();
      await page.mouse.move(box.x + 0.5 * box.width, box.y + 0.82 * box.height, { steps: 8 });
      await page.mouse.up();
      await expect.poll(() => page.getByTestId("prediction").textContent(), PAGE).toBe("1");
      expect(errors).toEqual([]);
      await page.close();
    } finally {
      await stop(server);
    }
    expect(server.output()).not.toMatch(/vite|PLUGIN_TIMINGS/i); // nothing is built at run time
  }, 300_000);

  it("serves the dashboard of the run it trained", async () => {
    const dash = spawnCli(["dashboard", "runs", "--port", "0"]);
    try {
      const url = await printedUrl(dash, "dashboard");
      const page = await browser.newPage();
      await page.goto(url);
      const steps = readFileSync(join(app, "runs", "a", "metrics.jsonl"), "utf8").split("\n").filter((l) => l.includes('"type":"step"')).length;
      expect(steps).toBe(Math.ceil(2000 / 128));
      await expect.poll(async () => Number(await page.getByTestId("loss-points").textContent()), PAGE).toBe(steps);
      await page.close();
    } finally {
      await stop(dash);
    }
  }, 120_000);

  describe("as a library", () => {
    beforeAll(async () => {
      // A browser app brings its own onnxruntime-web (an optional peer dependency of onnx-mnist).
      await npm(["install", "--prefer-offline", "--no-audit", "--no-fund", `onnxruntime-web@${JSON.parse(readFileSync(join(ROOT, "node_modules", "onnxruntime-web", "package.json"), "utf8")).version}`], app);
      writeFileSync(join(app, "node-step.ts"), NODE_SCRIPT);
      mkdirSync(join(app, "web"));
      writeFileSync(join(app, "web", "main.ts"), BROWSER_SCRIPT);
      writeFileSync(join(app, "web", "index.html"), `<!doctype html><html><body><script type="module" src="./main.ts"></script></body></html>`);
      writeFileSync(
        join(app, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: {
            target: "ES2022",
            module: "NodeNext",
            moduleResolution: "NodeNext",
            lib: ["ES2022", "DOM"],
            strict: true,
            outDir: "build",
            // The shipped declarations are checked too, with Node's types from the checkout (a Node app has its own).
            skipLibCheck: false,
            typeRoots: [join(ROOT, "node_modules", "@types")],
            types: ["node"],
          },
          include: ["node-step.ts", "web/main.ts"],
        }),
      );
      await run(process.execPath, [join(ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", "tsconfig.json"], app);
    }, 300_000);

    it("imports onnx-mnist and onnx-mnist/node in Node and runs a training step", async () => {
      const { stdout } = await run(process.execPath, ["build/node-step.js"], app);
      const r = JSON.parse(stdout);
      expect(r.loss).toBeGreaterThan(0.5); // cross-entropy of an untrained 10-class model on real digits: about ln 10
      expect(r.loss).toBeLessThan(5);
      expect(r.changed).toBeGreaterThan(1000); // Adam moved (nearly) every parameter
    }, 120_000);

    it("bundles onnx-mnist for the browser and runs a training step in Chromium with onnxruntime-web", async () => {
      const { build, defaultClientConditions } = await import("vite");
      const out = join(app, "web-dist");
      await build({
        configFile: false,
        root: join(app, "web"),
        logLevel: "warn",
        resolve: { conditions: ["onnxruntime-web-use-extern-wasm", ...defaultClientConditions] },
        build: { outDir: out, emptyOutDir: true, target: "es2022", rolldownOptions: { checks: { bundlerTimings: false } } },
      });
      // onnxruntime-web's WASM glue and binary, next to the page (the script points ort.env.wasm.wasmPaths there).
      const ortDist = join(app, "node_modules", "onnxruntime-web", "dist");
      mkdirSync(join(out, "ort"));
      for (const f of ["ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"]) copyFileSync(join(ortDist, f), join(out, "ort", f));
      const server = await serveDir(out);
      try {
        const page = await browser.newPage();
        const errors: string[] = [];
        page.on("pageerror", (e) => errors.push(e.message));
        await page.goto(`http://127.0.0.1:${(server.address() as { port: number }).port}/`);
        await page.waitForFunction(() => (globalThis as any).result || (globalThis as any).failure, null, PAGE);
        const r = await page.evaluate(() => (globalThis as any).result ?? (globalThis as any).failure);
        expect(errors).toEqual([]);
        expect(r.loss).toBeGreaterThan(0.5);
        expect(r.loss).toBeLessThan(5);
        expect(r.changed).toBeGreaterThan(1000);
        await page.close();
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    }, 300_000);
  });
});

/** A static file server for the bundled page (what any web server would do). */
function serveDir(dir: string): Promise<Server> {
  const types: Record<string, string> = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm" };
  const server = createServer((req, res) => {
    const path = join(dir, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname).replace(/\/$/, "/index.html"));
    if (!path.startsWith(dir) || !existsSync(path) || !statSync(path).isFile()) return void res.writeHead(404).end();
    res.writeHead(200, { "Content-Type": types[extname(path)] ?? "application/octet-stream" }).end(readFileSync(path));
  });
  return new Promise((resolve) => server.listen(0, "127.0.0.1", () => resolve(server)));
}

/** One training step on 64 real MNIST digits, through the library entries, in Node. */
const NODE_SCRIPT = `import * as ort from "onnxruntime-node";
import { Trainer, buildProgram, builtinSpec, initialValues, optimizerConfig, type StepResult } from "onnx-mnist";
import { loadMnist } from "onnx-mnist/node";

const { train } = loadMnist(undefined, { trainLimit: 64, testLimit: 1 });
const program = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam", { lr: 1e-3 }));
const { params, buffers } = initialValues(program.plan, 0);
const trainer = await Trainer.create(ort, program, Trainer.freshState(program, params, buffers), { threads: 1 });
const before = trainer.getParameters().slice();
const images = Float32Array.from(train.images, (v) => v / 255);
const labels = BigInt64Array.from(train.labels, (v) => BigInt(v));
const step: StepResult = await trainer.trainStep(images, labels);
const after = trainer.getParameters();
console.log(JSON.stringify({ loss: step.loss, changed: after.filter((v, i) => v !== before[i]).length }));
`;

/** The same step in a browser, with onnxruntime-web and deterministic pseudo-digits (no file system there). */
const BROWSER_SCRIPT = `import * as ort from "onnxruntime-web/wasm";
import { Trainer, buildProgram, builtinSpec, initialValues, optimizerConfig } from "onnx-mnist";

ort.env.wasm.wasmPaths = new URL("./ort/", location.href).href;
ort.env.wasm.numThreads = 1;
try {
  const program = buildProgram(builtinSpec("mycnn"), optimizerConfig("adam", { lr: 1e-3 }));
  const { params, buffers } = initialValues(program.plan, 0);
  const trainer = await Trainer.create(ort, program, Trainer.freshState(program, params, buffers));
  const n = 64;
  const images = Float32Array.from({ length: n * 784 }, (_, i) => ((i * 2654435761) % 1000) / 1000);
  const labels = BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 10));
  const before = trainer.getParameters().slice();
  const { loss } = await trainer.trainStep(images, labels);
  const after = trainer.getParameters();
  (globalThis as any).result = { loss, changed: after.filter((v, i) => v !== before[i]).length };
} catch (e) {
  (globalThis as any).failure = { error: String(e) };
}
`;
