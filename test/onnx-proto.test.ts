/** The protobuf descriptor used at run time is generated from schema/onnx.proto and must stay in sync with it. */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { protoJson } from "../scripts/gen-proto.ts";
import { decodeModel, encodeModel } from "../src/onnx/proto.ts";
import { readTensor, makeTensor } from "../src/onnx/tensor.ts";
import { G } from "../src/ops/builder.ts";

describe("ONNX protobuf", () => {
  it("src/onnx/onnx-proto.json is what schema/onnx.proto generates (run `npm run gen:proto` after editing the .proto)", () => {
    expect(readFileSync("src/onnx/onnx-proto.json", "utf8")).toBe(protoJson());
  });
  it("a model round-trips through encode/decode", () => {
    const g = new G("t");
    const x = g.input("x", ["N", 3], "float32");
    g.output(g.relu(g.add(x, g.constant([1, 2, 3], [3]))), "y");
    const bytes = encodeModel(g.toModel({ metadata: { b: "2", a: "1" } }));
    const m = decodeModel(bytes);
    expect(m.graph.node.map((n) => n.op_type)).toEqual(["Add", "Relu", "Identity"]);
    expect(m.metadata_props.map((p) => p.key)).toEqual(["a", "b"]);
    expect(Array.from(readTensor(m.graph.initializer[0]).data as Float32Array)).toEqual([1, 2, 3]);
  });
  it("tensors keep int64 values", () => {
    const t = readTensor(makeTensor("i", "int64", [2], BigInt64Array.of(-3n, 1n << 40n)));
    expect(Array.from(t.data as BigInt64Array)).toEqual([-3n, 1n << 40n]);
  });
});
