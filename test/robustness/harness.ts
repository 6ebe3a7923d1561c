/**
 * What every robustness case checks: the exit code, one `error:` line without a stack trace, and that the
 * files which existed before are byte for byte what they were (hashes before and after).
 */
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join, resolve } from "node:path";
import { expect } from "vitest";

const BIN = resolve("bin/onnx-mnist.js");

export interface CliResult {
  code: number | null;
  out: string;
  err: string;
  /** True if the process had to be killed at the timeout (a hang). */
  hung: boolean;
}

export function cli(args: string[], o: { cwd?: string; timeout?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", cwd: o.cwd, timeout: o.timeout ?? 90_000, killSignal: "SIGKILL" });
  return { code: r.status, out: r.stdout, err: r.stderr, hung: r.signal === "SIGKILL" };
}

/** Exit code 1 and exactly one line on stderr, `error: ...` matching `message`, no stack trace. */
/** One `error: ...` line, no stack; exit 1 for what was wrong with the inputs, 2 for a usage error (a bad flag). */
export function expectOneLineError(r: CliResult, message: RegExp, code = 1): void {
  expect(r.hung, "the command hung").toBe(false);
  expect(r.code, r.err).toBe(code);
  expect(r.err).not.toMatch(/\n\s+at /);
  const lines = r.err.trim().split("\n").filter((l) => !l.startsWith("warning: "));
  expect(lines, r.err).toHaveLength(1);
  expect(lines[0]).toMatch(/^error: /);
  expect(lines[0]).toMatch(message);
}

/** sha256 of every file under `dir` by relative path (symlinks by their target). */
export function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const visit = (rel: string) => {
    const path = join(dir, rel);
    const st = lstatSync(path);
    if (st.isSymbolicLink()) out[rel] = `-> ${readlinkSync(path)}`;
    else if (st.isDirectory()) for (const name of readdirSync(path).sort()) visit(rel ? join(rel, name) : name);
    else out[rel] = createHash("sha256").update(readFileSync(path)).digest("hex");
  };
  if (existsSync(dir)) visit("");
  return out;
}

/** A small, quick run: 256 training images, 4 steps of 64 per epoch, 100 test images. */
export const SMALL = ["--train-limit", "256", "--test-limit", "100", "--batch-size", "64", "--threads", "1"];

/** A copy of a finished run (trained once per file by `makeBase`), to damage freely. */
export function copyRun(base: string, to: string): string {
  cpSync(base, to, { recursive: true });
  return to;
}

export function makeBase(dir: string, epochs = 1, extra: string[] = []): string {
  const small = SMALL.filter((f, i) => !extra.includes(f) && !extra.includes(SMALL[i - 1])); // extra's flags win
  const r = cli(["train", ...small, "--epochs", String(epochs), "--out", dir, ...extra]);
  expect(r.code, r.err).toBe(0);
  return dir;
}

export const metricsLines = (dir: string) => readFileSync(join(dir, "metrics.jsonl"), "utf8").split("\n");
