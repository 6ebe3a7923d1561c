import type { CommandModule } from "yargs";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { readFileOrFail, UserError } from "../src/node/files.ts";
import { openClassifier, trainingCalibration } from "../src/node/model-file.ts";
import { decodeImage, readImageFile } from "../src/image/decode.ts";
import { toMnistInput, type MnistInput } from "../src/image/preprocess.ts";
import { classifyAll } from "../src/image/classify.ts";
import { conventionFromFlags, conventionOptions, type ConventionFlags } from "../src/image/convention.ts";
import { checkNumber } from "./options.ts";

interface Args extends ConventionFlags {
  model: string;
  images: string[];
  list?: string;
  data?: string;
  json?: boolean;
  threads?: number;
  ink: "auto" | "dark" | "light";
  show?: boolean;
}

/**
 * onnxruntime-node 1.30 crashes (SIGSEGV, exit 139, no output) in InferenceSession.create when the process's
 * command line is longer than about 28 KB (`predict photos/*.png` with ~900 files). Past this many bytes we
 * classify in a child process whose argv is short and that reads the file list from its stdin.
 */
const LONG_ARGV = 20_000;
const IMAGE = /\.(png|jpe?g)$/i;

const command: CommandModule<object, Args> = {
  command: "predict [images..]",
  describe: "Classify PNG/JPEG images of handwritten digits with any MNIST classifier .onnx (preprocessed the way MNIST was made)",
  builder: (y) =>
    y
      .positional("images", { type: "string", array: true, describe: "PNG or JPEG files, one digit each, or directories of them" })
      .option("model", { type: "string", demandOption: true, describe: "the ONNX model file", requiresArg: true })
      .option("list", { type: "string", describe: "a file listing images, one path per line (- reads the list from stdin)", requiresArg: true })
      .option("json", { type: "boolean", describe: "print one JSON array: file, prediction, probabilities, top3" })
      .option("threads", { type: "number", describe: "onnxruntime intra-op threads", requiresArg: true })
      .option("ink", { choices: ["auto", "dark", "light"], default: "auto", describe: "dark ink on light paper, light ink on dark, or judge by the border" })
      .option("show", { type: "boolean", describe: "also draw the 28x28 input the model sees, as text" })
      .option("data", { type: "string", describe: "MNIST-format directory whose training images calibrate the pixel convention when it is detected [default: the bundled MNIST]", requiresArg: true })
      .options(conventionOptions)
      .example("$0 predict --model runs/latest/model.onnx digit.png photo.jpg", "")
      .example("find scans -name '*.png' | $0 predict --model m.onnx --list -", "many files") as any,
  handler: async (a) => {
    checkNumber("threads", a.threads, { integer: true, min: 1 });
    const convention = conventionFromFlags(a);
    const argvBytes = process.argv.reduce((s, x) => s + Buffer.byteLength(x) + 1, 0);
    if (argvBytes > LONG_ARGV && !process.env.ONNX_MNIST_PREDICT_CHILD) {
      process.exitCode = await inChild(a, expand(a.images ?? []));
      return;
    }
    const files = [...expand(a.images ?? []), ...(a.list !== undefined ? readList(a.list) : [])];
    if (files.length === 0) throw new UserError("no images to classify: name PNG/JPEG files or directories, or pass --list FILE (- for stdin)");
    // Read and preprocess every image before loading the model, so a bad file fails fast.
    const inputs = files.map((file) => {
      const image = decodeImage(readImageFile(file), file);
      return { file, ...toMnistInput(image.rgba, image.width, image.height, { ink: a.ink }) };
    });
    const model = await openClassifier(a.model, { threads: a.threads, convention, calibration: trainingCalibration(a.data) });
    const found = inputs.filter((i) => !i.empty);
    const results = await classifyAll((x, n) => model.scores(x, n), found.map((i) => i.pixels), { classes: model.classes });
    await model.release();
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
    if (model.pixels.source !== "onnx-mnist") console.error(`${a.model}: ${model.describe()}`);
    for (const input of inputs) {
      const r = byFile.get(input);
      if (!r) console.log(`${input.file}: no digit found (the image is blank)`);
      else console.log(`${input.file}: ${r.prediction}  (${r.top.map((t) => `${t.digit} ${(100 * t.p).toFixed(1)}%`).join(", ")})`);
      if (a.show && !input.empty) console.log(drawing(input));
    }
  },
};
export default command;

/** Directories become the PNG/JPEG files directly inside them, in name order. */
function expand(paths: string[]): string[] {
  return paths.flatMap((p) => {
    let isDir = false;
    try {
      isDir = statSync(p).isDirectory();
    } catch {
      return [p]; // reading it will say what is wrong
    }
    if (!isDir) return [p];
    const files = readdirSync(p).filter((f) => IMAGE.test(f)).sort().map((f) => join(p, f));
    if (files.length === 0) throw new UserError(`${p}: a directory without PNG or JPEG files`);
    return files;
  });
}

/** Paths one per line (blank lines skipped); directories in it are expanded too. */
function readList(list: string): string[] {
  let text: string;
  try {
    text = list === "-" ? readFileSync(0, "utf8") : new TextDecoder().decode(readFileOrFail(list, "a list of image paths, one per line"));
  } catch (e) {
    if (e instanceof UserError) throw e;
    throw new UserError(`cannot read the image list from stdin (${(e as Error).message})`);
  }
  return expand(text.split(/\r?\n/).filter((l) => l.trim() !== ""));
}

/** Runs this command in a child with a short argv, the files on its stdin; returns its exit code. */
function inChild(a: Args, files: string[]): Promise<number> {
  const flags: string[] = ["--model", a.model, "--ink", a.ink];
  const opt = (name: string, v: string | number | undefined) => v !== undefined && flags.push(`--${name}`, String(v));
  opt("threads", a.threads);
  opt("data", a.data);
  opt("input-preset", a.inputPreset);
  opt("input-scale", a.inputScale);
  opt("input-mean", a.inputMean);
  opt("input-std", a.inputStd);
  if (a.invert !== undefined) flags.push(a.invert ? "--invert" : "--no-invert");
  if (a.json) flags.push("--json");
  if (a.show) flags.push("--show");
  const listed = a.list !== undefined ? readList(a.list) : [];
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1], "predict", ...flags, "--list", "-"], {
    stdio: ["pipe", "inherit", "inherit"],
    env: { ...process.env, ONNX_MNIST_PREDICT_CHILD: "1" },
  });
  child.stdin.end([...files, ...listed].join("\n") + "\n");
  return new Promise((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 + 9 : 1)));
  });
}

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
