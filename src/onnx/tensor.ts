/** TensorProto <-> typed arrays. Data always goes in raw_data, little-endian, as the ONNX spec requires. */
import { DataType, toNumber, type TensorMsg } from "./proto.ts";
import type { DType } from "../graph/value.ts";

export type TypedData = Float32Array | Float64Array | BigInt64Array | Uint8Array;

export const dataTypeOf: Record<DType, number> = { float32: DataType.FLOAT, float64: DataType.DOUBLE, int64: DataType.INT64, bool: DataType.BOOL };

export function dtypeOf(dataType: number): DType {
  switch (dataType) {
    case DataType.FLOAT:
      return "float32";
    case DataType.DOUBLE:
      return "float64";
    case DataType.INT64:
      return "int64";
    case DataType.BOOL:
      return "bool";
    default:
      throw new Error(`unsupported ONNX tensor data type ${dataType}`);
  }
}

const littleEndian = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function makeTensor(name: string, dtype: DType, dims: readonly number[], data: TypedData): TensorMsg {
  const count = dims.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new Error(`internal error: tensor ${name} has ${data.length} values for dims [${dims}]`);
  if (!littleEndian) throw new Error("big-endian hosts are not supported");
  const raw = new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
  return { name, dims: [...dims], data_type: dataTypeOf[dtype], raw_data: raw };
}

export function readTensor(t: TensorMsg): { dtype: DType; dims: number[]; data: TypedData } {
  const dtype = dtypeOf(t.data_type);
  const dims = t.dims.map(toNumber);
  const count = dims.reduce((a, b) => a * b, 1);
  let data: TypedData;
  if (t.raw_data && t.raw_data.length > 0) {
    const raw = new Uint8Array(t.raw_data); // an aligned copy (Buffer.slice would be a view)
    data =
      dtype === "float32"
        ? new Float32Array(raw.buffer, 0, raw.byteLength / 4)
        : dtype === "float64"
          ? new Float64Array(raw.buffer, 0, raw.byteLength / 8)
          : dtype === "int64"
            ? new BigInt64Array(raw.buffer, 0, raw.byteLength / 8)
            : raw;
  } else if (dtype === "float32") {
    data = Float32Array.from(t.float_data ?? []);
  } else if (dtype === "float64") {
    data = Float64Array.from(t.double_data ?? []);
  } else if (dtype === "int64") {
    data = BigInt64Array.from((t.int64_data ?? []).map((v) => BigInt(toNumber(v))));
  } else {
    data = Uint8Array.from(t.int32_data ?? []);
  }
  if (data.length !== count) throw new Error(`tensor ${t.name}: ${data.length} values for dims [${dims}]`);
  return { dtype, dims, data };
}
