/**
 * `npm run bench`: our training step, epoch and 10k-image evaluation against PyTorch CPU (Debian python3-torch)
 * on the same model, data, batch size and thread count. Each measurement runs in its own process, ours and
 * PyTorch's alternating (A B A B ...) for --rounds rounds; we report medians and the median per-round ratio, over
 * all rounds and separately over the calm rounds (no other process busy before and after the round) and the
 * contended ones (bench/harness.ts interleave).
 *   npm run bench -- [--rounds 5] [--threads 2] [--model mycnn] [--what step,epoch,eval] [--before]
 * --before adds a third candidate: ours with every speed lever of issue 14 off (the step as it was before them:
 * the conv input gradient by a flipped-weight Conv), so before and after are measured in the same rounds.
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { CALM_BUSY, describeLoad, hasTorch, interleave, markdownTable, median, runOurs, runPython } from "./harness.ts";

const { values: a } = parseArgs({
  options: {
    rounds: { type: "string", default: "5" },
    threads: { type: "string", default: "2" },
    model: { type: "string", default: "mycnn" },
    what: { type: "string", default: "step,epoch,eval" },
    before: { type: "boolean", default: false },
  },
});
const rounds = Number(a.rounds);
const common = ["--threads", a.threads!, "--batch-size", "128"];
const spec = fileURLToPath(new URL(`../src/nn/models/${a.model}.json`, import.meta.url));

if (!hasTorch()) {
  console.error("PyTorch is not available for /usr/bin/python3 (apt-get install python3-torch); measuring ours only.");
}
const torch = hasTorch();
const rows: Record<string, unknown>[] = [];
const rss: Record<string, number[]> = { ours: [], pytorch: [] };
const pick = (recs: Record<string, unknown>[], what: string, key: string, filter: (r: Record<string, unknown>) => boolean = () => true) => {
  const r = recs.find((x) => x.what === what && filter(x));
  const peak = recs.find((x) => x.what === "peak_rss");
  return { value: Number(r?.[key]), rss: Number(peak?.mb) };
};

for (const what of a.what!.split(",")) {
  const key = what === "step" ? "ms" : "seconds";
  const unit = what === "step" ? "ms / step" : what === "epoch" ? "s / epoch (60k images)" : "s / 10k images";
  const evalFilter = (r: Record<string, unknown>) => r.what !== "eval" || Number(r.eval_batch ?? r.batch) === 1000;
  const candidates = [
    {
      name: "ours",
      run: async () => {
        const m = pick(await runOurs(["--what", what, "--model", a.model!, ...common]), what, key, evalFilter);
        if (what === "epoch") rss.ours.push(m.rss);
        return m.value;
      },
    },
    ...(a.before
      ? [
          {
            name: "ours_before",
            run: async () => pick(await runOurs(["--what", what, "--model", a.model!, "--col2im", "off", ...common]), what, key, evalFilter).value,
          },
        ]
      : []),
    ...(torch
      ? [
          {
            name: "pytorch",
            run: async () => {
              const recs = await runPython(["bench", "--what", what, "--spec", spec, "--rounds", "1", ...common]);
              const m = pick(recs, what, key, (r) => r.what !== "eval" || Number(r.batch) === 1000);
              if (what === "epoch") rss.pytorch.push(m.rss);
              return m.value;
            },
          },
        ]
      : []),
  ];
  process.stderr.write(`${what}: ${rounds} interleaved rounds...\n`);
  const r = await interleave(rounds, candidates);
  process.stderr.write(describeLoad(r.load) + "\n");
  const ratio = (x: { rounds: number; ratios: Record<string, number> }) => (x.rounds ? `${Number(x.ratios["ours/pytorch"]?.toPrecision(3))} (${x.rounds})` : "no rounds");
  rows.push({
    measurement: `${what} (${unit})`,
    ours: r.medians.ours,
    pytorch: r.medians.pytorch,
    "ours / pytorch, all rounds": r.ratios["ours/pytorch"],
    "calm rounds: ratio (rounds)": torch ? ratio(r.calm) : undefined,
    "contended rounds: ratio (rounds)": torch ? ratio(r.contended) : undefined,
    ...(a.before
      ? {
          "before (levers off)": r.medians.ours_before,
          "before / pytorch, all rounds": torch ? median(r.samples.ours_before.map((x, i) => x / r.samples.pytorch[i])) : undefined,
          "before / pytorch, calm rounds": torch && r.calm.rounds ? median(r.load.flatMap((l, i) => (l.calm ? [r.samples.ours_before[i] / r.samples.pytorch[i]] : []))) : undefined,
          "ours / before": r.ratios["ours/ours_before"],
        }
      : {}),
  });
}
if (rss.ours.length) rows.push({ measurement: "peak RSS while training one epoch (MB)", ours: median(rss.ours), pytorch: rss.pytorch.length ? median(rss.pytorch) : undefined });
console.log(`\n${a.model}, batch 128, ${a.threads} threads, onnxruntime-node 1.30 vs PyTorch CPU (Debian python3-torch); calm: fewer than ${CALM_BUSY} cores busy with other processes before and after the round\n`);
console.log(markdownTable(rows));
