/**
 * The model plan: what the runtime needs to know about a model IR (the flat layout of parameters and buffers,
 * input and class counts, a per-node summary), checked by replaying the IR once on a scratch graph, so every
 * shape error surfaces before any state is allocated or any session created.
 */
import { G } from "../ops/builder.ts";
import { isStatic, shapeToString, type Dim } from "../graph/value.ts";
import { Rng } from "../random.ts";
import { ModelError, type ModelIR, type TensorSpec } from "./ir.ts";
import { replay, type ReplayResult } from "./replay.ts";

export interface LayerSummary {
  name: string;
  type: string;
  output_shape: Dim[];
  params: number;
}

export interface ModelPlan {
  name: string;
  ir: ModelIR;
  /** One image's dims as the model takes them, e.g. [1, 28, 28] or [784]. */
  inputShape: number[];
  classes: number;
  params: TensorSpec[];
  buffers: TensorSpec[];
  paramCount: number;
  bufferCount: number;
  layers: LayerSummary[];
}

/**
 * The IR replayed once on a scratch graph, parameters and buffers as inputs of their shapes: every value's
 * shape, and the first shape error if there is one.
 */
export function shapesOf(ir: ModelIR): ReplayResult {
  const g = new G("shapes");
  const x = g.input(ir.input.name, ir.input.shape, "float32");
  const asInput = (list: TensorSpec[]) => (name: string) => {
    const t = list.find((p) => p.name === name)!;
    return g.input(t.name, t.shape, "float32");
  };
  return replay(g, ir, "inference", x, {
    param: asInput(ir.params),
    buffer: asInput(ir.buffers),
    constant: (c) => g.initializer(c.name, c.shape, c.dtype, c.data),
  });
}

/** Checks the IR's shapes end to end and lays out its state. */
export function planModel(ir: ModelIR): ModelPlan {
  const [batch, ...inputShape] = ir.input.shape;
  if (typeof batch === "number" || !isStatic(inputShape))
    throw new ModelError(`the model input ${ir.input.name} ${shapeToString(ir.input.shape)} must have a dynamic batch and static image dims`);
  const { scores, values } = shapesOf(ir);
  if (scores.shape.length !== 2 || scores.shape[1] !== ir.classes)
    throw new ModelError(`the class scores ${ir.scores} are ${shapeToString(scores.shape)}, expected [N, ${ir.classes}]`);
  const sizes = new Map([...ir.params, ...ir.buffers].map((t) => [t.name, t.size]));
  const paramNames = new Set(ir.params.map((p) => p.name));
  const specTypes = ir.source.kind === "spec" ? new Map(ir.source.spec.layers.map((l, i) => [l.name ?? String(i), l.type as string])) : undefined;
  const layers = ir.nodes.map((n) => ({
    name: n.name,
    type: specTypes?.get(n.name) ?? n.op,
    output_shape: (values.get(n.outputs[0])?.shape ?? []).slice(1),
    params: n.inputs.filter((i) => paramNames.has(i)).reduce((a, i) => a + sizes.get(i)!, 0),
  }));
  return {
    name: ir.name,
    ir,
    inputShape: inputShape as number[],
    classes: ir.classes,
    params: ir.params,
    buffers: ir.buffers,
    paramCount: ir.params.reduce((a, p) => a + p.size, 0),
    bufferCount: ir.buffers.reduce((a, p) => a + p.size, 0),
    layers,
  };
}

/** Initial values in parameter order: PyTorch's defaults drawn from `seed`, or an imported model's own. */
export function initialValues(plan: ModelPlan, seed: number): { params: Float32Array; buffers: Float32Array } {
  const rng = new Rng(seed);
  const fill = (list: TensorSpec[], total: number) => {
    const out = new Float32Array(total);
    for (const t of list) {
      const view = out.subarray(t.offset, t.offset + t.size);
      if (t.init.kind === "fill") view.fill(t.init.value);
      else if (t.init.kind === "data") view.set(t.init.data);
      else for (let i = 0; i < view.length; i++) view[i] = rng.uniform(-t.init.bound, t.init.bound);
    }
    return out;
  };
  return { params: fill(plan.params, plan.paramCount), buffers: fill(plan.buffers, plan.bufferCount) };
}
