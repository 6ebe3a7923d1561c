/** Regenerates src/onnx/onnx-proto.json from schema/onnx.proto (`npm run gen:proto`). */
import protobuf from "protobufjs";
import { readFileSync, writeFileSync } from "node:fs";

export function protoJson(): string {
  const root = protobuf.parse(readFileSync(new URL("../schema/onnx.proto", import.meta.url), "utf8"), { keepCase: true }).root;
  return JSON.stringify(root.toJSON(), null, 1) + "\n";
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(new URL("../src/onnx/onnx-proto.json", import.meta.url), protoJson());
  console.log("wrote src/onnx/onnx-proto.json");
}
