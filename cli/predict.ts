import type { CommandModule } from "yargs";
import { openModel, sessionPredictor } from "../src/node/model-file.ts";
import { decodeImage, readImageFile } from "../src/image/decode.ts";
import { toMnistInput, type MnistInput } from "../src/image/preprocess.ts";
import { classifyAll } from "../src/image/classify.ts";
import { checkNumber } from "./options.ts";

interface Args {
  model: string;
  images: string[];
  json?: boolean;
  threads?: number;
  ink: "auto" | "dark" | "light";
  show?: boolean;
}

const command: CommandModule<object, Args> = {
  command: "predict <images..>",
  describe: "Classify PNG/JPEG images of handwritten digits with a model.onnx (preprocessed the way MNIST was made)",
  builder: (y) =>
    y
      .positional("images", { type: "string", array: true, describe: "PNG or JPEG files, one digit each" })
      .option("model", { type: "string", demandOption: true, describe: "the ONNX model file", requiresArg: true })
      .option("json", { type: "boolean", describe: "print one JSON array: file, prediction, probabilities, top3" })
      .option("threads", { type: "number", describe: "onnxruntime intra-op threads", requiresArg: true })
      .option("ink", { choices: ["auto", "dark", "light"], default: "auto", describe: "dark ink on light paper, light ink on dark, or judge by the border" })
      .option("show", { type: "boolean", describe: "also draw the 28x28 input the model sees, as text" })
      .example("$0 predict --model runs/latest/model.onnx digit.png photo.jpg", "") as any,
  handler: async (a) => {
    checkNumber("threads", a.threads, { integer: true, min: 1 });
    // Read and preprocess every image before loading the model, so a bad file fails fast.
    const inputs = a.images.map((file) => {
      const image = decodeImage(readImageFile(file), file);
      return { file, ...toMnistInput(image.rgba, image.width, image.height, { ink: a.ink }) };
    });
    const session = await openModel(a.model, a.threads);
    const predict = sessionPredictor(session);
    const found = inputs.filter((i) => !i.empty);
    const results = await classifyAll((x, n) => predict(x, new BigInt64Array(0), n), found.map((i) => i.pixels));
    const byFile = new Map(found.map((input, k) => [input, results[k]]));

    if (a.json) {
      const rows = inputs.map((input) => {
        const r = byFile.get(input);
        if (!r) return { file: input.file, empty: true, prediction: null, probabilities: null, top3: [] };
        return { file: input.file, empty: false, prediction: r.prediction, probabilities: r.probabilities, top3: r.top };
      });
      console.log(JSON.stringify(rows, null, 2));
      return;
    }
    for (const input of inputs) {
      const r = byFile.get(input);
      if (!r) console.log(`${input.file}: no digit found (the image is blank)`);
      else console.log(`${input.file}: ${r.prediction}  (${r.top.map((t) => `${t.digit} ${(100 * t.p).toFixed(1)}%`).join(", ")})`);
      if (a.show && !input.empty) console.log(drawing(input));
    }
  },
};
export default command;

/** The 28x28 input as 28 lines of text, darker characters for stronger ink. */
function drawing(input: MnistInput): string {
  const ramp = " .:-=+*#%@";
  const lines: string[] = [];
  for (let y = 0; y < 28; y++) {
    let line = "";
    for (let x = 0; x < 28; x++) line += ramp[Math.min(ramp.length - 1, Math.floor(input.pixels[y * 28 + x] * ramp.length))].repeat(2);
    lines.push(line.trimEnd());
  }
  return lines.join("\n");
}
