import { describe, expect, it, beforeAll, afterAll } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { extreme, toMnistInput, UNEVEN_BORDER } from "../src/image/preprocess.ts";
import { decodeImage } from "../src/image/decode.ts";
import { ImageError } from "../src/image/error.ts";
import { loadMnist } from "../src/data/node.ts";
import { centreOfMass } from "./helpers/images.ts";

const test = loadMnist(undefined, { trainLimit: 1, testLimit: 100 }).test;
const digit = (i: number) => test.images.subarray(i * 784, (i + 1) * 784);

type RGB = [number, number, number];
interface Canvas {
  width: number;
  height: number;
  rgba: Uint8Array;
}

/**
 * Draws a 28x28 MNIST digit onto a width x height RGBA canvas, enlarged `scale` times (nearest neighbour),
 * with its top-left corner at (x, y): ink colour blended over the paper by the digit's intensity.
 * `paper: null` leaves the canvas transparent and draws the ink with alpha = intensity (a browser canvas).
 */
function render(d: Uint8Array, o: { width: number; height: number; scale: number; x: number; y: number; ink: RGB; paper: RGB | null }): Canvas {
  const rgba = new Uint8Array(o.width * o.height * 4);
  for (let i = 0; i < o.width * o.height; i++) {
    if (o.paper) rgba.set([...o.paper, 255], 4 * i);
  }
  for (let y = 0; y < 28 * o.scale; y++) {
    for (let x = 0; x < 28 * o.scale; x++) {
      const v = d[Math.floor(y / o.scale) * 28 + Math.floor(x / o.scale)] / 255;
      const i = 4 * ((o.y + y) * o.width + o.x + x);
      if (o.paper) for (let c = 0; c < 3; c++) rgba[i + c] = Math.round(o.paper[c] * (1 - v) + o.ink[c] * v);
      else rgba.set([...o.ink, Math.round(255 * v)], i);
    }
  }
  return { width: o.width, height: o.height, rgba };
}

function correlation(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = a.length;
  let ma = 0, mb = 0;
  for (let i = 0; i < n; i++) (ma += a[i]), (mb += b[i]);
  ma /= n;
  mb /= n;
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < n; i++) {
    ab += (a[i] - ma) * (b[i] - mb);
    aa += (a[i] - ma) ** 2;
    bb += (b[i] - mb) ** 2;
  }
  return ab / Math.sqrt(aa * bb);
}

function boundingBox(p: Float32Array): { width: number; height: number } {
  let x0 = 28, x1 = -1, y0 = 28, y1 = -1;
  for (let i = 0; i < 784; i++) {
    if (p[i] === 0) continue;
    const x = i % 28, y = Math.floor(i / 28);
    (x0 = Math.min(x0, x)), (x1 = Math.max(x1, x)), (y0 = Math.min(y0, y)), (y1 = Math.max(y1, y));
  }
  return { width: x1 - x0 + 1, height: y1 - y0 + 1 };
}

const preprocess = (c: Canvas) => toMnistInput(c.rgba, c.width, c.height);
const WHITE: RGB = [255, 255, 255];
const BLACK: RGB = [0, 0, 0];

