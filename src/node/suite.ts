/**
 * Node-only: the "handwriting from elsewhere" suite, digits that did not come from MNIST's scanner, made 28x28
 * by the demo's own preprocessing. Three parts:
 * - fonts: handwriting fonts at several slants and stroke widths, and
 * - pen: digits drawn with a scripted pen on the web demo's canvas; both generated once by
 *   scripts/make-suite.ts and committed under src/data/suite/ as IDX files;
 * - writers: real handwriting, the 1,797 digits of the test set of UCI's "Optical Recognition of Handwritten
 *   Digits" (13 writers; src/data/suite/README.md), each 8x8 grid of ink counts drawn as a 96x96 scan (dark ink
 *   on white) and preprocessed here, at load time, as `predict` would preprocess that scan.
 * It is for evaluation only: nothing is trained or tuned on it, nor on MNIST's test set.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { parseIdx, DataError } from "../data/idx.ts";
import { makeSplit, type Split } from "../data/dataset.ts";
import { SIDE, toMnistInput } from "../image/preprocess.ts";
import { evaluate, type EvalResult, type Predictor } from "../runtime/fit.ts";

export const SUITE_DIR = join(import.meta.dirname, "../data/suite");

/** The writers part's source: scikit-learn's copy of the UCI test set, one digit per line (64 ink counts, label). */
export const WRITERS_FILE = "optdigits-test.csv.gz";

/** Each of the 8x8 cells is drawn as a SCAN_CELL-pixel square: a 96x96 scan, as the UCI set is usually shown. */
const SCAN_CELL = 12;

export interface SuiteGroup {
  name: string;
  start: number;
  count: number;
}

export interface Suite {
  split: Split;
  groups: SuiteGroup[];
}

export function loadSuite(dir = SUITE_DIR): Suite {
  const read = (file: string) => {
    try {
      return new Uint8Array(readFileSync(join(dir, file)));
    } catch (e) {
      throw new DataError(`${join(dir, file)}: cannot read the suite (${(e as Error).message.split("\n")[0]}); regenerate it with: npx tsx scripts/make-suite.ts`);
    }
  };
  const images = parseIdx(read("suite-images-idx3-ubyte.gz"), join(dir, "suite-images-idx3-ubyte.gz"));
  const labels = parseIdx(read("suite-labels-idx1-ubyte.gz"), join(dir, "suite-labels-idx1-ubyte.gz"));
  const meta = JSON.parse(new TextDecoder().decode(read("suite.json"))) as { groups: SuiteGroup[] };
  const drawn = makeSplit(images, labels, "suite");
  const writers = loadWriters(read(WRITERS_FILE), join(dir, WRITERS_FILE));
  const count = drawn.count + writers.count;
  const all = new Uint8Array(count * drawn.rows * drawn.cols);
  all.set(drawn.images);
  all.set(writers.images, drawn.images.length);
  const allLabels = new Uint8Array(count);
  allLabels.set(drawn.labels);
  allLabels.set(writers.labels, drawn.count);
  return {
    split: { images: all, labels: allLabels, count, rows: drawn.rows, cols: drawn.cols },
    groups: [...meta.groups.map(({ name, start, count }) => ({ name, start, count })), { name: "writers", start: drawn.count, count: writers.count }],
  };
}

/**
 * The writers part: each line of the (gzipped) CSV is 64 ink counts 0..16 (an 8x8 grid, row by row: the on-pixels
 * of each 4x4 block of a 32x32 bitmap) and the label. Each digit is drawn as a 96x96 grey scan, dark ink on white
 * (ink count 16 black), and preprocessed by toMnistInput, the preprocessing of `predict` and the demo.
 */
export function loadWriters(bytes: Uint8Array, what: string): Split {
  let text: string;
  try {
    text = gunzipSync(bytes).toString("latin1");
  } catch (e) {
    throw new DataError(`${what}: not a gzipped CSV (${(e as Error).message})`);
  }
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  if (!lines.length) throw new DataError(`${what}: no digits`);
  const px = SIDE * SIDE;
  const images = new Uint8Array(lines.length * px);
  const labels = new Uint8Array(lines.length);
  const side = 8 * SCAN_CELL;
  const rgba = new Uint8Array(side * side * 4);
  lines.forEach((line, n) => {
    const v = line.split(",").map((f) => Number(f.trim()));
    const bad = v.length !== 65 || v.some((x, i) => !Number.isInteger(x) || x < 0 || x > (i < 64 ? 16 : 9));
    if (bad) throw new DataError(`${what}: line ${n + 1} is not 64 ink counts 0..16 and a label 0..9`);
    for (let y = 0; y < side; y++)
      for (let x = 0; x < side; x++) {
        const grey = 255 - Math.round((v[Math.floor(y / SCAN_CELL) * 8 + Math.floor(x / SCAN_CELL)] * 255) / 16);
        const o = (y * side + x) * 4;
        rgba[o] = rgba[o + 1] = rgba[o + 2] = grey;
        rgba[o + 3] = 255;
      }
    const p = toMnistInput(rgba, side, side).pixels;
    for (let i = 0; i < px; i++) images[n * px + i] = Math.round(p[i] * 255);
    labels[n] = v[64];
  });
  return { images, labels, count: lines.length, rows: SIDE, cols: SIDE };
}

export interface SuiteResult extends EvalResult {
  /** Accuracy of each part of the suite (fonts, pen, writers). */
  groups: { name: string; count: number; accuracy: number }[];
}

/** Accuracy, per-class accuracy and confusion matrix on the whole suite, and the accuracy of each of its parts. */
export async function evaluateSuite(predict: Predictor, o: { batchSize?: number; suite?: Suite } = {}): Promise<SuiteResult> {
  const suite = o.suite ?? loadSuite();
  const all = await evaluate(predict, suite.split, { batchSize: o.batchSize, misclassifiedLimit: suite.split.count });
  const wrong = all.misclassified.map((m) => m.index);
  const groups = suite.groups.map((g) => {
    const errors = wrong.filter((i) => i >= g.start && i < g.start + g.count).length;
    return { name: g.name, count: g.count, accuracy: 1 - errors / g.count };
  });
  return { ...all, misclassified: all.misclassified.slice(0, 20), groups };
}

/** "fonts 91.20% (1,407), pen 88.00% (500), writers 92.26% (1,797)" */
export function groupsLine(groups: SuiteResult["groups"]): string {
  return groups.map((g) => `${g.name} ${(100 * g.accuracy).toFixed(2)}% (${g.count.toLocaleString("en-US")})`).join(", ");
}
