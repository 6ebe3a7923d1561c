/**
 * Learning-rate schedules, evaluated per optimizer step (the training graph takes `lr` as an input).
 * cosine: PyTorch's CosineAnnealingLR stepped every batch, T_max = all steps of the run, eta_min = 0:
 *   lr(t) = lr0 (1 + cos(pi t / T)) / 2,   t = 0 .. T-1 the index of the step about to run.
 */
export const lrSchedules = ["constant", "cosine"] as const;
export type LrSchedule = (typeof lrSchedules)[number];

export function lrAt(schedule: LrSchedule, lr0: number, t: number, total: number): number {
  if (schedule === "constant") return lr0;
  return (lr0 * (1 + Math.cos((Math.PI * Math.min(t, total)) / total))) / 2;
}
