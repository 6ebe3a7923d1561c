/**
 * A tiny reader of the few ModelProto fields the web demo shows (ir_version, producer, opset_import, and the
 * initializers' dims and types for a parameter count), straight from the protobuf wire format, so the page
 * does not ship protobufjs and a whole schema. It also tells "not an ONNX file" apart early, with a clear reason.
 * Field numbers from onnx.proto (IR spec): ModelProto 1 ir_version, 2 producer_name, 3 producer_version,
 * 7 graph, 8 opset_import; OperatorSetIdProto 1 domain, 2 version; GraphProto 5 initializer;
 * TensorProto 1 dims (repeated int64, packed or not), 2 data_type. Browser-safe.
 */

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
const WIRE = { VARINT: 0, I64: 1, LEN: 2, I32: 5 } as const;

export function summarizeModel(bytes: Uint8Array): ModelSummary {
  if (bytes.length === 0) throw new NotOnnxError("the file is empty");
  const s: ModelSummary = { irVersion: 0, producer: "", opsets: [], parameters: 0, initializers: 0 };
  let graph: Uint8Array | null = null;
  let producerVersion = "";
  for (const f of fields(bytes, "model")) {
    if (f.no === 1 && f.wire === WIRE.VARINT) s.irVersion = f.value;
    else if (f.no === 2 && f.wire === WIRE.LEN) s.producer = text(f.bytes);
    else if (f.no === 3 && f.wire === WIRE.LEN) producerVersion = text(f.bytes);
    else if (f.no === 7 && f.wire === WIRE.LEN) graph = f.bytes;
    else if (f.no === 8 && f.wire === WIRE.LEN) {
      const opset = { domain: "", version: 0 };
      for (const g of fields(f.bytes, "opset_import")) {
        if (g.no === 1 && g.wire === WIRE.LEN) opset.domain = text(g.bytes);
        else if (g.no === 2 && g.wire === WIRE.VARINT) opset.version = g.value;
      }
      s.opsets.push(opset);
    }
  }
  if (s.irVersion < 1 || s.irVersion > 100) throw new NotOnnxError(`no plausible ir_version (found ${s.irVersion})`);
  if (!graph) throw new NotOnnxError("it has no graph");
  if (producerVersion) s.producer = `${s.producer} ${producerVersion}`.trim();
  for (const f of fields(graph, "graph")) {
    if (f.no !== 5 || f.wire !== WIRE.LEN) continue;
    let elements = 1;
    let type = 0;
    for (const t of fields(f.bytes, "initializer")) {
      if (t.no === 1 && t.wire === WIRE.VARINT) elements *= t.value;
      else if (t.no === 1 && t.wire === WIRE.LEN) for (const d of varints(t.bytes)) elements *= d;
      else if (t.no === 2 && t.wire === WIRE.VARINT) type = t.value;
    }
    s.initializers++;
    if (FLOAT_TYPES.has(type)) s.parameters += elements;
  }
  return s;
}

interface Field {
  no: number;
  wire: number;
  value: number;
  bytes: Uint8Array;
}

/** The top-level fields of one message. Throws NotOnnxError on anything that is not valid wire format. */
function* fields(buf: Uint8Array, what: string): Generator<Field> {
  const r = { pos: 0 };
  while (r.pos < buf.length) {
    const key = varint(buf, r, what);
    const no = Math.floor(key / 8);
    const wire = key % 8;
    if (no === 0) throw new NotOnnxError(`invalid protobuf field number 0 in ${what} at byte ${r.pos}`);
    if (wire === WIRE.VARINT) yield { no, wire, value: varint(buf, r, what), bytes: buf };
    else if (wire === WIRE.LEN) {
      const n = varint(buf, r, what);
      if (r.pos + n > buf.length) throw new NotOnnxError(`truncated: a field of ${what} needs ${n} bytes at byte ${r.pos}, only ${buf.length - r.pos} left`);
      yield { no, wire, value: n, bytes: buf.subarray(r.pos, r.pos + n) };
      r.pos += n;
    } else if (wire === WIRE.I64 || wire === WIRE.I32) {
      r.pos += wire === WIRE.I64 ? 8 : 4;
      if (r.pos > buf.length) throw new NotOnnxError(`truncated ${what}`);
    } else throw new NotOnnxError(`invalid protobuf wire type ${wire} in ${what}`);
  }
}

function varints(buf: Uint8Array): number[] {
  const out: number[] = [];
  const r = { pos: 0 };
  while (r.pos < buf.length) out.push(varint(buf, r, "packed dims"));
  return out;
}

/** A base-128 varint as a JS number (exact up to 2^53, which dims, versions and counts never reach). */
function varint(buf: Uint8Array, r: { pos: number }, what: string): number {
  let value = 0;
  let scale = 1;
  for (let i = 0; i < 10; i++) {
    if (r.pos >= buf.length) throw new NotOnnxError(`truncated varint in ${what}`);
    const b = buf[r.pos++];
    value += (b & 0x7f) * scale;
    if (b < 0x80) return value;
    scale *= 128;
  }
  throw new NotOnnxError(`invalid varint in ${what}`);
}

function text(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
