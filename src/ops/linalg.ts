/** Matrix products. */
import { broadcastShapes, shapeToString } from "../graph/value.ts";
import { defineOp, one, req } from "./op.ts";

export interface GemmAttrs {
  transA: boolean;
  transB: boolean;
}

/** Gemm: Y = op(A) op(B) + C with op(X) = X^T when transX; A, B 2-D, C broadcast to Y. */
export const gemm = defineOp<GemmAttrs>({
  onnx: "Gemm",
  infer: ([a, b, c], { transA, transB }) => {
    const [av, bv] = [req(a, "A"), req(b, "B")];
    const [m, ka] = transA ? [av.shape[1], av.shape[0]] : [av.shape[0], av.shape[1]];
    const [kb, n] = transB ? [bv.shape[1], bv.shape[0]] : [bv.shape[0], bv.shape[1]];
    if (ka !== kb) throw new Error(`Linear expects ${kb} inputs, the previous layer gives ${ka}`);
    const shape = [m, n];
    if (c) broadcastShapes(shape, c.shape);
    return [{ shape, dtype: "float32" }];
  },
  attrs: ({ transA, transB }) => ({ transA: transA ? 1 : undefined, transB: transB ? 1 : undefined }),
  // dA = dY op(B)^T (transposed back if transA); dB = op(A)^T dY (likewise); dC = dY (summed by the driver)
  vjp: (g, dys, { inputs: [a, b, c], attrs: { transA, transB }, needs }) => {
    const dy = one(dys);
    const da = !needs[0] ? undefined : transA ? g.gemm(b!, dy, undefined, { transA: transB, transB: true }) : g.gemm(dy, b!, undefined, { transA: false, transB: !transB });
    const db = !needs[1] ? undefined : transB ? g.gemm(dy, a!, undefined, { transA: true, transB: transA }) : g.gemm(a!, dy, undefined, { transA: !transA, transB: false });
    return [da, db, c && needs[2] ? dy : undefined];
  },
});

/** MatMul with numpy semantics for rank >= 2 (batched over leading dims). */
export const matMul = defineOp({
  onnx: "MatMul",
  infer: ([a, b]) => {
    const [av, bv] = [req(a, "A"), req(b, "B")];
    if (av.shape.length < 2 || bv.shape.length < 2) throw new Error("internal error: MatMul operands must be at least 2-D");
    const [m, k1] = av.shape.slice(-2);
    const [k2, n] = bv.shape.slice(-2);
    if (k1 !== k2) throw new Error(`MatMul: ${shapeToString(av.shape)} x ${shapeToString(bv.shape)} do not fit`);
    return [{ shape: [...broadcastShapes(av.shape.slice(0, -2), bv.shape.slice(0, -2)), m, n], dtype: "float32" }];
  },
  // dA = dY B^T, dB = A^T dY (over the last two axes; broadcast batch axes are summed by the driver)
  vjp: (g, dys, { inputs: [a, b], needs }) => {
    const dy = one(dys);
    const t = (x: typeof dy) => g.transpose(x, [...Array(x.shape.length - 2).keys(), x.shape.length - 1, x.shape.length - 2]);
    return [needs[0] ? g.matMul(dy, t(b!)) : undefined, needs[1] ? g.matMul(t(a!), dy) : undefined];
  },
});
