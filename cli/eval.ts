import type { CommandModule } from "yargs";
import { loadMnistSplit } from "../src/data/node.ts";
import { evaluate, type EvalResult } from "../src/runtime/fit.ts";
import { openClassifier, trainingCalibration } from "../src/node/model-file.ts";
import { conventionFromFlags, conventionOptions, type ConventionFlags } from "../src/image/convention.ts";
import { checkNumber, checkThreads } from "./options.ts";
import { evaluateSuite, groupsLine, type SuiteResult } from "../src/node/suite.ts";

interface Args extends ConventionFlags {
  model: string;
  data?: string;
  json?: boolean;
  batchSize: number;
  threads?: number;
  testLimit?: number;
  suite?: boolean;
}

const command: CommandModule<object, Args> = {
  command: "eval",
  describe: "Test accuracy, per-class accuracy and confusion matrix of any MNIST classifier .onnx (input layout, output kind and pixel convention detected)",
  builder: (y) =>
    y
      .option("model", { type: "string", demandOption: true, describe: "the ONNX model file", requiresArg: true })
      .option("data", { type: "string", describe: "directory with MNIST-format IDX files: the test files, and the training files when the pixel convention is detected [default: the bundled MNIST]", requiresArg: true })
      .option("json", { type: "boolean", describe: "print machine-readable JSON (with the detected input, output and pixel handling)" })
      .option("batch-size", { type: "number", default: 1000, describe: "images per inference run (a model with a fixed batch runs in chunks of it)", requiresArg: true })
      .option("threads", { type: "number", describe: "onnxruntime intra-op threads", requiresArg: true })
      .option("test-limit", { type: "number", describe: "use only the first N test images", requiresArg: true })
      .options(conventionOptions)
      .option("suite", { type: "boolean", describe: "evaluate on the \"handwriting from elsewhere\" suite instead of MNIST's test set: handwriting fonts, pen-drawn digits, and 1,797 digits by 13 writers (UCI)" })
      .example("$0 eval --model runs/latest/model.onnx", "")
      .example("$0 eval --model lenet.onnx --input-preset mnist", "a model trained on normalised pixels") as any,
  handler: async (a) => {
    checkNumber("batch-size", a.batchSize, { integer: true, min: 1 });
    checkThreads(a.threads);
    checkNumber("test-limit", a.testLimit, { integer: true, min: 1 });
    const convention = conventionFromFlags(a);
    // Test images first: a bad --data fails before the model is loaded. Training images are read only to calibrate.
    const test = a.suite ? undefined : loadMnistSplit(a.data, "test", a.testLimit);
    const model = await openClassifier(a.model, { threads: a.threads, convention, calibration: trainingCalibration(a.data) });
    const t0 = performance.now();
    const r: EvalResult & Partial<Pick<SuiteResult, "groups">> = test
      ? await evaluate((x, _y, n) => model.scores(x, n), test, { batchSize: a.batchSize, misclassifiedLimit: 20, classes: model.classes })
      : await evaluateSuite((x, _y, n) => model.scores(x, n), { batchSize: a.batchSize });
    const seconds = (performance.now() - t0) / 1000;
    await model.release();
    if (a.json) {
      console.log(JSON.stringify({ model: a.model, ...model.toJSON(), count: r.count, accuracy: r.accuracy, loss: r.loss, per_class_accuracy: r.perClassAccuracy, confusion: r.confusion, seconds, groups: r.groups }, null, 2));
      return;
    }
    console.log(`${a.model}: ${model.describe()}`);
    console.log(`${a.suite ? "suite" : "test"} accuracy ${(100 * r.accuracy).toFixed(2)}% on ${r.count.toLocaleString("en-US")} images (loss ${r.loss.toFixed(4)}, ${seconds.toFixed(2)} s)` + (r.groups ? `; ${groupsLine(r.groups)}` : "") + "\n");
    const w = 6;
    const pad = (s: string | number) => String(s).padStart(w);
    console.log("true\\pred" + r.confusion.map((_, c) => pad(c)).join("") + pad("acc %"));
    r.confusion.forEach((row, c) => console.log(String(c).padStart(9) + row.map(pad).join("") + pad((100 * r.perClassAccuracy[c]).toFixed(1))));
  },
};
export default command;
