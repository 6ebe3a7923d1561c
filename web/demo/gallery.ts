/**
 * The gallery of real MNIST test digits: one button per digit (keyboard reachable), each marked right or
 * wrong once the current model has classified the whole gallery in one batch.
 */
import type { Gallery } from "../../src/web-assets/gallery.ts";

const PIXELS = 28 * 28;

export class GalleryView {
  private readonly buttons: HTMLButtonElement[] = [];

  constructor(
    private readonly container: HTMLElement,
    readonly gallery: Gallery,
    onPick: (index: number) => void,
  ) {
    for (let k = 0; k < gallery.count; k++) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.testid = "gallery-item";
      b.dataset.label = String(gallery.labels[k]);
      b.setAttribute("aria-label", `test image ${gallery.indices[k]}, a ${gallery.labels[k]}`);
      const c = document.createElement("canvas");
      c.width = c.height = 28;
      paint(c, this.pixels(k));
      b.append(c);
      b.addEventListener("click", () => onPick(k));
      this.buttons.push(b);
    }
    container.replaceChildren(...this.buttons);
  }

  /** Pixels of digit k in [0, 1], as the model takes them. */
  pixels(k: number): Float32Array {
    const out = new Float32Array(PIXELS);
    const src = this.gallery.images.subarray(k * PIXELS, (k + 1) * PIXELS);
    for (let i = 0; i < PIXELS; i++) out[i] = src[i] / 255;
    return out;
  }

  /** All digits as one [count, 784] batch. */
  batch(): Float32Array {
    const out = new Float32Array(this.gallery.count * PIXELS);
    for (let i = 0; i < out.length; i++) out[i] = this.gallery.images[i] / 255;
    return out;
  }

  /** Marks each digit with the model's prediction; returns the number right. */
  mark(predictions: ArrayLike<number>): number {
    let right = 0;
    this.buttons.forEach((b, k) => {
      const ok = predictions[k] === this.gallery.labels[k];
      if (ok) right++;
      b.dataset.predicted = String(predictions[k]);
      b.dataset.correct = String(ok);
      b.classList.toggle("wrong", !ok);
      b.setAttribute("aria-label", `test image ${this.gallery.indices[k]}, a ${this.gallery.labels[k]}, classified ${predictions[k]}${ok ? "" : " (wrong)"}`);
    });
    return right;
  }

  select(k: number | null): void {
    this.buttons.forEach((b, i) => b.classList.toggle("selected", i === k));
  }
}

/** Draws 784 values in [0, 1] as gray pixels on a 28x28 canvas. */
export function paint(canvas: HTMLCanvasElement, pixels: Float32Array): void {
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const img = ctx.createImageData(28, 28);
  for (let i = 0; i < PIXELS; i++) {
    const v = Math.round(255 * Math.min(1, Math.max(0, pixels[i])));
    img.data[4 * i] = img.data[4 * i + 1] = img.data[4 * i + 2] = v;
    img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}
