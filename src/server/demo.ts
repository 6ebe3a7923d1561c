/**
 * Node-only: `onnx-mnist serve` and the end of `npm start`. Serves the built web demo (built on demand) and a
 * model at /model.onnx, on loopback by default, with the cross-origin isolation headers that let
 * onnxruntime-web use WASM threads. The model is opened afresh for each request (so a retrained model shows up
 * on reload) but streamed, never read whole: memory stays bounded however many slow downloads run at once.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { open } from "node:fs/promises";
import { existsSync, statSync } from "node:fs";
import { pipeline } from "node:stream/promises";
import { ensureWebBuild } from "./build.ts";
import { listen, type Listening } from "./listen.ts";
import { loadStatic, requestPath, send, SECURITY_HEADERS } from "./static.ts";
import { UserError } from "../node/files.ts";
import { openClassifier } from "../node/model-file.ts";
import { OWN_CONVENTION } from "../image/convention.ts";

export const MODEL_URL = "/model.onnx";

export interface DemoOptions {
  /** The model served at /model.onnx; without one the page asks for a file. Checked before serving. */
  modelPath?: string;
  /** 0 picks a free port. Default 8080. */
  port?: number;
  /** Default 127.0.0.1 (loopback only). */
  host?: string;
  /** Progress lines (the build); default none. */
  log?: (line: string) => void;
  /** A port bound earlier with listen() (npm start binds before training); then port and host are unused. */
  listening?: Listening;
}

export interface DemoServer {
  url: string;
  close(): Promise<void>;
}

export async function serveDemo(o: DemoOptions = {}): Promise<DemoServer> {
  // The port first: a busy one fails before the model is opened or the page built.
  const listening = o.listening ?? (await listen({ port: o.port ?? 8080, host: o.host, what: "demo" }));
  try {
    if (o.modelPath !== undefined) await checkModelFile(o.modelPath);
    const files = loadStatic(await ensureWebBuild({ log: o.log }));
    const modelPath = o.modelPath;
    listening.handle((req, res) => {
      const path = requestPath(req);
      if (req.method !== "GET" && req.method !== "HEAD") return send(req, res, 405, "only GET and HEAD\n", "text/plain");
      if (path === null) return send(req, res, 400, "bad request path\n", "text/plain");
      if (path === MODEL_URL) {
        if (!modelPath) return send(req, res, 404, "no model is served; start with --model FILE\n", "text/plain");
        sendModel(req, res, modelPath);
        return;
      }
      const file = files.get(path);
      if (!file) return send(req, res, 404, `not found: ${path}\n`, "text/plain");
      // Vite's hashed bundles and ORT's versioned files never change under the same name.
      const immutable = path.startsWith("/assets/") || path.startsWith("/ort/");
      send(req, res, 200, file.body, file.type, immutable);
    });
  } catch (e) {
    await listening.close();
    throw e;
  }
  return { url: listening.url, close: () => listening.close() };
}

/**
 * Streams the model file. The file handle pins the version opened, so a model replaced mid-download (atomic
 * rename by a training run) still arrives whole and consistent with its Content-Length.
 */
function sendModel(req: IncomingMessage, res: ServerResponse, path: string): void {
  (async () => {
    const file = await open(path, "r");
    try {
      const { size } = await file.stat();
      res.writeHead(200, { ...SECURITY_HEADERS, "Content-Type": "application/octet-stream", "Content-Length": size, "Cache-Control": "no-cache" });
      if (req.method === "HEAD" || size === 0) return void res.end();
      await pipeline(file.createReadStream({ autoClose: false, start: 0, end: Math.max(0, size - 1) }), res);
    } finally {
      await file.close();
    }
  })().catch((e) => {
    if (!res.headersSent) send(req, res, 404, `cannot read the model: ${(e as Error).message}\n`, "text/plain");
    else res.destroy(); // a client that went away mid-download
  });
}

/** Fails early, with one line, on a model file that is missing or that the page could not use. */
async function checkModelFile(path: string): Promise<void> {
  if (!existsSync(path)) throw new UserError(`${path}: no such file; train a model with \`onnx-mnist train\` or pass --model FILE`);
  if (statSync(path).isDirectory()) throw new UserError(`${path}: is a directory; pass the model.onnx file inside it`);
  // The page detects the pixel convention itself; here only the structure is checked (any classifier).
  const model = await openClassifier(path, { threads: 1, convention: OWN_CONVENTION });
  await model.release();
}
