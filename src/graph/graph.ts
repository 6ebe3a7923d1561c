/**
 * The graph builder: named values, nodes, constants, inputs/outputs, and serialisation to a ModelProto.
 * Everything is deterministic: names come from counters, attributes are sorted, constants are deduplicated
 * in creation order. Op-specific methods live in src/ops/builder.ts (class G extends Graph).
 */
import { AttrType, type AttributeMsg, type ModelMsg, type NodeMsg, type ValueInfoMsg } from "../onnx/proto.ts";
import { dataTypeOf, makeTensor, type TypedData } from "../onnx/tensor.ts";
import { shapeToString, type DType, type Shape, type Value } from "./value.ts";

export type AttrValue = number | string | number[] | { float: number } | { floats: number[] };
export type Attrs = Record<string, AttrValue | undefined>;

interface Initializer {
  value: Value;
  data: TypedData;
}

/** The default-domain opset of every graph unless a builder asks for more (model.onnx always stays at this one). */
export const OPSET = 17;
export const IR_VERSION = 8; // the IR version that goes with opsets 15 to 18

export class Graph {
  readonly nodes: NodeMsg[] = [];
  readonly inputs: Value[] = [];
  readonly outputs: Value[] = [];
  readonly initializers: Initializer[] = [];
  private readonly values = new Map<string, Value>();
  private readonly constants = new Map<string, Value>();
  private nodeCounter = 0;
  private valueCounter = 0;
  private scopes: string[] = [];

  /** `opset`: the default-domain opset the graph is written for (17, or 18 for Col2Im); ops emit its form. */
  constructor(
    readonly name: string,
    readonly opset: number = OPSET,
  ) {
    if (opset < OPSET || opset > 18) throw new Error(`internal error: opset ${opset} (graphs are emitted at 17 or 18)`);
  }

  /** Runs `f` with value names prefixed by `scope/` (shown as groups in Netron). */
  scoped<T>(scope: string, f: () => T): T {
    this.scopes.push(scope);
    try {
      return f();
    } finally {
      this.scopes.pop();
    }
  }

  fresh(hint: string): string {
    const prefix = this.scopes.length ? this.scopes.join("/") + "/" : "";
    return `${prefix}${hint}_${this.valueCounter++}`;
  }

  private register(v: Value): Value {
    if (this.values.has(v.name)) throw new Error(`internal error: value name ${v.name} is used twice`);
    this.values.set(v.name, v);
    return v;
  }

  input(name: string, shape: Shape, dtype: DType): Value {
    const v = this.register({ name, shape: [...shape], dtype });
    this.inputs.push(v);
    return v;
  }

  initializer(name: string, shape: readonly number[], dtype: DType, data: TypedData): Value {
    const v = this.register({ name, shape: [...shape], dtype });
    this.initializers.push({ value: v, data });
    return v;
  }

  /** A constant tensor, shared by every use with the same dtype, shape and values. */
  constant(data: TypedData | number[], shape: readonly number[] = [], dtype: DType = "float32"): Value {
    const typed: TypedData = Array.isArray(data)
      ? dtype === "float32"
        ? Float32Array.from(data)
        : dtype === "float64"
          ? Float64Array.from(data)
          : dtype === "int64"
            ? BigInt64Array.from(data.map((x) => BigInt(x)))
            : Uint8Array.from(data)
      : data;
    const key = `${dtype}|${shape.join(",")}|${Array.from(typed as ArrayLike<number | bigint>).join(",")}`;
    const found = this.constants.get(key);
    if (found) return found;
    const v = this.initializer(`const_${this.constants.size}`, shape, dtype, typed);
    this.constants.set(key, v);
    return v;
  }

  scalar(x: number, dtype: DType = "float32"): Value {
    return this.constant([x], [], dtype);
  }

  ints(xs: readonly number[]): Value {
    return this.constant([...xs], [xs.length], "int64");
  }

