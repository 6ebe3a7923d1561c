/**
 * The ONNX front end: `importOnnx(bytes)` turns an ONNX image classifier (IR version 3+, default-domain opsets 7
 * to 21, as torch.onnx.export, tf2onnx and friends write them) into the model IR. Browser-safe: no node:*.
 *
 * One walk over the nodes in topological order keeps, for every value, either its contents (known at import
 * time: initializers, Constant nodes, and whatever the shape-computing chains around them fold to, fold.ts) or
 * its shape (computed at run time; static except the batch "N"). Nodes that compute run-time values become IR
 * nodes in the IR's normalised form (normalize.ts). Then the initializers the IR nodes read are sorted into
 * trainable parameters, BatchNorm buffers and constants.
 */
import { decodeModel, encodeModel, toNumber, type AttributeMsg, type ModelMsg, type NodeMsg, type TensorMsg, type ValueInfoMsg } from "../onnx/proto.ts";
import { shapeToString, type Dim, type DType } from "../graph/value.ts";
import type { TypedData } from "../onnx/tensor.ts";
import { IR_OPS, ModelError, type ImportOptions, type IrConstant, type IrNode, type IrOp, type ModelIR, type OutputKind, type TensorSpec } from "./ir.ts";
import { FLOAT_TYPES, FOLD, FoldError, shortestFloat32, type ElemType, type Known, type Sym } from "./fold.ts";
import { NORMALIZE, type Shape } from "./normalize.ts";

export interface ImportOnnxOptions extends ImportOptions {
  /** How the model is named in messages (a file name); also the IR's name. */
  source?: string;
  /** Bytes of an external-data file named by the model (relative location), or undefined if missing. */
  readExternal?: (location: string) => Uint8Array | undefined;
}

const MIN_OPSET = 7;
const MAX_OPSET = 21;
const IR_OP_SET: ReadonlySet<string> = new Set(IR_OPS);

/** What the walk knows about a value. */
type Info =
  | { kind: "known"; k: Known; initializer?: boolean }
  | { kind: "dyn"; dtype: ElemType; shape: Shape }
  /** Downstream of an unsupported node: not analysed further (the node itself is reported). */
  | { kind: "unknown" };

// ---- decoding ------------------------------------------------------------------------------------------------------

const ELEM: Record<number, ElemType> = { 1: "float32", 2: "uint8", 3: "int8", 5: "int16", 6: "int32", 7: "int64", 9: "bool", 10: "float16", 11: "float64" };

function elemType(code: number, what: string): ElemType {
  const t = ELEM[code];
  if (!t) throw new ModelError(`${what} has an unsupported element type (ONNX data type ${code})`);
  return t;
}

