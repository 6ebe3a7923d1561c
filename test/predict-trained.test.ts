/**
 * `onnx-mnist predict` end to end through the real CLI, with a model trained by `onnx-mnist train`, on MNIST test
 * digits rendered the way people photograph or draw them: large, dark ink on light paper, off-centre, as PNG and
 * JPEG. The MNIST-style preprocessing must bring them back to what the model knows.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PNG } from "pngjs";
import jpeg from "jpeg-js";
import { loadMnist } from "../src/data/node.ts";
import { trainedModel } from "./helpers/trained-model.ts";

const dir = mkdtempSync(join(tmpdir(), "predict-trained-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
let model: string;
beforeAll(async () => {
  model = await trainedModel();
}, 300_000);

const data = loadMnist(undefined, { trainLimit: 1, testLimit: 30 });

/** Test digit i drawn 6x larger, dark on light paper, placed off-centre on a 300x240 page, as RGBA. */
function render(i: number): { rgba: Uint8Array; width: number; height: number } {
  const [width, height, scale, ox, oy] = [300, 240, 6, 20 + (i % 5) * 17, 10 + (i % 3) * 11];
  const rgba = new Uint8Array(width * height * 4).fill(255);
  for (let y = 0; y < 28 * scale; y++)
    for (let x = 0; x < 28 * scale; x++) {
      const v = data.test.images[i * 784 + Math.floor(y / scale) * 28 + Math.floor(x / scale)];
      const p = ((oy + y) * width + ox + x) * 4;
      rgba[p] = rgba[p + 1] = rgba[p + 2] = 245 - Math.round((v / 255) * 225); // grey paper, dark ink
    }
  return { rgba, width, height };
}

describe("onnx-mnist predict with a trained model", () => {
  it("classifies rendered PNG and JPEG digits and prints the top-3 probabilities", () => {
    const files: string[] = [];
    const labels: number[] = [];
    for (let i = 0; i < 30; i++) {
      const { rgba, width, height } = render(i);
      const file = join(dir, `digit-${i}.${i % 2 ? "jpg" : "png"}`);
      if (i % 2) writeFileSync(file, jpeg.encode({ data: rgba, width, height }, 90).data);
      else {
        const png = new PNG({ width, height });
        png.data = Buffer.from(rgba);
        writeFileSync(file, PNG.sync.write(png));
      }
      files.push(file);
      labels.push(data.test.labels[i]);
    }
    const r = spawnSync(process.execPath, ["bin/onnx-mnist.js", "predict", "--model", model, "--json", ...files], { encoding: "utf8" });
    expect(r.status, r.stderr).toBe(0);
    const results = JSON.parse(r.stdout) as { file: string; prediction: number; top3: { digit: number; p: number }[] }[];
    expect(results).toHaveLength(30);
    const correct = results.filter((x, i) => x.prediction === labels[i]).length;
    expect(correct).toBeGreaterThanOrEqual(27);
    for (const x of results) {
      expect(x.top3).toHaveLength(3);
      expect(x.top3[0].p).toBeGreaterThanOrEqual(x.top3[1].p);
    }
    const text = spawnSync(process.execPath, ["bin/onnx-mnist.js", "predict", "--model", model, files[0]], { encoding: "utf8" });
    expect(text.stdout).toMatch(new RegExp(`digit-0\\.png: ${labels[0]}\\b.*%`));
  });

  it("rejects an unreadable image and a non-ONNX model with a one-line error", () => {
    const txt = join(dir, "note.txt");
    writeFileSync(txt, "not an image");
    const a = spawnSync(process.execPath, ["bin/onnx-mnist.js", "predict", "--model", model, txt], { encoding: "utf8" });
    expect(a.status).toBe(1);
    expect(a.stderr.trim()).toMatch(/^error: .*note\.txt.*not a PNG or JPEG/);
    const b = spawnSync(process.execPath, ["bin/onnx-mnist.js", "predict", "--model", txt, join(dir, "digit-0.png")], { encoding: "utf8" });
    expect(b.status).toBe(1);
    expect(b.stderr.trim().split("\n")).toHaveLength(1);
  });
});
