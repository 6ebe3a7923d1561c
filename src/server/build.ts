/**
 * Node-only: where the built web pages are, and building them.
 *
 * An installed package runs the JavaScript compiled into dist/ and serves the pages built at pack time
 * (dist/web, see scripts/build.ts): it never builds anything and needs neither Vite nor uPlot. A checkout runs
 * the TypeScript sources and builds the pages under web/ with Vite's JS API into web/dist when that is missing
 * or older than its sources (web/, src/, the package lock), a few seconds. That build goes to a temporary
 * directory that is swapped in whole, so web/dist is never half-written, even with two processes building at once.
 */
import { existsSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { UserError } from "../node/files.ts";

/** True when this module is compiled JavaScript (dist/), false when it is the TypeScript source of a checkout. */
export const COMPILED = import.meta.url.endsWith(".js");
/** The checkout's root, or dist/ when compiled: this file is <ROOT>/src/server/build.{ts,js}. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const WEB_DIR = join(ROOT, "web");
/** The built pages: web/dist in a checkout, dist/web in a package. */
export const DIST_DIR = COMPILED ? WEB_DIR : join(WEB_DIR, "dist");
const STAMP = ".built";

/** Newest modification time (ms) of the files the build depends on. */
function newestSource(): number {
  let newest = 0;
  const visit = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.name === "dist" || e.name.startsWith(".dist-") || e.name === "node_modules") continue;
      const path = join(dir, e.name);
      if (e.isDirectory()) visit(path);
      else if (e.isFile()) newest = Math.max(newest, statSync(path).mtimeMs);
    }
  };
  visit(WEB_DIR);
  visit(join(ROOT, "src"));
  for (const f of ["package.json", "package-lock.json"]) {
    if (existsSync(join(ROOT, f))) newest = Math.max(newest, statSync(join(ROOT, f)).mtimeMs);
  }
  return newest;
}

/** Whether web/dist is missing or older than its sources. */
export function webBuildStale(): boolean {
  const stamp = join(DIST_DIR, STAMP);
  return !existsSync(stamp) || statSync(stamp).mtimeMs < newestSource();
}

/**
 * The built pages' directory. A checkout builds web/dist if it is stale (or always with `force`); a package
 * only checks that its shipped pages are there.
 */
export async function ensureWebBuild(o: { force?: boolean; log?: (line: string) => void } = {}): Promise<string> {
  if (COMPILED) {
    if (!existsSync(join(DIST_DIR, "index.html"))) throw new UserError(`${DIST_DIR}: the web pages are missing from this installation; reinstall onnx-mnist`);
    return DIST_DIR;
  }
  if (!o.force && !webBuildStale()) return DIST_DIR;
  o.log?.("building the web page (vite)...");
  const tmp = join(WEB_DIR, `.dist-${process.pid}-${Date.now()}`);
  try {
    await buildPages(tmp);
    writeFileSync(join(tmp, STAMP), new Date().toISOString() + "\n");
    swapIn(tmp);
  } catch (e) {
    rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
  return DIST_DIR;
}

/** Builds the pages of web/vite.config.ts into `outDir` (from the sources; Vite is a dev dependency). */
export async function buildPages(outDir: string): Promise<void> {
  try {
    const { build } = await import("vite");
    await build({
      configFile: join(WEB_DIR, "vite.config.ts"),
      logLevel: "warn",
      build: { outDir, emptyOutDir: true },
    });
  } catch (e) {
    // Rolldown's message starts with a summary line; the cause is on the next non-empty lines.
    const reason = String((e as Error).message).split("\n").map((l) => l.trim()).filter(Boolean).slice(0, 3).join(" ");
    throw new Error(`building the web page failed: ${reason}`);
  }
}

/** Replaces web/dist with `tmp`: renames are atomic; a directory can only be renamed onto a missing name. */
function swapIn(tmp: string): void {
  for (let attempt = 0; ; attempt++) {
    try {
      renameSync(tmp, DIST_DIR);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (attempt > 5 || (code !== "ENOTEMPTY" && code !== "EEXIST")) throw e;
    }
    const old = join(WEB_DIR, `.dist-old-${process.pid}-${attempt}`);
    try {
      renameSync(DIST_DIR, old);
    } catch {
      // another process moved it first; try again
    }
    rmSync(old, { recursive: true, force: true });
  }
}