/** A TensorProto's contents; float32 stays a Float32Array (weights can be large), other types become numbers. */
function tensorOf(t: TensorMsg, what: string, readExternal?: (location: string) => Uint8Array | undefined): Known {
  const dtype = elemType(t.data_type, what);
  if (dtype === "float16") throw new ModelError(`${what} is float16: convert the model to float32 first (e.g. onnxconverter-common's float16 -> float32)`);
  const dims = t.dims.map(toNumber);
  const count = dims.reduce((a, b) => a * b, 1);
  let raw = t.raw_data && t.raw_data.length ? t.raw_data : undefined;
  if (t.data_location === 1) {
    const entry = (key: string) => t.external_data?.find((e) => e.key === key)?.value;
    const location = entry("location");
    if (!location) throw new ModelError(`${what} has external data without a location`);
    const file = readExternal?.(location);
    if (!file) throw new ModelError(`${what}: external data file '${location}' not found (it must sit beside the model file)`);
    const offset = Number(entry("offset") ?? 0);
    const length = entry("length") !== undefined ? Number(entry("length")) : file.length - offset;
    if (offset + length > file.length) throw new ModelError(`${what}: external data file '${location}' is too short (${file.length} bytes, needs ${offset + length})`);
    raw = file.subarray(offset, offset + length);
    // Keep the data in the message too (see selfContained).
    t.raw_data = raw;
    t.data_location = 0;
    t.external_data = [];
  }
  const width = { float32: 4, float64: 8, int64: 8, int32: 4, int16: 2, int8: 1, uint8: 1, bool: 1, float16: 2 }[dtype];
  let data: ArrayLike<Sym>;
  if (raw) {
    if (raw.length !== count * width) throw new ModelError(`${what} has ${raw.length} bytes of data, its shape [${dims}] needs ${count * width}`);
    const buf = new Uint8Array(raw).buffer; // an aligned copy
    const view = new DataView(buf);
    if (dtype === "float32") data = new Float32Array(buf);
    else
      data = Array.from({ length: count }, (_, i) => {
        switch (dtype) {
          case "float64":
            return view.getFloat64(i * 8, true);
          case "int64":
            return Number(view.getBigInt64(i * 8, true));
          case "int32":
            return view.getInt32(i * 4, true);
          case "int16":
            return view.getInt16(i * 2, true);
          case "int8":
            return view.getInt8(i);
          default:
            return view.getUint8(i);
        }
      });
  } else if (dtype === "float32") data = Float32Array.from(t.float_data ?? []);
  else if (dtype === "float64") data = t.double_data ?? [];
  else if (dtype === "int64") data = (t.int64_data ?? []).map(toNumber);
  else data = t.int32_data ?? [];
  if (data.length !== count) throw new ModelError(`${what} has ${data.length} values, its shape [${dims}] needs ${count}`);
  return { dtype, dims, data };
}

type AttrValue = number | number[] | string | Known;


function attrsOf(node: NodeMsg, what: string): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const a of node.attribute as AttributeMsg[]) {
    switch (a.type) {
      case 1:
        out[a.name] = shortestFloat32(a.f ?? 0);
        break;
      case 2:
        out[a.name] = toNumber(a.i);
        break;
      case 3:
        out[a.name] = new TextDecoder().decode(a.s ?? new Uint8Array());
        break;
      case 4:
        out[a.name] = tensorOf(a.t!, `${what} attribute ${a.name}`);
        break;
      case 6:
        out[a.name] = (a.floats ?? []).map(shortestFloat32);
        break;
      case 7:
        out[a.name] = (a.ints ?? []).map(toNumber);
        break;
      default:
        // Graph-valued attributes (If, Loop) and the like: those ops are reported as unsupported anyway.
        break;
    }
  }
  // Cast's `to` is a data type code: the folder wants the element type's name.
  if (node.op_type === "Cast" && typeof out.to === "number") out.to = ELEM[out.to] ?? `type ${out.to}`;
  return out;
}

/** A Constant node's value, in any of its attribute forms. */
function constantValue(attrs: Record<string, AttrValue>, c: (m: string) => never): Known {
  const v = attrs.value;
  if (v && typeof v === "object" && !Array.isArray(v)) return v;
  if (typeof attrs.value_float === "number") return { dtype: "float32", dims: [], data: [Math.fround(attrs.value_float)] };
  if (typeof attrs.value_int === "number") return { dtype: "int64", dims: [], data: [attrs.value_int] };
  if (Array.isArray(attrs.value_floats)) return { dtype: "float32", dims: [attrs.value_floats.length], data: attrs.value_floats.map(Math.fround) };
  if (Array.isArray(attrs.value_ints)) return { dtype: "int64", dims: [attrs.value_ints.length], data: attrs.value_ints };
  return c("has no supported value attribute (sparse and string constants are not supported)");
}

// ---- graph structure ---------------------------------------------------------------------------------------------

interface Node {
  name: string;
  op: string;
  domain: string;
  inputs: string[];
  outputs: string[];
  attrs: Record<string, AttrValue>;
}

/** Unique, readable node names: the model's own, or `<op>_<k>` where missing or taken. */
function nameNodes(nodes: NodeMsg[]): Node[] {
  const taken = new Set(nodes.map((n) => n.name).filter(Boolean));
  const used = new Set<string>();
  const counters = new Map<string, number>();
  return nodes.map((n) => {
    let name = n.name;
    if (!name || used.has(name)) {
      let k = counters.get(n.op_type) ?? 0;
      do name = `${n.op_type}_${k++}`;
      while (taken.has(name) || used.has(name));
      counters.set(n.op_type, k);
    }
    used.add(name);
    return { name, op: n.op_type, domain: n.domain ?? "", inputs: [...n.input], outputs: [...n.output], attrs: {} };
  });
}

