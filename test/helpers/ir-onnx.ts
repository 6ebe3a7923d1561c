/**
 * A model IR written back as a plain opset-17 ONNX inference model, node for node (no builder, no replay): a
 * check of the importer's folding and normalisation on its own. Running it in onnxruntime next to the original
 * file shows whether the IR still computes what the model did. Inference semantics: BatchNorm with running
 * statistics, Dropout as Identity. The IR's attribute forms (Reshape `shape`, Squeeze `axes`, Clip `min`/`max`,
 * Pad `pads`/`value`) become the inputs opset 17 wants.
 */
import { AttrType, encodeModel, type AttributeMsg, type NodeMsg, type TensorMsg } from "../../src/onnx/proto.ts";
import { dataTypeOf, makeTensor } from "../../src/onnx/tensor.ts";
import type { Dim } from "../../src/graph/value.ts";
import type { IrAttr, ModelIR } from "../../src/ir/ir.ts";

const FLOAT_ATTRS = new Set(["alpha", "beta", "epsilon", "momentum", "ratio", "value", "min", "max"]);

function attr(name: string, v: IrAttr): AttributeMsg {
  if (typeof v === "string") return { name, type: AttrType.STRING, s: new TextEncoder().encode(v) };
  if (Array.isArray(v)) return { name, type: AttrType.INTS, ints: v };
  return FLOAT_ATTRS.has(name) ? { name, type: AttrType.FLOAT, f: v } : { name, type: AttrType.INT, i: v };
}

const valueInfo = (name: string, shape: Dim[]) => ({
  name,
  type: { tensor_type: { elem_type: 1, shape: { dim: shape.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d })) } } },
});

/** The IR as ONNX bytes; `extraOutputs` (IR value names, e.g. the scores) become graph outputs too. */
export function irToOnnx(ir: ModelIR, extraOutputs: string[] = []): Uint8Array {
  const inits: TensorMsg[] = [];
  for (const t of [...ir.params, ...ir.buffers]) {
    if (t.init.kind !== "data") throw new Error(`${t.name}: not imported data`);
    inits.push(makeTensor(t.name, "float32", t.shape, t.init.data));
  }
  for (const c of ir.constants) inits.push(makeTensor(c.name, c.dtype, c.shape, c.data));
  const extra = (name: string, dims: number[], values: number[], dtype: "int64" | "float32") => {
    inits.push(makeTensor(name, dtype, dims, dtype === "int64" ? BigInt64Array.from(values, BigInt) : Float32Array.from(values)));
    return name;
  };
  const nodes: NodeMsg[] = ir.nodes.map((n) => {
    const { shape, axes, min, max, pads, value, ratio, ...rest } = n.attrs;
    let inputs = n.inputs;
    let op: string = n.op;
    let attrs: Record<string, IrAttr> = n.attrs;
    const x = n.inputs[0];
    switch (n.op) {
      case "Reshape":
        inputs = [x, extra(`${n.name}:shape`, [(shape as number[]).length], shape as number[], "int64")];
        attrs = {};
        break;
      case "Squeeze":
      case "Unsqueeze":
        inputs = [x, extra(`${n.name}:axes`, [(axes as number[]).length], axes as number[], "int64")];
        attrs = {};
        break;
      case "Clip":
        inputs = [x, min !== undefined ? extra(`${n.name}:min`, [], [min as number], "float32") : "", max !== undefined ? extra(`${n.name}:max`, [], [max as number], "float32") : ""];
        attrs = {};
        break;
      case "Pad":
        inputs = [x, extra(`${n.name}:pads`, [(pads as number[]).length], pads as number[], "int64"), extra(`${n.name}:value`, [], [value as number], "float32")];
        attrs = rest;
        break;
      case "Dropout":
        op = "Identity";
        attrs = {};
        void ratio;
        break;
    }
    return {
      name: n.name,
      op_type: op,
      input: inputs,
      output: n.outputs,
      attribute: Object.keys(attrs)
        .sort()
        .map((k) => attr(k, attrs[k])),
    };
  });
  const outputs = [ir.output.name, ...extraOutputs.filter((o) => o !== ir.output.name)];
  return encodeModel({
    ir_version: 8,
    opset_import: [{ domain: "", version: 17 }],
    producer_name: "ir-onnx test helper",
    producer_version: "",
    graph: {
      name: ir.name,
      node: nodes,
      initializer: inits,
      input: [valueInfo(ir.input.name, ir.input.shape)],
      output: outputs.map((o) => ({ name: o, type: { tensor_type: { elem_type: dataTypeOf.float32 } } })),
      value_info: [],
    },
    metadata_props: [],
  });
}
