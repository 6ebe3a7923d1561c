/**
 * Node-only: the one place where the demo, the dashboard and a training run's live dashboard take a port.
 * `listen` validates the port and binds it before the caller creates anything else (a run directory, a web
 * build, hours of training), so a busy or forbidden port fails first, with one line. Requests that arrive
 * before the server's handler is installed get 503 instead of hanging.
 *
 * It also guards every request against DNS rebinding: a page on evil.example whose name is re-pointed at
 * 127.0.0.1 can make the browser send it same-origin requests to our port, but they carry
 * `Host: evil.example`. A server bound to a loopback address answers only loopback host names. A server the
 * user exposed with `--host` (a non-loopback address) is meant to be reached by other names, so there the
 * Host header is not checked.
 */
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from "node:http";
import { isIP } from "node:net";
import { UserError } from "../node/files.ts";

export interface Listening {
  server: Server;
  /** The port actually bound (the free one that port 0 picked). */
  port: number;
  /** http://host:port/ as a browser on this machine reaches it. */
  url: string;
  /** Installs the request handler; until then requests get 503. Every request first passes the Host check. */
  handle(handler: (req: IncomingMessage, res: ServerResponse) => void): void;
  close(): Promise<void>;
}

export interface ListenOptions {
  port: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Names the server in messages ("demo", "dashboard"). */
  what: string;
}

/** Binds `host:port`; a bad, busy or forbidden port is a UserError whose message says what to do. */
export async function listen(o: ListenOptions): Promise<Listening> {
  const host = o.host ?? "127.0.0.1";
  const port = o.port;
  if (!(Number.isInteger(port) && port >= 0 && port <= 65535)) throw new UserError(`${o.what}: port must be a whole number from 0 to 65535, got ${port}`);
  let handler: RequestListener | undefined;
  const checkHost = isLoopbackName(host);
  const server = createServer((req, res) => {
    if (checkHost && !isLoopbackName(hostName(req.headers.host))) {
      // 421 Misdirected Request: the request names a host this server does not serve.
      res.writeHead(421, { "Content-Type": "text/plain; charset=utf-8", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store" });
      res.end(`this server answers only requests for localhost, 127.x.x.x or [::1] (Host was ${JSON.stringify(req.headers.host ?? "")}); start it with --host ADDRESS to serve other names\n`);
      return;
    }
    if (!handler) {
      res.writeHead(503, { "Content-Type": "text/plain; charset=utf-8", "Retry-After": "5", "Cache-Control": "no-store" });
      res.end(`the ${o.what} is starting; reload in a moment\n`);
      return;
    }
    handler(req, res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE") reject(new UserError(`${o.what}: port ${port} on ${host} is in use; pass --port N (0 picks a free port)`));
      else if (e.code === "EACCES" || e.code === "EPERM") reject(new UserError(`${o.what}: not allowed to listen on port ${port}; ports below 1024 need privileges: pass --port 1024 or above (0 picks a free port)`));
      else if (e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND" || e.code === "EAI_AGAIN" || e.code === "EAFNOSUPPORT")
        reject(new UserError(`${o.what}: cannot listen on ${host}: not an address of this machine; pass --host 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)`));
      else reject(new UserError(`${o.what}: cannot listen on ${host} port ${port}: ${e.code ?? e.message}`));
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const actual = typeof address === "object" && address ? address.port : port;
  // A wildcard address is reached on this machine through loopback.
  const shown = host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "[::1]" : host.includes(":") ? `[${host}]` : host;
  return {
    server,
    port: actual,
    url: `http://${shown}:${actual}/`,
    handle(h) {
      handler = h;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** The host name of a Host header value: "127.0.0.1:8080" -> "127.0.0.1", "[::1]:80" -> "::1". */
export function hostName(header: string | undefined): string {
  if (!header) return "";
  const h = header.trim().toLowerCase();
  if (h.startsWith("[")) return h.includes("]") ? h.slice(1, h.indexOf("]")) : "";
  const colon = h.indexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

/** localhost (and names under .localhost, which browsers resolve to loopback themselves), 127.0.0.0/8, ::1. */
export function isLoopbackName(name: string): boolean {
  const n = name.toLowerCase().replace(/\.$/, "");
  if (n === "localhost" || n.endsWith(".localhost")) return true;
  if (isIP(n) === 4) return n.startsWith("127.");
  if (isIP(n) === 6) return n === "::1" || n === "0:0:0:0:0:0:0:1";
  return false;
}