/** Kahn's order (stable: the file's order where it is already topological). */
function topoSort(nodes: Node[], available: Set<string>, src: string): Node[] {
  const done = new Set(available);
  const out: Node[] = [];
  let pending = nodes;
  while (pending.length) {
    const next: Node[] = [];
    for (const n of pending) {
      if (n.inputs.every((i) => !i || done.has(i))) {
        out.push(n);
        n.outputs.forEach((o) => o && done.add(o));
      } else next.push(n);
    }
    if (next.length === pending.length) {
      const n = next[0];
      const missing = n.inputs.find((i) => i && !done.has(i));
      throw new ModelError(`${src}: node ${n.name} (${n.op}) reads '${missing}', which no node, initializer or input provides (or the graph has a cycle)`);
    }
    pending = next;
  }
  return out;
}

const dimsOf = (v: ValueInfoMsg): Dim[] | undefined => v.type?.tensor_type?.shape?.dim.map((d) => (d.dim_param ? d.dim_param : d.dim_value !== undefined && toNumber(d.dim_value) > 0 ? toNumber(d.dim_value) : "?"));

/** The image layouts a model may take, without the batch. */
const LAYOUTS: number[][] = [
  [1, 28, 28],
  [28, 28],
  [784],
  [28, 28, 1],
];

/** The model's image input: its shape with the batch made symbolic, and the batch it was exported with. */
function imageInput(input: ValueInfoMsg, src: string): { shape: Dim[]; exportedBatch?: number } {
  const elem = input.type?.tensor_type?.elem_type;
  if (elem !== 1) throw new ModelError(`${src}: the input ${input.name} is ${ELEM[elem ?? 0] ?? `of ONNX type ${elem}`}, expected float32 images`);
  const dims = dimsOf(input);
  if (!dims) throw new ModelError(`${src}: the input ${input.name} has no shape: expected [N, 1, 28, 28], [N, 28, 28], [N, 784] or [N, 28, 28, 1]`);
  const [batch, ...image] = dims;
  const layout = LAYOUTS.find((l) => l.length === image.length && l.every((d, i) => image[i] === d || typeof image[i] === "string"));
  if (!layout)
    throw new ModelError(`${src}: the input ${input.name} is ${shapeToString(dims)}; MNIST images go in as [N, 1, 28, 28], [N, 28, 28], [N, 784] or [N, 28, 28, 1]`);
  return { shape: ["N", ...layout], exportedBatch: typeof batch === "number" ? batch : undefined };
}

// ---- globs for --requires-grad / --frozen ----------------------------------------------------------------------

function globToRegExp(glob: string): RegExp {
  const body = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
  return new RegExp(`^${body}$`);
}

function matcher(globs: string[] | undefined, flag: string, names: string[], src: string): ((n: string) => boolean) | undefined {
  if (!globs?.length) return undefined;
  const res = globs.map((g) => ({ g, re: globToRegExp(g) }));
  for (const { g, re } of res)
    if (!names.some((n) => re.test(n))) {
      const few = names.slice(0, 6).join(", ") + (names.length > 6 ? `, ... (${names.length} in all)` : "");
      throw new ModelError(`${src}: ${flag} '${g}' matches no initializer of the model (its float initializers: ${few || "none"})`);
    }
  return (n) => res.some(({ re }) => re.test(n));
}

// ---- the import ----------------------------------------------------------------------------------------------------

