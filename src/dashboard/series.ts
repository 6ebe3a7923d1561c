/**
 * A growing (x, y) series with its smoothed curve kept up to date point by point, and min/max decimation so
 * that a chart of 20,000+ points draws a handful per pixel column and still shows every spike. Browser-safe.
 */

/**
 * TensorBoard's debiased exponential moving average, one point at a time:
 *   m_n = w m_{n-1} + (1 - w) y_n,  m_0 = 0;   s_n = m_n / (1 - w^n)
 * Dividing by 1 - w^n (the total weight given so far) removes the pull towards the zero start, so s_1 = y_1.
 * Non-finite values (a diverged loss) pass through unsmoothed and do not enter the average.
 */
export class Ema {
  private m = 0;
  private n = 0;
  constructor(readonly weight: number) {
    if (!(weight >= 0 && weight < 1)) throw new RangeError(`smoothing weight must be in [0, 1), got ${weight}`);
  }
  next(y: number): number {
    if (!Number.isFinite(y)) return y;
    this.m = this.weight * this.m + (1 - this.weight) * y;
    this.n++;
    return this.m / (1 - this.weight ** this.n);
  }
}

export class Series {
  x = new Float64Array(256);
  y = new Float64Array(256);
  smooth = new Float64Array(256);
  length = 0;
  private ema: Ema;

  constructor(private weight = 0.9) {
    this.ema = new Ema(weight);
  }

  push(x: number, y: number): void {
    if (this.length === this.x.length) {
      this.x = grow(this.x);
      this.y = grow(this.y);
      this.smooth = grow(this.smooth);
    }
    this.x[this.length] = x;
    this.y[this.length] = y;
    this.smooth[this.length] = this.ema.next(y);
    this.length++;
  }

  /** Changes the smoothing weight and recomputes the smoothed curve (O(n), on a slider move). */
  setWeight(weight: number): void {
    this.weight = weight;
    this.ema = new Ema(weight);
    for (let i = 0; i < this.length; i++) this.smooth[i] = this.ema.next(this.y[i]);
  }

  /** Drops the points with x >= `from` (a resumed run redoing steps replaces them). */
  truncateFrom(from: number): void {
    const keep = lowerBound(this.x, this.length, from);
    if (keep === this.length) return;
    this.length = keep;
    this.setWeight(this.weight);
  }

  get smoothingWeight(): number {
    return this.weight;
  }

  last(): number | undefined {
    return this.length ? this.y[this.length - 1] : undefined;
  }
}

function grow(a: Float64Array): Float64Array<ArrayBuffer> {
  const b = new Float64Array(a.length * 2);
  b.set(a);
  return b;
}

/**
 * Which points to draw: for x sorted ascending, split the x range [lo, hi] into `buckets` equal columns and keep,
 * per column, the points with the smallest and the largest y (in x order), plus the first and last point of the
 * range and one neighbour on each side of it (so the line runs on to the plot's edges when zoomed in). With
 * buckets = the chart's width in pixels, what is drawn looks the same as drawing every point.
 * Returns indices into x, ascending, at most 2 * buckets + 4 of them.
 */
export function decimate(x: ArrayLike<number>, y: ArrayLike<number>, length: number, buckets: number, lo = -Infinity, hi = Infinity): number[] {
  let first = lowerBound(x, length, lo);
  let end = upperBound(x, length, hi); // exclusive
  if (first >= end) return [];
  const out: number[] = [];
  if (first > 0) out.push(first - 1);
  if (end - first <= 2 * buckets) {
    for (let i = first; i < end; i++) out.push(i);
  } else {
    const x0 = x[first];
    const span = x[end - 1] - x0 || 1;
    let i = first;
    for (let b = 0; b < buckets && i < end; b++) {
      const limit = x0 + (span * (b + 1)) / buckets;
      let min = -1;
      let max = -1;
      const start = i;
      for (; i < end && (x[i] <= limit || b === buckets - 1); i++) {
        const v = y[i];
        if (!Number.isFinite(v)) continue;
        if (min < 0 || v < y[min]) min = i;
        if (max < 0 || v > y[max]) max = i;
      }
      if (b === 0) out.push(start);
      if (min < 0) continue;
      if (min === max) out.push(min);
      else out.push(Math.min(min, max), Math.max(min, max));
    }
    out.push(end - 1);
  }
  if (end < length) out.push(end);
  // The column picks may repeat the first/last point: keep indices strictly ascending.
  return out.filter((v, k) => k === 0 || v > out[k - 1]);
}

function lowerBound(x: ArrayLike<number>, n: number, v: number): number {
  let a = 0;
  let b = n;
  while (a < b) {
    const m = (a + b) >> 1;
    if (x[m] < v) a = m + 1;
    else b = m;
  }
  return a;
}

function upperBound(x: ArrayLike<number>, n: number, v: number): number {
  let a = 0;
  let b = n;
  while (a < b) {
    const m = (a + b) >> 1;
    if (x[m] <= v) a = m + 1;
    else b = m;
  }
  return a;
}
