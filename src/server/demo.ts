/**
 * Node-only: `onnx-mnist serve` and the end of `npm start`. Serves the built web demo (built on demand) and a
 * model at /model.onnx (read from disk on each request, so a retrained model shows up on reload), on
 * loopback by default, with the cross-origin isolation headers that let onnxruntime-web use WASM threads.
 */
import { createServer, type Server } from "node:http";
import { readFile } from "node:fs/promises";
import { existsSync, statSync } from "node:fs";
import { ensureWebBuild } from "./build.ts";
import { loadStatic, requestPath, send } from "./static.ts";
import { UserError } from "../node/files.ts";
import { openModel } from "../node/model-file.ts";

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
}

export interface DemoServer {
  url: string;
  close(): Promise<void>;
}

export async function serveDemo(o: DemoOptions = {}): Promise<DemoServer> {
  const host = o.host ?? "127.0.0.1";
  const port = o.port ?? 8080;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new UserError(`port must be a whole number from 0 to 65535, got ${port}`);
  if (o.modelPath !== undefined) await checkModelFile(o.modelPath);
  const files = loadStatic(await ensureWebBuild({ log: o.log }));
  const modelPath = o.modelPath;

  const server = createServer((req, res) => {
    const path = requestPath(req);
    if (req.method !== "GET" && req.method !== "HEAD") return send(req, res, 405, "only GET and HEAD\n", "text/plain");
    if (path === null) return send(req, res, 400, "bad request path\n", "text/plain");
    if (path === MODEL_URL) {
      if (!modelPath) return send(req, res, 404, "no model is served; start with --model FILE\n", "text/plain");
      readFile(modelPath).then(
        (body) => send(req, res, 200, body, "application/octet-stream"),
        (e) => send(req, res, 404, `cannot read the model: ${(e as Error).message}\n`, "text/plain"),
      );
      return;
    }
    const file = files.get(path);
    if (!file) return send(req, res, 404, `not found: ${path}\n`, "text/plain");
    // Vite's hashed bundles and ORT's versioned files never change under the same name.
    const immutable = path.startsWith("/assets/") || path.startsWith("/ort/");
    send(req, res, 200, file.body, file.type, immutable);
  });
  await listen(server, port, host);
  const address = server.address();
  const actual = typeof address === "object" && address ? address.port : port;
  const shown = host.includes(":") ? `[${host}]` : host === "0.0.0.0" ? "127.0.0.1" : host;
  return {
    url: `http://${shown}:${actual}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Fails early, with one line, on a model file that is missing or that the page could not use. */
async function checkModelFile(path: string): Promise<void> {
  if (!existsSync(path)) throw new UserError(`${path}: no such file; train a model with \`onnx-mnist train\` or pass --model FILE`);
  if (statSync(path).isDirectory()) throw new UserError(`${path}: is a directory; pass the model.onnx file inside it`);
  const session = await openModel(path, 1);
  await session.release();
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE") reject(new UserError(`port ${port} on ${host} is in use; pass --port N (0 picks a free port)`));
      else if (e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND") reject(new UserError(`cannot listen on ${host}: not an address of this machine; use --host 127.0.0.1`));
      else if (e.code === "EACCES") reject(new UserError(`not allowed to listen on port ${port}; use a port above 1023`));
      else reject(e);
    });
    server.listen(port, host, () => resolve());
  });
}
