/**
 * Run directories against a hostile but fair user: --out where a run already is, or where no directory can
 * be; two runs at once; a second trainer on a locked run; someone else's or an older checkpoint on --resume;
 * a torn metrics log; a stale temporary checkpoint; busy ports; sizes past the limits; mixed build-graph
 * directories. Each case: exit code, one line, and every earlier file intact.
 */
import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RunDir } from "../../src/node/run-dir.ts";
import { readMetrics } from "../../src/dashboard/run-files.ts";
import { cli, copyRun, expectOneLineError, hashTree, makeBase, metricsLines, SMALL } from "./harness.ts";

const root = mkdtempSync(join(tmpdir(), "robust-runs-"));
let base = "";
beforeAll(() => {
  base = makeBase(join(root, "base"));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const fresh = (name: string) => join(root, name);
/** A PID that no process has any more. */
const deadPid = () => spawnSync("true").pid!;

describe("--out (issue 12: an existing run was silently overwritten)", () => {
  it("refuses an existing run directory, names --resume, and changes nothing; --overwrite replaces it", () => {
    const dir = copyRun(base, fresh("existing"));
    const before = hashTree(dir);
    expectOneLineError(cli(["train", ...SMALL, "--epochs", "1", "--out", dir]), /already holds a run; continue it with --resume .*existing.*--overwrite/);
    expect(hashTree(dir)).toEqual(before);

    const r = cli(["train", ...SMALL, "--epochs", "1", "--seed", "3", "--out", dir, "--overwrite"]);
    expect(r.code, r.err).toBe(0);
    const runs = metricsLines(dir).filter((l) => l.includes('"type":"run"'));
    expect(runs).toHaveLength(1); // a new log, not a second run appended to the old one
    expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).seed).toBe(3);
  });

  it("refuses a non-empty directory that is not a run", () => {
    const dir = fresh("notes");
    mkdirSync(dir);
    writeFileSync(join(dir, "notes.txt"), "mine\n");
    const before = hashTree(dir);
    expectOneLineError(cli(["train", ...SMALL, "--epochs", "1", "--out", dir]), /is not empty .*--overwrite/);
    expect(hashTree(dir)).toEqual(before);
  });

  const file = () => {
    const f = fresh("a-file");
    if (!existsSync(f)) writeFileSync(f, "precious\n");
    return f;
  };
  const dangling = () => {
    const l = fresh("dangling");
    if (!readdirSync(root).includes("dangling")) symlinkSync(fresh("nowhere"), l);
    return l;
  };
  const cases: [string, () => string, RegExp][] = [
    ["an existing file", file, /a-file: is a file; --out needs a directory/],
    ["a path under a file", () => join(file(), "run"), /a-file: is a file, not a directory/],
    ["a dangling symbolic link", dangling, /dangling: is a symbolic link to .*nowhere, which does not exist/],
    ["a path under a dangling link", () => join(dangling(), "run"), /dangling: is a symbolic link to .*nowhere, which does not exist/],
    ["/proc/x (used to hang)", () => "/proc/onnx-mnist-x", /\/proc\/onnx-mnist-x: cannot create a directory in \/proc/],
  ];
  it.each(cases)("says what is wrong with --out at %s, in one line, creating nothing", (_what, path, message) => {
    const out = path();
    const before = hashTree(root);
    expectOneLineError(cli(["train", ...SMALL, "--epochs", "1", "--out", out], { timeout: 60_000 }), message);
    expect(hashTree(root)).toEqual(before);
    expect(existsSync(fresh("nowhere"))).toBe(false);
  });
});