/** Which input of a trainable op holds a parameter (weights, biases) or a buffer (running statistics). */
function roleOf(node: IrNode, index: number, producers: Map<string, IrNode>): "param" | "buffer" | undefined {
  switch (node.op) {
    case "Conv":
    case "Gemm":
      return index >= 1 ? "param" : undefined;
    case "MatMul":
      return "param";
    case "PRelu":
      return index === 1 ? "param" : undefined;
    case "BatchNormalization":
      return index === 1 || index === 2 ? "param" : index >= 3 ? "buffer" : undefined;
    case "Add": {
      // y = x W + b as exporters write it without Gemm: the bias of a MatMul or Conv.
      const other = producers.get(node.inputs[1 - index]);
      return other && (other.op === "MatMul" || other.op === "Conv") ? "param" : undefined;
    }
    default:
      return undefined;
  }
}

function toTyped(k: Known, name: string): { dtype: DType; data: TypedData } {
  const plain = (what: string) =>
    Array.from(k.data, (v) => {
      if (v === "N") throw new ModelError(`constant ${name} depends on the batch size, which a ${what} constant cannot hold`);
      return v;
    });
  switch (k.dtype) {
    case "float32":
      return { dtype: "float32", data: k.data instanceof Float32Array ? k.data : Float32Array.from(plain("float")) };
    case "float64":
      return { dtype: "float64", data: Float64Array.from(plain("float")) };
    case "bool":
      return { dtype: "bool", data: Uint8Array.from(plain("bool")) };
    case "int64":
      return { dtype: "int64", data: BigInt64Array.from(plain("int64"), (v) => BigInt(v)) };
    default:
      throw new ModelError(`constant ${name} is ${k.dtype}, which the model IR does not hold (float32, float64, int64 or bool)`);
  }
}

