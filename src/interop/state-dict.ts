/**
 * Weights exchanged with PyTorch by `state_dict` key. A model's parameters and buffers are named like the keys
 * of the equivalent nn.Module (`conv.0.weight`, `conv.1.running_mean`), so matching is by name and shape.
 * BatchNorm's `num_batches_tracked` (an int64 scalar PyTorch keeps per BatchNorm layer) has no place in our
 * state: it is written on export so that `load_state_dict(strict=True)` succeeds, and accepted on import.
 * Browser-safe.
 */
import { floatValues, type SafeTensor, type WritableTensor } from "./safetensors.ts";

export class StateDictError extends Error {
  override name = "StateDictError";
}

/** A named slice of a flat float32 vector, as in `plan.params` / `plan.buffers`. */
export interface Slot {
  name: string;
  shape: number[];
  offset: number;
  size: number;
}

const TRACKED = ".num_batches_tracked";

/** The BatchNorm layers among `buffers`: the prefixes of their `running_mean`. */
function batchNormPrefixes(buffers: readonly Slot[]): string[] {
  return buffers.filter((b) => b.name.endsWith(".running_mean")).map((b) => b.name.slice(0, -".running_mean".length));
}

/**
 * Writes `tensors` into the flat `params` and `buffers` (in place), every key of the model required and no
 * other accepted. Throws one StateDictError that lists every missing, unexpected, mis-shaped and mis-typed
 * key at once, so a user fixes them in one go.
 */
export function applyStateDict(
  plan: { params: readonly Slot[]; buffers: readonly Slot[] },
  params: Float32Array,
  buffers: Float32Array,
  tensors: ReadonlyMap<string, SafeTensor>,
  source: string,
): void {
  const slots = [...plan.params.map((s) => ({ s, flat: params })), ...plan.buffers.map((s) => ({ s, flat: buffers }))];
  const tracked = new Set(batchNormPrefixes(plan.buffers).map((p) => p + TRACKED));
  const known = new Set(slots.map((x) => x.s.name));
  const missing = slots.filter((x) => !tensors.has(x.s.name)).map((x) => x.s.name);
  const unexpected = [...tensors.keys()].filter((k) => !known.has(k) && !tracked.has(k));
  const misShaped: string[] = [];
  const mistyped: string[] = [];
  const values = new Map<string, Float32Array>();
  for (const { s } of slots) {
    const t = tensors.get(s.name);
    if (!t) continue;
    if (t.shape.join(",") !== s.shape.join(",")) {
      misShaped.push(`${s.name} is [${t.shape}], the model needs [${s.shape}]`);
      continue;
    }
    const v = floatValues(t);
    if (!v) mistyped.push(`${s.name} is ${t.dtype}, expected a float type (F32)`);
    else values.set(s.name, v);
  }
  for (const k of tracked) {
    const t = tensors.get(k);
    if (t && !(t.dtype === "I64" || t.dtype === "I32") ) mistyped.push(`${k} is ${t.dtype}, expected I64`);
    if (t && t.shape.length !== 0 && !(t.shape.length === 1 && t.shape[0] === 1)) misShaped.push(`${k} is [${t.shape}], expected a scalar []`);
  }
  const problems = [
    missing.length && `missing keys: ${missing.join(", ")}`,
    unexpected.length && `unexpected keys: ${unexpected.join(", ")}`,
    misShaped.length && `wrong shapes: ${misShaped.join("; ")}`,
    mistyped.length && `wrong dtypes: ${mistyped.join("; ")}`,
  ].filter(Boolean);
  if (problems.length) {
    throw new StateDictError(`${source} does not fit the model (${slots.length} tensors named like PyTorch's state_dict): ${problems.join("; ")}`);
  }
  for (const { s, flat } of slots) flat.set(values.get(s.name)!, s.offset);
}

/**
 * The state_dict of a model as safetensors tensors: every parameter and buffer, float32, plus an int64 scalar
 * `num_batches_tracked` per BatchNorm layer (`steps`: the optimizer steps taken, which is what PyTorch counts
 * when every forward pass in training mode is one step).
 */
export function stateDictTensors(
  plan: { params: readonly Slot[]; buffers: readonly Slot[] },
  params: Float32Array,
  buffers: Float32Array,
  steps: number,
): Map<string, WritableTensor> {
  const out = new Map<string, WritableTensor>();
  for (const s of plan.params) out.set(s.name, { dtype: "F32", shape: s.shape, data: params.slice(s.offset, s.offset + s.size) });
  for (const s of plan.buffers) out.set(s.name, { dtype: "F32", shape: s.shape, data: buffers.slice(s.offset, s.offset + s.size) });
  for (const p of batchNormPrefixes(plan.buffers)) out.set(p + TRACKED, { dtype: "I64", shape: [], data: BigInt64Array.of(BigInt(steps)) });
  return out;
}
