/**
 * Graph passes over the model IR that make the emitted graphs faster without changing what they compute. Each
 * rewrite checks that the value it moves has a single consumer, so no other reader sees a different value.
 *
 * - Activation before MaxPool: a non-decreasing activation commutes with max-pooling (the max of f(x) is
 *   f(max x), with the same argmax and ties; padding counts as -inf either way), so Act -> MaxPool is replayed
 *   as MaxPool -> Act: same numbers, the activation and its gradient touch a quarter of the data.
 * - Conv bias before a training-mode BatchNorm: recorded here, applied by the Conv and BatchNormalization
 *   replay rules (see replay.ts).
 */
import type { IrNode, ModelIR } from "./ir.ts";

export interface Analysis {
  /** The nodes in replay order (after the activation/MaxPool swap). */
  order: IrNode[];
  /** Conv node name -> the BatchNormalization node that is its output's only consumer. */
  foldBiasInto: Map<string, string>;
}

/** Consumers of each value (graph outputs count as consumers). */
function consumers(nodes: IrNode[], outputs: string[]): Map<string, number> {
  const count = new Map<string, number>();
  const use = (n: string) => n && count.set(n, (count.get(n) ?? 0) + 1);
  for (const node of nodes) node.inputs.forEach(use);
  outputs.forEach(use);
  return count;
}

function isMonotone(node: IrNode): boolean {
  switch (node.op) {
    case "Relu":
    case "Tanh":
    case "Sigmoid":
    case "Elu":
    case "HardSigmoid":
      return node.op !== "HardSigmoid" || (typeof node.attrs.alpha !== "number" || node.attrs.alpha >= 0);
    case "LeakyRelu":
      return typeof node.attrs.alpha !== "number" || node.attrs.alpha >= 0;
    case "Clip":
      return true;
    default:
      return false;
  }
}

export function analyze(ir: ModelIR): Analysis {
  const outputs = [ir.output.name, ir.scores];
  const uses = consumers(ir.nodes, outputs);
  const producer = new Map<string, IrNode>();
  for (const n of ir.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  const single = (v: string) => uses.get(v) === 1;

  // Act -> MaxPool with the activation's output read by that MaxPool alone, and MaxPool's Indices unused.
  const order: IrNode[] = [];
  for (let i = 0; i < ir.nodes.length; i++) {
    const act = ir.nodes[i];
    const pool = ir.nodes[i + 1];
    if (
      pool?.op === "MaxPool" &&
      isMonotone(act) &&
      pool.inputs[0] === act.outputs[0] &&
      single(act.outputs[0]) &&
      !(pool.outputs[1] && uses.get(pool.outputs[1]))
    ) {
      // MaxPool now reads the activation's input and writes the activation's old output name; the activation
      // reads that and writes MaxPool's output, so every later reader is unchanged.
      order.push({ ...pool, inputs: [act.inputs[0]], outputs: [act.outputs[0]] });
      order.push({ ...act, inputs: [act.outputs[0], ...act.inputs.slice(1)], outputs: [pool.outputs[0]] });
      i++;
      continue;
    }
    order.push(act);
  }

  const foldBiasInto = new Map<string, string>();
  for (const bn of order) {
    if (bn.op !== "BatchNormalization") continue;
    const conv = producer.get(bn.inputs[0]);
    if (conv?.op === "Conv" && conv.inputs[2] && single(bn.inputs[0])) foldBiasInto.set(conv.name, bn.name);
  }
  return { order, foldBiasInto };
}
