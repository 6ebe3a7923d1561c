/**
 * Reading a run's metrics.jsonl: the one-line parser both the page and the Node side use. The record types
 * are the writer's (src/runtime/records.ts), re-exported here. Browser-safe.
 */

import type { MetricsRecord } from "../runtime/records.ts";

export type * from "../runtime/records.ts";

const TYPES = new Set(["run", "resume", "step", "epoch", "end"]);

/**
 * Parses one line of metrics.jsonl. Returns undefined for a record type this version does not know (newer
 * trainers may add some); throws a one-line Error naming `where` for anything that is not a record.
 */
export function parseRecord(line: string, where: string): MetricsRecord | undefined {
  let rec: unknown;
  try {
    rec = JSON.parse(line);
  } catch {
    throw new Error(`${where}: not a JSON object (${JSON.stringify(line.slice(0, 40))}...); metrics.jsonl holds one JSON record per line, as written by onnx-mnist train`);
  }
  if (typeof rec !== "object" || rec === null || Array.isArray(rec) || typeof (rec as { type?: unknown }).type !== "string")
    throw new Error(`${where}: a record must be a JSON object with a "type" field; metrics.jsonl holds one record per line, as written by onnx-mnist train`);
  const r = rec as MetricsRecord;
  if (!TYPES.has(r.type)) return undefined;
  if ((r.type === "step" || r.type === "epoch" || r.type === "end") && typeof r.step !== "number")
    throw new Error(`${where}: a "${r.type}" record needs a numeric "step"`);
  if (r.type === "step" && typeof r.loss !== "number" && r.loss !== null) throw new Error(`${where}: a "step" record needs a numeric "loss"`);
  return r;
}
