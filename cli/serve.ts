import type { CommandModule } from "yargs";
import { existsSync } from "node:fs";
import { serveDemo } from "../src/server/demo.ts";
import { checkPort } from "./options.ts";
import { CLI } from "./invocation.ts";

interface Args {
  model?: string;
  port: number;
  host: string;
}

const DEFAULT_MODEL = "runs/latest/model.onnx";

/** `onnx-mnist serve`: the web demo (draw a digit, classify it in the browser) with a model, until Ctrl-C. */
const command: CommandModule<object, Args> = {
  command: "serve",
  describe: "Serve the web demo (draw a digit; onnxruntime-web classifies it in the browser) with a model",
  builder: (y) =>
    y
      .option("model", { type: "string", describe: `the ONNX model the page loads [default: ${DEFAULT_MODEL}]`, requiresArg: true })
      .option("port", { type: "number", default: 8080, describe: "port (0: any free port)", requiresArg: true })
      .option("host", { type: "string", default: "127.0.0.1", describe: "address to listen on", requiresArg: true })
      .example("$0 serve --model runs/latest/model.onnx --port 8080", "") as any,
  handler: async (a) => {
    checkPort(a.port);
    let modelPath = a.model;
    if (modelPath === undefined) {
      if (existsSync(DEFAULT_MODEL)) modelPath = DEFAULT_MODEL;
      else console.error(`note: no ${DEFAULT_MODEL} (train one with \`${CLI} train\`); the page will ask for a model file`);
    }
    const server = await serveDemo({ modelPath, port: a.port, host: a.host, log: (line) => console.error(line) });
    console.log(`demo: ${server.url}${modelPath ? `  (model: ${modelPath})` : ""}  (Ctrl-C to stop)`);
    await new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve());
      process.once("SIGTERM", () => resolve());
    });
    await server.close();
  },
};
export default command;
