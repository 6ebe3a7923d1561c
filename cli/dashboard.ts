import type { CommandModule } from "yargs";
import { checkPort } from "./options.ts";
import { expandRunDirs } from "../src/dashboard/run-files.ts";

interface Args {
  dirs: string[];
  port: number;
  host: string;
}

/** `onnx-mnist dashboard [DIR...]`: the training dashboard for finished (or running) runs, overlaid. */
const command: CommandModule<object, Args> = {
  command: "dashboard [dirs..]",
  describe: "Serve the training dashboard for run directories (or a parent such as runs/), several runs overlaid",
  builder: (y) =>
    y
      .positional("dirs", { type: "string", array: true, default: ["runs"], describe: "run directories, or directories of runs" })
      .option("port", { type: "number", default: 8050, describe: "port to listen on (0: any free port)", requiresArg: true })
      .option("host", { type: "string", default: "127.0.0.1", describe: "address to listen on", requiresArg: true })
      .example("$0 dashboard", "all runs under runs/")
      .example("$0 dashboard runs/lenet runs/mycnn", "compare two runs") as any,
  handler: async (a) => {
    checkPort(a.port);
    const dirs = expandRunDirs(a.dirs);
    const { startDashboard } = await import("../src/dashboard/server.ts");
    const dash = await startDashboard({ host: a.host, port: a.port, runDirs: dirs, live: false });
    console.log(`dashboard: ${dash.url}`);
    console.log(`${dirs.length} run${dirs.length === 1 ? "" : "s"}: ${dirs.join(", ")}  (Ctrl-C to stop)`);
    await new Promise<void>((done) => {
      process.once("SIGINT", done);
      process.once("SIGTERM", done);
    });
    await dash.close();
  },
};
export default command;
