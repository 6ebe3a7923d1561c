/**
 * Node-only: the dashboard's web server. One page (src/dashboard/bundle.ts) and one Server-Sent Events stream,
 * /events, of messages (src/dashboard/state.ts) kept in an in-memory log:
 *   - live (the trainer calls publish for every record): publish only appends to the log; a timer flushes the
 *     new messages to the connected pages every ~150 ms, one SSE event per flush;
 *   - replay (`onnx-mnist dashboard DIR...`): the log is read from the runs' metrics.jsonl, and files that are
 *     still growing (a training in another process) are followed once a second.
 * Every event carries the id `<server>-<n>` (n messages sent so far). A new page gets the whole log; a
 * reconnecting EventSource sends Last-Event-ID and gets only what it missed. An id from another server process
 * (the dashboard was restarted) gets a "reset" event and the whole log.
 * Responses carry the demo server's isolation and nosniff headers; the page gets a CSP that allows exactly
 * its one inline script (by hash) and its own origin for the event stream.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createHash, randomBytes } from "node:crypto";
import { join, resolve } from "node:path";
import { listen, type Listening } from "../server/listen.ts";
import { SECURITY_HEADERS } from "../server/static.ts";
import type { MetricsRecord } from "./records.ts";
import { MetricsTail, runNames } from "./run-files.ts";
import { renderPage } from "./bundle.ts";
import type { StreamMessage } from "./state.ts";

export interface DashboardOptions {
  host?: string;
  /** 0: any free port. */
  port?: number;
  runDirs: string[];
  /** true: the trainer publishes records; false: replay (and follow) the runs' files. */
  live: boolean;
  /** How often new messages go out to the pages (ms). */
  flushMs?: number;
  /** A port bound earlier with listen() (train --dashboard binds before creating the run); then port and host are unused. */
  listening?: Listening;
}

export interface Dashboard {
  url: string;
  publish(runDir: string, record: object): void;
  close(): Promise<void>;
}

interface Run {
  id: number;
  dir: string;
  tail: MetricsTail;
  /** Live mode: the run record is in the log (it may have been written before the dashboard started). */
  hasRunRecord: boolean;
}

interface Client {
  res: ServerResponse;
  sent: number;
}

/** Messages per SSE event when catching a page up (keeps each event a few hundred kB at most). */
const CHUNK = 2000;

export async function startDashboard(o: DashboardOptions): Promise<Dashboard> {
  // The port first: a busy one fails before anything is read or built.
  const listening = o.listening ?? (await listen({ port: o.port ?? 0, host: o.host, what: "dashboard" }));
  try {
    return await serveRuns(o, listening);
  } catch (e) {
    await listening.close();
    throw e;
  }
}

