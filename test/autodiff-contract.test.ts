/**
 * The VJP contract (src/ops/op.ts) as the backward driver enforces it at graph-build time: one entry per
 * input, no needed gradient left out, no cotangent on an output a rule does not handle, and errors that name
 * the ONNX node and its values. Each rule breaks one clause with a deliberately wrong op.
 */
import { describe, expect, it } from "vitest";
import { gradients } from "../src/autodiff/backward.ts";
import type { Value } from "../src/graph/value.ts";
import { G } from "../src/ops/builder.ts";
import { defineOp, one, sameAsInput } from "../src/ops/op.ts";
import { close, gradCheck } from "./helpers/gradcheck.ts";

/** A graph with watched inputs, and the name of the node `f` emits last. */
function build(shapes: number[][], f: (g: G, xs: Value[]) => Value): { g: G; xs: Value[]; y: Value; node: string } {
  const g = new G("contract");
  const xs = shapes.map((s, i) => g.input(`x${i}`, s, "float32"));
  g.record();
  xs.forEach((x) => g.watch(x));
  g.neg(xs[0]); // an op before, so that the failing node is not simply the first
  const y = f(g, xs);
  return { g, xs, y, node: g.nodes[g.nodes.length - 1].name };
}

const errorOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  return "(no error)";
};

describe("the backward driver enforces the VJP contract", () => {
  it("a rule must return exactly one entry per input", () => {
    // Neg with a rule that returns two entries for its one input
    const bad = defineOp({ onnx: "Neg", infer: sameAsInput, vjp: (g, dys) => [g.neg(one(dys)), one(dys)] });
    const { g, xs, y, node } = build([[2, 3]], (g, [x]) => g.apply(bad, [x], {})[0]);
    const msg = errorOf(() => gradients(g, g.reduceSum(y, [0, 1]), xs));
    expect(node).toBe("Neg_1");
    expect(msg).toMatch(/Neg_1 \(Neg -> Neg_\d+\).* returned 2 entries for 1 inputs/);
    expect(msg).not.toContain("\n");
  });

  it("a needed gradient that a rule leaves out is an error, not a silent zero", () => {
    // Mul whose rule only knows d/da
    const bad = defineOp({ onnx: "Mul", infer: (xs) => sameAsInput(xs), vjp: (g, dys, { inputs: [, b] }) => [g.mul(one(dys), b!), undefined] });
    const { g, xs, y, node } = build([[2, 3], [2, 3]], (g, [a, b]) => g.apply(bad, [a, b], {})[0]);
    const msg = errorOf(() => gradients(g, g.reduceSum(y, [0, 1]), xs));
    expect(msg).toContain(`cannot differentiate ${node} (Mul -> `);
    expect(msg).toMatch(/input 1 \(x1\) is needed, but the Mul rule gives none/);
    // the same rule is fine when only a is watched: b's gradient is not needed
    const g2 = new G("fine");
    const [a, b] = [g2.input("a", [2, 3], "float32"), g2.input("b", [2, 3], "float32")];
    g2.record();
    g2.watch(a);
    const y2 = g2.apply(bad, [a, b], {})[0];
    expect(gradients(g2, g2.reduceSum(y2, [0, 1]), [a]).get("a")!.shape).toEqual([2, 3]);
  });

  it("a gradient for an omitted optional input is an error", () => {
    const bad = defineOp({ onnx: "Identity", infer: sameAsInput, vjp: (g, dys) => [one(dys), one(dys)] });
    const { g, xs, y, node } = build([[3]], (g, [x]) => g.apply(bad, [x, undefined], {})[0]);
    expect(errorOf(() => gradients(g, g.reduceSum(y, [0]), xs))).toMatch(new RegExp(`${node} .*gradient for its omitted input 1`));
  });

  it("a cotangent on a secondary output the rule ignores is an error (BatchNorm's batch mean used downstream)", () => {
    // loss = sum(y) + sum(batch mean): the mean's cotangent would be dropped by BatchNormalization's rule
    const { g, xs, y } = build([[4, 3, 2, 2], [3], [3]], (g, [x, gamma, beta]) => {
      const [y, mean] = g.batchNormTrain(x, gamma, beta, 1e-5);
      return g.add(g.reduceSum(y, [0, 1, 2, 3]), g.reduceSum(mean, [0]));
    });
    const bn = g.nodes.find((n) => n.op_type === "BatchNormalization")!;
    const msg = errorOf(() => gradients(g, y, xs));
    expect(msg).toContain(`cannot differentiate ${bn.name} (BatchNormalization -> ${bn.output.join(", ")})`);
    expect(msg).toContain(`its output 1 (${bn.output[1]}) reaches the loss`);
    // using only y is fine
    const ok = build([[4, 3, 2, 2], [3], [3]], (g, [x, gamma, beta]) => g.reduceSum(g.batchNormTrain(x, gamma, beta, 1e-5)[0], [0, 1, 2, 3]));
    expect(gradients(ok.g, ok.y, ok.xs).size).toBe(3);
  });

  it("inputs declared non-differentiable get no gradient and no error (Expand's shape source, watched)", () => {
    const g = new G("like");
    const [x, like] = [g.input("x", [3, 1], "float32"), g.input("like", [2, 3, 4], "float32")];
    g.record();
    g.watch(x);
    g.watch(like);
    const y = g.expandLike(x, like);
    const grads = gradients(g, g.reduceSum(y, [0, 1, 2]), [x, like]);
    expect(grads.get("x")!.shape).toEqual([3, 1]);
    // like's gradient is the driver's zero for a value the loss does not depend on: like * 0
    const dlike = grads.get("like")!;
    const producer = g.nodes.find((n) => n.output.includes(dlike.name))!;
    expect([producer.op_type, producer.input[0]]).toEqual(["Mul", "like"]);
  });
});

describe("a rule that declares several differentiable outputs gets their cotangents", () => {
  // Split along axis 0 into [2, ...] and [2, ...]; d split = concat of the cotangents (zeros where one is unused)
  const split = defineOp({
    onnx: "Split",
    infer: ([x]) => [0, 1].map(() => ({ shape: [2, ...x!.shape.slice(1)], dtype: "float32" as const })),
    emit: (g, [x], _a, outs) => g.node("Split", [x, g.ints([2, 2])], { axis: 0 }, outs),
    differentiableOutputs: [0, 1],
    vjp: (g, dys, { outputs }) => [g.concat(dys.map((d, k) => d ?? g.mul(outputs[k], 0)), 0)],
  });
  it.each([
    ["both halves used", (g: G, [x]: Value[]) => { const [a, b] = g.apply(split, [x], {}); return g.add(g.mul(a, a), g.exp(b)); }],
    ["only the second half used", (g: G, [x]: Value[]) => g.exp(g.apply(split, [x], {})[1])],
  ] as const)("%s", async (_name, f) => {
    const r = await gradCheck([{ shape: [4, 3] }], f, 3);
    expect(r.scale).toBeGreaterThan(1e-2);
    expect(close(r.numeric, r.analytic, undefined, undefined, r.scale), `numeric ${r.numeric} vs analytic ${r.analytic}`).toBe(true);
  });
});