describe("toMnistInput", () => {
  it("recovers real MNIST digits drawn 3x larger, dark on white, off-centre on a big canvas", () => {
    const corr: number[] = [];
    for (let i = 0; i < 100; i++) {
      const canvas = render(digit(i), { width: 300, height: 200, scale: 3, x: 20 + (i % 9) * 20, y: 10 + (i % 4) * 25, ink: BLACK, paper: WHITE });
      const r = preprocess(canvas);
      expect(r.empty).toBe(false);
      corr.push(correlation(r.pixels, Array.from(digit(i), (v) => v / 255)));

      // As MNIST was made: the centre of mass at (14, 14), the ink inside a 20x20 box whose longer side is full.
      const [cx, cy] = centreOfMass(r.pixels);
      expect(Math.abs(cx - 14)).toBeLessThanOrEqual(0.5);
      expect(Math.abs(cy - 14)).toBeLessThanOrEqual(0.5);
      const box = boundingBox(r.pixels);
      expect(Math.max(box.width, box.height)).toBe(20);
      expect(Math.min(box.width, box.height)).toBeGreaterThan(0);
      expect(Math.min(...r.pixels)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...r.pixels)).toBe(1);
    }
    // A centre of mass right on a half pixel may round the other way than MNIST did (a one-pixel shift).
    expect(corr.filter((c) => c > 0.9).length).toBeGreaterThanOrEqual(97);
    expect(corr.reduce((a, b) => a + b) / corr.length).toBeGreaterThan(0.97);
  });

  it("gives the same input for light-on-dark, coloured, and transparent canvases as for black on white", () => {
    const forms: Record<string, Partial<Parameters<typeof render>[1]>> = {
      "white on black": { ink: WHITE, paper: BLACK },
      "blue ink on yellow paper": { ink: [20, 30, 160], paper: [250, 240, 170] },
      "grey pencil on grey paper": { ink: [90, 90, 90], paper: [200, 200, 200] },
      "black strokes on a transparent canvas": { ink: BLACK, paper: null },
      "white strokes on a transparent canvas": { ink: WHITE, paper: null },
    };
    for (const i of [0, 1, 2, 3, 4]) {
      const base = { width: 120, height: 150, scale: 4, x: 5, y: 30, ink: BLACK, paper: WHITE };
      const reference = preprocess(render(digit(i), base)).pixels;
      for (const [name, form] of Object.entries(forms)) {
        const r = preprocess(render(digit(i), { ...base, ...form } as typeof base));
        expect(r.empty, name).toBe(false);
        expect(correlation(r.pixels, reference), `${name}, digit ${i}`).toBeGreaterThan(0.98);
      }
    }
  });

  it("does not depend on where the digit is or how large it is drawn (down to smaller than 20 pixels)", () => {
    for (const i of [7, 8, 9]) {
      const a = preprocess(render(digit(i), { width: 400, height: 400, scale: 10, x: 100, y: 90, ink: BLACK, paper: WHITE }));
      const b = preprocess(render(digit(i), { width: 64, height: 48, scale: 1, x: 30, y: 15, ink: BLACK, paper: WHITE }));
      expect(correlation(a.pixels, b.pixels)).toBeGreaterThan(0.9);
      expect(correlation(b.pixels, Array.from(digit(i)))).toBeGreaterThan(0.9);
    }
  });

  it("keeps the aspect ratio: a tall bar fills 20 rows and few columns, centred", () => {
    const w = 100, h = 100;
    const rgba = new Uint8Array(w * h * 4).fill(255);
    for (let y = 20; y < 80; y++) for (let x = 47; x < 53; x++) rgba.fill(0, 4 * (y * w + x), 4 * (y * w + x) + 3);
    const r = toMnistInput(rgba, w, h);
    expect(boundingBox(r.pixels)).toEqual({ width: 2, height: 20 }); // 6 x 60 -> 2 x 20
    // Centre of mass in the 2x20 box is (0.5, 9.5); shifts round(13.5) = 14 and round(4.5) = 5 (halves round up).
    expect(centreOfMass(r.pixels)).toEqual([14.5, 14.5]);
    expect(r.crop).toEqual({ x: 47, y: 20, width: 6, height: 60 });
  });

  it("reports a blank, uniform or faint image as empty, with all-zero pixels", () => {
    const blank = (fill: number[], w = 50, h = 40) => {
      const rgba = new Uint8Array(w * h * 4);
      for (let i = 0; i < w * h; i++) rgba.set(fill, 4 * i);
      return rgba;
    };
    for (const [name, rgba] of [
      ["white", blank([255, 255, 255, 255])],
      ["black", blank([0, 0, 0, 255])],
      ["transparent", blank([0, 0, 0, 0])],
      ["grey", blank([128, 128, 128, 255])],
    ] as const) {
      const r = toMnistInput(rgba, 50, 40);
      expect(r.empty, name).toBe(true);
      expect(r.pixels.every((v) => v === 0), name).toBe(true);
      expect(r.crop).toBe(null);
    }
    // A scribble 5 levels darker than the paper is below the default 10% contrast.
    const faint = blank([240, 240, 240, 255]);
    for (let x = 10; x < 30; x++) faint.fill(235, 4 * (20 * 50 + x), 4 * (20 * 50 + x) + 3);
    expect(toMnistInput(faint, 50, 40).empty).toBe(true);
    expect(toMnistInput(faint, 50, 40, { minContrast: 0.01 }).empty).toBe(false);
  });

  it("follows a forced ink polarity", () => {
    const canvas = render(digit(0), { width: 60, height: 60, scale: 2, x: 2, y: 2, ink: BLACK, paper: WHITE });
    const auto = toMnistInput(canvas.rgba, 60, 60);
    expect(toMnistInput(canvas.rgba, 60, 60, { ink: "dark" }).pixels).toEqual(auto.pixels);
    // Read as light ink on a dark ground, white paper has nothing lighter than itself: no ink.
    expect(toMnistInput(canvas.rgba, 60, 60, { ink: "light" }).empty).toBe(true);
  });

  it("rejects pixel data that does not match the size", () => {
    expect(() => toMnistInput(new Uint8Array(10), 2, 2)).toThrow(ImageError);
    expect(() => toMnistInput(new Uint8Array(10), 2, 2)).toThrow("image data has 10 bytes but 2x2 RGBA needs 16");
    expect(() => toMnistInput(new Uint8Array(0), 0, 0)).toThrow("image size must be positive whole numbers, got 0x0");
  });

  it("gives the same bytes for the same image", () => {
    const canvas = render(digit(5), { width: 90, height: 90, scale: 3, x: 1, y: 3, ink: BLACK, paper: WHITE });
    const a = preprocess(canvas).pixels;
    const b = preprocess({ ...canvas, rgba: canvas.rgba.slice() }).pixels;
    expect(Buffer.from(a.buffer).equals(Buffer.from(b.buffer))).toBe(true);
  });
});

