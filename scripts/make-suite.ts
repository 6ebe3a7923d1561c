/**
 * Generates the "handwriting from elsewhere" suite (src/data/suite/): digits that did not come from MNIST's
 * scanner, made 28x28 by the project's own MNIST-style preprocessing (src/image/preprocess.ts), as the demo and
 * `predict` see them. Run once; the result is committed (a few hundred kB of gzipped IDX):
 *
 *   npx tsx scripts/make-suite.ts            # needs Debian's chromium and the handwriting fonts below
 *
 * Two parts, in this order in the files (src/data/suite/suite.json records where each starts):
 *  - fonts: each digit of every handwriting-like font Debian ships that we found (apt-get install fonts-bwht
 *    fonts-breip fonts-comic-neue fonts-dancingscript fonts-dkg-handwriting fonts-femkeklaver fonts-humor-sans
 *    fonts-klee fonts-rufscript fonts-sjfonts), rendered by Chromium on a 280x280 canvas at three slants
 *    (-12, 0, +12 degrees) and three stroke widths (eroded by a black outline, as is, thickened by a white one;
 *    the erosion is halved, or quartered, where the full one would break the glyph apart or leave less than a
 *    fifth of its ink, and the rendition is left out if even a quarter does);
 *  - pen: digits drawn by pointer events on the web demo's own drawing canvas (the real page and its DrawPad,
 *    served by serveDemo), from two skeletons per digit, each drawn with a random size, slant, aspect, rotation and
 *    wobble from a fixed seed.
 * A font whose digits render exactly like the fallback font (it has no digits of its own) is left out.
 */
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";
import { serveDemo } from "../src/server/demo.ts";
import { toMnistInput } from "../src/image/preprocess.ts";
import { decodeImage } from "../src/image/decode.ts";
import { writeFileAtomic } from "../src/node/files.ts";
import { Rng } from "../src/random.ts";

const OUT = join(import.meta.dirname, "../src/data/suite");
const FONTS = [
  "Because We Build", "Because We Connect", "Because We Create", "Because We Learn", "Because We Mentor", "Because We Organize",
  "Breip", "Comic Neue", "Dancing Script", "DkgHandwriting", "femkeklaver", "Humor Sans", "Klee One", "Rufscript", "Delphine", "Steve",
];
const SLANTS = [-12, 0, 12];
/** Outline width in canvas pixels at a 180 px font: negative erodes (black outline), positive thickens (white). */
const WIDTHS = [-5, 0, 8];
const PEN_PER_DIGIT = 50;

type Stroke = [number, number][];

function ellipse(cx: number, cy: number, rx: number, ry: number, from = 0, to = 2 * Math.PI, n = 28): Stroke {
  return Array.from({ length: n + 1 }, (_, i) => {
    const t = from + ((to - from) * i) / n;
    return [cx - rx * Math.sin(t), cy - ry * Math.cos(t)] as [number, number]; // from the top, anticlockwise
  });
}

