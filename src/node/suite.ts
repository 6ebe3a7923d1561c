/**
 * Node-only: the "handwriting from elsewhere" suite, digits that did not come from MNIST's scanner (handwriting
 * fonts at several slants and stroke widths, and digits drawn with a scripted pen on the web demo's canvas),
 * made 28x28 by the demo's own preprocessing. Generated once by scripts/make-suite.ts and committed under
 * src/data/suite/. It is for evaluation only: nothing is trained or tuned on it, nor on MNIST's test set.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseIdx, DataError } from "../data/idx.ts";
import { makeSplit, type Split } from "../data/dataset.ts";
import { evaluate, type EvalResult, type Predictor } from "../runtime/fit.ts";

export const SUITE_DIR = join(import.meta.dirname, "../data/suite");

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
  return { split: makeSplit(images, labels, "suite"), groups: meta.groups.map(({ name, start, count }) => ({ name, start, count })) };
}

export interface SuiteResult extends EvalResult {
  /** Accuracy of each part of the suite (fonts, pen). */
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

/** "fonts 91.2% (1,440), pen 88.0% (500)" */
export function groupsLine(groups: SuiteResult["groups"]): string {
  return groups.map((g) => `${g.name} ${(100 * g.accuracy).toFixed(2)}% (${g.count.toLocaleString("en-US")})`).join(", ");
}