/**
 * A photo of a digit on paper: the paper's brightness at each pixel is `light(x, y)` (0..1 of white), ink
 * darkens it by 85 % of the digit's intensity (ink and paper both reflect the same light), plus `grain`.
 */
function photo(d: Uint8Array, light: (x: number, y: number) => number, o: { side?: number; grain?: (x: number, y: number) => number } = {}): Canvas {
  const side = o.side ?? 140;
  const k = side / 28;
  const rgba = new Uint8Array(side * side * 4);
  for (let y = 0; y < side; y++)
    for (let x = 0; x < side; x++) {
      const v = d[Math.floor(y / k) * 28 + Math.floor(x / k)] / 255;
      const g = Math.max(0, Math.min(255, Math.round(240 * light(x / side, y / side) * (1 - 0.85 * v) + (o.grain?.(x, y) ?? 0))));
      rgba.set([g, g, g, 255], 4 * (y * side + x));
    }
  return { width: side, height: side, rgba };
}

describe("toMnistInput on photos: paper that is not evenly lit", () => {
  const lights: [string, (x: number, y: number) => number][] = [
    ["light falling off across the page (100 % to 50 %)", (x) => 1 - 0.5 * x],
    ["a vignette (100 % in the middle, 20 % in the corners)", (x, y) => 1 - 0.4 * (((x - 0.5) ** 2 + (y - 0.5) ** 2) / 0.25)],
    ["a shadow over one corner (60 % under it)", (x, y) => (x + y < 1 ? 1 : 0.6)],
  ];
  it.each(lights)("%s: the same digit as on evenly lit paper", (_name, light) => {
    const corr: number[] = [];
    for (let i = 0; i < 30; i++) {
      const even = preprocess(photo(digit(i), () => 1)).pixels;
      const lit = preprocess(photo(digit(i), light));
      corr.push(correlation(lit.pixels, even));
    }
    corr.sort((a, b) => a - b);
    expect(corr[15]).toBeGreaterThan(0.95); // median
    expect(corr[3]).toBeGreaterThan(0.85); // and nearly all of them
  });

  it("reads evenly lit paper with grain the way it always did: one paper level from the border", () => {
    // grain within UNEVEN_BORDER: the even path; the digit comes out as from clean paper
    const grain = (x: number, y: number) => (((x * 7 + y * 13) % 17) / 16 - 0.5) * (UNEVEN_BORDER - 4);
    for (let i = 0; i < 10; i++) {
      const clean = preprocess(photo(digit(i), () => 1)).pixels;
      expect(correlation(preprocess(photo(digit(i), () => 1, { grain })).pixels, clean)).toBeGreaterThan(0.95);
    }
  });

  it("white paper photographed in a dim room (its level under 128, evenly lit or not) still has dark ink", () => {
    for (const light of [() => 0.4, (x: number) => 0.45 - 0.2 * x]) {
      const corr: number[] = [];
      for (let i = 0; i < 10; i++) corr.push(correlation(preprocess(photo(digit(i), light)).pixels, preprocess(photo(digit(i), () => 1)).pixels));
      corr.sort((a, b) => a - b);
      expect(corr[5]).toBeGreaterThan(0.95);
      expect(corr[1]).toBeGreaterThan(0.9);
    }
  });

  it("a scan whose digit runs into the border is still even paper: the same input as with a margin around it", () => {
    // UCI-style: thick blocky strokes that reach the edges of the frame (the base of a 2 along the bottom row)
    const cells = ["..#X#...", "..XX#...", "..X.X...", ".#X.X...", "..#.X...", "...XX...", "..XXXXX#", "..#XXXXX"];
    const draw = (margin: number) => {
      const side = 96 + 2 * margin;
      const rgba = new Uint8Array(side * side * 4).fill(255);
      for (let y = 0; y < 96; y++)
        for (let x = 0; x < 96; x++) {
          const c = cells[Math.floor(y / 12)][Math.floor(x / 12)];
          const g = c === "X" ? 0 : c === "#" ? 128 : 255;
          rgba.fill(g, 4 * ((y + margin) * side + x + margin), 4 * ((y + margin) * side + x + margin) + 3);
        }
      return toMnistInput(rgba, side, side).pixels;
    };
    expect(Buffer.from(draw(0).buffer).equals(Buffer.from(draw(20).buffer))).toBe(true);
  });

  it("light ink on an unevenly lit dark ground (chalk on a board) is read as ink too, as evenly across the page", () => {
    const side = 140;
    const corr: number[] = [];
    for (let i = 0; i < 10; i++) {
      // a grey board (reflectance 80/255) and chalk of up to 240/255, lit from 100 % down to 50 % across
      const p = photo(digit(i), () => 1);
      for (let y = 0; y < side; y++)
        for (let x = 0; x < side; x++) {
          const v = digit(i)[Math.floor(y / 5) * 28 + Math.floor(x / 5)] / 255;
          p.rgba.fill(Math.round((1 - (0.5 * x) / side) * (80 + 160 * v)), 4 * (y * side + x), 4 * (y * side + x) + 3);
        }
      corr.push(correlation(preprocess(p).pixels, preprocess(photo(digit(i), () => 1)).pixels));
    }
    corr.sort((a, b) => a - b);
    expect(corr[5]).toBeGreaterThan(0.95); // median
    expect(corr[1]).toBeGreaterThan(0.9); // all but one (a centre of mass rounded to the next pixel)
  });

  it("extreme: every w x w window's maximum and minimum, windows clipped at the edges, as a plain loop finds them", () => {
    const [W, H] = [13, 9];
    const src = Float32Array.from({ length: W * H }, (_, i) => (i * 37) % 23);
    for (const w of [1, 3, 5, 9, 15, 31])
      for (const f of [Math.max, Math.min]) {
        const got = extreme(src, W, H, w, f);
        for (let y = 0; y < H; y++)
          for (let x = 0; x < W; x++) {
            let m = f === Math.max ? -Infinity : Infinity;
            for (let yy = Math.max(0, y - (w >> 1)); yy <= Math.min(H - 1, y + (w >> 1)); yy++)
              for (let xx = Math.max(0, x - (w >> 1)); xx <= Math.min(W - 1, x + (w >> 1)); xx++) m = f(m, src[yy * W + xx]);
            expect(got[y * W + x]).toBe(m);
          }
      }
    expect(() => extreme(src, W, H, 4, Math.max)).toThrow(RangeError);
  });
});

