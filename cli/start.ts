import type { CommandModule } from "yargs";
import { createServer, type Server } from "node:net";
import { trainWithUi, trainOptions } from "./train.ts";
import { checkPort } from "./options.ts";
import { UserError } from "../src/node/files.ts";

interface Args {
  port: number;
  host: string;
  [k: string]: unknown;
}

/** `npm start`: train the default model on the bundled MNIST, then serve the web demo with it. */
const command: CommandModule<object, Args> = {
  command: "start",
  describe: "Train the default model (mycnn, 3 epochs) on the bundled MNIST, then serve the web demo with it",
  builder: (y) =>
    y
      .options({ ...trainOptions, dashboard: trainOptions.dashboard, port: { type: "number", default: 8080, describe: "demo port", requiresArg: true } })
      .option("serve", { type: "boolean", default: true, describe: "serve the demo after training (--no-serve to skip)" }) as any,
  handler: async (a) => {
    const { port, host, serve, dashboard, ...train } = a as unknown as Args & { serve: boolean; dashboard?: boolean };
    checkPort(port);
    // The demo's port is held while training, so that a bad or busy port fails now, not after the whole run.
    const held = serve ? await holdPort(port, host) : undefined;
    let code: number;
    let dir: string;
    try {
      ({ code, dir } = await trainWithUi({ ...(train as any), dashboard, port: dashboard ? 0 : undefined, host }));
    } finally {
      await new Promise((done) => held?.server.close(done) ?? done(undefined));
    }
    if (code !== 0) {
      process.exitCode = code;
      return;
    }
    if (!held) return;
    const { serveDemo } = await import("../src/server/demo.ts");
    const server = await serveDemo({ modelPath: `${dir}/model.onnx`, port: held.port, host });
    console.log(`demo: ${server.url}  (Ctrl-C to stop)`);
    console.log(`train in the browser: ${server.url.replace(/\/?$/, "/")}train.html`);
    await new Promise<void>((resolve) => process.once("SIGINT", () => resolve()));
    await server.close();
  },
};
export default command;

/** Listens on `port` (0: any free one) with a placeholder server; one line if the port cannot be had. */
function holdPort(port: number, host: string): Promise<{ server: Server; port: number }> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket) => socket.end("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 25\r\n\r\nstill training; try later"));
    server.once("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EADDRINUSE") reject(new UserError(`port ${port} on ${host} is in use; pass --port N (0 picks a free port)`));
      else if (e.code === "EADDRNOTAVAIL" || e.code === "ENOTFOUND") reject(new UserError(`cannot listen on ${host}: not an address of this machine; use --host 127.0.0.1`));
      else if (e.code === "EACCES") reject(new UserError(`not allowed to listen on port ${port}; use a port above 1023`));
      else reject(e);
    });
    server.listen(port, host, () => {
      const a = server.address();
      resolve({ server, port: typeof a === "object" && a ? a.port : port });
    });
  });
}
