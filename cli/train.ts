import type { CommandModule } from "yargs";
import cliProgress from "cli-progress";
import { trainRun, stopSignal, type TrainOptions } from "../src/node/train-run.ts";
import type { OptimizerName } from "../src/optim/optimizer.ts";
import { lrSchedules, type LrSchedule } from "../src/optim/schedule.ts";
import { listen, type Listening } from "../src/server/listen.ts";
import type { PixelConvention } from "../src/image/convention.ts";
import { checkModelOptions, checkNumber, checkPort, modelOptions, parseThreadsFlag } from "./options.ts";
import { CLI } from "./invocation.ts";
import { AUGMENT_NONE, AUGMENT_PRESET, checkAugmentConfig, isIdentity, type AugmentConfig, type Interpolation } from "../src/augment/augment.ts";
import { UserError } from "../src/node/files.ts";

/** The parsed flags: the training options plus the dashboard's. */
interface Args extends Omit<TrainOptions, "optimizer" | "lrSchedule" | "augment" | "threads">, AugmentFlags {
  optimizer: string;
  /** As given on the command line: checkTrainArgs turns it into a count or "auto". */
  threads?: string | number;
  lrSchedule?: string;
  dashboard?: boolean;
  port?: number;
  host: string;
}

export const trainOptions = {
  ...modelOptions,
  epochs: { type: "number", describe: "epochs to train [default: 3]", requiresArg: true },
  "lr-schedule": { type: "string", choices: lrSchedules as unknown as string[], describe: "learning-rate schedule over the run (cosine: PyTorch's CosineAnnealingLR per step) [default: constant]" },
  "batch-size": { type: "number", default: 128, describe: "images per optimizer step (the last batch of an epoch may be smaller)", requiresArg: true },
  data: { type: "string", describe: "directory with the four MNIST-format IDX files (raw or .gz) [default: the bundled MNIST]", requiresArg: true },
  out: { type: "string", describe: "run directory, new or empty [default: runs/<timestamp>; runs/latest points to the newest]", requiresArg: true },
  overwrite: { type: "boolean", describe: "let --out replace the run already in that directory" },
  resume: { type: "string", describe: "continue the run in this directory from its checkpoint", requiresArg: true },
  graph: { type: "string", describe: "train the graphs that build-graph wrote to this directory", requiresArg: true },
  "init-weights": { type: "string", describe: "start from these weights: a .safetensors file of the model's PyTorch state_dict", requiresArg: true },
  threads: { type: "string", describe: "onnxruntime intra-op threads: N, or auto: one per core that is idle when training starts (measured; pass N for runs that must match bit for bit across machines and loads) [default: auto]", requiresArg: true },
  "train-limit": { type: "number", describe: "use only the first N training images", requiresArg: true },
  "test-limit": { type: "number", describe: "use only the first N test images", requiresArg: true },
  augment: { type: "boolean", describe: "augment every training batch with the preset: --rotate 10 --translate 0 --scale 0.9,1.1 --shear 10 --elastic 0 --stroke 1 (the flags below override it)" },
  rotate: { type: "number", describe: "random rotation of up to this many degrees (torchvision RandomAffine's degrees)", requiresArg: true },
  translate: { type: "number", describe: "random shift of up to this fraction of the image, in whole pixels (RandomAffine's translate)", requiresArg: true },
  scale: { type: "string", describe: "random scale in LO,HI, e.g. 0.9,1.1 (RandomAffine's scale)", requiresArg: true },
  shear: { type: "number", describe: "random slant of up to this many degrees (RandomAffine's shear)", requiresArg: true },
  "shear-y": { type: "number", describe: "random vertical shear of up to this many degrees (the y part of RandomAffine's four-number shear)", requiresArg: true },
  aspect: { type: "string", describe: "random aspect ratio (width / height) in LO,HI at constant area, e.g. 0.75,1.333 (RandomResizedCrop's ratio)", requiresArg: true },
  interpolation: { type: "string", choices: ["nearest", "bilinear"], describe: "how the distortions sample the image (torchvision's InterpolationMode) [default: bilinear; RandomAffine's own default, nearest, scored 0.6 points lower on the suite's fonts and pen]", requiresArg: true },
  elastic: { type: "string", describe: "elastic distortion ALPHA[,SIGMA] in pixels (Simard et al. 2003: 34,4); 0 for none", requiresArg: true },
  stroke: { type: "number", describe: "stroke-width jitter: ink up to this many 3x3 steps thinner or thicker (0-2; thinner stops at one step)", requiresArg: true },
  dashboard: { type: "boolean", describe: "serve a live dashboard of the run" },
  port: { type: "number", describe: "dashboard port (0: any free port) [default: 8050]", requiresArg: true },
  host: { type: "string", default: "127.0.0.1", describe: "dashboard address to listen on", requiresArg: true },
} as const;

