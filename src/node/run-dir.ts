/**
 * Node-only: a training run's directory. config.json, metrics.jsonl (one JSON object per line), model.onnx and
 * checkpoint; every file but the append-only metrics log is replaced atomically, and the log is appended in
 * whole lines only.
 */
import { appendFileSync, existsSync, lstatSync, mkdirSync, renameSync, rmSync, symlinkSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { writeFileAtomic } from "./files.ts";

export class RunDir {
  private pending: string[] = [];
  private lastFlush = Date.now();

  constructor(readonly path: string) {
    mkdirSync(path, { recursive: true });
  }

  file(name: string): string {
    return join(this.path, name);
  }

  write(name: string, data: Uint8Array | string): void {
    writeFileAtomic(this.file(name), data);
  }

  /** Queues a metrics record; lines are appended in batches (at most every second) and on flush(). */
  record(rec: object): void {
    this.pending.push(JSON.stringify(rec));
    if (Date.now() - this.lastFlush > 1000) this.flush();
  }

  flush(): void {
    if (this.pending.length) appendFileSync(this.file("metrics.jsonl"), this.pending.join("\n") + "\n");
    this.pending = [];
    this.lastFlush = Date.now();
  }

  /** Points `<parent>/latest` at this run (a relative symlink, replaced atomically). */
  markLatest(): void {
    const parent = dirname(resolve(this.path));
    const link = join(parent, "latest");
    if (existsSync(link) && !lstatSync(link).isSymbolicLink()) return; // a real directory called latest: leave it
    const tmp = join(parent, `.latest.${process.pid}`);
    rmSync(tmp, { force: true });
    symlinkSync(basename(resolve(this.path)), tmp);
    renameSync(tmp, link);
  }
}

/** runs/2026-11-25T21-30-00 (local time, sortable), with a suffix if it exists. */
export function defaultRunPath(root = "runs"): string {
  const d = new Date();
  const p = (n: number) => String(n).padStart(2, "0");
  const stamp = `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}-${p(d.getMinutes())}-${p(d.getSeconds())}`;
  let path = join(root, stamp);
  for (let i = 2; existsSync(path); i++) path = join(root, `${stamp}-${i}`);
  return path;
}
