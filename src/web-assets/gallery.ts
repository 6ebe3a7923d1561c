/**
 * The web demo's gallery of real MNIST test digits, packed into one small binary asset:
 *   bytes 0..3   "MNGL"
 *   bytes 4..7   count (uint32 little-endian)
 *   then count x uint16 LE  index of each image in the MNIST test set (to name it)
 *   then count x uint8      label
 *   then count x 784 uint8  pixels, row-major 28x28, as in the IDX file (0 background, 255 ink)
 * 300 digits are about 236 kB. Browser-safe: bytes in, bytes out; the Node side that reads MNIST is gallery-node.ts.
 */
import { Rng } from "../random.ts";
import type { Split } from "../data/dataset.ts";

export const GALLERY_MAGIC = "MNGL";
export const GALLERY_SIZE = 300;
export const GALLERY_SEED = 4;
const PIXELS = 28 * 28;

export interface Gallery {
  /** Index of each digit in the MNIST test set. */
  indices: Uint16Array;
  labels: Uint8Array;
  /** count * 784 bytes. */
  images: Uint8Array;
  count: number;
}

/** Picks `size` test digits in a seeded random order: same seed, same bytes. */
export function selectGallery(test: Split, size = GALLERY_SIZE, seed = GALLERY_SEED): Gallery {
  if (test.rows * test.cols !== PIXELS) throw new RangeError(`gallery images must be 28x28, got ${test.rows}x${test.cols}`);
  if (test.count > 65536) throw new RangeError(`gallery indices are 16-bit; the test split has ${test.count} images`);
  const count = Math.min(size, test.count);
  const order = new Rng(seed).permutation(test.count).subarray(0, count);
  const indices = Uint16Array.from(order);
  const labels = new Uint8Array(count);
  const images = new Uint8Array(count * PIXELS);
  for (let k = 0; k < count; k++) {
    labels[k] = test.labels[order[k]];
    images.set(test.images.subarray(order[k] * PIXELS, (order[k] + 1) * PIXELS), k * PIXELS);
  }
  return { indices, labels, images, count };
}

export function encodeGallery(g: Gallery): Uint8Array {
  const out = new Uint8Array(8 + 3 * g.count + g.count * PIXELS);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 4; i++) out[i] = GALLERY_MAGIC.charCodeAt(i);
  view.setUint32(4, g.count, true);
  for (let k = 0; k < g.count; k++) view.setUint16(8 + 2 * k, g.indices[k], true);
  out.set(g.labels, 8 + 2 * g.count);
  out.set(g.images, 8 + 3 * g.count);
  return out;
}

export function decodeGallery(bytes: Uint8Array): Gallery {
  const magic = String.fromCharCode(...bytes.subarray(0, 4));
  if (bytes.length < 8 || magic !== GALLERY_MAGIC) throw new Error(`not a gallery file (magic "${magic}", expected "${GALLERY_MAGIC}"); rebuild the web page`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = view.getUint32(4, true);
  const size = 8 + 3 * count + count * PIXELS;
  if (bytes.length !== size) throw new Error(`gallery file has ${bytes.length} bytes, expected ${size} for ${count} digits; rebuild the web page`);
  const indices = new Uint16Array(count);
  for (let k = 0; k < count; k++) indices[k] = view.getUint16(8 + 2 * k, true);
  return {
    indices,
    labels: bytes.slice(8 + 2 * count, 8 + 3 * count),
    images: bytes.slice(8 + 3 * count, size),
    count,
  };
}
