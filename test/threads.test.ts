/**
 * `--threads auto` (src/node/threads.ts): one intra-op thread per idle core, measured when training starts, and
 * recorded so that a resumed run keeps the count. And the benchmark's calm/contended split, which uses the same
 * measurement.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, describe, expect, it } from "vitest";
import { chooseThreads, idleCores, threadsForIdle } from "../src/node/threads.ts";
import { CALM_BUSY, interleave } from "../bench/harness.ts";

const root = mkdtempSync(join(tmpdir(), "threads-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const cores = availableParallelism();

/** Keeps every core busy (one spinning worker thread per core) while `f` runs. */
async function whileBusy<T>(f: () => Promise<T>): Promise<T> {
  const spin = "const end = Date.now() + 5000; while (Date.now() < end) {}";
  const workers = Array.from({ length: cores }, () => new Worker(spin, { eval: true }));
  try {
    await new Promise((r) => setTimeout(r, 100)); // the workers are running
    return await f();
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

describe("--threads auto", () => {
  it("takes one thread per core that is mostly idle, and at least one", () => {
    expect(threadsForIdle(1.9, 2)).toBe(2);
    expect(threadsForIdle(1.0, 2)).toBe(1);
    expect(threadsForIdle(0, 2)).toBe(1);
    expect(threadsForIdle(3.7, 4)).toBe(4);
    expect(threadsForIdle(2.5, 4)).toBe(2);
    expect(threadsForIdle(8, 4)).toBe(4);
  });

  it("sees every core busy when every core is busy, and then takes 1 thread", async () => {
    const { idle, threads } = await whileBusy(async () => ({ idle: await idleCores(), threads: (await chooseThreads()).threads }));
    expect(idle).toBeLessThan(0.6);
    expect(threads).toBe(1);
  });

  it("train prints the choice in its header and records the count in config.json and the checkpoint", () => {
    const dir = join(root, "auto");
    const r = spawnSync(process.execPath, ["bin/onnx-mnist.js", "train", "--epochs", "1", "--train-limit", "256", "--test-limit", "100", "--out", dir], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const m = /, (\d+) threads? \(auto: ([\d.]+) of (\d+) cores idle\)/.exec(r.stdout.split("\n")[0]);
    expect(m, r.stdout).not.toBeNull();
    expect(Number(m![3])).toBe(cores);
    const threads = JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).threads;
    expect(threads).toBe(Number(m![1]));
    expect(threads).toBeGreaterThanOrEqual(1);
    expect(threads).toBeLessThanOrEqual(cores);
    // --resume keeps the recorded count (no "auto" in its header)
    const resumed = spawnSync(process.execPath, ["bin/onnx-mnist.js", "train", "--resume", dir, "--epochs", "2"], { encoding: "utf8" });
    expect(resumed.status, resumed.stderr).toBe(0);
    expect(resumed.stdout.split("\n")[0]).toMatch(new RegExp(`, ${threads} threads?$`));
  }, 120_000);

  it("an explicit count is used as given", () => {
    const r = spawnSync(process.execPath, ["bin/onnx-mnist.js", "train", "--epochs", "1", "--train-limit", "256", "--test-limit", "100", "--threads", "1", "--out", join(root, "one")], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.split("\n")[0]).toMatch(/, 1 thread$/);
    const bad = spawnSync(process.execPath, ["bin/onnx-mnist.js", "train", "--threads", "many"], { encoding: "utf8" });
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe("error: --threads must be a number or auto, got many (see onnx-mnist train --help)");
  }, 120_000);
});

describe("bench harness: calm and contended rounds", () => {
  it("rounds next to a time when other threads keep every core busy are counted as contended", async () => {
    const spin = "while (true) {}";
    let workers: Worker[] = [];
    let round = 0;
    const r = await interleave(3, [
      { name: "a", run: async () => (++round === 2 ? (await Promise.all(workers.map((w) => w.terminate())), 1) : 1) },
      {
        name: "b",
        // the end of round 1 leaves every core busy: the sample between rounds 1 and 2 sees it
        run: async () => (round === 1 ? ((workers = Array.from({ length: cores }, () => new Worker(spin, { eval: true }))), await new Promise((res) => setTimeout(res, 100)), 2) : 2),
      },
    ]);
    expect(r.load).toHaveLength(3);
    expect(r.load[0]).toMatchObject({ calm: false });
    expect(r.load[1]).toMatchObject({ calm: false });
    expect(r.load[0].busyAfter).toBeGreaterThan(cores - 0.6);
    expect(r.contended.rounds).toBeGreaterThanOrEqual(2);
    expect(r.calm.rounds + r.contended.rounds).toBe(3);
    expect(r.ratios["a/b"]).toBe(0.5);
    expect(r.contended.ratios["a/b"]).toBe(0.5);
    for (const l of r.load) expect(l.calm).toBe(l.busyBefore < CALM_BUSY && l.busyAfter < CALM_BUSY);
    expect(r.load[0].loadBefore).toBeGreaterThanOrEqual(0);
  });
});
