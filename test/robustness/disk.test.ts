/**
 * Full and read-only disks, on small tmpfs mounts (root can mount them; elsewhere these cases are skipped
 * with the reason printed). A full disk must cost at most the record being written: the metrics log grows by
 * whole lines or not at all, every other file is the old one or the new one, and the error says which file
 * and which checkpoint is the last good one.
 */
import { execFileSync } from "node:child_process";
import { appendFileSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statfsSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendWhole, FileError } from "../../src/node/files.ts";
import { decodeCheckpoint } from "../../src/runtime/checkpoint.ts";
import { cli, copyRun, expectOneLineError, hashTree, makeBase, metricsLines } from "./harness.ts";

const root = mkdtempSync(join(tmpdir(), "robust-disk-"));
const mounts: string[] = [];

/** Mounts a tmpfs of `size` at a new directory; the reason it cannot, if it cannot. */
function mountTmpfs(name: string, size: string): string {
  const at = join(root, name);
  mkdirSync(at);
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", at], { stdio: "pipe" });
  mounts.push(at);
  return at;
}

let skip = "";
try {
  const probe = mountTmpfs("probe", "64k");
  execFileSync("umount", [probe], { stdio: "pipe" });
  mounts.pop();
} catch (e) {
  skip = `cannot mount a tmpfs here (${String((e as { stderr?: Buffer }).stderr ?? (e as Error).message).trim() || "not root?"})`;
  console.warn(`skipping the full and read-only disk cases: ${skip}`);
}

/** Fills the file system holding `dir` until writes fail, leaving `leave` bytes (rounded to pages) free. */
function fill(dir: string, leave = 0): string {
  const filler = join(dir, "filler");
  const free = () => {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  };
  const fd = openSync(filler, "w");
  const chunk = Buffer.alloc(64 * 1024, 1);
  try {
    for (let want = free() - leave; want > 0; want = free() - leave) writeSync(fd, chunk, 0, Math.min(chunk.length, want));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOSPC") throw e;
  } finally {
    closeSync(fd);
  }
  return filler;
}

afterAll(() => {
  for (const m of mounts.reverse()) execFileSync("umount", [m], { stdio: "pipe" });
  rmSync(root, { recursive: true, force: true });
});

describe.skipIf(!!skip)("a full disk", () => {
  let base = "";
  beforeAll(() => {
    base = makeBase(join(root, "base"));
  });

  it("an append that does not fit leaves the log as it was (it used to leave half a line)", () => {
    const disk = mountTmpfs("append", "256k");
    const [old, now] = [join(disk, "old.jsonl"), join(disk, "new.jsonl")];
    const start = '{"type":"run"}\n'.repeat(5);
    writeFileSync(old, start);
    writeFileSync(now, start);
    fill(disk);
    const record = JSON.stringify({ type: "epoch", pixels: "A".repeat(20_000) }) + "\n";
    // The original failure: a plain append writes what fits into the file's last page, then fails.
    expect(() => appendFileSync(old, record)).toThrow(/ENOSPC/);
    const torn = readFileSync(old, "utf8");
    expect(torn.length).toBeGreaterThan(start.length);
    expect(torn.endsWith("\n")).toBe(false);
    // Now: whole lines or nothing, and a one-line reason.
    let err: unknown;
    try {
      appendWhole(now, record);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(FileError);
    expect((err as Error).message).toBe(`no space left on device while appending to ${now}`);
    expect(readFileSync(now, "utf8")).toBe(start);
  });

  it("mid-run: one line naming the file and the last checkpoint; the log stays whole; the run resumes once there is room", () => {
    const disk = mountTmpfs("midrun", "1m");
    const dir = copyRun(base, join(disk, "run"));
    const ck = readFileSync(join(dir, "checkpoint"));
    const model = readFileSync(join(dir, "model.onnx"));
    const log = readFileSync(join(dir, "metrics.jsonl"));
    const filler = fill(disk, 40 * 1024); // room for a few records, not for another checkpoint
    const r = cli(["train", "--resume", dir, "--epochs", "2"]);
    expectOneLineError(r, /no space left on device while (writing|appending to) .*run\/(checkpoint|metrics\.jsonl|model\.onnx|config\.json); the last checkpoint is step 4 \(.*run\/checkpoint\)/);
    expect(readFileSync(join(dir, "checkpoint")).equals(ck)).toBe(true);
    expect(decodeCheckpoint(new Uint8Array(readFileSync(join(dir, "checkpoint"))), "checkpoint").header.step).toBe(4);
    expect(readFileSync(join(dir, "model.onnx")).equals(model)).toBe(true);
    const after = readFileSync(join(dir, "metrics.jsonl"));
    expect(after.subarray(0, log.length).equals(log)).toBe(true);
    expect(after.at(-1)).toBe(0x0a);
    for (const line of metricsLines(dir).filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
    expect(JSON.parse(readFileSync(join(dir, "config.json"), "utf8")).model).toBe("mycnn");
    expect(existsSync(join(dir, ".lock"))).toBe(false);

    rmSync(filler);
    const again = cli(["train", "--resume", dir, "--epochs", "2"]);
    expect(again.code, again.err).toBe(0);
    expect(decodeCheckpoint(new Uint8Array(readFileSync(join(dir, "checkpoint"))), "checkpoint").header.step).toBe(8);
    for (const line of metricsLines(dir).filter(Boolean)) expect(() => JSON.parse(line)).not.toThrow();
  });

  it("a new run on a full disk: one line, and the other runs on the disk are untouched", () => {
    const disk = mountTmpfs("newrun", "1m");
    copyRun(base, join(disk, "earlier"));
    fill(disk);
    const before = hashTree(join(disk, "earlier"));
    expectOneLineError(cli(["train", "--train-limit", "256", "--test-limit", "100", "--epochs", "1", "--out", join(disk, "new")]), /no space left on device while .*new.*; no checkpoint was saved/);
    expect(hashTree(join(disk, "earlier"))).toEqual(before);
  });
});

describe.skipIf(!!skip)("a read-only file system", () => {
  let disk = "";
  beforeAll(() => {
    disk = mountTmpfs("ro", "1m");
    copyRun(makeBase(join(root, "ro-base")), join(disk, "run"));
    execFileSync("mount", ["-o", "remount,ro", disk], { stdio: "pipe" });
  });

  const cases: [string, () => string[], RegExp][] = [
    ["train --out", () => ["train", "--epochs", "1", "--train-limit", "256", "--out", join(disk, "new")], /new: the file system is read-only/],
    ["train --out below a new directory", () => ["train", "--epochs", "1", "--train-limit", "256", "--out", join(disk, "a", "b")], /ro\/a: the file system is read-only/],
    ["train --resume", () => ["train", "--resume", join(disk, "run"), "--epochs", "2"], /run\/\.lock: the file system is read-only/],
    ["build-graph --out", () => ["build-graph", "--out", join(disk, "graphs")], /graphs: the file system is read-only/],
  ];
  it.each(cases)("%s: says read-only (not ENOENT), in one line, and changes nothing", (_what, args, message) => {
    const before = hashTree(disk);
    expectOneLineError(cli(args()), message);
    expect(hashTree(disk)).toEqual(before);
  });
});