/** Imports an ONNX image classifier into the model IR. Every problem is a ModelError with one clear line. */
export function importOnnx(bytes: Uint8Array, options: ImportOnnxOptions = {}): ModelIR {
  const src = options.source ?? "model";
  let model;
  try {
    model = decodeModel(bytes);
  } catch (e) {
    throw new ModelError(`${src}: not an ONNX model (${(e as Error).message})`);
  }
  const graph = model.graph;
  if (!graph || (!graph.node.length && !graph.input.length)) throw new ModelError(`${src}: not an ONNX model (no graph)`);
  const irVersion = toNumber(model.ir_version);
  if (irVersion < 3) throw new ModelError(`${src}: ONNX IR version ${irVersion} is too old (3 or newer is supported): re-export the model`);
  const defaultOpset = model.opset_import.find((o) => !o.domain || o.domain === "ai.onnx");
  const opset = defaultOpset ? toNumber(defaultOpset.version) : 0;
  if (opset < MIN_OPSET || opset > MAX_OPSET)
    throw new ModelError(`${src}: default-domain opset ${opset || "(none)"} is not supported (${MIN_OPSET} to ${MAX_OPSET}): re-export with opset_version=17`);

  // Initializers (IR < 4 also lists them as graph inputs: those are not inputs).
  const info = new Map<string, Info>();
  const floatInits: string[] = [];
  const external = graph.initializer.some((t) => t.data_location === 1);
  for (const t of graph.initializer) {
    const name = t.name ?? "";
    const k = tensorOf(t, `${src}: initializer ${name}`, options.readExternal);
    info.set(name, { kind: "known", k, initializer: true });
    if (k.dtype === "float32") floatInits.push(name);
  }
  const inputs = graph.input.filter((i) => !info.has(i.name));
  if (inputs.length !== 1)
    throw new ModelError(
      inputs.length
        ? `${src}: the model has ${inputs.length} inputs (${inputs.map((i) => i.name).join(", ")}); an image classifier takes one float image input`
        : `${src}: the model has no input`,
    );
  const { shape: inputShape, exportedBatch } = imageInput(inputs[0], src);
  const inputName = inputs[0].name;
  info.set(inputName, { kind: "dyn", dtype: "float32", shape: inputShape });

  const nodes = nameNodes(graph.node);
  nodes.forEach((n, i) => (n.attrs = attrsOf(graph.node[i], `${src}: node ${n.name} (${n.op})`)));

  // Every op type that neither the IR nor the folder knows, listed at once.
  const unsupported = new Map<string, string[]>();
  const report = (op: string, name: string) => unsupported.set(op, [...(unsupported.get(op) ?? []), name]);
  for (const n of nodes) {
    const domainOk = n.domain === "" || n.domain === "ai.onnx";
    if (!domainOk) report(`${n.domain}.${n.op}`, n.name);
    else if (!IR_OP_SET.has(n.op) && !FOLD[n.op] && n.op !== "Constant") report(n.op, n.name);
  }
  const unsupportedError = () => {
    const list = [...unsupported].map(([op, names]) => `${op} (node ${names[0]}${names.length > 1 ? ` and ${names.length - 1} more` : ""})`);
    return new ModelError(`${src}: unsupported ops: ${list.join(", ")}. Supported: ${IR_OPS.join(", ")} and shape computations that fold to constants`);
  };
  if (unsupported.size) throw unsupportedError();

  const order = topoSort(nodes, new Set([...info.keys(), ""]), src);
  const irNodes: IrNode[] = [];
  const alias = new Map<string, string>(); // Identity of a known value: readers use the original name
  const resolve = (n: string) => alias.get(n) ?? n;
  const graphOutputs = new Set(graph.output.map((o) => o.name));

  /** Appends the IR form of an IR-op node and records its outputs' shapes. */
  const emit = (m: Node, nodeOpset: number) => {
    const fail = (message: string): never => {
      throw new ModelError(`${src}: node ${m.name} (${m.op}): ${message}`);
    };
    const ins = m.inputs.map((i) => (i ? info.get(i) : undefined));
    const shape = (i: number): Shape => {
      const v = ins[i];
      if (v?.kind === "known") return v.k.dims;
      if (v?.kind === "dyn") return v.shape;
      return fail(`input ${i} is missing`);
    };
    const norm = NORMALIZE[m.op as IrOp]({
      name: m.name,
      opset: nodeOpset,
      attrs: m.attrs,
      inputs: m.inputs,
      outputs: m.outputs.filter(Boolean).length,
      shape,
      value: (i) => {
        const v = ins[i];
        return v?.kind === "known" ? v.k : undefined;
      },
      exportedBatch,
      fail,
    });
    const outs = m.outputs.slice(0, norm.shapes.length);
    const x = ins[0];
    const dtype = x?.kind === "dyn" ? x.dtype : x?.kind === "known" ? x.k.dtype : "float32";
    outs.forEach((o, i) => info.set(o, { kind: "dyn", dtype, shape: norm.shapes[i] }));
    // Optional outputs the IR does not keep (BatchNormalization's training statistics, Dropout's mask): a
    // node that reads one is not analysed further, and the output check below says so if it matters.
    m.outputs.slice(norm.shapes.length).forEach((o) => o && info.set(o, { kind: "unknown" }));
    irNodes.push({ name: m.name, op: m.op as IrOp, inputs: norm.inputs, outputs: outs, attrs: norm.attrs });
  };

  for (const n of order) {
    const fail = (message: string): never => {
      throw new ModelError(`${src}: node ${n.name} (${n.op}): ${message}`);
    };
    n.inputs = n.inputs.map(resolve);
    const ins = n.inputs.map((i) => (i ? info.get(i) : undefined));
    if (ins.some((i) => i?.kind === "unknown")) {
      n.outputs.forEach((o) => info.set(o, { kind: "unknown" }));
      continue;
    }
    const knownIns = ins.map((i) => (i?.kind === "known" ? i.k : undefined));
    const allKnown = n.inputs.every((name, i) => !name || knownIns[i]);
    // Weights stay initializers (they may be trainable); only their shapes may be read.
    const readsWeights = ins.some((i) => i?.kind === "known" && i.initializer && FLOAT_TYPES.has(i.k.dtype));
    const x0 = ins[0];

    if (n.op === "Constant") {
      info.set(n.outputs[0], { kind: "known", k: constantValue(n.attrs, fail) });
    } else if (n.op === "Identity" && knownIns[0] && !graphOutputs.has(n.outputs[0])) {
      alias.set(n.outputs[0], n.inputs[0]);
    } else if (n.op === "Shape" && x0?.kind === "dyn") {
      // The shape of a run-time value is known up to the batch, which stays "N" in the folded value.
      const rank = x0.shape.length;
      const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + rank : v, 0), rank);
      const start = clamp(typeof n.attrs.start === "number" ? n.attrs.start : 0);
      const end = clamp(typeof n.attrs.end === "number" ? n.attrs.end : rank);
      const dims = x0.shape.slice(start, end) as Sym[];
      info.set(n.outputs[0], { kind: "known", k: { dtype: "int64", dims: [dims.length], data: dims } });
    } else if (n.op === "Size" && x0?.kind === "dyn") {
      if (x0.shape.includes("N")) fail("the number of elements depends on the batch size");
      info.set(n.outputs[0], { kind: "known", k: { dtype: "int64", dims: [], data: [x0.shape.reduce<number>((a, d) => a * (d as number), 1)] } });
    } else if (allKnown && FOLD[n.op] && (!readsWeights || n.op === "Shape" || n.op === "Size")) {
      try {
        const outs = FOLD[n.op](knownIns, { attr: (a) => n.attrs[a], opset });
        outs.forEach((k, i) => n.outputs[i] && info.set(n.outputs[i], { kind: "known", k }));
      } catch (e) {
        if (!(e instanceof FoldError)) throw e;
        fail(e.message);
      }
    } else if (!IR_OP_SET.has(n.op)) {
      report(n.op, n.name); // a shape op applied to run-time data (e.g. Gather as an embedding lookup)
      n.outputs.forEach((o) => info.set(o, { kind: "unknown" }));
    } else if ((n.op === "Softmax" || n.op === "LogSoftmax") && opset < 13 && x0?.kind === "dyn" && softmaxAxis(n, x0.shape.length) !== x0.shape.length - 1) {
      // Before opset 13 Softmax flattens its input to 2-D at `axis`: Flatten -> Softmax(1) -> Reshape back.
      const ax = softmaxAxis(n, x0.shape.length);
      const target = `${n.name}/reshape:shape`;
      info.set(target, { kind: "known", k: { dtype: "int64", dims: [x0.shape.length], data: x0.shape as Sym[] } });
      emit({ ...n, name: `${n.name}/flatten`, op: "Flatten", outputs: [`${n.name}/flatten:out`], attrs: { axis: ax } }, opset);
      emit({ ...n, inputs: [`${n.name}/flatten:out`], outputs: [`${n.name}/softmax:out`], attrs: { axis: 1 } }, 13);
      emit({ ...n, name: `${n.name}/reshape`, op: "Reshape", inputs: [`${n.name}/softmax:out`, target], attrs: {} }, opset);
    } else {
      emit(n, opset);
    }
  }
  if (unsupported.size) throw unsupportedError();

  // The output: the one graph output, or the one named like logits/output/probs among several.
  const outName = chooseOutput(graph.output.map((o) => o.name), src);
  const out = info.get(resolve(outName));
  if (!out || out.kind !== "dyn" || out.dtype !== "float32")
    throw new ModelError(`${src}: the output ${outName} is not a float tensor computed from the input, so it holds no class scores`);
  if (out.shape.length !== 2 || out.shape[0] !== "N" || typeof out.shape[1] !== "number" || out.shape[1] < 2)
    throw new ModelError(`${src}: the output ${outName} is ${shapeToString(out.shape)}, expected class scores [N, classes]`);
  const classes = out.shape[1];
  const producer = new Map<string, IrNode>();
  for (const node of irNodes) for (const o of node.outputs) producer.set(o, node);
  const last = producer.get(outName);
  let kind: OutputKind = "logits";
  let scores = outName;
  if (last && (last.op === "Softmax" || last.op === "LogSoftmax") && last.attrs.axis === 1) {
    kind = last.op === "Softmax" ? "probabilities" : "log-probabilities";
    scores = last.inputs[0];
  }

  // Only what the output needs (BatchNormalization's statistics outputs and the like fall away).
  const needed = new Set([outName]);
  const live: IrNode[] = [];
  for (let i = irNodes.length - 1; i >= 0; i--) {
    const node = irNodes[i];
    if (!node.outputs.some((o) => needed.has(o))) continue;
    live.unshift(node);
    node.inputs.forEach((v) => v && needed.add(v));
  }

  // Sort what the live nodes read: parameters, buffers, constants.
  const liveProducers = new Map<string, IrNode>();
  for (const node of live) for (const o of node.outputs) liveProducers.set(o, node);
  const requires = matcher(options.requiresGrad, "--requires-grad", floatInits, src);
  const frozen = matcher(options.frozen, "--frozen", floatInits, src);
  const role = new Map<string, "param" | "buffer" | "constant">();
  const orderSeen: string[] = [];
  for (const node of live)
    node.inputs.forEach((v, i) => {
      const vi = info.get(v);
      if (!v || !vi || vi.kind !== "known") return;
      if (!role.has(v)) orderSeen.push(v);
      const isFloatInit = vi.initializer === true && vi.k.dtype === "float32";
      let r: "param" | "buffer" | "constant" = isFloatInit ? (roleOf(node, i, liveProducers) ?? "constant") : "constant";
      if (isFloatInit && r !== "buffer") {
        if (requires) r = requires(v) ? "param" : "constant";
        if (frozen?.(v)) r = "constant";
      }
      const before = role.get(v);
      if (before && before !== r) {
        if (before === "buffer" || r === "buffer") throw new ModelError(`${src}: initializer ${v} is both a BatchNorm running statistic and read by node ${node.name} (${node.op})`);
        if (r === "param") role.set(v, r); // read as a weight anywhere: it trains
        return;
      }
      role.set(v, r);
    });
  const place = (names: string[]): TensorSpec[] => {
    let offset = 0;
    return names.map((name) => {
      const k = (info.get(name) as { k: Known }).k;
      const t: TensorSpec = { name, shape: [...k.dims], size: k.data.length, offset, init: { kind: "data", data: k.data as Float32Array } };
      offset += t.size;
      return t;
    });
  };
  const params = place(orderSeen.filter((v) => role.get(v) === "param"));
  const buffers = place(orderSeen.filter((v) => role.get(v) === "buffer"));
  const constants: IrConstant[] = orderSeen
    .filter((v) => role.get(v) === "constant")
    .map((name) => {
      const k = (info.get(name) as { k: Known }).k;
      return { name, shape: [...k.dims], ...toTyped(k, name) };
    });

  return {
    name: irName(src, graph.name),
    input: { name: inputName, shape: inputShape },
    output: { name: outName, kind },
    scores,
    classes,
    nodes: live,
    params,
    buffers,
    constants,
    pixels: options.pixels,
    source: { kind: "onnx", options: importOptions(options), bytes: external ? selfContained(model) : bytes },
  };
}

