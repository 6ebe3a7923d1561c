/**
 * Benchmark helpers. Candidates are timed interleaved (A B A B ...), so slow drifts of the machine (thermal,
 * other processes) hit every candidate alike, and the per-round ratio A/B cancels them.
 */
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { availableParallelism, loadavg } from "node:os";
import { idleCores } from "../src/node/threads.ts";

export const PYTHON = "/usr/bin/python3"; // Debian's, with python3-torch; a pyenv python3 on PATH may lack torch
export const TORCH_REF = fileURLToPath(new URL("./torch_ref.py", import.meta.url));

export interface Candidate {
  name: string;
  /** One measurement (seconds, ms, ...: any unit, the same for every candidate). */
  run: () => Promise<number>;
}

/** What the machine was doing around one round: load averages and the cores other processes kept busy. */
export interface RoundLoad {
  /** 1-minute load average just before and just after the round (it includes the benchmark's own processes). */
  loadBefore: number;
  loadAfter: number;
  /** Cores busy with other processes, sampled over 300 ms while none of the candidates ran, before and after. */
  busyBefore: number;
  busyAfter: number;
  /** Nothing else ran: fewer than CALM_BUSY cores busy before and after the round. */
  calm: boolean;
}

/** A round is calm when other processes kept less than this many cores busy before and after it. */
export const CALM_BUSY = 0.25;

export interface InterleaveResult {
  samples: Record<string, number[]>;
  medians: Record<string, number>;
  /** Median over rounds of first / other, keyed "A/B", for each candidate after the first. */
  ratios: Record<string, number>;
  /** Per round: the machine's load around it. */
  load: RoundLoad[];
  /** The same ratios over the calm rounds only, and over the contended ones (absent when there were none). */
  calm: { rounds: number; medians: Record<string, number>; ratios: Record<string, number> };
  contended: { rounds: number; medians: Record<string, number>; ratios: Record<string, number> };
}

export function median(xs: number[]): number {
  if (!xs.length) throw new Error("median of no samples");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Cores kept busy by other processes over `ms` (the caller runs nothing meanwhile). */
export async function busyCores(ms = 300): Promise<number> {
  return Math.max(0, availableParallelism() - (await idleCores(ms)));
}

function summarise(names: string[], samples: Record<string, number[]>, rounds: number[]) {
  const medians: Record<string, number> = {};
  const ratios: Record<string, number> = {};
  if (!rounds.length) return { rounds: 0, medians, ratios };
  for (const n of names) medians[n] = median(rounds.map((r) => samples[n][r]));
  const [a, ...others] = names;
  for (const b of others) ratios[`${a}/${b}`] = median(rounds.map((r) => samples[a][r] / samples[b][r]));
  return { rounds: rounds.length, medians, ratios };
}

/**
 * Runs every candidate once per round, in order, for `rounds` rounds, and records the machine's load around each
 * round, so that a figure from a calm machine can be told from one taken while something else was running. The
 * load average alone cannot tell: it lags by a minute and counts the benchmark's own processes, so calm is
 * decided from the cores busy while no candidate runs (src/node/threads.ts idleCores).
 */
export async function interleave(rounds: number, candidates: Candidate[]): Promise<InterleaveResult> {
  if (!candidates.length) throw new Error("interleave: no candidates");
  const names = candidates.map((c) => c.name);
  const samples: Record<string, number[]> = Object.fromEntries(names.map((n) => [n, []]));
  const load: RoundLoad[] = [];
  let busy = await busyCores();
  for (let r = 0; r < rounds; r++) {
    const loadBefore = loadavg()[0];
    const busyBefore = busy;
    for (const c of candidates) samples[c.name].push(await c.run());
    const loadAfter = loadavg()[0];
    busy = await busyCores(); // also the next round's "before"
    load.push({ loadBefore, loadAfter, busyBefore, busyAfter: busy, calm: busyBefore < CALM_BUSY && busy < CALM_BUSY });
  }
  const all = summarise(names, samples, [...Array(rounds).keys()]);
  const calm = summarise(names, samples, load.flatMap((l, r) => (l.calm ? [r] : [])));
  const contended = summarise(names, samples, load.flatMap((l, r) => (l.calm ? [] : [r])));
  return { samples, medians: all.medians, ratios: all.ratios, load, calm, contended };
}

/** One line per round for stderr: "round 3: calm (busy 0.02 / 0.05 cores, load 0.4 -> 1.9)". */
export function describeLoad(load: RoundLoad[]): string {
  return load
    .map((l, r) => `round ${r + 1}: ${l.calm ? "calm" : "contended"} (other processes kept ${l.busyBefore.toFixed(2)} / ${l.busyAfter.toFixed(2)} cores busy before / after; load average ${l.loadBefore.toFixed(2)} -> ${l.loadAfter.toFixed(2)})`)
    .join("\n");
}

/** Runs bench/ours.ts (one measurement in a fresh process) with `args`; resolves to the JSON objects it printed. */
export function runOurs(args: string[]): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./ours.ts", import.meta.url)), ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("close", (code) => (code === 0 ? resolve(out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l))) : reject(new Error(`bench/ours.ts failed (${code})`))));
  });
}

/** True if /usr/bin/python3 can import torch. */
export function hasTorch(): boolean {
  return spawnSync(PYTHON, ["-c", "import torch"], { stdio: "ignore" }).status === 0;
}

/** Runs `torch_ref.py ...args`; resolves to the JSON objects it printed, one per stdout line. */
export function runPython(args: string[]): Promise<Record<string, unknown>[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [TORCH_REF, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    child.on("error", (e) => reject(new Error(`cannot run ${PYTHON}: ${e.message} (install python3-torch)`)));
    child.on("close", (code) => {
      if (code !== 0) {
        const last = err.trim().split("\n").pop() || `exit code ${code}`;
        return reject(new Error(`torch_ref.py ${args[0] ?? ""} failed: ${last}`));
      }
      resolve(out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)));
    });
  });
}

/** A GitHub-style table; columns are the union of the rows' keys, numbers shown with 4 significant digits. */
export function markdownTable(rows: Record<string, unknown>[]): string {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v: unknown) => (v === undefined ? "" : typeof v === "number" && !Number.isInteger(v) ? String(Number(v.toPrecision(4))) : String(v));
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  return [line(cols), line(cols.map(() => "---")), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join("\n");
}
