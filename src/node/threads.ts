/**
 * Node-only: `--threads auto`, the intra-op thread count for training chosen from how busy the machine is now.
 *
 * onnxruntime's intra-op threads spin and meet at a barrier after every parallel kernel, so a thread whose core
 * is taken by another process holds up all the others: measured on 2 cores, 1 thread is 1.28x slower than 2 on a
 * calm machine but about 2x faster under heavy contention. So: one thread per core that is idle now, at least
 * one. "Now" is measured, not read from the load average: the 1-minute load average lags a job that has just
 * started (or ended) by tens of seconds, while two samples of the cores' idle time 300 ms apart do not.
 */
import { availableParallelism, cpus } from "node:os";

export interface ThreadChoice {
  threads: number;
  cores: number;
  /** Idle cores measured just before choosing (0..cores). */
  idle: number;
}

function idleAndTotal(): { idle: number; total: number }[] {
  return cpus().map(({ times }) => ({ idle: times.idle, total: times.user + times.nice + times.sys + times.irq + times.idle }));
}

/** Idle cores over the next `ms` milliseconds: sum over cores of the fraction of the time each was idle. */
export async function idleCores(ms = 300): Promise<number> {
  const a = idleAndTotal();
  await new Promise((r) => setTimeout(r, ms));
  const b = idleAndTotal();
  let idle = 0;
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const dt = b[i].total - a[i].total;
    if (dt > 0) idle += Math.min(1, Math.max(0, (b[i].idle - a[i].idle) / dt));
  }
  return idle;
}

/** Threads for a given number of idle cores: one per core that is at least ~60 % idle, at least 1. */
export function threadsForIdle(idle: number, cores: number): number {
  return Math.max(1, Math.min(cores, Math.floor(idle + 0.4)));
}

export async function chooseThreads(): Promise<ThreadChoice> {
  const cores = availableParallelism();
  // Some containers report no per-core times (cpus() empty): then all cores, as onnxruntime's own default.
  if (cpus().length === 0) return { threads: cores, cores, idle: cores };
  const idle = await idleCores();
  return { threads: threadsForIdle(idle, cores), cores, idle };
}
