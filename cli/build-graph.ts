import type { CommandModule } from "yargs";
import { buildArtifacts, writeArtifacts } from "../src/node/artifacts.ts";
import { OPSET } from "../src/graph/graph.ts";
import type { OptimizerName } from "../src/optim/optimizer.ts";
import { checkModelOptions, modelOptions } from "./options.ts";
import { decodeModel } from "../src/onnx/proto.ts";

interface Args {
  model: string;
  from?: string;
  requiresGrad?: string[];
  frozen?: string[];
  optimizer: string;
  lr?: number;
  weightDecay?: number;
  momentum?: number;
  nesterov?: boolean;
  seed: number;
  out: string;
  initWeights?: string;
}

const command: CommandModule<object, Args> = {
  command: "build-graph",
  describe: "Emit the training-step, evaluation and inference ONNX graphs and an initial checkpoint",
  builder: (y) =>
    y
      .options(modelOptions)
      .option("out", { type: "string", demandOption: true, describe: "output directory", requiresArg: true })
      .option("init-weights", { type: "string", describe: "start from these weights: a .safetensors file of the model's PyTorch state_dict", requiresArg: true })
      .example("$0 build-graph --model mycnn --optimizer adam --lr 1e-3 --seed 0 --out graphs/", "")
      .example("$0 build-graph --from model.onnx --frozen 'conv.*' --out graphs/", "an exported PyTorch model, its conv layers frozen") as any,
  handler: (a) => {
    const pixels = checkModelOptions(a);
    const built = buildArtifacts({ ...a, pixels, optimizer: a.optimizer as OptimizerName });
    writeArtifacts(a.out, built.files);
    const { program } = built;
    const p = program.plan;
    console.log(`model        ${p.name}: ${p.paramCount.toLocaleString("en-US")} parameters, ${p.bufferCount} buffer values`);
    console.log(`optimizer    ${JSON.stringify(program.optimizer)}`);
    const trainOpset = program.opsets.trainStep === OPSET ? "" : `, train_step ${program.opsets.trainStep}`;
    console.log(`opset        ${OPSET}${trainOpset} (default domain only)`);
    console.log(`train_step   ${program.nodeCounts.trainStep} nodes: ${program.opTypes.trainStep.join(", ")}`);
    console.log(`eval_step    ${program.nodeCounts.evalStep} nodes: ${program.opTypes.evalStep.join(", ")}`);
    const inference = decodeModel(built.files["model.onnx"]).graph.node;
    console.log(`model.onnx   ${inference.length} nodes: ${[...new Set(inference.map((n) => n.op_type))].sort().join(", ")}`);
    console.log(`wrote        ${Object.keys(built.files).map((f) => `${a.out.replace(/\/$/, "")}/${f}`).join(", ")}`);
  },
};
export default command;
