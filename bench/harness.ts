/**
 * Benchmark helpers. Candidates are timed interleaved (A B A B ...), so slow drifts of the machine (thermal,
 * other processes) hit every candidate alike, and the per-round ratio A/B cancels them.
 */
import { spawn, spawnSync } from "node:child_process";
import { fileURLToPath } from "node:url";

export const PYTHON = "/usr/bin/python3"; // Debian's, with python3-torch; a pyenv python3 on PATH may lack torch
export const TORCH_REF = fileURLToPath(new URL("./torch_ref.py", import.meta.url));

export interface Candidate {
  name: string;
  /** One measurement (seconds, ms, ...: any unit, the same for every candidate). */
  run: () => Promise<number>;
}

export interface InterleaveResult {
  samples: Record<string, number[]>;
  medians: Record<string, number>;
  /** Median over rounds of first / other, keyed "A/B", for each candidate after the first. */
  ratios: Record<string, number>;
}

export function median(xs: number[]): number {
  if (!xs.length) throw new Error("median of no samples");
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export async function interleave(rounds: number, candidates: Candidate[]): Promise<InterleaveResult> {
  if (!candidates.length) throw new Error("interleave: no candidates");
  const samples: Record<string, number[]> = Object.fromEntries(candidates.map((c) => [c.name, []]));
  for (let r = 0; r < rounds; r++) for (const c of candidates) samples[c.name].push(await c.run());
  const medians = Object.fromEntries(candidates.map((c) => [c.name, median(samples[c.name])]));
  const [a, ...others] = candidates;
  const ratios = Object.fromEntries(others.map((b) => [`${a.name}/${b.name}`, median(samples[a.name].map((x, r) => x / samples[b.name][r]))]));
  return { samples, medians, ratios };
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
