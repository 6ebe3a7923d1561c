/**
 * Optimizers emitted as graph: (params, grads, state, step, lr) -> (params', state'). Parameters, gradients and
 * each state tensor are single flat vectors, so one update is a handful of nodes whatever the model.
 * Formulas are PyTorch's (torch.optim.Adam / AdamW / SGD, non-amsgrad, non-foreach semantics).
 */
import type { Value } from "../graph/value.ts";
import type { G } from "../ops/builder.ts";

export type OptimizerConfig =
  | { type: "adam" | "adamw"; lr: number; betas: [number, number]; eps: number; weightDecay: number }
  | { type: "sgd"; lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number };

export const optimizerNames = ["adam", "adamw", "sgd"] as const;
export type OptimizerName = (typeof optimizerNames)[number];

/** PyTorch's defaults, with the given overrides (AdamW's default weight decay is 0.01, the others 0). */
export function optimizerConfig(type: OptimizerName, o: { lr?: number; betas?: [number, number]; eps?: number; weightDecay?: number; momentum?: number; nesterov?: boolean } = {}): OptimizerConfig {
  if (type === "sgd") {
    const momentum = o.momentum ?? 0;
    if (o.nesterov && momentum <= 0) throw new Error("Nesterov momentum requires a momentum > 0");
    return { type, lr: o.lr ?? 0.01, momentum, dampening: 0, nesterov: o.nesterov ?? false, weightDecay: o.weightDecay ?? 0 };
  }
  return { type, lr: o.lr ?? 1e-3, betas: o.betas ?? [0.9, 0.999], eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? (type === "adamw" ? 1e-2 : 0) };
}

/** Names of the flat state vectors, each the size of the parameter vector. */
export function optimizerState(c: OptimizerConfig): string[] {
  if (c.type === "sgd") return c.momentum > 0 ? ["sgd.momentum"] : [];
  return [`${c.type}.m`, `${c.type}.v`];
}

export interface UpdateInputs {
  params: Value;
  grads: Value;
  state: Value[];
  /** The step number t of this update (1 for the first), float32 scalar. */
  t: Value;
  lr: Value;
}

export function emitUpdate(g: G, c: OptimizerConfig, { params: p, grads, state, t, lr }: UpdateInputs): { params: Value; state: Value[] } {
  if (c.type === "sgd") {
    // g <- grad + wd p;  b <- mu b + (1 - dampening) g  (b = g at t = 1, which is the same with b0 = 0 and dampening 0);
    // update = g + mu b (Nesterov) or b;  p <- p - lr update
    const gr = c.weightDecay ? g.add(grads, g.mul(p, c.weightDecay)) : grads;
    if (c.momentum <= 0) return { params: g.sub(p, g.mul(gr, lr)), state: [] };
    const b = g.add(g.mul(state[0], c.momentum), c.dampening ? g.mul(gr, 1 - c.dampening) : gr);
    const update = c.nesterov ? g.add(gr, g.mul(b, c.momentum)) : b;
    return { params: g.sub(p, g.mul(update, lr)), state: [b] };
  }
  const [b1, b2] = c.betas;
  // AdamW decays the weights directly (p <- p (1 - lr wd)); Adam adds wd p to the gradient (L2).
  const p0 = c.type === "adamw" && c.weightDecay ? g.mul(p, g.sub(1, g.mul(lr, c.weightDecay))) : p;
  const gr = c.type === "adam" && c.weightDecay ? g.add(grads, g.mul(p, c.weightDecay)) : grads;
  // m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
  const m = g.add(g.mul(state[0], b1), g.mul(gr, 1 - b1));
  const v = g.add(g.mul(state[1], b2), g.mul(g.mul(gr, gr), 1 - b2));
  // p <- p - (lr / (1 - b1^t)) m / (sqrt(v) / sqrt(1 - b2^t) + eps)   (eps outside the bias correction, as PyTorch)
  // The scalar bias corrections are computed in float64, as PyTorch does in Python: in float32, 1 - 0.999^t
  // would carry beta2's rounding error (1e-5 relative) into every step.
  const t64 = g.cast(t, "float64");
  const bc1 = g.sub(1, g.pow(g.scalar(b1, "float64"), t64));
  const bc2sqrt = g.sqrt(g.sub(1, g.pow(g.scalar(b2, "float64"), t64)));
  const stepSize = g.cast(g.div(g.cast(lr, "float64"), bc1), "float32");
  const denom = g.add(g.div(g.sqrt(v), g.cast(bc2sqrt, "float32")), c.eps);
  return { params: g.sub(p0, g.mul(g.div(m, denom), stepSize)), state: [m, v] };
}
