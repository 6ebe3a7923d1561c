/**
 * Node-only: serving a built page directory (web/dist) from memory, with the headers that make the page
 * cross-origin isolated (COOP/COEP; onnxruntime-web's WASM threads need SharedArrayBuffer, which needs them).
 * Files are read once at start, so a rebuild of web/dist by another process cannot pull them from under us.
 */
import { readdirSync, readFileSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import type { IncomingMessage, ServerResponse } from "node:http";

export const ISOLATION_HEADERS = {
  "Cross-Origin-Opener-Policy": "same-origin",
  "Cross-Origin-Embedder-Policy": "require-corp",
  "Cross-Origin-Resource-Policy": "same-origin",
} as const;

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
    ...ISOLATION_HEADERS,
    "Content-Type": type,
    "Content-Length": Buffer.byteLength(body),
    "Cache-Control": cache ? "public, max-age=31536000, immutable" : "no-cache",
    "X-Content-Type-Options": "nosniff",
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
