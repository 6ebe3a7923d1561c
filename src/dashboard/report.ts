/**
 * Node-only: report.html, the dashboard of one run as a single file that opens from disk (file://) without a
 * server or network: the page's script and style and the run's records are all inlined (src/dashboard/bundle.ts).
 * The same metrics.jsonl always gives the same bytes.
 */
import { existsSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { writeFileAtomic } from "../node/files.ts";
import { renderPage } from "./bundle.ts";
import { readMetrics } from "./run-files.ts";
import type { StreamMessage } from "./state.ts";

/** Writes `runDir/report.html` (temp file + rename) and returns its path. */
export async function writeReport(runDir: string): Promise<string> {
  const records = readMetrics(runDir);
  const name = basename(resolve(runDir));
  const messages: StreamMessage[] = [{ r: 0, meta: { name, dir: name } }, ...records.map((rec) => ({ r: 0, rec }))];
  const configPath = join(runDir, "config.json");
  let config: Record<string, unknown> | undefined;
  if (existsSync(configPath)) {
    try {
      config = JSON.parse(readFileSync(configPath, "utf8"));
    } catch {
      config = undefined; // the run record carries the same flags; a broken config.json need not stop the report
    }
  }
  const html = await renderPage({ mode: "report", title: `${name}: onnx-mnist training report`, messages, config });
  const path = join(runDir, "report.html");
  writeFileAtomic(path, html);
  return path;
}
