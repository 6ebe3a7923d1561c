import { describe, expect, it } from "vitest";
import { Rng } from "../src/random.ts";
import { BatchIterator, epochOrder, fillBatch, limitSplit, type Split } from "../src/data/dataset.ts";
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
function drain(it: BatchIterator, batches: number): { images: number[]; sizes: number[]; labelsOk: boolean } {
  const images: number[] = [];
  const sizes: number[] = [];
  let labelsOk = true;
  for (let b = 0; b < batches; b++) {
    const batch = it.next();
    const rows = rowsOf(batch.x, batch.size);
    rows.forEach((i, k) => (labelsOk &&= batch.y[k] === BigInt(split.labels[i])));
    images.push(...rows);
    sizes.push(batch.size);
  }
  return { images, sizes, labelsOk };
}

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

describe("BatchIterator", () => {
  it("uses every image once per epoch, keeping the last partial batch", () => {
    const it = new BatchIterator(split, 128, 1);
    expect(it.batches).toBe(8);
    const e = drain(it, 8);
    expect(e.sizes).toEqual([128, 128, 128, 128, 128, 128, 128, 104]);
    expect(e.labelsOk).toBe(true);
    expect(new Set(e.images).size).toBe(1000);
    expect(e.images.includes(-1)).toBe(false);
  });

  it("flags each epoch's last batch and counts epochs", () => {
    const it = new BatchIterator(split, 300, 1);
    const seen = Array.from({ length: 9 }, () => {
      const b = it.next();
      return [b.epoch, b.step, b.size, b.last];
    });
    expect(seen).toEqual([
      [0, 0, 300, false], [0, 1, 300, false], [0, 2, 300, false], [0, 3, 100, true],
      [1, 0, 300, false], [1, 1, 300, false], [1, 2, 300, false], [1, 3, 100, true],
      [2, 0, 300, false],
    ]);
  });

  it("shuffles deterministically per seed, differently across seeds and across epochs", () => {
    const a = drain(new BatchIterator(split, 128, 42), 16).images;
    const b = drain(new BatchIterator(split, 128, 42), 16).images;
    const c = drain(new BatchIterator(split, 128, 43), 16).images;
    expect(a).toEqual(b);
    expect(a.slice(0, 1000)).not.toEqual(c.slice(0, 1000));
    const [epoch1, epoch2] = [a.slice(0, 1000), a.slice(1000)];
    expect(epoch1).not.toEqual(epoch2);
    expect(new Set(epoch2).size).toBe(1000);
    // Shuffled, not sorted: few images keep their index.
    expect(epoch1.filter((img, k) => img === k).length).toBeLessThan(20);
  });

  it("restores exactly from the position saved after any batch, mid-epoch or at an epoch boundary", () => {
    const reference = drain(new BatchIterator(split, 128, 5), 24).images; // three epochs
    for (const after of [3, 7, 8, 13]) {
      const it = new BatchIterator(split, 128, 5);
      drain(it, after);
      const saved = JSON.parse(JSON.stringify(it.position)); // as a checkpoint stores it
      const resumed = new BatchIterator(split, 128, saved);
      const rest = drain(resumed, 24 - after).images;
      expect(rest).toEqual(reference.slice(after * 128 - Math.floor(after / 8) * 24));
    }
  });

  it("reports the position in the training loop's convention (epochs done, batches done, RNG at epoch start)", () => {
    const it = new BatchIterator(split, 128, 5);
    const start = it.position;
    expect(start).toEqual({ epoch: 0, stepInEpoch: 0, epochRng: new Rng(5).state });
    drain(it, 3);
    expect(it.position).toEqual({ epoch: 0, stepInEpoch: 3, epochRng: new Rng(5).state });
    drain(it, 5);
    // After the last batch of epoch 0: the start of epoch 1, whose RNG state follows epoch 0's permutation.
    expect(it.position).toEqual({ epoch: 1, stepInEpoch: 0, epochRng: epochOrder(1000, new Rng(5).state).next });
  });

  it("rejects a bad batch size or a position outside the epoch", () => {
    expect(() => new BatchIterator(split, 0, 1)).toThrow(/batch size must be a whole number of at least 1, got 0/);
    expect(() => new BatchIterator(split, 128, { epoch: 0, stepInEpoch: 9, epochRng: new Rng(1).state })).toThrow(/step 9 is outside the epoch's 8 batches/);
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
