/**
 * Does `train --dashboard` slow training down? Times the same short training run (spawned CLI) three ways,
 * interleaved A B C A B C ...: without the dashboard, with it but no page open, and with a real Chromium page
 * open on it (the page parses the event stream and redraws a few times a second, on the same 2 cores).
 * The measure is the training time the trainer itself records (sum of the epochs' `seconds` in metrics.jsonl:
 * train + test evaluation, without process start-up, data loading or the one-off page build); wall time is
 * shown too. Prints a markdown table.
 *
 *   npx tsx bench/dashboard-overhead.ts [rounds=5] [train-limit=30000]
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type Browser, type Page } from "playwright-core";
import { interleave, median } from "./harness.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const rounds = Number(process.argv[2] ?? 5);
const trainLimit = Number(process.argv[3] ?? 30000);
const work = mkdtempSync(join(tmpdir(), "dash-bench-"));
let counter = 0;
const wall: Record<string, number[]> = {};

async function train(name: string, dashboard: boolean, browser?: Browser): Promise<number> {
  const out = join(work, `run-${counter++}`);
  const args = ["bin/onnx-mnist.js", "train", "--epochs", "1", "--train-limit", String(trainLimit), "--test-limit", "2000", "--threads", "2", "--out", out];
  if (dashboard) args.push("--dashboard", "--port", "0");
  const t0 = performance.now();
  const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
  let page: Page | undefined;
  let text = "";
  child.stdout.on("data", async (d) => {
    text += d;
    const m = /^dashboard: (\S+)/m.exec(text);
    if (m && browser && !page) {
      page = await browser.newPage();
      await page.goto(m[1]);
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  (wall[name] ??= []).push((performance.now() - t0) / 1000);
  if (code !== 0) throw new Error(`train exited with ${code}:\n${text}`);
  if (browser && !page) throw new Error("the dashboard page never opened");
  if (page) {
    const points = Number(await page.getByTestId("loss-points").textContent());
    if (points === 0) throw new Error("the open page received no loss points");
    await page.close();
  }
  const epochs = readFileSync(join(out, "metrics.jsonl"), "utf8")
    .split("\n")
    .filter((l) => l.includes('"type":"epoch"'))
    .map((l) => JSON.parse(l) as { seconds: number });
  rmSync(out, { recursive: true, force: true });
  return epochs.reduce((s, e) => s + e.seconds, 0);
}

const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  await train("warm-up", true); // builds and caches the dashboard page once
  const r = await interleave(rounds, [
    { name: "no dashboard", run: () => train("no dashboard", false) },
    { name: "--dashboard, no page", run: () => train("--dashboard, no page", true) },
    { name: "--dashboard + open page", run: () => train("--dashboard + open page", true, browser) },
  ]);
  const base = r.medians["no dashboard"];
  console.log(`\ntrain --epochs 1 --train-limit ${trainLimit} --test-limit 2000 --threads 2, ${rounds} interleaved rounds\n`);
  console.log("| run | training s (median) | vs no dashboard | wall s (median) |");
  console.log("|---|---:|---:|---:|");
  for (const [name, med] of Object.entries(r.medians)) {
    const ratio = name === "no dashboard" ? "1.000" : (med / base).toFixed(3);
    console.log(`| ${name} | ${med.toFixed(2)} | ${ratio} | ${median(wall[name]).toFixed(2)} |`);
  }
  console.log(`\nper-round ratios (median): ${Object.entries(r.ratios).map(([k, v]) => `${k} ${v.toFixed(3)}`).join(", ")}`);
} finally {
  await browser.close();
  rmSync(work, { recursive: true, force: true });
}