describe("run directories are created exclusively (issue 12: two runs in one second shared runs/<timestamp>)", () => {
  it("gives two runs created in the same second two directories", () => {
    const parent = fresh("same-second");
    const t = new Date(2026, 0, 2, 3, 4, 5);
    const a = RunDir.createUnique(parent, t);
    const b = RunDir.createUnique(parent, t);
    expect(a.path).toBe(join(parent, "2026-01-02T03-04-05"));
    expect(b.path).toBe(join(parent, "2026-01-02T03-04-05-2"));
    a.unlock();
    b.unlock();
  });

  it("two train commands started together without --out each get their own directory, config, model and log", async () => {
    const cwd = fresh("together");
    mkdirSync(cwd);
    const run = (seed: string) =>
      new Promise<number | null>((done) => {
        const child = spawn(process.execPath, [resolve("bin/onnx-mnist.js"), "train", ...SMALL, "--epochs", "1", "--seed", seed], { cwd, stdio: "ignore" });
        child.on("exit", done);
      });
    expect(await Promise.all([run("1"), run("2")])).toEqual([0, 0]);
    const dirs = readdirSync(join(cwd, "runs")).filter((d) => d !== "latest");
    expect(dirs).toHaveLength(2);
    const seeds = dirs.map((d) => {
      const dir = join(cwd, "runs", d);
      const lines = metricsLines(dir).filter(Boolean).map((l) => JSON.parse(l));
      expect(lines.filter((r) => r.type === "run")).toHaveLength(1);
      const seed = lines[0].config.seed;
      expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).seed).toBe(seed);
      expect(readdirSync(dir).filter((f) => f.startsWith("."))).toEqual([]); // lock released, no temp files
      return seed;
    });
    expect(seeds.sort()).toEqual([1, 2]);
  });
});

describe("a run is locked while it trains", () => {
  it("refuses --resume of a run whose lock holder is alive, and changes nothing", async () => {
    const dir = copyRun(base, fresh("locked"));
    const holder = spawn("sleep", ["60"]);
    try {
      writeFileSync(join(dir, ".lock"), `${holder.pid}\n`);
      const before = hashTree(dir);
      expectOneLineError(cli(["train", "--resume", dir, "--epochs", "2"]), new RegExp(`in use by another onnx-mnist train \\(PID ${holder.pid}\\)`));
      expect(hashTree(dir)).toEqual(before);
    } finally {
      holder.kill();
    }
  });

  it("takes over the lock of a process that died (kill -9), resumes, and releases it", () => {
    const dir = copyRun(base, fresh("stale-lock"));
    writeFileSync(join(dir, ".lock"), `${deadPid()}\n`);
    const r = cli(["train", "--resume", dir, "--epochs", "2"]);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(join(dir, ".lock"))).toBe(false);
  });
});

