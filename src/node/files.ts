/** Node-only file helpers: atomic writes (temp file + rename) and reads with one-line errors. */
import { createHash } from "node:crypto";
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { dirname, basename, join } from "node:path";

export class UserError extends Error {
  override name = "UserError";
}

/** Writes `data` to `path` so that readers see either the old file or the whole new one, never a part. */
export function writeFileAtomic(path: string, data: Uint8Array | string): void {
  mkdirSync(dirname(path), { recursive: true });
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
    throw e;
  }
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
