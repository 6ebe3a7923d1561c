/**
 * What the dashboard knows about its runs, rebuilt from the stream of messages the server sends (and that a
 * report.html embeds): each message either names a run or carries one of its metrics records. Browser-safe; the
 * page renders from it and the tests check it.
 */
import type { EpochRecord, MetricsRecord, RunRecord } from "./records.ts";
import { Series } from "./series.ts";

/** One message of the dashboard stream. `r` identifies the run within this dashboard. */
export type StreamMessage = { r: number; meta: { name: string; dir: string } } | { r: number; rec: MetricsRecord };

export type RunStatus = "waiting" | "running" | "completed" | "interrupted" | "diverged";

export class RunState {
  info?: RunRecord;
  readonly loss: Series;
  readonly lr = new Series(0);
  readonly throughput: Series;
  /** Per epoch (index epoch - 1); a redone epoch replaces the earlier record. */
  readonly epochs: EpochRecord[] = [];
  status: RunStatus = "waiting";
  /** Steps at which the run was resumed. */
  readonly resumes: number[] = [];
  constructor(
    readonly id: number,
    public name: string,
    public dir: string,
    smoothing: number,
  ) {
    this.loss = new Series(smoothing);
    this.throughput = new Series(smoothing);
  }

  apply(rec: MetricsRecord): void {
    switch (rec.type) {
      case "run":
        this.info = rec;
        if (this.status === "waiting") this.status = "running";
        break;
      case "resume":
        this.resumes.push(rec.step);
        this.status = "running";
        break;
      case "step": {
        // A run resumed from an earlier checkpoint redoes steps: the new records replace the old ones.
        if (this.loss.length && rec.step <= this.loss.x[this.loss.length - 1]) {
          this.loss.truncateFrom(rec.step);
          this.lr.truncateFrom(rec.step);
          this.throughput.truncateFrom(rec.step);
        }
        this.loss.push(rec.step, rec.loss ?? NaN);
        this.lr.push(rec.step, rec.lr);
        this.throughput.push(rec.step, rec.images_per_s);
        if (this.status === "waiting") this.status = "running";
        break;
      }
      case "epoch":
        this.epochs[rec.epoch - 1] = rec;
        this.epochs.length = rec.epoch; // a redone epoch makes later ones stale
        break;
      case "end":
        this.status = rec.status;
        break;
    }
  }

  lastEpoch(): EpochRecord | undefined {
    return this.epochs[this.epochs.length - 1];
  }
}

export class DashboardState {
  readonly runs = new Map<number, RunState>();
  constructor(public smoothing = 0.9) {}

  /** Applies one message; returns the run it touched. */
  apply(msg: StreamMessage): RunState {
    let run = this.runs.get(msg.r);
    if (!run) {
      run = new RunState(msg.r, `run ${msg.r + 1}`, "", this.smoothing);
      this.runs.set(msg.r, run);
    }
    if ("meta" in msg) {
      run.name = msg.meta.name;
      run.dir = msg.meta.dir;
    } else run.apply(msg.rec);
    return run;
  }

  setSmoothing(weight: number): void {
    this.smoothing = weight;
    for (const run of this.runs.values()) {
      run.loss.setWeight(weight);
      run.throughput.setWeight(weight);
    }
  }

  /** Loss points on the curves of all runs (one per step record, a redone step replacing the old one). */
  lossPoints(): number {
    let n = 0;
    for (const run of this.runs.values()) n += run.loss.length;
    return n;
  }
}