  /** Emits one ONNX node. `outs` gives the shape/dtype of each output (and optional names). */
  node(opType: string, inputs: (Value | undefined)[], attrs: Attrs, outs: { shape: Shape; dtype: DType; name?: string }[]): Value[] {
    for (const x of inputs) if (x && this.values.get(x.name) !== x) throw new Error(`internal error: ${opType} input ${x.name} is not from this graph`);
    const outputs = outs.map((o) => this.register({ name: o.name ?? this.fresh(opType), shape: [...o.shape], dtype: o.dtype }));
    // Trailing missing optional inputs are dropped; inner ones become "".
    const names = inputs.map((x) => x?.name ?? "");
    while (names.length && names[names.length - 1] === "") names.pop();
    this.nodes.push({
      name: `${opType}_${this.nodeCounter++}`,
      op_type: opType,
      input: names,
      output: outputs.map((v) => v.name),
      attribute: encodeAttrs(attrs),
      domain: "",
    });
    return outputs;
  }

  /** Gives the output of the most recent node a readable name (only before anything uses it). */
  rename(v: Value, name: string): Value {
    const last = this.nodes[this.nodes.length - 1];
    const k = last?.output.indexOf(v.name) ?? -1;
    if (k < 0 || this.nodes.some((n) => n.input.includes(v.name))) throw new Error(`internal error: cannot rename ${v.name}`);
    this.values.delete(v.name);
    const renamed = this.register({ ...v, name });
    last.output[k] = name;
    return renamed;
  }

  /** Marks `v` as a graph output called `name` (adding an Identity if it has another name). */
  output(v: Value, name = v.name): Value {
    const out = name === v.name ? v : this.node("Identity", [v], {}, [{ shape: v.shape, dtype: v.dtype, name }])[0];
    this.outputs.push(out);
    return out;
  }

  toModel(opts: { docString?: string; metadata?: Record<string, string>; producerVersion?: string } = {}): ModelMsg {
    const io = new Set([...this.inputs, ...this.outputs, ...this.initializers.map((i) => i.value)].map((v) => v.name));
    const valueInfo = [...this.values.values()].filter((v) => !io.has(v.name)).map(valueInfoOf);
    return {
      ir_version: IR_VERSION,
      opset_import: [{ domain: "", version: this.opset }],
      producer_name: "onnx-mnist",
      producer_version: opts.producerVersion ?? "0.1.0",
      doc_string: opts.docString ?? "",
      graph: {
        name: this.name,
        node: this.nodes,
        initializer: this.initializers.map((i) => makeTensor(i.value.name, i.value.dtype, i.value.shape as number[], i.data)),
        input: this.inputs.map(valueInfoOf),
        output: this.outputs.map(valueInfoOf),
        value_info: valueInfo,
      },
      metadata_props: Object.keys(opts.metadata ?? {})
        .sort()
        .map((key) => ({ key, value: opts.metadata![key] })),
    };
  }

  describe(v: Value): string {
    return `${v.name} ${v.dtype}${shapeToString(v.shape)}`;
  }
}

function valueInfoOf(v: Value): ValueInfoMsg {
  return {
    name: v.name,
    type: {
      tensor_type: {
        elem_type: dataTypeOf[v.dtype],
        shape: { dim: v.shape.map((d) => (typeof d === "number" ? { dim_value: d } : { dim_param: d })) },
      },
    },
  };
}

function encodeAttrs(attrs: Attrs): AttributeMsg[] {
  return Object.keys(attrs)
    .sort()
    .filter((k) => attrs[k] !== undefined)
    .map((name) => {
      const a = attrs[name]!;
      if (typeof a === "string") return { name, type: AttrType.STRING, s: new TextEncoder().encode(a) };
      if (typeof a === "number") {
        if (!Number.isInteger(a)) throw new Error(`internal error: attribute ${name}=${a} is not an integer; use {float: x}`);
        return { name, type: AttrType.INT, i: a };
      }
      if (Array.isArray(a)) return { name, type: AttrType.INTS, ints: a };
      if ("float" in a) return { name, type: AttrType.FLOAT, f: a.float };
      return { name, type: AttrType.FLOATS, floats: a.floats };
    });
}
