/** Model specs: the JSON format (schema/model-spec.schema.json), its validation, and the built-in models. */
import Ajv from "ajv";
import schema from "../../schema/model-spec.schema.json" with { type: "json" };
import mycnn from "./models/mycnn.json" with { type: "json" };
import lenet5 from "./models/lenet5.json" with { type: "json" };

export type LayerSpec =
  | { type: "conv2d"; name?: string; in_channels?: number; out_channels: number; kernel_size: number; stride?: number; padding?: number; bias?: boolean }
  | { type: "batchnorm2d"; name?: string; num_features?: number; eps?: number; momentum?: number }
  | { type: "relu" | "tanh" | "sigmoid" | "flatten"; name?: string }
  | { type: "leaky_relu"; name?: string; negative_slope?: number }
  | { type: "dropout"; name?: string; p?: number }
  | { type: "maxpool2d" | "avgpool2d"; name?: string; kernel_size: number; stride?: number; padding?: number }
  | { type: "linear"; name?: string; in_features?: number; out_features: number; bias?: boolean };

export interface ModelSpec {
  name?: string;
  description?: string;
  input?: number[];
  classes?: number;
  layers: LayerSpec[];
}

export class SpecError extends Error {
  override name = "SpecError";
}

export const builtinModels: Record<string, ModelSpec> = { mycnn: mycnn as unknown as ModelSpec, lenet5: lenet5 as unknown as ModelSpec };

const ajv = new Ajv({ allErrors: false, strict: false });
const validate = ajv.compile(schema);

/** Checks a parsed spec against the JSON schema; the error says where (`/layers/3/kernel_size`) and what. */
export function validateSpec(spec: unknown, source: string): ModelSpec {
  if (validate(spec)) return spec as unknown as ModelSpec;
  const e = validate.errors![0];
  const where = e.instancePath || "(top level)";
  const extra =
    e.keyword === "additionalProperties"
      ? ` '${(e.params as { additionalProperty: string }).additionalProperty}'`
      : e.keyword === "enum"
        ? `: ${(e.params as { allowedValues: unknown[] }).allowedValues.join(", ")}`
        : "";
  throw new SpecError(`${source}: ${where} ${e.message}${extra} (see schema/model-spec.schema.json)`);
}

/** A built-in model by name. */
export function builtinSpec(name: string): ModelSpec {
  const spec = builtinModels[name];
  if (!spec) throw new SpecError(`unknown model '${name}': use one of ${Object.keys(builtinModels).join(", ")}, or a path to a spec .json file`);
  return structuredClone(spec);
}
