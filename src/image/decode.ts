/**
 * PNG and JPEG bytes -> RGBA pixels, the format sniffed from the magic bytes (never from the file name).
 * Pure JavaScript decoders (pngjs, jpeg-js), but pngjs relies on Node's zlib and Buffer: treat this file
 * as Node-only; the web page gets its pixels from a canvas instead.
 */
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

/** Decodes a PNG or JPEG; `name` (e.g. the path) names the file in error messages. */
export function decodeImage(bytes: Uint8Array, name: string): DecodedImage {
  const format = startsWith(bytes, PNG_MAGIC) ? "PNG" : startsWith(bytes, JPEG_MAGIC) ? "JPEG" : null;
  if (!format) {
    const other = otherFormat(bytes);
    throw new ImageError(`${name}: ${other ? `a ${other} image, which is not supported` : "not a PNG or JPEG image"}; convert it to PNG or JPEG`);
  }
  let image: DecodedImage;
  try {
    const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (format === "PNG") {
      const png = PNG.sync.read(buffer);
      image = { width: png.width, height: png.height, rgba: new Uint8Array(png.data.buffer, png.data.byteOffset, png.data.byteLength) };
    } else {
      const jpg = jpeg.decode(buffer, { useTArray: true, formatAsRGBA: true });
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