async function serveRuns(o: DashboardOptions, listening: Listening): Promise<Dashboard> {
  const flushMs = o.flushMs ?? 150;
  const serverId = randomBytes(4).toString("hex");
  const log: string[] = []; // JSON of each message, serialised once
  const runs = new Map<string, Run>();
  const clients = new Set<Client>();
  let flushTimer: NodeJS.Timeout | undefined;

  const push = (msg: StreamMessage) => {
    log.push(JSON.stringify(msg));
    flushTimer ??= setTimeout(flush, flushMs);
  };
  const addRun = (dir: string, name: string): Run => {
    const run: Run = { id: runs.size, dir, tail: new MetricsTail(join(dir, "metrics.jsonl")), hasRunRecord: false };
    runs.set(resolve(dir), run);
    push({ r: run.id, meta: { name, dir } });
    return run;
  };
  const pushRecords = (run: Run, recs: MetricsRecord[]) => {
    for (const rec of recs) {
      if (rec.type === "run") run.hasRunRecord = true;
      push({ r: run.id, rec });
    }
  };

  const names = runNames(o.runDirs);
  o.runDirs.forEach((dir, i) => addRun(dir, names[i]));
  for (const run of runs.values()) pushRecords(run, run.tail.read());

  // Replay follows the files; live mode only looks for a run record the trainer wrote before the dashboard
  // started and has not flushed yet (so the page gets the model summary).
  const follow = setInterval(() => {
    for (const run of runs.values()) {
      try {
        if (!o.live) pushRecords(run, run.tail.read());
        else if (!run.hasRunRecord) {
          const first = new MetricsTail(run.tail.path).read().find((r) => r.type === "run");
          if (first) pushRecords(run, [first]);
        }
      } catch (e) {
        console.error(`dashboard: ${(e as Error).message}`);
      }
    }
  }, 1000);
  follow.unref();

  function send(c: Client, upTo: number): void {
    while (c.sent < upTo) {
      const end = Math.min(upTo, c.sent + CHUNK);
      c.res.write(`id: ${serverId}-${end}\ndata: [${log.slice(c.sent, end).join(",")}]\n\n`);
      c.sent = end;
    }
  }

  function flush(): void {
    flushTimer = undefined;
    for (const c of clients) send(c, log.length);
  }

  const page = renderPage({ mode: o.live ? "live" : "replay" });
  page.catch(() => {}); // reported by the await below
  const csp = page.then(pageCsp, () => "");

  const heartbeat = setInterval(() => {
    for (const c of clients) c.res.write(": ping\n\n");
  }, 15_000);
  heartbeat.unref();

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.writeHead(405, { ...SECURITY_HEADERS, allow: "GET, HEAD" }).end();
      return;
    }
    if (url.pathname === "/" || url.pathname === "/index.html" || url.pathname === "/dashboard.html") {
      const html = await page;
      res.writeHead(200, { ...SECURITY_HEADERS, "content-security-policy": await csp, "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
      res.end(req.method === "HEAD" ? undefined : html);
      return;
    }
    if (url.pathname === "/events") {
      res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive", "x-accel-buffering": "no" });
      res.write("retry: 1000\n\n");
      const last = String(req.headers["last-event-id"] ?? url.searchParams.get("lastEventId") ?? "");
      const m = /^([0-9a-f]+)-(\d+)$/.exec(last);
      let start = 0;
      if (m && m[1] === serverId && Number(m[2]) <= log.length) start = Number(m[2]);
      else if (last) res.write("event: reset\ndata: {}\n\n");
      const client: Client = { res, sent: start };
      clients.add(client);
      req.on("close", () => clients.delete(client));
      send(client, log.length);
      return;
    }
    if (url.pathname === "/api/runs") {
      res.writeHead(200, { ...SECURITY_HEADERS, "content-type": "application/json", "cache-control": "no-store" });
      res.end(JSON.stringify([...runs.values()].map((r) => ({ id: r.id, dir: r.dir }))));
      return;
    }
    res.writeHead(404, { ...SECURITY_HEADERS, "content-type": "text/plain" }).end("not found\n");
  }

  listening.handle((req, res) => {
    handle(req, res).catch((e) => {
      if (!res.headersSent) res.writeHead(500, { ...SECURITY_HEADERS, "content-type": "text/plain" });
      res.end(`dashboard error: ${(e as Error).message}\n`);
    });
  });
  await page; // build errors surface here, before a URL is printed

  return {
    url: listening.url,
    publish(runDir: string, record: object): void {
      const key = resolve(runDir);
      const run = runs.get(key) ?? addRun(runDir, runNames([runDir])[0]);
      pushRecords(run, [record as MetricsRecord]);
    },
    async close(): Promise<void> {
      clearInterval(follow);
      clearInterval(heartbeat);
      if (flushTimer) clearTimeout(flushTimer);
      flush(); // the last records (the run's end) still reach the pages
      for (const c of clients) c.res.end();
      clients.clear();
      await listening.close();
    },
  };
}

/**
 * The page's policy: scripts only by the hash of its inline classic script (the JSON data block is not
 * executed, so it needs none), the event stream from this origin, uPlot's inline styles.
 */
function pageCsp(html: string): string {
  const hashes = [...html.matchAll(/<script>([\s\S]*?)<\/script>/g)].map((m) => `'sha256-${createHash("sha256").update(m[1]).digest("base64")}'`);
  return [
    "default-src 'none'",
    `script-src ${hashes.join(" ") || "'none'"}`,
    "style-src 'unsafe-inline'",
    "connect-src 'self'",
    "img-src 'self' data: blob:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}