/** Checks the flags; returns the pixel convention of an imported model (see checkModelOptions) and the thread count. */
export function checkTrainArgs(a: Args): { pixels: PixelConvention | undefined; threads: number | "auto" | undefined } {
  const pixels = checkModelOptions(a);
  checkNumber("epochs", a.epochs, { integer: true, min: 1 });
  checkNumber("batch-size", a.batchSize, { integer: true, min: 1 });
  const threads = parseThreadsFlag(a.threads);
  checkNumber("train-limit", a.trainLimit, { integer: true, min: 1 });
  checkNumber("test-limit", a.testLimit, { integer: true, min: 1 });
  checkPort(a.port);
  augmentConfigOf(a);
  return { pixels, threads };
}

interface AugmentFlags {
  augment?: boolean;
  rotate?: number;
  translate?: number;
  scale?: string;
  shear?: number;
  shearY?: number;
  aspect?: string;
  interpolation?: string;
  elastic?: string;
  stroke?: number;
}

/** The augmentation the flags ask for: the preset under --augment, else only what is given; undefined for none. */
export function augmentConfigOf(a: AugmentFlags): AugmentConfig | undefined {
  const given = a.rotate !== undefined || a.translate !== undefined || a.scale !== undefined || a.shear !== undefined || a.shearY !== undefined || a.aspect !== undefined || a.interpolation !== undefined || a.elastic !== undefined || a.stroke !== undefined;
  if (!a.augment && !given) return undefined;
  const c: AugmentConfig = structuredClone(a.augment ? AUGMENT_PRESET : AUGMENT_NONE);
  const pair = (flag: string, s: string, optionalSecond: boolean): [number, number | undefined] => {
    const parts = s.split(",").map((p) => p.trim());
    const nums = parts.map(Number);
    if (parts.length > 2 || (!optionalSecond && parts.length !== 2) || parts.some((p) => p === "") || nums.some((x) => !Number.isFinite(x)))
      throw new UserError(`--${flag} must be ${optionalSecond ? "ALPHA or ALPHA,SIGMA (e.g. 34,4)" : "LO,HI (e.g. 0.9,1.1)"}, got ${s}`);
    return [nums[0], nums[1]];
  };
  if (a.rotate !== undefined) c.degrees = a.rotate;
  if (a.translate !== undefined) c.translate = a.translate;
  if (a.scale !== undefined) c.scale = pair("scale", a.scale, false) as [number, number];
  if (a.shear !== undefined) c.shear = a.shear;
  if (a.shearY !== undefined) c.shearY = a.shearY;
  if (a.interpolation !== undefined) c.interpolation = a.interpolation as Interpolation;
  if (a.aspect !== undefined) c.aspect = pair("aspect", a.aspect, false) as [number, number];
  if (a.elastic !== undefined) {
    const [alpha, sigma] = pair("elastic", a.elastic, true);
    c.elasticAlpha = alpha;
    if (sigma !== undefined) c.elasticSigma = sigma;
  }
  if (a.stroke !== undefined) c.stroke = a.stroke;
  checkAugmentConfig(c);
  return isIdentity(c) ? undefined : c;
}