/** Two skeletons per digit in a unit box (x right, y down), as people commonly write them. */
const SKELETONS: Stroke[][][] = [
  [[ellipse(0.5, 0.5, 0.25, 0.38)], [ellipse(0.5, 0.5, 0.22, 0.4, -0.3, 2 * Math.PI + 0.2)]],
  [[[[0.5, 0.1], [0.5, 0.9]]], [[[0.33, 0.27], [0.52, 0.1], [0.52, 0.9]], [[0.35, 0.9], [0.69, 0.9]]]],
  [
    [[[0.28, 0.3], [0.35, 0.15], [0.5, 0.1], [0.65, 0.15], [0.72, 0.3], [0.65, 0.48], [0.5, 0.62], [0.3, 0.88], [0.75, 0.88]]],
    [[[0.28, 0.25], [0.42, 0.1], [0.62, 0.12], [0.7, 0.3], [0.55, 0.55], [0.3, 0.88], [0.42, 0.8], [0.55, 0.85], [0.76, 0.88]]],
  ],
  [
    [[[0.28, 0.18], [0.45, 0.1], [0.65, 0.15], [0.7, 0.3], [0.55, 0.45], [0.45, 0.48], [0.55, 0.5], [0.72, 0.6], [0.72, 0.78], [0.58, 0.9], [0.4, 0.9], [0.25, 0.82]]],
    [[[0.28, 0.1], [0.72, 0.1], [0.45, 0.42], [0.65, 0.5], [0.72, 0.68], [0.6, 0.88], [0.4, 0.9], [0.25, 0.82]]],
  ],
  [
    [[[0.6, 0.9], [0.6, 0.1], [0.25, 0.62], [0.78, 0.62]]],
    [[[0.3, 0.1], [0.26, 0.6], [0.76, 0.6]], [[0.63, 0.32], [0.63, 0.92]]],
  ],
  [
    [[[0.68, 0.12], [0.32, 0.12], [0.3, 0.45], [0.5, 0.4], [0.68, 0.5], [0.72, 0.7], [0.6, 0.88], [0.4, 0.9], [0.27, 0.82]]],
    [[[0.32, 0.12], [0.3, 0.45], [0.5, 0.4], [0.68, 0.5], [0.72, 0.7], [0.6, 0.88], [0.4, 0.9], [0.27, 0.82]], [[0.32, 0.12], [0.7, 0.1]]],
  ],
  [
    [[[0.65, 0.12], [0.45, 0.25], [0.32, 0.5], [0.3, 0.72], [0.42, 0.88], [0.6, 0.88], [0.7, 0.72], [0.62, 0.56], [0.45, 0.55], [0.32, 0.65]]],
    [[[0.6, 0.1], [0.35, 0.55], [0.3, 0.75], [0.45, 0.9], [0.65, 0.85], [0.68, 0.65], [0.5, 0.55], [0.33, 0.65]]],
  ],
  [
    [[[0.25, 0.12], [0.75, 0.12], [0.45, 0.9]]],
    [[[0.25, 0.2], [0.3, 0.12], [0.75, 0.12], [0.55, 0.5], [0.45, 0.9]], [[0.38, 0.5], [0.7, 0.5]]],
  ],
  [
    [[[0.65, 0.2], [0.5, 0.1], [0.33, 0.2], [0.35, 0.35], [0.5, 0.47], [0.68, 0.6], [0.7, 0.78], [0.5, 0.9], [0.3, 0.78], [0.32, 0.6], [0.5, 0.47], [0.65, 0.35], [0.65, 0.2]]],
    [ellipse(0.5, 0.28, 0.16, 0.18), ellipse(0.5, 0.7, 0.2, 0.21)],
  ],
  [
    [[...ellipse(0.5, 0.3, 0.2, 0.19, 0.3, 2 * Math.PI + 0.3), [0.68, 0.45], [0.64, 0.7], [0.58, 0.9]]],
    [ellipse(0.48, 0.3, 0.2, 0.19), [[0.68, 0.22], [0.68, 0.9]]],
  ],
];

/** Points at most `step` apart along the polyline, so that each mouse move is a short segment. */
function densify(s: Stroke, step: number): Stroke {
  const out: Stroke = [s[0]];
  for (let i = 1; i < s.length; i++) {
    const [x0, y0] = s[i - 1];
    const [x1, y1] = s[i];
    const k = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) / step));
    for (let j = 1; j <= k; j++) out.push([x0 + ((x1 - x0) * j) / k, y0 + ((y1 - y0) * j) / k]);
  }
  return out;
}

/** One random rendition of a skeleton in canvas fractions: size, aspect, slant, rotation, wobble and position. */
function jitter(strokes: Stroke[], rng: Rng): Stroke[] {
  const size = rng.uniform(0.45, 0.85);
  const aspect = rng.uniform(0.7, 1.15);
  const slant = Math.tan((rng.uniform(-20, 20) * Math.PI) / 180);
  const rot = (rng.uniform(-8, 8) * Math.PI) / 180;
  const cx = 0.5 + rng.uniform(-0.1, 0.1);
  const cy = 0.5 + rng.uniform(-0.1, 0.1);
  const wobble = rng.uniform(0, 0.025);
  const phase = rng.uniform(0, 2 * Math.PI);
  return strokes.map((s) =>
    densify(s, 0.04).map(([u, v], i) => {
      const x = (u - 0.5) * aspect + wobble * Math.sin(phase + i * 0.7);
      const y = v - 0.5 + wobble * Math.cos(phase + i * 0.5);
      const xs = x - slant * y; // slant: the top leans right for slant > 0
      const [xr, yr] = [xs * Math.cos(rot) - y * Math.sin(rot), xs * Math.sin(rot) + y * Math.cos(rot)];
      return [Math.min(0.98, Math.max(0.02, cx + size * xr)), Math.min(0.98, Math.max(0.02, cy + size * yr))] as [number, number];
    }),
  );
}

async function canvasPixels(page: Page): Promise<{ rgba: Uint8Array; width: number; height: number }> {
  const url = await page.evaluate(() => (document.querySelector("canvas#canvas") as HTMLCanvasElement).toDataURL("image/png"));
  return fromDataUrl(url);
}

