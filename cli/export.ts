import type { CommandModule } from "yargs";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { readFileOrFail, UserError, writeFileAtomic } from "../src/node/files.ts";
import { decodeCheckpoint, CHECKPOINT_MAGIC } from "../src/runtime/checkpoint.ts";
import { buildInferenceModel, planModel } from "../src/program/program.ts";
import { decodeModel } from "../src/onnx/proto.ts";
import { readTensor } from "../src/onnx/tensor.ts";
import { writeSafetensors, type WritableTensor } from "../src/interop/safetensors.ts";
import { stateDictTensors } from "../src/interop/state-dict.ts";
import type { ModelSpec } from "../src/nn/spec.ts";
import type { ModelPlan } from "../src/ir/plan.ts";
import { modelOfCheckpoint } from "../src/runtime/trainer.ts";

interface Args {
  from: string;
  format: "safetensors" | "onnx";
  out: string;
}

/** What a source holds: our model's spec and flat state, or (a foreign model.onnx) only its bytes. */
type Source =
  | { kind: "ours"; plan: ModelPlan; params: Float32Array; buffers: Float32Array; steps: number; onnx?: Uint8Array }
  | { kind: "foreign"; onnx: Uint8Array };

const command: CommandModule<object, Args> = {
  command: "export",
  describe: "Write a run's weights as safetensors (PyTorch state_dict keys) or its inference model as ONNX",
  builder: (y) =>
    y
      .option("from", { type: "string", demandOption: true, describe: "a run or build-graph directory, its checkpoint, or a model.onnx", requiresArg: true })
      .option("format", { choices: ["safetensors", "onnx"], demandOption: true, describe: "safetensors: the state_dict for PyTorch; onnx: the inference model" })
      .option("out", { type: "string", demandOption: true, describe: "the file to write", requiresArg: true })
      .example("$0 export --from runs/latest --format safetensors --out mycnn.safetensors", "")
      .example("$0 export --from runs/latest/checkpoint --format onnx --out model.onnx", "") as any,
  handler: (a) => {
    const src = readSource(a.from);
    let bytes: Uint8Array;
    let what: string;
    if (a.format === "onnx") {
      // A model.onnx is written as it is; a checkpoint's state becomes the inference model train would write.
      bytes = src.kind === "foreign" || src.onnx ? src.onnx! : buildInferenceModel(src.plan, src.params, src.buffers, { "onnx_mnist.step": String(src.steps) });
      what = "the inference model (input `input` [N,1,28,28] in [0,1] -> `logits`)";
    } else {
      let tensors: Map<string, WritableTensor>;
      if (src.kind === "ours") {
        tensors = stateDictTensors(src.plan, src.params, src.buffers, src.steps);
        what = `${tensors.size} tensors of ${src.plan.name}'s state_dict`;
      } else {
        tensors = foreignInitializers(src.onnx, a.from);
        what = `${tensors.size} float32 initializers, by their ONNX names (the model was not made by onnx-mnist, so they may not be state_dict keys)`;
      }
      bytes = writeSafetensors(tensors, { format: "pt" });
    }
    writeFileAtomic(a.out, bytes);
    console.log(`wrote ${a.out}: ${what}, ${bytes.length.toLocaleString("en-US")} bytes`);
  },
};
export default command;

function readSource(from: string): Source {
  if (!existsSync(from)) throw new UserError(`${from}: no such file or directory (expected a run directory, a checkpoint or a model.onnx)`);
  let path = from;
  if (statSync(from).isDirectory()) {
    path = join(from, "checkpoint");
    if (!existsSync(path)) throw new UserError(`${from}: no checkpoint in this directory; pass a run or build-graph directory, a checkpoint or a model.onnx`);
  }
  const bytes = readFileOrFail(path, "a checkpoint or a model.onnx");
  if (new TextDecoder().decode(bytes.subarray(0, 8)) === CHECKPOINT_MAGIC) {
    const ck = decodeCheckpoint(bytes, path);
    const plan = planModel(modelOfCheckpoint(ck));
    const byName = new Map(ck.tensors.map((t) => [t.name, t.data]));
    return { kind: "ours", plan, steps: ck.header.step, ...gather(plan, byName, path) };
  }
  let model: ReturnType<typeof decodeModel>;
  try {
    model = decodeModel(bytes);
  } catch (e) {
    throw new UserError(`${path}: neither an onnx-mnist checkpoint nor an ONNX model (${(e as Error).message.split("\n")[0]})`);
  }
  const meta = new Map(model.metadata_props.map((m) => [m.key, m.value]));
  // Our specs' models are planned again from the spec they carry; anything else (imported models included)
  // keeps its initializers' own names.
  const specText = meta.get("onnx_mnist.spec");
  if (!specText) return { kind: "foreign", onnx: bytes };
  const plan = planModel(JSON.parse(specText) as ModelSpec);
  const byName = new Map<string, Float32Array>();
  for (const t of model.graph.initializer) {
    const r = readTensor(t);
    if (r.dtype === "float32") byName.set(t.name ?? "", r.data as Float32Array);
  }
  return { kind: "ours", plan, steps: Number(meta.get("onnx_mnist.step") ?? 0), onnx: bytes, ...gather(plan, byName, path) };
}

/** The flat params/buffers of `plan` from tensors by name. */
function gather(plan: ModelPlan, byName: Map<string, Float32Array>, path: string): { params: Float32Array; buffers: Float32Array } {
  const flat = (slots: typeof plan.params, total: number) => {
    const out = new Float32Array(total);
    for (const s of slots) {
      const v = byName.get(s.name);
      if (!v || v.length !== s.size) throw new UserError(`${path}: has no tensor ${s.name} of ${s.size} values that its model needs; it is damaged`);
      out.set(v, s.offset);
    }
    return out;
  };
  return { params: flat(plan.params, plan.paramCount), buffers: flat(plan.buffers, plan.bufferCount) };
}

function foreignInitializers(onnx: Uint8Array, path: string): Map<string, WritableTensor> {
  const out = new Map<string, WritableTensor>();
  for (const t of decodeModel(onnx).graph.initializer) {
    let r: ReturnType<typeof readTensor>;
    try {
      r = readTensor(t);
    } catch {
      continue; // data types we do not export (int8, ...)
    }
    if (r.dtype === "float32") out.set(t.name ?? "", { dtype: "F32", shape: r.dims, data: r.data as Float32Array });
  }
  if (out.size === 0) throw new UserError(`${path}: has no float32 initializers to export (are its weights in external data files?)`);
  return out;
}