function softmaxAxis(n: Node, rank: number): number {
  const a = typeof n.attrs.axis === "number" ? n.attrs.axis : 1;
  return a < 0 ? a + rank : a;
}

/** The choices a checkpoint keeps to re-import the model identically (not the file name or reader). */
function importOptions(o: ImportOnnxOptions): ImportOptions {
  const { source: _s, readExternal: _r, ...rest } = o;
  return Object.fromEntries(Object.entries(rest).filter(([, v]) => v !== undefined));
}

/** The model with external data read into it, so its bytes alone describe it (a checkpoint stores them). */
function selfContained(model: ModelMsg): Uint8Array {
  return encodeModel(model);
}

function chooseOutput(names: string[], src: string): string {
  if (names.length === 1) return names[0];
  if (!names.length) throw new ModelError(`${src}: the model has no output`);
  const scored = names.filter((n) => /logit|output|prob|score/i.test(n));
  if (scored.length === 1) return scored[0];
  throw new ModelError(`${src}: the model has ${names.length} outputs (${names.join(", ")}) and none is the one class-score output (named like logits, output or probs)`);
}

function irName(src: string, graphName: string): string {
  const base = src.split(/[\\/]/).pop()!.replace(/\.onnx$/i, "");
  return base && base !== "model" ? base : graphName || "imported";
}
