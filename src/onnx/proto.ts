/**
 * protobufjs access to the ONNX messages in schema/onnx.proto.
 * The .proto is parsed at build time into onnx-proto.json (`npm run gen:proto`; a test checks it is current),
 * so the same module works in Node and in the browser without reading files.
 */
import protobuf from "protobufjs";
import descriptor from "./onnx-proto.json" with { type: "json" };

const root = protobuf.Root.fromJSON(descriptor as protobuf.INamespace);
export const ModelProto = root.lookupType("onnx.ModelProto");
export const TensorProto = root.lookupType("onnx.TensorProto");

/** ONNX TensorProto.DataType values we use. */
export const DataType = { FLOAT: 1, UINT8: 2, INT32: 6, INT64: 7, BOOL: 9, DOUBLE: 11 } as const;
/** AttributeProto.AttributeType values we use. */
export const AttrType = { FLOAT: 1, INT: 2, STRING: 3, TENSOR: 4, FLOATS: 6, INTS: 7 } as const;

// Plain-object shapes of the messages (keepCase field names, as in the .proto).
export interface TensorMsg {
  name?: string;
  dims: (number | Long)[];
  data_type: number;
  raw_data?: Uint8Array;
  float_data?: number[];
  int64_data?: (number | Long)[];
  int32_data?: number[];
  double_data?: number[];
  /** location, offset, length of data stored in a file beside the model (data_location EXTERNAL = 1). */
  external_data?: { key: string; value: string }[];
  data_location?: number;
}
export interface AttributeMsg {
  name: string;
  type: number;
  f?: number;
  i?: number | Long;
  s?: Uint8Array;
  t?: TensorMsg;
  floats?: number[];
  ints?: (number | Long)[];
}
export interface NodeMsg {
  input: string[];
  output: string[];
  name: string;
  op_type: string;
  domain?: string;
  attribute: AttributeMsg[];
}
export interface DimMsg {
  dim_value?: number | Long;
  dim_param?: string;
}
export interface ValueInfoMsg {
  name: string;
  type: { tensor_type: { elem_type: number; shape?: { dim: DimMsg[] } } };
  doc_string?: string;
}
export interface GraphMsg {
  name: string;
  node: NodeMsg[];
  initializer: TensorMsg[];
  input: ValueInfoMsg[];
  output: ValueInfoMsg[];
  value_info: ValueInfoMsg[];
  doc_string?: string;
}
export interface ModelMsg {
  ir_version: number;
  opset_import: { domain: string; version: number }[];
  producer_name: string;
  producer_version: string;
  doc_string?: string;
  graph: GraphMsg;
  metadata_props: { key: string; value: string }[];
}
type Long = { low: number; high: number; toNumber(): number };

export function encodeModel(model: ModelMsg): Uint8Array {
  const err = ModelProto.verify(model);
  if (err) throw new Error(`internal error: invalid ModelProto: ${err}`);
  return ModelProto.encode(ModelProto.fromObject(model)).finish();
}

/** Decodes bytes into a ModelProto object; throws a plain Error with protobuf's reason if they are not one. */
export function decodeModel(bytes: Uint8Array): ModelMsg {
  const msg = ModelProto.decode(bytes);
  return ModelProto.toObject(msg, { longs: Number, bytes: Uint8Array, defaults: true, arrays: true }) as unknown as ModelMsg;
}

export function toNumber(x: number | Long | undefined): number {
  if (x === undefined) return 0;
  return typeof x === "number" ? x : x.toNumber();
}
