/**
 * Node-only: finding run directories and reading their metrics.jsonl, whole or as it grows.
 */
import { closeSync, existsSync, fstatSync, openSync, readdirSync, readSync, realpathSync, statSync } from "node:fs";
import { basename, join, relative, resolve } from "node:path";
import { UserError } from "../node/files.ts";
import { parseRecord, type MetricsRecord } from "./records.ts";

/**
 * Reads the complete lines appended to a metrics.jsonl since the last call. The trainer appends whole lines,
 * but a reader can catch one half-written: a line without its newline waits for the next call (or, at the end
 * of a finished run, is dropped). A log torn by an older version on a full disk (half a record with the next
 * one glued to it after a resume) is repaired the same way: the torn start is dropped and the whole record
 * kept. Either repair is said once, through `warn`.
 */
export class MetricsTail {
  private offset = 0;
  private partial = "";
  private line = 0;
  private warned = false;

  constructor(
    readonly path: string,
    private readonly warn: (message: string) => void = (m) => process.stderr.write(`warning: ${m}\n`),
  ) {}

  private repaired(message: string): void {
    if (!this.warned) this.warn(message);
    this.warned = true;
  }

  /** `final`: the file is complete (a finished run), so a last line without its newline is torn, not pending. */
  read(final = false): MetricsRecord[] {
    if (!existsSync(this.path)) return [];
    const fd = openSync(this.path, "r");
    let text = "";
    try {
      const size = fstatSync(fd).size;
      if (size < this.offset) throw new UserError(`${this.path}: the file shrank while being read (${size} < ${this.offset} bytes); metrics.jsonl is append-only`);
      if (size === this.offset) return final ? this.dropPartial() : [];
      const buf = Buffer.alloc(size - this.offset);
      let got = 0;
      while (got < buf.length) {
        const n = readSync(fd, buf, got, buf.length - got, this.offset + got);
        if (n === 0) break;
        got += n;
      }
      this.offset += got;
      text = this.partial + buf.subarray(0, got).toString("utf8");
    } finally {
      closeSync(fd);
    }
    const lines = text.split("\n");
    this.partial = lines.pop() ?? "";
    const out: MetricsRecord[] = [];
    for (const line of lines) {
      this.line++;
      if (!line.trim()) continue;
      let rec: MetricsRecord | undefined;
      try {
        rec = parseRecord(line, `${this.path}:${this.line}`);
      } catch (e) {
        const glued = line.lastIndexOf('{"type":');
        if (glued <= 0) throw new UserError((e as Error).message);
        rec = parseRecord(line.slice(glued), `${this.path}:${this.line}`); // a second failure is not a torn line
        this.repaired(`${this.path}:${this.line}: dropped the torn start of this line (${glued} bytes, from a write that was cut short)`);
      }
      if (rec) out.push(rec);
    }
    if (final) out.push(...this.dropPartial());
    return out;
  }

  private dropPartial(): MetricsRecord[] {
    if (this.partial.trim()) this.repaired(`${this.path}: dropped a torn last line (${Buffer.byteLength(this.partial)} bytes, from a write that was cut short)`);
    this.partial = "";
    return [];
  }
}

/** All records of a finished (or running) run; a missing metrics.jsonl is a one-line UserError. */
export function readMetrics(runDir: string): MetricsRecord[] {
  const path = join(runDir, "metrics.jsonl");
  if (!existsSync(path)) {
    const what = existsSync(runDir) ? "has no metrics.jsonl" : "does not exist";
    throw new UserError(`${runDir}: ${what}; pass a run directory written by onnx-mnist train`);
  }
  return new MetricsTail(path).read(true);
}

/**
 * Run directories from command-line paths: a directory holding metrics.jsonl is a run; any other directory
 * (like runs/) stands for the runs directly inside it, in name order. Each run is listed once, however it is
 * reached (runs/latest is a symlink to one of them).
 */
export function expandRunDirs(paths: string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  const add = (dir: string) => {
    const real = realpathSync(dir);
    if (seen.has(real)) return;
    seen.add(real);
    out.push(dir);
  };
  for (const p of paths) {
    if (!existsSync(p)) throw new UserError(`${p}: no such directory; pass run directories written by onnx-mnist train, or their parent (e.g. runs/)`);
    if (!statSync(p).isDirectory()) throw new UserError(`${p}: not a directory; pass run directories written by onnx-mnist train, or their parent (e.g. runs/)`);
    if (existsSync(join(p, "metrics.jsonl"))) {
      add(p);
      continue;
    }
    const subs = readdirSync(p, { withFileTypes: true })
      .filter((d) => !d.name.startsWith(".") && d.name !== "latest")
      .map((d) => join(p, d.name))
      .filter((d) => existsSync(join(d, "metrics.jsonl")))
      .sort();
    if (!subs.length) throw new UserError(`${p}: no metrics.jsonl in it or in its subdirectories; pass run directories written by onnx-mnist train, or their parent (e.g. runs/)`);
    subs.forEach(add);
  }
  return out;
}

/** Short, distinct names for runs: the directory name, or more of the path where two would clash. */
export function runNames(dirs: string[]): string[] {
  const base = dirs.map((d) => basename(resolve(d)));
  return dirs.map((d, i) => (base.filter((b) => b === base[i]).length > 1 ? relative(process.cwd(), resolve(d)) || "." : base[i]));
}
