/**
 * MNIST-format splits and their batches. Browser-safe.
 *
 * Shuffling, and how to resume exactly: each epoch's order is `new Rng(state).permutation(count)`, where `state`
 * is the RNG state saved at the start of that epoch; the RNG's state after drawing that permutation starts the
 * next epoch. So (state at the epoch's start, batches done within the epoch) pins the position down completely:
 * regenerate the epoch's permutation from the saved state and skip that many batches. Every image is used once
 * per epoch; the last batch is partial when the batch size does not divide the count.
 */
import { Rng, type RngState } from "../random.ts";
import { DataError, type Idx } from "./idx.ts";

export const CLASSES = 10;

/** The side of every image onnx-mnist trains on: an MNIST-format directory (MNIST, Fashion-MNIST) holds 28x28. */
export const MNIST_SIDE = 28;

/** One split: `count` images of rows x cols uint8 pixels (row-major, one after another) and their labels. */
export interface Split {
  images: Uint8Array;
  labels: Uint8Array;
  count: number;
  rows: number;
  cols: number;
}

export interface MnistData {
  train: Split;
  test: Split;
}

/**
 * Pairs an images IDX [count, rows, cols] with a labels IDX [count] of digits 0..9.
 * `name` ("train", "test") and `files` (their names) go into error messages.
 */
export function makeSplit(images: Idx, labels: Idx, name: string, files = { images: "the images file", labels: "the labels file" }): Split {
  if (images.dims.length !== 3) {
    const hint = images.dims.length === 1 ? "; is it a labels file?" : "";
    throw new DataError(`${name}: ${files.images} has ${images.dims.length} dimensions [${images.dims.join(", ")}], expected 3 [count, rows, cols]${hint}`);
  }
  if (labels.dims.length !== 1) {
    const hint = labels.dims.length === 3 ? "; is it an images file?" : "";
    throw new DataError(`${name}: ${files.labels} has ${labels.dims.length} dimensions [${labels.dims.join(", ")}], expected 1 [count]${hint}`);
  }
  const [count, rows, cols] = images.dims;
  if (labels.dims[0] !== count) {
    throw new DataError(`${name}: ${count} images but ${labels.dims[0]} labels (${files.images}, ${files.labels}); both files must come from the same dataset`);
  }
  if (count === 0) throw new DataError(`${name}: ${files.images} holds no images`);
  for (let i = 0; i < count; i++) {
    if (labels.data[i] >= CLASSES) {
      throw new DataError(`${name}: label ${labels.data[i]} at index ${i} of ${files.labels} is outside 0..${CLASSES - 1}; expected a 10-class MNIST-format labels file`);
    }
  }
  return { images: images.data, labels: labels.data, count, rows, cols };
}

/** Checks that every label of a split names one of a model's `classes` classes (0 .. classes-1). */
export function checkLabels(split: Split, classes: number, name: string): void {
  let max = 0;
  for (let i = 0; i < split.count; i++) if (split.labels[i] > max) max = split.labels[i];
  if (max >= classes)
    throw new DataError(`the ${name} data has labels up to ${max}, but the model has ${classes} classes (0..${classes - 1}): give the model at least ${max + 1} classes ("classes" in the spec), or use data whose labels fit`);
}

/** The first `n` images of a split (views, no copy); the split itself when it has no more than `n`. */
export function limitSplit(split: Split, n: number): Split {
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`limit must be a whole number of at least 1, got ${n}`);
  if (n >= split.count) return split;
  const px = split.rows * split.cols;
  return { ...split, images: split.images.subarray(0, n * px), labels: split.labels.subarray(0, n), count: n };
}

/** An epoch's order of images, drawn from the RNG state at the epoch's start, and the state that starts the next. */
export function epochOrder(count: number, state: RngState): { order: Uint32Array; next: RngState } {
  const rng = new Rng(state);
  const order = rng.permutation(count);
  return { order, next: rng.state };
}

/**
 * Every image of a split as float32 pixel/255, converted once, for fillBatch to copy from: 4 bytes a pixel,
 * 188 MB for MNIST's 60,000 training images (their bytes are 47 MB). Each value is the float32 rounding of the
 * same float64 quotient that fillBatch computes from the bytes, so the batches are the same bit for bit.
 */
export function scaledImages(split: Split): Float32Array {
  const table = Float32Array.from({ length: 256 }, (_, v) => v / 255);
  const out = new Float32Array(split.count * split.rows * split.cols);
  for (let i = 0; i < out.length; i++) out[i] = table[split.images[i]];
  return out;
}

/**
 * Fills `x` with pixel/255 and `y` with the labels of images `order[start..end)`, from the front of both
 * buffers (the caller allocates them once, for the largest batch). Returns the batch size, end - start.
 * With `scaled` (the split's scaledImages) each image is a copy of its row, 3x faster than converting bytes.
 */
export function fillBatch(split: Split, order: ArrayLike<number>, start: number, end: number, x: Float32Array, y: BigInt64Array, scaled?: Float32Array): number {
  const px = split.rows * split.cols;
  const n = end - start;
  if (x.length < n * px || y.length < n) throw new RangeError(`fillBatch: buffers hold ${y.length} images, the batch has ${n}`);
  if (scaled && scaled.length !== split.count * px) throw new RangeError(`fillBatch: ${scaled.length / px} scaled images for a split of ${split.count}`);
  for (let k = 0; k < n; k++) {
    const i = order[start + k];
    const src = i * px;
    const dst = k * px;
    if (scaled) x.set(scaled.subarray(src, src + px), dst);
    else for (let j = 0; j < px; j++) x[dst + j] = split.images[src + j] / 255;
    y[k] = BigInt(split.labels[i]);
  }
  return n;
}