describe("decodeImage", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "onnx-mnist-img-"));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  const canvas = () => render(digit(3), { width: 90, height: 70, scale: 2, x: 10, y: 4, ink: [30, 30, 30], paper: [235, 235, 225] });

  it("reads a PNG file back to the exact RGBA, and a grayscale PNG too", () => {
    const c = canvas();
    const png = new PNG({ width: c.width, height: c.height });
    png.data.set(c.rgba);
    writeFileSync(join(tmp, "digit.png"), PNG.sync.write(png));
    const img = decodeImage(new Uint8Array(readFileSync(join(tmp, "digit.png"))), "digit.png");
    expect([img.width, img.height]).toEqual([90, 70]);
    expect(Buffer.from(img.rgba).equals(Buffer.from(c.rgba))).toBe(true);
    const gray = PNG.sync.write(png, { colorType: 0 });
    const g = decodeImage(new Uint8Array(gray), "gray.png");
    expect(g.rgba.length).toBe(90 * 70 * 4);
    expect(correlation(toMnistInput(g.rgba, g.width, g.height).pixels, Array.from(digit(3)))).toBeGreaterThan(0.9);
  });

  it("reads a JPEG file to nearly the same pixels, which preprocess back to the digit", () => {
    const c = canvas();
    writeFileSync(join(tmp, "digit.jpg"), jpeg.encode({ width: c.width, height: c.height, data: c.rgba }, 85).data);
    const img = decodeImage(new Uint8Array(readFileSync(join(tmp, "digit.jpg"))), "digit.jpg");
    expect([img.width, img.height]).toEqual([90, 70]);
    let err = 0;
    for (let i = 0; i < img.rgba.length; i++) err += Math.abs(img.rgba[i] - c.rgba[i]);
    expect(err / img.rgba.length).toBeLessThan(6); // lossy, but close
    const r = toMnistInput(img.rgba, img.width, img.height);
    expect(correlation(r.pixels, Array.from(digit(3)))).toBeGreaterThan(0.9);
  });

  it("rejects other files with a one-line ImageError naming the file", () => {
    const cases: [Uint8Array, string, RegExp][] = [
      [new TextEncoder().encode("just some text\n"), "notes.txt", /^notes\.txt: not a PNG or JPEG image; convert it to PNG or JPEG$/],
      [new TextEncoder().encode("GIF89a\x01\x00\x01\x00"), "anim.gif", /^anim\.gif: a GIF image, which is not supported; convert it to PNG or JPEG$/],
      [new Uint8Array(0), "empty.png", /^empty\.png: not a PNG or JPEG image/],
    ];
    const png = new PNG({ width: 20, height: 20 });
    cases.push([new Uint8Array(PNG.sync.write(png)).subarray(0, 50), "cut.png", /^cut\.png: damaged or unreadable PNG image \(/]);
    const jpg = jpeg.encode({ width: 16, height: 16, data: new Uint8Array(16 * 16 * 4).fill(128) }, 90).data;
    cases.push([new Uint8Array(jpg).subarray(0, 40), "cut.jpg", /^cut\.jpg: damaged or unreadable JPEG image \(/]);
    for (const [bytes, name, message] of cases) {
      let error: unknown;
      try {
        decodeImage(bytes, name);
      } catch (e) {
        error = e;
      }
      expect(error, name).toBeInstanceOf(ImageError);
      expect((error as Error).message).toMatch(message);
      expect((error as Error).message).not.toContain("\n");
    }
  });
});
