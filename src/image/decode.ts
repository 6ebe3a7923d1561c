/**
 * PNG and JPEG bytes -> RGBA pixels, the format sniffed from the magic bytes (never from the file name).
 * Pure JavaScript decoders (pngjs, jpeg-js), but pngjs relies on Node's zlib and Buffer: treat this file
 * as Node-only; the web page gets its pixels from a canvas instead.
 *
 * Bounded before any allocation: the image's size is read from its header (PNG's IHDR, JPEG's SOF marker)
 * and anything over MAX_PIXELS is refused before decoding; a file is read only as far as its header says a
 * file of its size can need, so `/dev/zero` or a huge file ends at once with one line.
 */
import { closeSync, openSync, readSync } from "node:fs";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { ImageError } from "./error.ts";

export { ImageError };

export interface DecodedImage {
  width: number;
  height: number;
  /** width*height*4 bytes, non-premultiplied RGBA. */
  rgba: Uint8Array;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

/** 40 megapixels: a phone photo is 12-50 MP; decoded, 40 MP is 160 MB of RGBA (pngjs and jpeg-js hold it whole). */
export const MAX_PIXELS = 40_000_000;
/** How far into a file its size must be found: JPEG may put a few 64 kB APPn segments (Exif, ICC) before SOF. */
const HEADER_BYTES = 1 << 20;
/** Room for what a file may carry beside its pixels: ICC profiles, Exif, text chunks, thumbnails. */
const METADATA_BYTES = 4 << 20;

/** Decodes a PNG or JPEG; `name` (e.g. the path) names the file in error messages. */
export function decodeImage(bytes: Uint8Array, name: string): DecodedImage {
  const format = formatOf(bytes, name);
  const size = imageSize(bytes, format);
  if (size) checkPixels(size, format, name);
  let image: DecodedImage;
  try {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (format === "PNG") {
      const png = PNG.sync.read(buffer);
      image = { width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
    } else {
      const jpg = jpeg.decode(buffer, { useTArray: true, formatAsRGBA: true, maxResolutionInMP: MAX_PIXELS / 1e6 });
      image = { width: jpg.width, height: jpg.height, rgba: jpg.data };
    }
  } catch (e) {
    const reason = String((e as Error)?.message ?? e).split("\n")[0];
    throw new ImageError(`${name}: damaged or unreadable ${format} image (${reason})`);
  }
  if (!(image.width > 0 && image.height > 0) || image.rgba.length !== image.width * image.height * 4) {
    throw new ImageError(`${name}: damaged ${format} image (${image.width}x${image.height} with ${image.rgba.length} bytes of pixels)`);
  }
  return image;
}

/**
 * Reads an image file, never further than a PNG or JPEG of the size its header declares can need:
 * the raw pixels (PNG stored uncompressed; JPEG at 6 bytes a pixel, twice raw RGB) plus METADATA_BYTES.
 * Files that are not PNG or JPEG stop after their first chunk.
 */
export function readImageFile(path: string): Uint8Array {
  let fd: number;
  try {
    fd = openSync(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new ImageError(`${path}: no such file (expected a PNG or JPEG image)`);
    throw new ImageError(`${path}: cannot read (${code ?? (e as Error).message}); expected a PNG or JPEG image`);
  }
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    let limit: number | undefined;
    for (;;) {
      const cap = limit ?? HEADER_BYTES;
      const chunk = Buffer.allocUnsafe(Math.min(1 << 20, cap + 1 - total));
      let n: number;
      try {
        n = readSync(fd, chunk, 0, chunk.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        throw new ImageError(`${path}: ${code === "EISDIR" ? "is a directory" : `cannot read (${code ?? (e as Error).message})`}; expected a PNG or JPEG image`);
      }
      if (n === 0) break;
      chunks.push(chunk.subarray(0, n));
      total += n;
      if (limit === undefined) {
        const head = Buffer.concat(chunks);
        const format = formatOf(head, path);
        const size = imageSize(head, format);
        if (size) {
          checkPixels(size, format, path);
          limit = maxBytes(size, format, head);
        } else if (total > HEADER_BYTES) throw new ImageError(`${path}: damaged ${format} image (no image size in its first ${HEADER_BYTES >> 20} MB)`);
      }
      if (limit !== undefined && total > limit) {
        throw new ImageError(`${path}: ${total > 1e6 ? `over ${Math.floor(limit / 1e6)} MB` : `${total} bytes`}, more than a PNG or JPEG of its declared size can need; the file is damaged or not an image`);
      }
    }
    return new Uint8Array(Buffer.concat(chunks, total));
  } finally {
    closeSync(fd);
  }
}

type Format = "PNG" | "JPEG";

function formatOf(bytes: Uint8Array, name: string): Format {
  if (startsWith(bytes, PNG_MAGIC)) return "PNG";
  if (startsWith(bytes, JPEG_MAGIC)) return "JPEG";
  const other = otherFormat(bytes);
  throw new ImageError(`${name}: ${other ? `a ${other} image, which is not supported` : "not a PNG or JPEG image"}; convert it to PNG or JPEG`);
}

interface Size {
  width: number;
  height: number;
  /** Bits per pixel of the stored samples (PNG: channels x bit depth). */
  bits: number;
}

/** The declared size, from PNG's IHDR (always the first chunk) or JPEG's first SOF marker; undefined until seen. */
function imageSize(b: Uint8Array, format: Format): Size | undefined {
  const u32 = (i: number) => ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3]) >>> 0;
  const u16 = (i: number) => (b[i] << 8) | b[i + 1];
  if (format === "PNG") {
    if (b.length < 26) return undefined;
    const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[b[25]] ?? 4;
    return { width: u32(16), height: u32(20), bits: channels * Math.max(1, b[24]) };
  }
  // JPEG: a chain of segments FF <marker> <length: 2 bytes, including itself>, until a start of frame.
  let i = 2;
  while (i + 10 <= b.length) {
    if (b[i] !== 0xff) return { width: 0, height: 0, bits: 0 }; // not a marker where one must be: damaged
    const marker = b[i + 1];
    if (marker === 0xff) {
      i++; // fill byte
      continue;
    }
    const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
    if (isSof) return { width: u16(i + 7), height: u16(i + 5), bits: 8 * b[i + 9] || 24 };
    if (marker === 0xd9 || marker === 0xda) return { width: 0, height: 0, bits: 0 }; // end or scan before any frame
    i += 2 + u16(i + 2);
  }
  return undefined;
}

function checkPixels(s: Size, format: Format, name: string): void {
  if (!(s.width > 0 && s.height > 0)) throw new ImageError(`${name}: damaged ${format} image (no valid width and height in its header)`);
  if (s.width * s.height > MAX_PIXELS) {
    throw new ImageError(`${name}: ${s.width}x${s.height} is ${((s.width * s.height) / 1e6).toFixed(0)} megapixels, over the limit of ${MAX_PIXELS / 1e6}; scale the image down (one digit needs far fewer pixels)`);
  }
}

/** The most bytes a file of this size can need (see readImageFile). */
function maxBytes(s: Size, format: Format, head: Uint8Array): number {
  if (format === "JPEG") return s.width * s.height * 6 + METADATA_BYTES;
  const interlaced = head[28] === 1;
  // One filter byte per row (and per pass row when interlaced), deflate's stored blocks (5 bytes per 64 kB),
  // chunk headers (12 bytes per IDAT chunk of at least 8 kB, as encoders write them).
  const raw = s.height * (Math.ceil((s.width * s.bits) / 8) + (interlaced ? 8 : 1));
  return Math.ceil(raw * (1 + 5 / 65535 + 12 / 8192)) + METADATA_BYTES;
}

function startsWith(bytes: Uint8Array, magic: number[]): boolean {
  return bytes.length >= magic.length && magic.every((b, i) => bytes[i] === b);
}

function otherFormat(bytes: Uint8Array): string | null {
  const ascii = (start: number, end: number) => String.fromCharCode(...bytes.subarray(start, end));
  if (ascii(0, 4) === "GIF8") return "GIF";
  if (ascii(0, 2) === "BM") return "BMP";
  if (ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "WebP";
  if (ascii(4, 12) === "ftypavif") return "AVIF";
  if (ascii(0, 4) === "II*\0" || ascii(0, 4) === "MM\0*") return "TIFF";
  return null;
}
