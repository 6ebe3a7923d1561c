/**
 * Size limits, checked on a model plan's shapes before any weights, graphs or sessions are allocated: a spec
 * can ask for any size, and without this a 100,000-channel conv allocates gigabytes before anything refuses
 * (or ends in "Invalid typed array length"). Browser-safe.
 *
 * Documented limits (README, "Models"):
 *   parameters                      at most 20,000,000 (80 MB; training keeps about six copies: weights,
 *                                   gradients, optimizer moments, and the step's input and output sets)
 *   activations per image           at most 4,000,000 values summed over the layers' outputs (16 MB)
 *   activations per batch           batch size x activations per image x 4 bytes at most 2 GiB (the training
 *                                   step keeps every layer's output for the backward pass, and as much again
 *                                   for gradients)
 */
import type { ModelPlan } from "../ir/plan.ts";

export const LIMITS = {
  parameters: 20_000_000,
  activationsPerImage: 4_000_000,
  activationBytesPerBatch: 2 * 2 ** 30,
} as const;

export class LimitError extends Error {
  override name = "LimitError";
}

const fmt = (n: number) => n.toLocaleString("en-US");

/** Values per image in each layer's output (symbolic dimensions count as 1), and their sum with the input's. */
export function activationSizes(plan: Pick<ModelPlan, "inputShape" | "layers">): { perLayer: number[]; total: number } {
  const perLayer = plan.layers.map((l) => l.output_shape.reduce<number>((a, d) => a * (typeof d === "number" ? d : 1), 1));
  const total = perLayer.reduce((a, b) => a + b, plan.inputShape.reduce((a, b) => a * b, 1));
  return { perLayer, total };
}

/**
 * Refuses a plan (and, given one, a batch size) past the limits above, naming the layer and the numbers.
 * Call it with the plan alone where no batch size is known yet (build-graph), with both before training.
 */
export function checkLimits(plan: Pick<ModelPlan, "name" | "inputShape" | "layers" | "paramCount">, batchSize?: number): void {
  const layer = (i: number) => `layer ${plan.layers[i].name} (${plan.layers[i].type})`;
  if (plan.paramCount > LIMITS.parameters) {
    const biggest = argmax(plan.layers.map((l) => l.params));
    throw new LimitError(
      `model ${plan.name} has ${fmt(plan.paramCount)} parameters, more than the limit of ${fmt(LIMITS.parameters)}; ` +
        `the largest is ${layer(biggest)} with ${fmt(plan.layers[biggest].params)}: make it smaller`,
    );
  }
  const { perLayer, total } = activationSizes(plan);
  const big = argmax(perLayer);
  const shape = (i: number) => `[${plan.layers[i].output_shape.join(", ")}]`;
  if (total > LIMITS.activationsPerImage)
    throw new LimitError(
      `model ${plan.name} computes ${fmt(total)} activation values per image, more than the limit of ${fmt(LIMITS.activationsPerImage)}; ` +
        `the largest output is ${layer(big)}: ${shape(big)} = ${fmt(perLayer[big])} values: use fewer channels, less padding or an earlier pooling layer`,
    );
  if (batchSize === undefined) return;
  const bytes = batchSize * total * 4;
  if (bytes > LIMITS.activationBytesPerBatch) {
    const most = Math.floor(LIMITS.activationBytesPerBatch / (total * 4));
    throw new LimitError(
      `--batch-size ${fmt(batchSize)} needs ${(bytes / 2 ** 30).toFixed(1)} GiB of activations for model ${plan.name} ` +
        `(${fmt(total)} values per image, the largest ${layer(big)} ${shape(big)}), more than the limit of 2 GiB; use --batch-size ${fmt(most)} or less`,
    );
  }
}

function argmax(xs: number[]): number {
  let best = 0;
  for (let i = 1; i < xs.length; i++) if (xs[i] > xs[best]) best = i;
  return best;
}
