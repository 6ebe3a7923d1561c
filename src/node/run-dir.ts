/**
 * Node-only: a training run's directory. config.json, metrics.jsonl (one JSON object per line), model.onnx and
 * checkpoint; every file but the append-only metrics log is replaced atomically, and the log grows by whole
 * lines or not at all.
 *
 * A directory belongs to one run: a new run creates its directory itself (never reusing one it did not make,
 * unless told to overwrite), and a running trainer holds `.lock` (its PID, created exclusively) so that a
 * second `train` on the same directory is refused rather than interleaved with it.
 */
import { closeSync, existsSync, lstatSync, openSync, readdirSync, readFileSync, renameSync, rmSync, symlinkSync, truncateSync, writeSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { appendWhole, FileError, fileError, makeDir, makeDirs, pathKind, processAlive, removeStaleTemps, UserError, writeFileAtomic } from "./files.ts";

const LOCK = ".lock";

export class RunDir {
  private pending: string[] = [];
  private lastFlush = Date.now();
  private locked = false;
  private readonly unlockAtExit = () => this.unlock();

  private constructor(readonly path: string) {}

  /**
   * The directory of a new run at `path` (`--out`): made if missing; an existing one must be empty, or the
   * user says `overwrite` (then the old metrics log and report go, and every other file is replaced).
   */
  static create(path: string, o: { overwrite?: boolean } = {}): RunDir {
    const kind = pathKind(path);
    if (kind === "file") throw new FileError(path, "EEXIST", `${path}: is a file; --out needs a directory (a new or an empty one)`);
    if (kind === "dangling") makeDirs(path); // says which link points nowhere
    if (kind === "none") {
      makeDirs(dirname(path));
      makeDir(path); // if someone made it in between, it is theirs unless empty: the checks below decide
    }
    const run = new RunDir(path);
    run.lock();
    try {
      const others = readdirSync(path).filter((n) => n !== LOCK);
      if (others.length && !o.overwrite) {
        const isRun = others.includes("checkpoint") || others.includes("metrics.jsonl");
        throw new UserError(
          isRun
            ? `${path} already holds a run; continue it with --resume ${path}, choose another --out, or pass --overwrite to replace it`
            : `${path} is not empty (${others.length} entries); choose a new or empty --out directory, or pass --overwrite`,
        );
      }
      if (o.overwrite) for (const name of ["metrics.jsonl", "report.html"]) rmSync(run.file(name), { force: true });
    } catch (e) {
      run.unlock();
      throw e;
    }
    return run;
  }

  /** A new run under `root` named by the local time (runs/2026-11-25T21-30-00, sortable), `-2`, `-3`... if taken. */
  static createUnique(root = "runs", now = new Date()): RunDir {
    const p = (n: number) => String(n).padStart(2, "0");
    const stamp = `${now.getFullYear()}-${p(now.getMonth() + 1)}-${p(now.getDate())}T${p(now.getHours())}-${p(now.getMinutes())}-${p(now.getSeconds())}`;
    makeDirs(root);
    for (let i = 1; ; i++) {
      const path = join(root, i === 1 ? stamp : `${stamp}-${i}`);
      if (!makeDir(path)) continue; // not recursive: exactly one of two runs started in the same second gets each name
      const run = new RunDir(path);
      run.lock();
      return run;
    }
  }

  /** An existing run directory, to resume; locked, and cleared of temporary files of dead processes. */
  static open(path: string): RunDir {
    const kind = pathKind(path);
    if (kind !== "dir")
      throw new UserError(`${path}: no checkpoint to resume from (${kind === "file" ? "it is a file" : "no such directory"}); --resume takes a run directory written by onnx-mnist train`);
    const run = new RunDir(path);
    run.lock();
    removeStaleTemps(path);
    return run;
  }

  file(name: string): string {
    return join(this.path, name);
  }

  /** Takes `.lock`; a lock whose process is gone (kill -9, power cut) is taken over. */
  lock(): void {
    const path = this.file(LOCK);
    for (let attempt = 0; !this.locked; attempt++) {
      try {
        const fd = openSync(path, "wx");
        try {
          writeSync(fd, `${process.pid}\n`);
        } catch (e) {
          rmSync(path, { force: true }); // an empty lock would hold nothing but confusion
          throw fileError(e, path, "creating");
        } finally {
          closeSync(fd);
        }
        this.locked = true;
      } catch (e) {
        if (e instanceof FileError) throw e;
        if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw fileError(e, path, "creating");
        let pid = NaN;
        try {
          pid = Number.parseInt(readFileSync(path, "utf8"), 10);
        } catch {
          // removed in between: try again
        }
        const alive = Number.isInteger(pid) && pid > 0 && pid !== process.pid && processAlive(pid);
        if (alive || attempt > 0)
          throw new UserError(`${this.path} is in use by another onnx-mnist train${alive ? ` (PID ${pid})` : ""}; wait for it to end or stop it, or use another directory`);
        rmSync(path, { force: true }); // stale: its process is gone
      }
    }
    process.on("exit", this.unlockAtExit);
  }

  unlock(): void {
    if (!this.locked) return;
    this.locked = false;
    process.off("exit", this.unlockAtExit);
    try {
      if (Number.parseInt(readFileSync(this.file(LOCK), "utf8"), 10) === process.pid) rmSync(this.file(LOCK));
    } catch {
      // already gone
    }
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
    const lines = this.pending;
    this.pending = [];
    this.lastFlush = Date.now();
    if (lines.length) appendWhole(this.file("metrics.jsonl"), lines.join("\n") + "\n");
  }

  /**
   * Cuts a torn last line (no newline: a write that an older version, or a crash, left half done) off
   * metrics.jsonl, so that the next record starts on a line of its own. Returns what it did, if anything.
   */
  repairLog(): string | undefined {
    const path = this.file("metrics.jsonl");
    if (!existsSync(path)) return undefined;
    const bytes = readFileSync(path);
    if (!bytes.length || bytes[bytes.length - 1] === 0x0a) return undefined;
    const keep = bytes.lastIndexOf(0x0a) + 1;
    try {
      truncateSync(path, keep);
    } catch (e) {
      throw fileError(e, path, "repairing");
    }
    return `${path}: dropped a torn last line (${bytes.length - keep} bytes, from a write that was cut short)`;
  }

  /** The records of metrics.jsonl as written, skipping lines that are not whole JSON objects. */
  readLog(): Record<string, unknown>[] {
    let text: string;
    try {
      text = readFileSync(this.file("metrics.jsonl"), "utf8");
    } catch {
      return [];
    }
    const out: Record<string, unknown>[] = [];
    for (const line of text.split("\n")) {
      try {
        const rec = JSON.parse(line);
        if (typeof rec === "object" && rec !== null && !Array.isArray(rec)) out.push(rec);
      } catch {
        // a torn or foreign line: not evidence of anything
      }
    }
    return out;
  }

  /** Points `<parent>/latest` at this run (a relative symlink, replaced atomically). */
  markLatest(): void {
    const parent = dirname(resolve(this.path));
    const link = join(parent, "latest");
    try {
      if (!lstatSync(link).isSymbolicLink()) return; // a real file or directory called latest: leave it
    } catch {
      // no latest yet
    }
    const tmp = join(parent, `.latest.${process.pid}`);
    try {
      rmSync(tmp, { force: true });
      symlinkSync(basename(resolve(this.path)), tmp);
      renameSync(tmp, link);
    } catch (e) {
      rmSync(tmp, { force: true });
      throw fileError(e, link);
    }
  }
}
