/**
 * onnx-mnist: the command line. Each command is a thin yargs module in cli/<command>.ts: parse, call src/, print.
 * Errors that users can fix print one line `error: ...` and exit 1; usage errors exit 2.
 */
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import buildGraph from "./build-graph.ts";
import train from "./train.ts";
import evalCmd from "./eval.ts";
import start from "./start.ts";
import { commandModules } from "./commands.ts";

export function cli(argv: string[]) {
  return yargs(argv)
    .scriptName("onnx-mnist")
    .usage("$0 <command> [options]\n\nTrain a CNN on MNIST through ONNX graphs (onnxruntime-node) and serve it in the browser.")
    .command(buildGraph)
    .command(train)
    .command(evalCmd)
    .command(commandModules)
    .command(start)
    .demandCommand(1, "name a command (see --help)")
    .strictCommands()
    .strictOptions()
    .recommendCommands()
    .wrap(Math.min(110, process.stdout.columns || 110))
    .fail((msg, err, y) => {
      if (err) throw err;
      console.error(`error: ${msg}\n(run with --help for usage)`);
      process.exit(2);
    })
    .help()
    .version(false);
}

/** Runs the CLI; errors users can fix print `error: <reason>` (no stack) and exit 1. */
export async function main(argv: string[]): Promise<void> {
  try {
    await cli(argv).parseAsync();
  } catch (e) {
    const err = e as Error;
    const known = ["UserError", "SpecError", "DataError", "CheckpointError", "ModelError", "ImageError", "RangeError", "ConfigError", "LimitError"].includes(err.name);
    console.error(`error: ${err.message}`);
    if (!known || process.env.ONNX_MNIST_DEBUG) console.error(err.stack);
    process.exit(1);
  }
}

// `tsx cli/main.ts ...` runs it directly; bin/onnx-mnist.js calls main().
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main(hideBin(process.argv));
