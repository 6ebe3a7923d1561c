/**
 * `npm run build` (and `prepack`, so a tarball never depends on what happened to be built locally): everything
 * an installed package runs, in dist/:
 *   dist/src, dist/cli   ESM JavaScript + .d.ts compiled by tsc (tsconfig.build.json), with the JSON they import
 *   dist/src/data/suite  the handwriting suite's data files, read at run time by `eval --suite` (src/node/suite.ts)
 *   dist/web             the demo and browser-training pages (Vite, with onnxruntime-web's WASM files copied in)
 *   dist/dashboard       the dashboard page's bundle (bundle.json) and markup (dashboard.html)
 * An installed package finds its pages there (src/server/build.ts, src/dashboard/bundle.ts), so it needs
 * neither Vite nor uPlot nor tsx. Everything is built into a temporary directory that replaces dist/ whole.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, cpSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { buildPages, ROOT } from "../src/server/build.ts";
import { buildDashboardBundle, SHIPPED_BUNDLE } from "../src/dashboard/bundle.ts";

const DIST = join(ROOT, "dist");

function step(what: string): void {
  process.stderr.write(`build: ${what}\n`);
}

async function build(out: string): Promise<void> {
  step("compiling src/ and cli/ (tsc)");
  const tsc = join(dirname(createRequire(import.meta.url).resolve("typescript/package.json")), "bin", "tsc");
  const r = spawnSync(process.execPath, [tsc, "-p", join(ROOT, "tsconfig.build.json"), "--outDir", out], { stdio: "inherit" });
  if (r.status !== 0) throw new Error(`tsc failed (exit ${r.status ?? r.signal})`);
  step("copying the handwriting suite's data");
  cpSync(join(ROOT, "src", "data", "suite"), join(out, "src", "data", "suite"), { recursive: true });
  step("building the web pages (vite)");
  await buildPages(join(out, "web"));
  step("building the dashboard page (vite)");
  const dashboard = join(out, "dashboard");
  mkdirSync(dashboard, { recursive: true });
  writeFileSync(join(dashboard, SHIPPED_BUNDLE), JSON.stringify(await buildDashboardBundle()));
  copyFileSync(join(ROOT, "web", "dashboard.html"), join(dashboard, "dashboard.html"));
}

const tmp = join(ROOT, `.dist-build-${process.pid}`);
try {
  await build(tmp);
  rmSync(DIST, { recursive: true, force: true });
  renameSync(tmp, DIST);
  step(`done: ${DIST}`);
} catch (e) {
  rmSync(tmp, { recursive: true, force: true });
  console.error(`build failed: ${(e as Error).message}`);
  process.exitCode = 1;
}