/** Trains with a progress bar on stderr and one line per epoch on stdout. Returns the process exit code. */
export async function trainWithUi(a: Args): Promise<{ code: number; dir: string }> {
  const { pixels, threads } = checkTrainArgs(a);
  const tty = process.stderr.isTTY;
  const bar = new cliProgress.SingleBar(
    {
      format: "epoch {epoch}/{epochs} {bar} {value}/{total} | loss {loss} | {ips} img/s | ETA {eta_formatted}",
      barsize: 24,
      hideCursor: true,
      clearOnComplete: true,
      stream: process.stderr,
      etaBuffer: 50,
      noTTYOutput: false,
    },
    cliProgress.Presets.shades_classic,
  );
  let dashboard: { url: string; publish(dir: string, rec: object): void; close(): Promise<void> } | undefined;
  // The dashboard's port is bound before the run directory exists: a busy port must not leave a run behind.
  const port: Listening | undefined = a.dashboard ? await listen({ port: a.port ?? 8050, host: a.host, what: "dashboard" }) : undefined;
  let runDir = "";
  const early: object[] = []; // records written before the run directory was known (the run record)
  const onSigint = () => {
    if (stopSignal.requested) {
      // Second Ctrl-C: leave now. Every file on disk is whole (atomic writes), so nothing is lost but this step.
      process.stderr.write("\nstopped without saving\n");
      process.exit(130);
    }
    stopSignal.requested = true;
    process.stderr.write("\nstopping after this step (Ctrl-C again to quit at once)...\n");
  };
  process.on("SIGINT", onSigint);
  let smooth = 0;
  let smoothN = 0;
  let epochShown = 0;
  try {
    if (a.dashboard) {
      const mod = await import("../src/dashboard/server.ts");
      dashboard = await mod.startDashboard({ listening: port, runDirs: a.resume ? [a.resume] : [], live: true });
    }
    const outcome = await trainRun({ ...a, pixels, optimizer: a.optimizer as OptimizerName, lrSchedule: a.lrSchedule as LrSchedule | undefined, augment: augmentConfigOf(a), threads }, {
      onStart: async (info) => {
        runDir = info.dir;
        for (const rec of early.splice(0)) dashboard?.publish(runDir, rec);
        console.log(
          `${info.resumed ? "resuming" : "training"} ${info.plan.name} (${info.plan.paramCount.toLocaleString("en-US")} parameters) in ${info.dir}` +
            (info.resumed ? ` from epoch ${info.startEpoch + 1}, step ${info.startBatch}` : "") +
            (info.augment ? `, augmented (${info.augment})` : "") +
            `, ${info.threads}`,
        );
        if (dashboard) console.log(`dashboard: ${dashboard.url}`);
      },
      onRecord: (rec) => (runDir ? dashboard?.publish(runDir, rec) : early.push(rec)),
      onStep: (s, ips) => {
        smooth = 0.98 * smooth + 0.02 * s.loss;
        smoothN++;
        const shown = smooth / (1 - 0.98 ** smoothN);
        if (!tty) return;
        const payload = { epoch: s.epoch, epochs: a.epochs ?? 3, loss: shown.toFixed(4), ips: Math.round(ips).toLocaleString("en-US") };
        if (epochShown !== s.epoch) {
          if (epochShown) bar.stop();
          bar.start(s.batches, s.batch - 1, payload);
          epochShown = s.epoch;
        }
        bar.update(s.batch, payload);
      },
      onEpoch: (e, epochs) => {
        if (tty) bar.stop();
        epochShown = 0;
        console.log(
          `epoch ${e.epoch}/${epochs}  train loss ${e.trainLoss.toFixed(4)}  train acc ${(100 * e.trainAccuracy).toFixed(2)}%  ` +
            `test loss ${e.test.loss.toFixed(4)}  test acc ${(100 * e.test.accuracy).toFixed(2)}%  (${e.seconds.toFixed(1)} s)`,
        );
      },
      afterEpochFiles: async (dir) => {
        // The report is a convenience: failing to write it must not stop training.
        try {
          const { writeReport } = await import("../src/dashboard/report.ts");
          await writeReport(dir);
        } catch (e) {
          process.stderr.write(`warning: could not write ${dir}/report.html: ${(e as Error).message}\n`);
        }
      },
    });
    if (tty) bar.stop();
    if (outcome.status === "interrupted") {
      const p = outcome.position;
      console.log(`interrupted at epoch ${p.epoch + 1}, step ${p.stepInEpoch}; checkpoint saved in ${outcome.dir}/checkpoint`);
      console.log(`resume with: ${CLI} train --resume ${outcome.dir}`);
      return { code: 130, dir: outcome.dir };
    }
    if (outcome.status === "diverged") {
      console.error(
        `error: the loss became ${outcome.lastLoss} at step ${outcome.step} (epoch ${outcome.position.epoch + 1}); training stopped. ` +
          `The last good checkpoint (epoch ${outcome.position.epoch}) is in ${outcome.dir}/checkpoint. Try a lower --lr.`,
      );
      return { code: 1, dir: outcome.dir };
    }
    console.log(`done: ${outcome.dir}/model.onnx` + (outcome.testAccuracy !== undefined ? ` (test accuracy ${(100 * outcome.testAccuracy).toFixed(2)}%)` : ""));
    console.log(`evaluate with: ${CLI} eval --model ${outcome.dir}/model.onnx`);
    return { code: 0, dir: outcome.dir };
  } finally {
    process.off("SIGINT", onSigint);
    if (tty) bar.stop();
    if (dashboard) {
      await dashboard.close();
      if (runDir) console.log(`dashboard closed; reopen it with: ${CLI} dashboard ${runDir}  (or open ${runDir}/report.html)`);
    } else await port?.close();
  }
}

const command: CommandModule<object, Args> = {
  command: "train",
  describe: "Train a model on MNIST with onnxruntime-node (progress bar, per-epoch test accuracy, checkpoints, resume)",
  builder: (y) =>
    y
      .options(trainOptions)
      .example("$0 train", "train mycnn for 3 epochs on the bundled MNIST")
      .example("$0 train --model lenet5 --epochs 5 --out runs/lenet", "")
      .example("$0 train --resume runs/latest", "continue an interrupted run") as any,
  handler: async (a) => {
    const { code } = await trainWithUi(a);
    process.exitCode = code;
  },
};
export default command;
