/**
 * The web training page's data: the FIRST `train` images of MNIST's training file and the FIRST `test` images
 * of its test file (10,000 and 2,000 by default), as uint8, in one zlib-compressed binary asset:
 *   bytes 0..3    "MNSB"
 *   bytes 4..7    format version (uint32 LE), 1
 *   bytes 8..11   train count (uint32 LE)
 *   bytes 12..15  test count (uint32 LE)
 *   bytes 16..    zlib stream of: train labels, test labels, train pixels, test pixels
 *                 (uint8; pixels row-major 28x28 as in the IDX files, 0 background, 255 ink)
 * About 2 MB for 10,000 + 2,000 images (9.4 MB uncompressed).
 *
 * Why the first N, not a random sample: `limitSplit` and the CLI's `--train-limit N --test-limit M` also take the
 * first N, so a checkpoint saved in the browser with train_limit = N, test_limit = M (and data = null, the bundled
 * MNIST) resumes with `onnx-mnist train --resume` on exactly the same images, in the same shuffled order.
 * Browser-safe: bytes in, bytes out; mnist-subset-node.ts reads MNIST and builds it.
 */
import { unzlibSync, zlibSync } from "fflate";
import { limitSplit, type MnistData, type Split } from "../data/dataset.ts";

export const SUBSET_MAGIC = "MNSB";
export const SUBSET_VERSION = 1;
export const SUBSET_TRAIN = 10_000;
export const SUBSET_TEST = 2_000;
export const SUBSET_FILE = "mnist-subset.bin";
const PIXELS = 28 * 28;
const HEADER = 16;

/** Packs the first `train` and `test` images of two splits; the same splits give the same bytes. */
export function encodeSubset(data: MnistData, train = SUBSET_TRAIN, test = SUBSET_TEST): Uint8Array {
  const a = limitSplit(data.train, train);
  const b = limitSplit(data.test, test);
  for (const s of [a, b]) if (s.rows * s.cols !== PIXELS) throw new RangeError(`subset images must be 28x28, got ${s.rows}x${s.cols}`);
  const raw = new Uint8Array((a.count + b.count) * (1 + PIXELS));
  let o = 0;
  for (const part of [a.labels, b.labels, a.images, b.images]) {
    raw.set(part, o);
    o += part.length;
  }
  const packed = zlibSync(raw, { level: 6 }); // level 9 is 8x slower to build and 0.1 % smaller
  const out = new Uint8Array(HEADER + packed.length);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = SUBSET_MAGIC.charCodeAt(i);
  view.setUint32(4, SUBSET_VERSION, true);
  view.setUint32(8, a.count, true);
  view.setUint32(12, b.count, true);
  out.set(packed, HEADER);
  return out;
}

/** Unpacks the asset into two splits; throws one line saying what is wrong (and to rebuild the page). */
export function decodeSubset(bytes: Uint8Array): MnistData {
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (bytes.length < HEADER || magic !== SUBSET_MAGIC) throw new Error(`not an MNIST subset file (magic "${magic}", expected "${SUBSET_MAGIC}"); rebuild the web page`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(4, true);
  if (version !== SUBSET_VERSION) throw new Error(`MNIST subset format version ${version} is not supported (expected ${SUBSET_VERSION}); rebuild the web page`);
  const train = view.getUint32(8, true);
  const test = view.getUint32(12, true);
  let raw: Uint8Array;
  try {
    raw = unzlibSync(bytes.subarray(HEADER));
  } catch (e) {
    throw new Error(`MNIST subset file is corrupt (${(e as Error).message}); rebuild the web page`);
  }
  const size = (train + test) * (1 + PIXELS);
  if (raw.length !== size) throw new Error(`MNIST subset holds ${raw.length} bytes, expected ${size} for ${train} + ${test} images; rebuild the web page`);
  const split = (labels: Uint8Array, images: Uint8Array, count: number): Split => ({ labels, images, count, rows: 28, cols: 28 });
  const imagesAt = train + test;
  return {
    train: split(raw.subarray(0, train), raw.subarray(imagesAt, imagesAt + train * PIXELS), train),
    test: split(raw.subarray(train, train + test), raw.subarray(imagesAt + train * PIXELS, size), test),
  };
}
