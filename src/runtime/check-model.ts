/**
 * The inference contract every model.onnx that onnx-mnist writes keeps: one input `input` float32
 * [N, 1, 28, 28] and an output `logits` float32 [N, 10], N dynamic. `eval`, `predict` and the page accept more
 * (any single-input classifier, through src/interop/adapter.ts); this strict check is for scripts and tests
 * that rely on our own export's names.
 * Browser-safe: takes anything shaped like an onnxruntime (node or web) InferenceSession. The metadata fields
 * exist from onnxruntime 1.21; without them only the names are checked. An unknown dimension is reported as
 * "" and an unknown shape as [], so those pass: the run itself will tell.
 */

export class ModelError extends Error {
  override name = "ModelError";
}

export interface SessionLike {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  readonly inputMetadata?: readonly ValueMetadataLike[];
  readonly outputMetadata?: readonly ValueMetadataLike[];
}

export interface ValueMetadataLike {
  readonly name: string;
  readonly isTensor: boolean;
  readonly type?: string;
  readonly shape?: ReadonlyArray<number | string>;
}

const CONTRACT = "onnx-mnist models take `input` float32 [N,1,28,28] and give `logits` float32 [N,10]";

/** Throws ModelError naming what the model has when it does not keep the contract. `name` is e.g. the path. */
export function checkMnistModel(session: SessionLike, name: string): void {
  const has = () => `inputs ${describe(session.inputNames, session.inputMetadata)}, outputs ${describe(session.outputNames, session.outputMetadata)}`;
  if (session.inputNames.length !== 1 || session.inputNames[0] !== "input") {
    throw new ModelError(`${name}: has ${has()}; ${CONTRACT}`);
  }
  if (!session.outputNames.includes("logits")) {
    throw new ModelError(`${name}: has no output \`logits\` (${has()}); ${CONTRACT}`);
  }
  const input = session.inputMetadata?.find((m) => m.name === "input");
  const logits = session.outputMetadata?.find((m) => m.name === "logits");
  const problem = (input && mismatch(input, [1, 28, 28])) ?? (logits && mismatch(logits, [10]));
  if (problem) throw new ModelError(`${name}: ${problem} (${has()}); ${CONTRACT}`);
}

/** What is wrong with a value that should be float32 [N, ...rest], or undefined. */
function mismatch(m: ValueMetadataLike, rest: number[]): string | undefined {
  if (!m.isTensor) return `\`${m.name}\` is not a tensor`;
  if (m.type !== undefined && m.type !== "float32") return `\`${m.name}\` is ${m.type}, not float32`;
  const shape = m.shape ?? [];
  if (shape.length === 0) return undefined;
  const want = `[N,${rest.join(",")}]`;
  if (shape.length !== rest.length + 1) return `\`${m.name}\` has shape ${shapeText(shape)}, not ${want}`;
  if (typeof shape[0] === "number") return `\`${m.name}\` has a fixed batch size ${shape[0]} (shape ${shapeText(shape)}); export it with a dynamic first dimension ${want}`;
  for (let i = 0; i < rest.length; i++) {
    const d = shape[i + 1];
    if (typeof d === "number" && d !== rest[i]) return `\`${m.name}\` has shape ${shapeText(shape)}, not ${want}`;
  }
  return undefined;
}

function describe(names: readonly string[], meta: readonly ValueMetadataLike[] | undefined): string {
  if (names.length === 0) return "(none)";
  return names
    .map((n) => {
      const m = meta?.find((x) => x.name === n);
      if (!m) return n;
      if (!m.isTensor) return `${n} (not a tensor)`;
      return `${n} ${m.type ?? "?"} ${m.shape && m.shape.length ? shapeText(m.shape) : "[?]"}`;
    })
    .join(", ");
}

function shapeText(shape: ReadonlyArray<number | string>): string {
  return `[${shape.map((d) => (d === "" ? "?" : d)).join(",")}]`;
}
