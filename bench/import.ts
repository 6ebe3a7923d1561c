/**
 * `npm run bench:import`: is an imported model's training step as fast as the same architecture from our spec?
 * Interleaved rounds (A B C A B C ...), each measurement in a fresh process (bench/ours.ts --what step):
 *   spec      mycnn from src/nn/models/mycnn.json
 *   ours      the model.onnx our own build-graph exports for mycnn, imported with --from
 *   pytorch   the tutorial's MyCNN exported by torch.onnx.export (training mode, opset 17, dynamic batch)
 *   npm run bench:import -- [--rounds 7] [--threads 2] [--what step|epoch]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { interleave, markdownTable, median } from "./harness.ts";
import { buildInferenceModel, initialValues, planModel } from "../src/program/program.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { importModel } from "../test/helpers/import-models.ts";

const { values: a } = parseArgs({
  options: { rounds: { type: "string", default: "7" }, threads: { type: "string", default: "2" }, what: { type: "string", default: "step" } },
});
const key = a.what === "step" ? "ms" : "seconds";

function ours(args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--import", "tsx", fileURLToPath(new URL("./ours.ts", import.meta.url)), "--what", a.what!, "--threads", a.threads!, ...args], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    child.stdout.on("data", (d) => (out += d));
    child.on("close", (code) => {
      if (code !== 0) return reject(new Error(`bench/ours.ts failed (${code})`));
      const rec = out.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l)).find((r) => r.what === a.what);
      resolve(Number(rec[key]));
    });
  });
}

const tmp = mkdtempSync(join(tmpdir(), "onnx-mnist-bench-import-"));
try {
  const plan = planModel(builtinSpec("mycnn"));
  const init = initialValues(plan, 0);
  const oursFile = join(tmp, "mycnn.onnx");
  writeFileSync(oursFile, buildInferenceModel(plan, init.params, init.buffers));
  const torchFile = (await importModel("mycnn_train_op17_dynamic.onnx")).path;
  process.stderr.write(`${a.what}: ${a.rounds} interleaved rounds of spec / ours / pytorch...\n`);
  const r = await interleave(Number(a.rounds), [
    { name: "spec", run: () => ours(["--model", "mycnn"]) },
    { name: "ours", run: () => ours(["--from", oursFile]) },
    { name: "pytorch", run: () => ours(["--from", torchFile]) },
  ]);
  const toSpec = (name: string) => median(r.samples[name].map((x, i) => x / r.samples.spec[i]));
  console.log(`\nmycnn ${a.what}, batch 128, ${a.threads} threads: the spec against imported ONNX files of the same architecture\n`);
  console.log(
    markdownTable([
      { model: "mycnn from the spec", [`${a.what} (${key})`]: r.medians.spec, "ratio to the spec (median per round)": 1 },
      { model: "our model.onnx, imported", [`${a.what} (${key})`]: r.medians.ours, "ratio to the spec (median per round)": toSpec("ours") },
      { model: "torch.onnx.export of MyCNN, imported", [`${a.what} (${key})`]: r.medians.pytorch, "ratio to the spec (median per round)": toSpec("pytorch") },
    ]),
  );
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
