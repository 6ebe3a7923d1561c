import { describe, expect, it } from "vitest";
import { Rng } from "../src/random.ts";
import { epochOrder, fillBatch, limitSplit, scaledImages, type Split } from "../src/data/dataset.ts";
import { loadMnist } from "../src/data/node.ts";

// 1000 real MNIST test images: batch size 128 leaves a last batch of 1000 - 7*128 = 104.
const split = loadMnist(undefined, { trainLimit: 1, testLimit: 1000 }).test;
const px = 28 * 28;

/** Label of image i, and a fingerprint of its pixels, to recognise images inside a filled batch. */
function fingerprint(s: Split, i: number): number {
  let h = 0;
  for (let j = 0; j < px; j++) h = (Math.imul(h, 31) + s.images[i * px + j]) | 0;
  return h;
}
const byFingerprint = new Map<number, number>();
for (let i = 0; i < split.count; i++) byFingerprint.set(fingerprint(split, i), i);

/** Which image of the split each row of a filled batch is (found by its pixels). */
function rowsOf(x: Float32Array, n: number): number[] {
  const rows: number[] = [];
  for (let k = 0; k < n; k++) {
    let h = 0;
    for (let j = 0; j < px; j++) h = (Math.imul(h, 31) + Math.round(x[k * px + j] * 255)) | 0;
    rows.push(byFingerprint.get(h) ?? -1);
  }
  return rows;
}

/** The images of `epochs` whole epochs, in the order the iterator hands them out. */
describe("fillBatch", () => {
  it("writes pixel/255 and int64 labels for order[start..end) at the front of the buffers", () => {
    const x = new Float32Array(4 * px).fill(-1);
    const y = new BigInt64Array(4).fill(-1n);
    const n = fillBatch(split, [9, 3, 5, 0], 1, 3, x, y);
    expect(n).toBe(2);
    for (let j = 0; j < px; j++) {
      expect(x[j]).toBe(Math.fround(split.images[3 * px + j] / 255));
      expect(x[px + j]).toBe(Math.fround(split.images[5 * px + j] / 255));
    }
    expect([y[0], y[1]]).toEqual([BigInt(split.labels[3]), BigInt(split.labels[5])]);
    expect(x[2 * px]).toBe(-1); // nothing written past the batch
    expect(y[2]).toBe(-1n);
    const max = Math.max(...x.subarray(0, 2 * px));
    expect(max).toBeLessThanOrEqual(1);
    expect(max).toBeGreaterThan(0.9);
  });

  it("from the float32 copy (scaledImages) gives the same batches bit for bit, every byte value included", () => {
    const all: Split = { images: Uint8Array.from({ length: 2 * px }, (_, j) => j % 256), labels: Uint8Array.of(4, 7), count: 2, rows: 28, cols: 28 };
    for (const s of [split, all]) {
      const scaled = scaledImages(s);
      expect(scaled.length).toBe(s.count * px);
      const order = new Rng(4).permutation(s.count);
      const [a, b] = [new Float32Array(128 * px), new Float32Array(128 * px)];
      const [ya, yb] = [new BigInt64Array(128), new BigInt64Array(128)];
      for (let start = 0; start < s.count; start += 128) {
        const end = Math.min(s.count, start + 128);
        expect(fillBatch(s, order, start, end, a, ya, scaled)).toBe(fillBatch(s, order, start, end, b, yb));
        expect(Buffer.from(a.buffer)).toEqual(Buffer.from(b.buffer));
        expect(ya).toEqual(yb);
      }
    }
    expect(() => fillBatch(split, [0], 0, 1, new Float32Array(px), new BigInt64Array(1), new Float32Array(px))).toThrow(/1 scaled images for a split of 1000/);
  });

  it("refuses buffers too small for the batch", () => {
    expect(() => fillBatch(split, [0, 1, 2], 0, 3, new Float32Array(2 * px), new BigInt64Array(2))).toThrow(/buffers hold 2 images, the batch has 3/);
  });
});

describe("epoch order", () => {
  it("is the permutation of new Rng(state), and the RNG state after it starts the next epoch", () => {
    const state = new Rng(7).state;
    const { order, next } = epochOrder(split.count, state);
    const rng = new Rng(state);
    expect([...order]).toEqual([...rng.permutation(split.count)]);
    expect(next).toEqual(rng.state);
    expect([...order].sort((a, b) => a - b)).toEqual(Array.from({ length: split.count }, (_, i) => i));
  });
});

describe("limitSplit", () => {
  it("keeps the first n images as views, and the split itself when n is not smaller", () => {
    const s = limitSplit(split, 10);
    expect(s.count).toBe(10);
    expect(s.images.length).toBe(10 * px);
    expect(s.images.buffer).toBe(split.images.buffer);
    expect([...s.labels]).toEqual([...split.labels.subarray(0, 10)]);
    expect(limitSplit(split, 5000)).toBe(split);
    expect(() => limitSplit(split, 0)).toThrow(/at least 1, got 0/);
  });
});