/** Canvases travel from the page as PNG data URLs (lossless, and far smaller than arrays of RGBA numbers). */
function fromDataUrl(url: string): { rgba: Uint8Array; width: number; height: number } {
  const im = decodeImage(new Uint8Array(Buffer.from(url.slice(url.indexOf(",") + 1), "base64")), "canvas");
  return { rgba: im.rgba, width: im.width, height: im.height };
}

function toBytes(pixels: Float32Array): Uint8Array {
  return Uint8Array.from(pixels, (p) => Math.round(255 * Math.min(1, Math.max(0, p))));
}

async function fontDigits(page: Page): Promise<{ images: Uint8Array[]; labels: number[]; fonts: string[] }> {
  const images: Uint8Array[] = [];
  const labels: number[] = [];
  const fonts: string[] = [];
  for (const font of FONTS) {
    const rendered = await page.evaluate(
      async ({ font, slants, widths }) => {
        await document.fonts.load(`180px "${font}"`, "0123456789");
        const c = document.createElement("canvas");
        c.width = c.height = 280;
        const ctx = c.getContext("2d", { willReadFrequently: true })!;
        const draw = (family: string, digit: string, slant: number, width: number) => {
          ctx.setTransform(1, 0, 0, 1, 0, 0);
          ctx.fillStyle = "#000";
          ctx.fillRect(0, 0, 280, 280);
          ctx.font = `180px ${family}`;
          ctx.textAlign = "center";
          ctx.textBaseline = "middle";
          ctx.lineJoin = "round";
          ctx.setTransform(1, 0, -Math.tan((slant * Math.PI) / 180), 1, 0, 0); // x' = x - tan(slant) y about the centre row
          ctx.translate(140 * Math.tan((slant * Math.PI) / 180), 0);
          ctx.fillStyle = "#fff";
          ctx.fillText(digit, 140, 145);
          if (width !== 0) {
            ctx.lineWidth = Math.abs(width) * 2;
            ctx.strokeStyle = width > 0 ? "#fff" : "#000";
            ctx.strokeText(digit, 140, 145);
          }
          return c.toDataURL("image/png");
        };
        // The glyph's ink at canvas resolution: how many pixels, and in how many pieces (8-connected, 10+ pixels).
        const shape = () => {
          const px = ctx.getImageData(0, 0, 280, 280).data;
          const on = new Uint8Array(280 * 280);
          let ink = 0;
          for (let i = 0; i < on.length; i++) if (px[4 * i] > 127) (on[i] = 1), ink++;
          let pieces = 0;
          const stack: number[] = [];
          for (let i = 0; i < on.length; i++) {
            if (on[i] !== 1) continue;
            let size = 0;
            on[i] = 2;
            stack.push(i);
            while (stack.length) {
              const p = stack.pop()!;
              size++;
              const y = Math.floor(p / 280);
              const x = p % 280;
              for (let dy = -1; dy <= 1; dy++)
                for (let dx = -1; dx <= 1; dx++) {
                  const yy = y + dy;
                  const xx = x + dx;
                  if (yy < 0 || yy >= 280 || xx < 0 || xx >= 280) continue;
                  const q = yy * 280 + xx;
                  if (on[q] === 1) (on[q] = 2), stack.push(q);
                }
            }
            if (size >= 10) pieces++;
          }
          return { ink, pieces };
        };
        // A thinner pen, not a broken glyph: the black outline erodes by `width`, or by half or a quarter of it
        // when more would break the glyph into more pieces than it has or leave under a fifth of its ink (a thin
        // font eroded by 5 px left specks that the preprocessing blew up into blobs).
        const thinner = (family: string, digit: string, slant: number, width: number) => {
          draw(family, digit, slant, 0);
          const asIs = shape();
          for (const w of [width, width / 2, width / 4]) {
            const png = draw(family, digit, slant, w);
            const t = shape();
            if (t.pieces <= asIs.pieces && t.ink >= 0.2 * asIs.ink) return png;
          }
          return null;
        };
        // A font without digits of its own falls back: its digits then equal the fallback's, pixel for pixel.
        const fallback = draw("monospace", "012", 0, 0);
        const own = draw(`"${font}", monospace`, "012", 0, 0);
        if (fallback === own) return null;
        const out: { digit: number; png: string }[] = [];
        for (let d = 0; d < 10; d++)
          for (const s of slants)
            for (const w of widths) {
              const png = w < 0 ? thinner(`"${font}", monospace`, String(d), s, w) : draw(`"${font}", monospace`, String(d), s, w);
              if (png) out.push({ digit: d, png });
            }
        return out;
      },
      { font, slants: SLANTS, widths: WIDTHS },
    );
    if (!rendered) {
      console.log(`skipping ${font}: it has no digits (or is not installed)`);
      continue;
    }
    fonts.push(font);
    for (const r of rendered) {
      const { rgba, width, height } = fromDataUrl(r.png);
      const m = toMnistInput(rgba, width, height);
      if (m.empty) continue;
      images.push(toBytes(m.pixels));
      labels.push(r.digit);
    }
    console.log(`${font}: ${rendered.length} digits`);
  }
  return { images, labels, fonts };
}

