/**
 * The few ModelProto facts the web demo shows (ir_version, producer, opset_import, and a parameter count from
 * the float initializers' dims), read with the project's own ONNX decoder (proto.ts), and a clear reason when
 * the bytes are not an ONNX model at all. Browser-safe.
 */
import { decodeModel, toNumber } from "./proto.ts";

export interface ModelSummary {
  irVersion: number;
  producer: string;
  /** opset_import, e.g. [{domain: "", version: 17}] ("" is the default ai.onnx domain). */
  opsets: { domain: string; version: number }[];
  /** Number of floating-point initializer elements: the trained parameters (and float constants). */
  parameters: number;
  initializers: number;
}

/** Thrown when the bytes cannot be an ONNX ModelProto. The message says why. */
export class NotOnnxError extends Error {
  override name = "NotOnnxError";
}

// TensorProto.DataType: FLOAT 1, FLOAT16 10, DOUBLE 11, BFLOAT16 16.
const FLOAT_TYPES = new Set([1, 10, 11, 16]);

export function summarizeModel(bytes: Uint8Array): ModelSummary {
  if (bytes.length === 0) throw new NotOnnxError("the file is empty");
  let m: ReturnType<typeof decodeModel>;
  try {
    m = decodeModel(bytes);
  } catch (e) {
    // protobufjs says "index out of range" when a field runs past the end of the bytes
    const why = (e as Error).message;
    throw new NotOnnxError(/index out of range/.test(why) ? `truncated: ${why}` : `not protobuf: ${why}`);
  }
  const irVersion = toNumber(m.ir_version);
  if (irVersion < 1 || irVersion > 100) throw new NotOnnxError(`no plausible ir_version (found ${irVersion})`);
  if (!m.graph) throw new NotOnnxError("it has no graph");
  const floats = m.graph.initializer.filter((t) => FLOAT_TYPES.has(t.data_type));
  return {
    irVersion,
    producer: `${m.producer_name} ${m.producer_version}`.trim(),
    opsets: m.opset_import.map((o) => ({ domain: o.domain, version: toNumber(o.version) })),
    parameters: floats.reduce((sum, t) => sum + t.dims.reduce<number>((p, d) => p * toNumber(d), 1), 0),
    initializers: m.graph.initializer.length,
  };
}
