import type { CommandModule } from "yargs";
import { trainWithUi, trainOptions } from "./train.ts";
import { listen } from "../src/server/listen.ts";
import { checkPort } from "./options.ts";

interface Args {
  port: number;
  host: string;
  [k: string]: unknown;
}

/** `npm start`: train the default model on the bundled MNIST, then serve the web demo with it. */
const command: CommandModule<object, Args> = {
  command: "start",
  describe: "Train the default model (mycnn, 5 epochs, augmented) on the bundled MNIST, then serve the web demo with it",
  builder: (y) =>
    y
      .options({
        ...trainOptions,
        // Augmented for the demo: digits drawn, photographed or written with other pens are read better (README:
        // "Augmentation"), and 5 epochs keep MNIST's test accuracy where 3 unaugmented epochs put it.
        epochs: { ...trainOptions.epochs, default: 5, describe: "epochs to train" },
        augment: { ...trainOptions.augment, default: true, describe: `${trainOptions.augment.describe}; --no-augment for none` },
        dashboard: { ...trainOptions.dashboard, describe: "serve a live dashboard of the run (on any free port)" },
        port: { type: "number", default: 8080, describe: "demo port (0: any free port)", requiresArg: true },
        // One address for both servers: the demo after training and, with --dashboard, the dashboard during it.
        host: { ...trainOptions.host, describe: "address the demo (and the dashboard, with --dashboard) listens on" },
      })
      .option("serve", { type: "boolean", default: true, describe: "serve the demo after training (--no-serve to skip)" })
      .example("$0 start", "train mycnn for 5 augmented epochs, then serve the demo at http://127.0.0.1:8080/")
      .example("$0 start --dashboard --epochs 1", "watch the training in a live dashboard, then use the demo")
      .example("$0 start --epochs 1 --port 3000", "a one-epoch run, then the demo on port 3000")
      .example("$0 start --no-serve --out runs/mine", "only train, into runs/mine") as any,
  handler: async (a) => {
    const { port, host, serve, dashboard, ...train } = a as unknown as Args & { serve: boolean; dashboard?: boolean };
    // The demo's port is taken before training: a busy one fails now, not after the whole run. Until the model
    // exists the page answers 503 "starting".
    checkPort(port);
    const listening = serve ? await listen({ port, host, what: "demo" }) : undefined;
    let trained: { code: number; dir: string };
    try {
      trained = await trainWithUi({ ...(train as any), dashboard, port: dashboard ? 0 : undefined, host });
    } catch (e) {
      await listening?.close();
      throw e;
    }
    const { code, dir } = trained;
    if (code !== 0 || !listening) {
      await listening?.close();
      process.exitCode = code;
      return;
    }
    const { serveDemo } = await import("../src/server/demo.ts");
    const server = await serveDemo({ modelPath: `${dir}/model.onnx`, listening });
    console.log(`demo: ${server.url}  (Ctrl-C to stop)`);
    console.log(`train in the browser: ${server.url.replace(/\/?$/, "/")}train.html`);
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
    await server.close();
  },
};
export default command;