async function penDigits(page: Page): Promise<{ images: Uint8Array[]; labels: number[] }> {
  const rng = new Rng(2003);
  const images: Uint8Array[] = [];
  const labels: number[] = [];
  for (let k = 0; k < PEN_PER_DIGIT; k++) {
    for (let d = 0; d < 10; d++) {
      // The demo's own pen (DrawPad) draws it: pointer events at the canvas, in one round trip per digit
      // (page.mouse costs one per point, minutes for the suite on a busy machine).
      const strokes = jitter(SKELETONS[d][k % 2], rng);
      await page.evaluate((strokes) => {
        (document.querySelector("#clear") as HTMLButtonElement).click();
        const c = document.querySelector("canvas#canvas") as HTMLCanvasElement;
        const r = c.getBoundingClientRect();
        const fire = (type: string, [x, y]: [number, number]) =>
          c.dispatchEvent(new PointerEvent(type, { pointerId: 1, pointerType: "mouse", isPrimary: true, button: type === "pointermove" ? -1 : 0, buttons: type === "pointerup" ? 0 : 1, clientX: r.left + x * r.width, clientY: r.top + y * r.height, bubbles: true, cancelable: true }));
        for (const s of strokes) {
          fire("pointerdown", s[0]);
          for (const p of s.slice(1)) fire("pointermove", p);
          fire("pointerup", s[s.length - 1]);
        }
      }, strokes);
      const { rgba, width, height } = await canvasPixels(page);
      const m = toMnistInput(rgba, width, height);
      if (m.empty) throw new Error(`pen digit ${d} #${k} left the canvas empty`);
      images.push(toBytes(m.pixels));
      labels.push(d);
    }
    if ((k + 1) % 10 === 0) console.log(`pen: ${(k + 1) * 10} digits`);
  }
  return { images, labels };
}

function idx(dims: number[], data: Uint8Array): Uint8Array {
  const header = new DataView(new ArrayBuffer(4 + 4 * dims.length));
  header.setUint32(0, 0x0800 | dims.length);
  dims.forEach((d, i) => header.setUint32(4 + 4 * i, d));
  const out = new Uint8Array(header.byteLength + data.length);
  out.set(new Uint8Array(header.buffer));
  out.set(data, header.byteLength);
  return gzipSync(out, { level: 9 });
}

const server = await serveDemo({ port: 0 });
const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--headless", "--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage({ viewport: { width: 1100, height: 900 } });
  // tsx compiles the functions passed to page.evaluate with esbuild's keepNames, which calls a __name helper.
  await page.addInitScript({ content: "window.__name = (f) => f;" });
  await page.goto(server.url);
  await page.getByTestId("canvas").waitFor();
  const f = await fontDigits(page);
  const p = await penDigits(page);
  const images = [...f.images, ...p.images];
  const labels = [...f.labels, ...p.labels];
  const flat = new Uint8Array(images.length * 784);
  images.forEach((im, i) => flat.set(im, i * 784));
  writeFileAtomic(join(OUT, "suite-images-idx3-ubyte.gz"), idx([images.length, 28, 28], flat));
  writeFileAtomic(join(OUT, "suite-labels-idx1-ubyte.gz"), idx([labels.length], Uint8Array.from(labels)));
  const meta = {
    description: "handwriting from elsewhere: digits not from MNIST, preprocessed as the demo does (scripts/make-suite.ts)",
    groups: [
      { name: "fonts", start: 0, count: f.images.length, slants: SLANTS, outline_widths: WIDTHS, fonts: f.fonts },
      { name: "pen", start: f.images.length, count: p.images.length, per_digit: PEN_PER_DIGIT },
    ],
  };
  writeFileAtomic(join(OUT, "suite.json"), JSON.stringify(meta, null, 2) + "\n");
  console.log(`wrote ${images.length} digits to ${OUT}`);
} finally {
  await browser.close();
  await server.close();
}
