import type { CommandModule } from "yargs";
import { loadMnist } from "../src/data/node.ts";
import { evaluate } from "../src/runtime/fit.ts";
import { openModel, sessionPredictor } from "../src/node/model-file.ts";
import { checkNumber, checkThreads } from "./options.ts";

interface Args {
  model: string;
  data?: string;
  json?: boolean;
  batchSize: number;
  threads?: number;
  testLimit?: number;
}

const command: CommandModule<object, Args> = {
  command: "eval",
  describe: "Test accuracy, per-class accuracy and confusion matrix of any model.onnx (input `input` [N,1,28,28], output `logits` [N,10])",
  builder: (y) =>
    y
      .option("model", { type: "string", demandOption: true, describe: "the ONNX model file", requiresArg: true })
      .option("data", { type: "string", describe: "directory with MNIST-format IDX files [default: the bundled MNIST]", requiresArg: true })
      .option("json", { type: "boolean", describe: "print machine-readable JSON" })
      .option("batch-size", { type: "number", default: 1000, describe: "images per inference run", requiresArg: true })
      .option("threads", { type: "number", describe: "onnxruntime intra-op threads", requiresArg: true })
      .option("test-limit", { type: "number", describe: "use only the first N test images", requiresArg: true })
      .example("$0 eval --model runs/latest/model.onnx", "") as any,
  handler: async (a) => {
    checkNumber("batch-size", a.batchSize, { integer: true, min: 1 });
    checkThreads(a.threads);
    checkNumber("test-limit", a.testLimit, { integer: true, min: 1 });
    const session = await openModel(a.model, a.threads);
    const data = loadMnist(a.data, { trainLimit: 1, testLimit: a.testLimit });
    const t0 = performance.now();
    const r = await evaluate(sessionPredictor(session), data.test, { batchSize: a.batchSize, misclassifiedLimit: 20 });
    const seconds = (performance.now() - t0) / 1000;
    if (a.json) {
      console.log(JSON.stringify({ model: a.model, count: r.count, accuracy: r.accuracy, loss: r.loss, per_class_accuracy: r.perClassAccuracy, confusion: r.confusion, seconds }, null, 2));
      return;
    }
    console.log(`${a.model}: test accuracy ${(100 * r.accuracy).toFixed(2)}% on ${r.count.toLocaleString("en-US")} images (loss ${r.loss.toFixed(4)}, ${seconds.toFixed(2)} s)\n`);
    const w = 6;
    const pad = (s: string | number) => String(s).padStart(w);
    console.log("true\\pred" + r.confusion.map((_, c) => pad(c)).join("") + pad("acc %"));
    r.confusion.forEach((row, c) => console.log(String(c).padStart(9) + row.map(pad).join("") + pad((100 * r.perClassAccuracy[c]).toFixed(1))));
  },
};
export default command;
