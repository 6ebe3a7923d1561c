/** Matrix products. */
import { broadcastShapes, shapeToString } from "../graph/value.ts";
import { defineOp, one, req } from "./op.ts";

export interface GemmAttrs {
  transA: boolean;
  transB: boolean;
  /** Default 1. */
  alpha?: number;
  /** Default 1. */
  beta?: number;
}

/** Gemm: Y = alpha op(A) op(B) + beta C with op(X) = X^T when transX; A, B 2-D, C broadcast to Y. */
export const gemm = defineOp<GemmAttrs>({
  onnx: "Gemm",
  infer: ([a, b, c], { transA, transB }) => {
    const [av, bv] = [req(a, "A"), req(b, "B")];
    if (av.shape.length !== 2 || bv.shape.length !== 2) throw new Error(`Gemm expects 2-D A and B, got ${shapeToString(av.shape)} and ${shapeToString(bv.shape)}`);
    const [m, ka] = transA ? [av.shape[1], av.shape[0]] : [av.shape[0], av.shape[1]];
    const [kb, n] = transB ? [bv.shape[1], bv.shape[0]] : [bv.shape[0], bv.shape[1]];
    if (ka !== kb) throw new Error(`Linear expects ${kb} inputs, the previous layer gives ${ka}`);
    const shape = [m, n];
    if (c) broadcastShapes(shape, c.shape);
    return [{ shape, dtype: "float32" }];
  },
  // alpha and beta only when they are not 1, so that existing graphs keep their bytes
  attrs: ({ transA, transB, alpha, beta }) => ({
    alpha: alpha !== undefined && alpha !== 1 ? { float: alpha } : undefined,
    beta: beta !== undefined && beta !== 1 ? { float: beta } : undefined,
    transA: transA ? 1 : undefined,
    transB: transB ? 1 : undefined,
  }),
  // dA = alpha dY op(B)^T (transposed back if transA); dB = alpha op(A)^T dY (likewise); dC = beta dY (summed by the driver)
  vjp: (g, dys, { inputs: [a, b, c], attrs: { transA, transB, alpha, beta }, needs }) => {
    const dy = one(dys);
    const da = !needs[0]
      ? undefined
      : transA
        ? g.gemm(b!, dy, undefined, { transA: transB, transB: true, alpha })
        : g.gemm(dy, b!, undefined, { transA: false, transB: !transB, alpha });
    const db = !needs[1]
      ? undefined
      : transB
        ? g.gemm(dy, a!, undefined, { transA: true, transB: transA, alpha })
        : g.gemm(a!, dy, undefined, { transA: !transA, transB: false, alpha });
    const dc = c && needs[2] ? (beta !== undefined && beta !== 1 ? g.mul(dy, beta) : dy) : undefined;
    return [da, db, dc];
  },
});

/** MatMul with numpy semantics for rank >= 2 (batched over leading dims). */
export const matMul = defineOp({
  onnx: "MatMul",
  infer: ([a, b]) => {
    const [av, bv] = [req(a, "A"), req(b, "B")];
    if (av.shape.length < 2 || bv.shape.length < 2)
      throw new Error(`MatMul of ${shapeToString(av.shape)} and ${shapeToString(bv.shape)}: only operands of rank 2 or more are supported`);
    const [m, k1] = av.shape.slice(-2);
    const [k2, n] = bv.shape.slice(-2);
    if (k1 !== k2) throw new Error(`MatMul: ${shapeToString(av.shape)} x ${shapeToString(bv.shape)} do not fit`);
    return [{ shape: [...broadcastShapes(av.shape.slice(0, -2), bv.shape.slice(0, -2)), m, n], dtype: "float32" }];
  },
  // dA = dY B^T, dB = A^T dY over the last two axes; batch axes along which an operand was broadcast
  // ([N,K]@[B,K,M], [2,1,N,K]@[3,K,M]) are summed back to its shape by the driver
  vjp: (g, dys, { inputs: [a, b], needs }) => {
    const dy = one(dys);
    const t = (x: typeof dy) => g.transpose(x, [...Array(x.shape.length - 2).keys(), x.shape.length - 1, x.shape.length - 2]);
    return [needs[0] ? g.matMul(dy, t(b!)) : undefined, needs[1] ? g.matMul(t(a!), dy) : undefined];
  },
});
