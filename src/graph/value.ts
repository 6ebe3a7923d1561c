/** A symbolic tensor in a graph under construction: a name, a static-or-symbolic shape and a dtype. */
export type DType = "float32" | "float64" | "int64" | "bool";
/** A dimension: a number when known, a name (like "N") when it is only known at run time. */
export type Dim = number | string;
export type Shape = readonly Dim[];

export interface Value {
  readonly name: string;
  readonly shape: Shape;
  readonly dtype: DType;
}

export function shapeToString(s: Shape): string {
  return `[${s.join(", ")}]`;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function isStatic(s: Shape): s is readonly number[] {
  return s.every((d) => typeof d === "number");
}

export function numel(s: Shape): number {
  if (!isStatic(s)) throw new Error(`internal error: shape ${shapeToString(s)} is not static`);
  return s.reduce((a, b) => a * b, 1);
}

/** Numpy-style broadcasting of two shapes; symbolic dims broadcast only with 1 or themselves. */
export function broadcastShapes(a: Shape, b: Shape): Dim[] {
  const n = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < n; i++) {
    const da = i < n - a.length ? 1 : a[i - (n - a.length)];
    const db = i < n - b.length ? 1 : b[i - (n - b.length)];
    if (da === db || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else throw new Error(`shapes ${shapeToString(a)} and ${shapeToString(b)} do not broadcast`);
  }
  return out;
}
