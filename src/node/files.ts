/** Node-only file helpers: atomic writes (temp file + rename) and reads with one-line errors. */
import { createHash } from "node:crypto";
import { closeSync, fstatSync, fsyncSync, ftruncateSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, basename, join, resolve } from "node:path";

export class UserError extends Error {
  override name = "UserError";
}

/** A failed write, said in one line: what is wrong with `path` (the errno's meaning, not its text). */
export class FileError extends UserError {
  constructor(readonly path: string, readonly code: string | undefined, message: string) {
    super(message);
  }
}

/** Turns an fs error while `doing` something to `path` into a FileError that says what is wrong with the path. */
export function fileError(e: unknown, path: string, doing = "writing"): FileError {
  if (e instanceof FileError) return e;
  const code = (e as NodeJS.ErrnoException).code;
  const why: Record<string, string> = {
    ENOSPC: `no space left on device while ${doing} ${path}`,
    EDQUOT: `disk quota exceeded while ${doing} ${path}`,
    EROFS: `${path}: the file system is read-only`,
    EACCES: `${path}: permission denied`,
    EPERM: `${path}: operation not permitted here`,
    ENOTDIR: `${path}: a part of this path is a file, not a directory`,
    EISDIR: `${path}: is a directory, expected a file`,
    ELOOP: `${path}: too many levels of symbolic links`,
    ENAMETOOLONG: `${path}: the name is too long`,
    EIO: `${path}: input/output error from the device while ${doing} it`,
  };
  return new FileError(path, code, why[code ?? ""] ?? `${path}: ${doing} failed (${code ?? (e as Error).message})`);
}

/**
 * mkdir -p that says what is wrong with the path. (Node's own recursive mkdir loops forever on a path it
 * cannot create under an existing parent, such as /proc/x, and reports EROFS as ENOENT.)
 */
export function makeDirs(path: string): void {
  const full = resolve(path);
  const missing: string[] = [];
  for (let p = full; ; p = dirname(p)) {
    const kind = pathKind(p);
    if (kind === "dir") break;
    if (kind === "file") throw new FileError(p, "ENOTDIR", `${p}: is a file, not a directory${p === full ? "" : ` (needed as a directory for ${path})`}`);
    if (kind === "dangling") throw new FileError(p, "ENOENT", `${p}: is a symbolic link to ${readlinkSync(p)}, which does not exist`);
    missing.unshift(p);
    if (p === dirname(p)) break;
  }
  for (const p of missing) if (!makeDir(p) && pathKind(p) !== "dir") throw new FileError(p, "EEXIST", `${p}: is a file, not a directory`);
}

/** Creates the one directory `path` (its parent exists); false if something is there already. */
export function makeDir(path: string): boolean {
  try {
    mkdirSync(path);
    return true;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "EEXIST") return false;
    // ENOENT under an existing parent: a pseudo file system (/proc, /sys) that holds no directories of ours
    if (code === "ENOENT" || code === "EPERM") throw new FileError(path, code, `${path}: cannot create a directory in ${dirname(path)} (the file system there does not allow it; choose another place)`);
    throw fileError(e, path, "creating");
  }
}

/** What is at `path`: nothing, a directory, some other file, or a symbolic link to nothing. */
export function pathKind(path: string): "none" | "dir" | "file" | "dangling" {
  try {
    return statSync(path).isDirectory() ? "dir" : "file";
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOTDIR") return "none"; // a parent is a file: makeDirs finds it on the way up
    if (code !== "ENOENT" && code !== "ELOOP") throw fileError(e, path, "reading");
    try {
      return lstatSync(path).isSymbolicLink() ? "dangling" : "none";
    } catch {
      return "none";
    }
  }
}

/** Makes a rename in `dir` durable: without this a power cut can bring back the old name. */
function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // some file systems cannot fsync a directory; the rename itself has happened
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * Appends `text` (whole lines) to `path` so that the file grows by all of it or by nothing: a short or failed
 * write (a full disk) is cut back to the previous length, so a reader never meets half a line.
 */
export function appendWhole(path: string, text: string): void {
  const bytes = Buffer.from(text);
  let fd: number;
  try {
    fd = openSync(path, "a");
  } catch (e) {
    throw fileError(e, path, "appending to");
  }
  let before = 0;
  try {
    before = fstatSync(fd).size;
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
  } catch (e) {
    try {
      ftruncateSync(fd, before);
    } catch {
      // truncating frees space and does not fail on a full disk; if it does, the reader drops the torn line
    }
    throw fileError(e, path, "appending to");
  } finally {
    closeSync(fd);
  }
}

/** The PID in a temporary file name `.<name>.<pid>.tmp` (writeFileAtomic's), if it is one. */
function tempPid(name: string): number | undefined {
  const m = /^\..+\.(\d+)\.tmp$/.exec(name);
  return m ? Number(m[1]) : undefined;
}

export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // exists, but not ours to signal
  }
}

/** Removes temporary files in `dir` left by processes that died mid-write (kill -9 during a save). */
export function removeStaleTemps(dir: string): string[] {
  const removed: string[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch {
    return removed;
  }
  for (const name of names) {
    const pid = tempPid(name);
    if (pid === undefined || pid === process.pid || processAlive(pid)) continue;
    rmSync(join(dir, name), { force: true });
    removed.push(name);
  }
  return removed;
}

/** Writes `data` to `path` so that readers see either the old file or the whole new one, never a part. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  makeDirs(dirname(path));
  if (pathKind(path) === "dir") throw new FileError(path, "EISDIR", `${path}: is a directory, expected a file`);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  try {
    const fd = openSync(tmp, "w");
    try {
      const bytes = typeof data === "string" ? Buffer.from(data) : data;
      let off = 0;
      while (off < bytes.length) off += writeSync(fd, bytes, off, bytes.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw fileError(e, path);
  }
  fsyncDir(dirname(path));
}

/**
 * A short hash of the files under `paths` (directories walked in sorted order; `accept` filters file names),
 * covering their paths relative to `root` and their contents: a cache key that changes when the sources do.
 */
export function contentHash(root: string, paths: string[], accept: (name: string) => boolean = () => true): string {
  const h = createHash("sha256");
  const visit = (path: string) => {
    if (statSync(path).isDirectory()) for (const name of readdirSync(path).sort()) visit(join(path, name));
    else if (accept(basename(path))) h.update(path.slice(root.length)).update("\0").update(readFileSync(path)).update("\0");
  };
  for (const p of paths) visit(join(root, p));
  return h.digest("hex").slice(0, 16);
}

export function readFileOrFail(path: string, what: string): Uint8Array {
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UserError(`${path}: no such file (${what})`);
    if (code === "EISDIR") throw new UserError(`${path}: is a directory, expected a file (${what})`);
    throw new UserError(`${path}: cannot read ${what}: ${(e as Error).message}`);
  }
}
