/**
 * onnx-mnist: the command line. Each command is a thin yargs module in cli/<command>.ts: parse, call src/, print.
 * Errors that users can fix print one line `error: ...` and exit 1; usage errors (unknown command or option,
 * a flag without its value, a flag value out of range) print one line and exit 2.
 */
import { VERSION } from "../src/program/program.ts";
import yargs from "yargs";
import { hideBin } from "yargs/helpers";
import buildGraph from "./build-graph.ts";
import train from "./train.ts";
import evalCmd from "./eval.ts";
import start from "./start.ts";
import { commandModules } from "./commands.ts";
import { nearest, UsageError } from "./options.ts";

const COMMANDS = [buildGraph, train, evalCmd, ...commandModules, start].map((m) => String(m.command).split(" ")[0]);

export function cli(argv: string[]) {
  const y = yargs(argv);
  return y
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
    .fail((msg, err) => {
      // yargs' own parse errors (a flag without its value) arrive as a YError: usage errors too.
      if (err && err.name !== "YError") throw err;
      throw new UsageError(usageMessage(msg ?? err?.message ?? "bad usage", argv, y as unknown as OptionsOf));
    })
    .help()
    .alias("help", "h")
    .version(VERSION);
}

/** yargs keeps the options it knows on an internal (untyped) method. */
interface OptionsOf {
  getOptions(): { key: Record<string, unknown> };
}

/** yargs' message made one self-explaining line: the unknown name, and the nearest known one. */
function usageMessage(msg: string, argv: string[], y: OptionsOf): string {
  const command = argv.find((a) => !a.startsWith("-"));
  const recommended = /^Did you mean (.+)\?$/.exec(msg);
  if (recommended) return `unknown command "${command}"; did you mean ${recommended[1]}?`;
  const unknown = /^Unknown arguments?: (.+)$/.exec(msg);
  if (unknown) {
    const known = Object.keys(y.getOptions().key).filter((k) => k.length > 1 && !/[A-Z]/.test(k));
    const hints = unknown[1].split(", ").map((name) => {
      const near = nearest(name, known);
      return near ? `--${name} (did you mean --${near}?)` : `--${name}`;
    });
    return `unknown option${hints.length > 1 ? "s" : ""} ${hints.join(", ")}`;
  }
  return msg.replace(/^Not enough arguments following: (.+)$/, "--$1 needs a value");
}

/** Runs the CLI; errors users can fix print `error: <reason>` (no stack) and exit 1, usage errors exit 2. */
export async function main(argv: string[]): Promise<void> {
  // `onnx-mnist eval ... | head -1`: the reader has all it wanted; a closed stdout is not an error.
  for (const stream of [process.stdout, process.stderr]) {
    stream.on("error", (e: NodeJS.ErrnoException) => {
      if (e.code === "EPIPE") process.exit(0);
      throw e;
    });
  }
  try {
    await cli(argv).parseAsync();
  } catch (e) {
    const err = e as Error;
    if (err.name === "UsageError") {
      const command = argv.find((a) => COMMANDS.includes(a));
      console.error(`error: ${err.message} (see onnx-mnist ${command ? command + " " : ""}--help)`);
      process.exit(2);
    }
    const known = ["UserError", "SpecError", "DataError", "CheckpointError", "ModelError", "ImageError", "RangeError", "ConfigError", "LimitError", "ConventionError", "SafetensorsError", "StateDictError", "NonFiniteError"].includes(err.name);
    console.error(`error: ${err.message}`);
    if (!known || process.env.ONNX_MNIST_DEBUG) console.error(err.stack);
    process.exit(1);
  }
}

// `tsx cli/main.ts ...` runs it directly; bin/onnx-mnist.js calls main().
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) await main(hideBin(process.argv));
