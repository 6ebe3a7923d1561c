/**
 * Digits "photographed" in software under different light, read by a model through the preprocessing that
 * `predict` and the demo use (src/image/preprocess.ts): the README's table "Photos: paper that is not evenly lit".
 *   tsx bench/photos.ts MODEL.onnx [--count 500]
 * Each of MNIST's first `count` test digits is drawn 5x larger (140x140, nearest neighbour) on paper whose
 * brightness varies as below; ink darkens its paper by 85 % (92 % on the clean page). Prints the accuracy for each.
 * (The README's "before" column is this script with src/image/preprocess.ts of commit bcfb805, before the uneven-paper handling.)
 */
import * as ort from "onnxruntime-node";
import { parseArgs } from "node:util";
import { toMnistInput } from "../src/image/preprocess.ts";
import { classifyAll } from "../src/image/classify.ts";
import { loadMnist } from "../src/data/node.ts";
import { Rng } from "../src/random.ts";

const { values: a, positionals } = parseArgs({ options: { count: { type: "string", default: "500" } }, allowPositionals: true });
if (positionals.length !== 1) throw new Error("usage: tsx bench/photos.ts MODEL.onnx [--count N]");
const count = Number(a.count);
const data = loadMnist(undefined, { testLimit: count, trainLimit: 1 });
const session = await ort.InferenceSession.create(positionals[0]);
const S = 140;
const k = S / 28;
const rng = new Rng(1);

/** Grey level of a pixel at (x, y) in [0, S) with ink intensity v in [0, 1]. */
const pages: Record<string, (x: number, y: number, v: number) => number> = {
  "evenly lit": (_x, _y, v) => 255 - v * 235,
  "light falling off across the page (100 % to 50 %)": (x, _y, v) => (235 - (110 * x) / S) * (1 - 0.85 * v),
  "a vignette (corners at about 20 %)": (x, y, v) => (230 - 90 * (Math.hypot(x - S / 2, y - S / 2) / (S / 2)) ** 2) * (1 - 0.85 * v),
  "a shadow across one half (60 %)": (x, y, v) => (x + y < S ? 225 : 140) * (1 - 0.85 * v),
  "evenly lit, with grain (+-20 levels)": (_x, _y, v) => 220 - v * 170 + (rng.next() - 0.5) * 40,
  "white paper in a dim room (at 40 % of white, evenly lit)": (_x, _y, v) => 100 * (1 - 0.85 * v),
  "dim and falling off (45 % to 25 %)": (x, _y, v) => (110 - (50 * x) / S) * (1 - 0.85 * v),
};

const run = async (x: Float32Array, n: number) =>
  (await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", x.subarray(0, n * 784), [n, 1, 28, 28]) }))[session.outputNames[0]].data as Float32Array;

for (const [name, page] of Object.entries(pages)) {
  const rgba = new Uint8Array(S * S * 4);
  const inputs = Array.from({ length: count }, (_, n) => {
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++) {
        const v = data.test.images[n * 784 + Math.floor(y / k) * 28 + Math.floor(x / k)] / 255;
        const g = Math.max(0, Math.min(255, Math.round(page(x, y, v))));
        rgba.set([g, g, g, 255], (y * S + x) * 4);
      }
    return toMnistInput(rgba, S, S).pixels;
  });
  const correct = (await classifyAll(run, inputs)).filter((c, n) => c.prediction === data.test.labels[n]).length;
  console.log(`| ${name} | ${((100 * correct) / count).toFixed(1)} % |`);
}