describe("--resume checks that the checkpoint is the run's (issue 12: another model's checkpoint was accepted)", () => {
  let lenet = "";
  beforeAll(() => {
    lenet = makeBase(fresh("lenet"), 1, ["--model", "lenet5"]);
  });
  const swapped = (name: string, from: string) => {
    const dir = copyRun(base, fresh(name));
    copyFileSync(join(from, "checkpoint"), join(dir, "checkpoint"));
    return dir;
  };

  it("refuses another model's checkpoint before writing anything", () => {
    const dir = swapped("other-model", lenet);
    const before = hashTree(dir);
    expectOneLineError(cli(["train", "--resume", dir, "--epochs", "2"]), /is not this run's checkpoint: it holds model lenet5 \(61,706 parameters\), the run trains mycnn \(8,110\)/);
    expect(hashTree(dir)).toEqual(before);
  });

  it("refuses the same model's checkpoint from a run with another configuration", () => {
    const other = makeBase(fresh("batch32"), 1, ["--batch-size", "32"]);
    const dir = swapped("other-config", other);
    const before = hashTree(dir);
    expectOneLineError(cli(["train", "--resume", dir, "--epochs", "2"]), /is not this run's checkpoint: its batch_size is 32, the run's is 64/);
    expect(hashTree(dir)).toEqual(before);
  });

  it("refuses a checkpoint older than one the run already saved: the step count never goes backwards", () => {
    const dir = copyRun(base, fresh("older"));
    const old = readFileSync(join(dir, "checkpoint")); // step 4
    expect(cli(["train", "--resume", dir, "--epochs", "2"]).code).toBe(0); // step 8
    writeFileSync(join(dir, "checkpoint"), old);
    const before = hashTree(dir);
    expectOneLineError(cli(["train", "--resume", dir, "--epochs", "3"]), /checkpoint is at step 4, but this run already saved step 8/);
    expect(hashTree(dir)).toEqual(before);
  });
});

describe("metrics.jsonl torn by a full disk (issue 12: half a line, then records glued to it)", () => {
  it("--resume drops a torn last line, says so once, and the log reads whole afterwards", () => {
    const dir = copyRun(base, fresh("torn"));
    const whole = readFileSync(join(dir, "metrics.jsonl"));
    appendFileSync(join(dir, "metrics.jsonl"), '{"type":"step","step":5,"epoch":2,"lo'); // what a full disk left
    const r = cli(["train", "--resume", dir, "--epochs", "2"]);
    expect(r.code, r.err).toBe(0);
    expect(r.err.match(/warning: .*metrics\.jsonl: dropped a torn last line/g)).toHaveLength(1);
    const text = readFileSync(join(dir, "metrics.jsonl"));
    expect(text.subarray(0, whole.length).equals(whole)).toBe(true);
    for (const line of text.toString().trimEnd().split("\n")) expect(() => JSON.parse(line)).not.toThrow();
    // report.html is written again (it used to fail from then on: "metrics.jsonl:26: not a JSON object")
    expect(r.err).not.toMatch(/could not write/);
    expect(readFileSync(join(dir, "report.html")).equals(readFileSync(join(base, "report.html")))).toBe(false);
    expect(readMetrics(dir).filter((x) => x.type === "epoch")).toHaveLength(2);
  });
});

describe("a temporary checkpoint left by kill -9 during a save", () => {
  it("is removed on --resume when its process is dead", () => {
    const dir = copyRun(base, fresh("stale-tmp"));
    const tmp = join(dir, `.checkpoint.${deadPid()}.tmp`);
    writeFileSync(tmp, "half a checkpoint");
    const r = cli(["train", "--resume", dir, "--epochs", "2"]);
    expect(r.code, r.err).toBe(0);
    expect(existsSync(tmp)).toBe(false);
  });

  it("with no checkpoint beside it: says there is none, and removes it", () => {
    const dir = fresh("only-tmp");
    mkdirSync(dir);
    const tmp = join(dir, `.checkpoint.${deadPid()}.tmp`);
    writeFileSync(tmp, "half a checkpoint");
    expectOneLineError(cli(["train", "--resume", dir]), /no checkpoint to resume from/);
    expect(existsSync(tmp)).toBe(false);
  });
});

describe("ports are validated and bound before anything is created (issue 12)", () => {
  let busy: Server;
  let port = 0;
  beforeAll(async () => {
    busy = createServer();
    await new Promise<void>((ok) => busy.listen(0, "127.0.0.1", ok));
    port = (busy.address() as { port: number }).port;
  });
  afterAll(() => new Promise<void>((ok) => busy.close(() => ok())));

  it("train --dashboard on a busy port: one line, no run directory, no runs/latest", () => {
    const cwd = fresh("busy-dashboard");
    mkdirSync(cwd);
    expectOneLineError(cli(["train", ...SMALL, "--epochs", "1", "--dashboard", "--port", String(port)], { cwd }), new RegExp(`port ${port} .*in use`));
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("start on a busy port fails before training", () => {
    const cwd = fresh("busy-start");
    mkdirSync(cwd);
    expectOneLineError(cli(["start", ...SMALL, "--epochs", "1", "--port", String(port)], { cwd }), new RegExp(`port ${port} .*in use`));
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("start with a port out of range fails before training", () => {
    const cwd = fresh("bad-port");
    mkdirSync(cwd);
    expectOneLineError(cli(["start", ...SMALL, "--epochs", "1", "--port", "70000"], { cwd }), /--port must be at most 65535/);
    expect(readdirSync(cwd)).toEqual([]);
  });
});

describe("sizes are bounded before anything is allocated (issue 12)", () => {
  const spec = (name: string, layers: object[]) => {
    const f = fresh(`${name}.json`);
    writeFileSync(f, JSON.stringify({ name, layers }));
    return f;
  };
  const cases: [string, () => string[], RegExp][] = [
    [
      "100,000 conv channels",
      () => ["--model", spec("wide", [{ type: "conv2d", out_channels: 100000, kernel_size: 3 }, { type: "flatten" }, { type: "linear", out_features: 10 }])],
      /model wide has 677,000,010 parameters, more than the limit of 20,000,000; the largest is layer 2 \(linear\)/,
    ],
    [
      "a huge padding",
      () => ["--model", spec("padded", [{ type: "conv2d", out_channels: 64, kernel_size: 3, padding: 300 }, { type: "avgpool2d", kernel_size: 64 }, { type: "flatten" }, { type: "linear", out_features: 10 }])],
      /activation values per image, more than the limit of 4,000,000; the largest output is layer 0 \(conv2d\): \[64, 626, 626\] = 25,080,064 values/,
    ],
    ["a batch past the activation memory", () => ["--batch-size", "1000000"], /--batch-size 1,000,000 needs \d+\.\d GiB of activations for model mycnn .*use --batch-size [\d,]+ or less/],
    ["1000 threads", () => ["--threads", "1000"], /--threads 1000 is more than 4 per core/],
  ];
  it.each(cases)("refuses %s with the numbers, creating nothing", (_what, args, message) => {
    const cwd = fresh(`limits-${Math.random().toString(36).slice(2)}`);
    mkdirSync(cwd);
    expectOneLineError(cli(["train", "--epochs", "1", "--train-limit", "256", "--test-limit", "100", ...args()], { cwd, timeout: 60_000 }), message);
    expect(readdirSync(cwd)).toEqual([]);
  });

  it("build-graph refuses a model past the limits and writes nothing", () => {
    const out = fresh("big-graph");
    const wide = spec("wide2", [{ type: "conv2d", out_channels: 100000, kernel_size: 3 }, { type: "flatten" }, { type: "linear", out_features: 10 }]);
    expectOneLineError(cli(["build-graph", "--model", wide, "--out", out]), /677,000,010 parameters/);
    expect(existsSync(out)).toBe(false);
  });
});

describe("train --graph with files from different builds (issue 12: an SGD graph with an Adam checkpoint)", () => {
  it("is refused by the build id every artifact carries", () => {
    const [adam, sgd] = [fresh("g-adam"), fresh("g-sgd")];
    expect(cli(["build-graph", "--model", "mycnn", "--optimizer", "adam", "--out", adam]).code).toBe(0);
    expect(cli(["build-graph", "--model", "mycnn", "--optimizer", "sgd", "--out", sgd]).code).toBe(0);
    // the stamped graphs still load and train in onnxruntime
    const ok = cli(["train", "--graph", adam, ...SMALL, "--epochs", "1", "--out", fresh("from-adam")]);
    expect(ok.code, ok.err).toBe(0);
    copyFileSync(join(adam, "checkpoint"), join(sgd, "checkpoint")); // same model, same parameter count
    const before = hashTree(sgd);
    const cwd = fresh("mixed-cwd");
    mkdirSync(cwd);
    expectOneLineError(cli(["train", "--graph", sgd, ...SMALL, "--epochs", "1"], { cwd }), /train_step\.onnx and .*checkpoint come from different build-graph runs/);
    expect(hashTree(sgd)).toEqual(before);
    expect(readdirSync(cwd)).toEqual([]);
  });
});
