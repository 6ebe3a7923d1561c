/**
 * Node-only: serving a built page directory (web/dist) from memory, with the headers that make the page
 * cross-origin isolated (COOP/COEP; onnxruntime-web's WASM threads need SharedArrayBuffer, which needs them).
 * Files are read once at start, so a rebuild of web/dist by another process cannot pull them from under us.
 * Pages also get a Content-Security-Policy (DEMO_CSP) and every response `nosniff`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";

export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
} as const;

/**
 * What the demo's pages (web/dist) may load: their own scripts and workers; onnxruntime-web's WASM, which
 * is compiled from fetched bytes ('wasm-unsafe-eval') and may start its thread workers from blob: URLs;
 * protobufjs, which reads a dropped or ?model= model and builds its decoders with `new Function`
 * ('unsafe-eval'; drop it if src/onnx/proto.ts moves to static code);
 * a model from any URL (`?model=` is a feature; COEP still requires that server to send CORS headers);
 * canvas snapshots as data:/blob: images. No plugins, no framing, no <base> rewrites, no form posts.
 */
export const DEMO_CSP = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-eval' 'wasm-unsafe-eval' blob:",
  "worker-src 'self' blob:",
  "connect-src 'self' https: http: blob: data:",
  "img-src 'self' data: blob:",
  "style-src 'self' 'unsafe-inline'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers every response of both servers carries: isolation (WASM threads need it) and no MIME sniffing. */
export const SECURITY_HEADERS = { ...ISOLATION_HEADERS, "X-Content-Type-Options": "nosniff" } as const;

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".map": "application/json",
  ".onnx": "application/octet-stream",
  ".bin": "application/octet-stream",
};

export function contentType(path: string): string {
  return TYPES[extname(path).toLowerCase()] ?? "application/octet-stream";
}

export interface StaticFile {
  body: Buffer;
  type: string;
}

/** Every file under `dir`, keyed by its URL path ("/index.html", "/assets/x.js"). */
export function loadStatic(dir: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>();
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    files.set("/" + relative(dir, path).split(sep).join("/"), { body: readFileSync(path), type: contentType(path) });
  }
  return files;
}

/** Sends a response with the isolation headers; `cache` false for things that change (pages, the model). */
export function send(req: IncomingMessage, res: ServerResponse, status: number, body: Buffer | string, type: string, cache = false): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    ...(type.startsWith("text/html") ? { "Content-Security-Policy": DEMO_CSP } : {}),
    "Content-Type": type,
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": cache ? "public, max-age=31536000, immutable" : "no-cache",
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** The URL path of a request, decoded, "/" meaning "/index.html"; null when it is malformed. */
export function requestPath(req: IncomingMessage): string | null {
  try {
    const path = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    return path.endsWith("/") ? path + "index.html" : path;
  } catch {
    return null;
  }
}
