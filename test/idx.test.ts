import { describe, expect, it, beforeAll, afterAll } from "vitest";
import { mkdtempSync, readFileSync, rmSync, writeFileSync, copyFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { parseIdx, DataError } from "../src/data/idx.ts";
import { makeSplit } from "../src/data/dataset.ts";
import { defaultMnistDir, loadMnist, MNIST_FILES } from "../src/data/node.ts";

const dir = defaultMnistDir();
const read = (file: string) => new Uint8Array(readFileSync(join(dir, file)));
const testLabels = read(MNIST_FILES.testLabels);

/** Runs f and returns the DataError it throws (fails the test if it throws anything else or nothing). */
function dataError(f: () => unknown): DataError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(DataError);
    expect((e as Error).message).not.toContain("\n");
    return e as DataError;
  }
  throw new Error("expected a DataError, nothing was thrown");
}

describe("parseIdx", () => {
  it("reads the real MNIST files, raw", () => {
    const images = parseIdx(read(MNIST_FILES.trainImages), "train-images");
    expect(images.dims).toEqual([60000, 28, 28]);
    expect(images.data.length).toBe(60000 * 784);
    const labels = parseIdx(testLabels, "t10k-labels");
    expect(labels.dims).toEqual([10000]);
    // The well-known first test labels of MNIST.
    expect([...labels.data.subarray(0, 10)]).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
  });

  it("reads a gzipped file to the same dims and bytes as the raw one", () => {
    const raw = read(MNIST_FILES.testImages);
    const gz = new Uint8Array(gzipSync(raw));
    expect(gz[0]).toBe(0x1f);
    const a = parseIdx(raw, "raw");
    const b = parseIdx(gz, "gz");
    expect(b.dims).toEqual(a.dims);
    expect(Buffer.compare(Buffer.from(b.data), Buffer.from(a.data))).toBe(0);
  });

  it("rejects a file that is not IDX, naming the file and the magic it found", () => {
    const e = dataError(() => parseIdx(new TextEncoder().encode("hello, world"), "notes.txt"));
    expect(e.message).toMatch(/^notes\.txt: not an IDX file \(magic 0x68656c6c/);
    expect(e.message).toContain("expected an MNIST-format image or label file");
    // A gzipped non-IDX file is unpacked first, then rejected by its inner magic.
    const e2 = dataError(() => parseIdx(new Uint8Array(gzipSync(Buffer.from("hello, world"))), "notes.txt.gz"));
    expect(e2.message).toMatch(/^notes\.txt\.gz: not an IDX file/);
    // Too short to hold a magic number at all.
    expect(dataError(() => parseIdx(new Uint8Array([0, 0]), "tiny")).message).toMatch(/^tiny: not an IDX file \(only 2 bytes\)/);
  });

  it("rejects IDX types other than unsigned bytes", () => {
    const floats = new Uint8Array([0, 0, 0x0d, 1, 0, 0, 0, 1, 0, 0, 0, 0]);
    expect(dataError(() => parseIdx(floats, "f.idx")).message).toMatch(/IDX data type float \(0x0d\) is not supported/);
  });

  it("reports truncated data with the expected and found byte counts", () => {
    const e = dataError(() => parseIdx(testLabels.subarray(0, 5008), "t10k-labels-idx1-ubyte"));
    expect(e.message).toBe("t10k-labels-idx1-ubyte: truncated: expected 10000 bytes of data for dimensions [10000], found 5000; re-download the file");
    // Cut inside the header: images declare 3 dimensions (16 header bytes).
    const header = dataError(() => parseIdx(read(MNIST_FILES.testImages).subarray(0, 10), "imgs"));
    expect(header.message).toMatch(/truncated IDX header \(10 bytes, the 3 dimensions need 16\)/);
  });

  it("reports extra bytes after the data", () => {
    const longer = new Uint8Array(testLabels.length + 3);
    longer.set(testLabels);
    const e = dataError(() => parseIdx(longer, "labels"));
    expect(e.message).toMatch(/^labels: has 3 extra bytes after the 10000 bytes of data/);
  });

  it("reports a corrupt gzip stream: cut short, damaged inside, or a bad checksum", () => {
    const gz = new Uint8Array(gzipSync(testLabels));
    expect(dataError(() => parseIdx(gz.subarray(0, gz.length >> 1), "half.gz")).message).toMatch(/^half\.gz: corrupt gzip stream/);
    const damaged = gz.slice();
    for (let i = 100; i < 140; i++) damaged[i] ^= 0x55;
    expect(dataError(() => parseIdx(damaged, "damaged.gz")).message).toMatch(/^damaged\.gz: corrupt gzip stream/);
    const badCrc = gz.slice();
    badCrc[badCrc.length - 6] ^= 1; // inside the CRC-32 of the trailer: the deflate data itself is intact
    expect(dataError(() => parseIdx(badCrc, "crc.gz")).message).toBe(
      "crc.gz: corrupt gzip stream (checksum mismatch); re-download the file or pass the uncompressed IDX file",
    );
  });
});

describe("makeSplit", () => {
  const images = parseIdx(read(MNIST_FILES.testImages), "t10k-images");
  const labels = parseIdx(testLabels, "t10k-labels");

  it("pairs images and labels", () => {
    const s = makeSplit(images, labels, "test");
    expect([s.count, s.rows, s.cols]).toEqual([10000, 28, 28]);
    expect(s.labels[0]).toBe(7);
  });

  it("rejects a count mismatch between images and labels", () => {
    const short = { dims: [9999], data: labels.data.subarray(0, 9999) };
    expect(dataError(() => makeSplit(images, short, "test")).message).toMatch(/^test: 10000 images but 9999 labels/);
  });

  it("rejects swapped files by their dimensions", () => {
    expect(dataError(() => makeSplit(labels, images, "test")).message).toMatch(/has 1 dimensions \[10000\], expected 3 \[count, rows, cols\]; is it a labels file\?/);
    expect(dataError(() => makeSplit(images, images, "test")).message).toMatch(/has 3 dimensions \[10000, 28, 28\], expected 1 \[count\]; is it an images file\?/);
  });

  it("rejects labels outside 0..9", () => {
    const bad = labels.data.slice();
    bad[42] = 12;
    const e = dataError(() => makeSplit(images, { dims: [10000], data: bad }, "test", { images: "imgs", labels: "labs" }));
    expect(e.message).toBe("test: label 12 at index 42 of labs is outside 0..9; expected a 10-class MNIST-format labels file");
  });
});

describe("loadMnist", () => {
  let tmp: string;
  beforeAll(() => {
    tmp = mkdtempSync(join(tmpdir(), "onnx-mnist-idx-"));
  });
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it("loads the bundled MNIST: 60000 train and 10000 test images with the known first labels", () => {
    const d = loadMnist();
    expect(d.train.count).toBe(60000);
    expect(d.test.count).toBe(10000);
    expect([d.train.rows, d.train.cols]).toEqual([28, 28]);
    expect([...d.train.labels.subarray(0, 10)]).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect([...d.test.labels.subarray(0, 10)]).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
    // Every class occurs, in roughly MNIST's proportions.
    const counts = new Array(10).fill(0);
    for (const l of d.train.labels) counts[l]++;
    expect(Math.min(...counts)).toBeGreaterThan(5000);
  });

  it("applies limits as the first N images", () => {
    const d = loadMnist(undefined, { trainLimit: 100, testLimit: 7 });
    expect(d.train.count).toBe(100);
    expect(d.train.images.length).toBe(100 * 784);
    expect(d.test.count).toBe(7);
    expect([...d.test.labels]).toEqual([7, 2, 1, 0, 4, 1, 4]);
  });

  it("loads a directory of gzipped files, and mixed raw and gzipped ones", () => {
    const gzDir = join(tmp, "gz");
    mkdirSync(gzDir);
    for (const f of Object.values(MNIST_FILES)) {
      if (f === MNIST_FILES.testLabels) copyFileSync(join(dir, f), join(gzDir, f));
      else writeFileSync(join(gzDir, f + ".gz"), gzipSync(read(f), { level: 1 }));
    }
    const d = loadMnist(gzDir, { testLimit: 10 });
    expect(d.train.count).toBe(60000);
    expect([...d.train.labels.subarray(0, 10)]).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    const raw = loadMnist(undefined, { testLimit: 10 });
    expect(Buffer.compare(Buffer.from(d.test.images), Buffer.from(raw.test.images))).toBe(0);
  });

  it("names the missing file, the directory, and what the directory must hold", () => {
    const partial = join(tmp, "partial");
    mkdirSync(partial);
    for (const f of [MNIST_FILES.trainImages, MNIST_FILES.trainLabels, MNIST_FILES.testImages]) copyFileSync(join(dir, f), join(partial, f));
    const e = dataError(() => loadMnist(partial));
    expect(e.message).toBe(
      `${partial}: missing t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz); an MNIST-format directory holds ` +
        "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte (each raw or .gz)",
    );
    expect(dataError(() => loadMnist(join(tmp, "nowhere"))).message).toMatch(/nowhere: no such directory; an MNIST-format directory holds/);
  });

  it("names the damaged file inside a directory", () => {
    const broken = join(tmp, "broken");
    mkdirSync(broken);
    for (const f of Object.values(MNIST_FILES)) copyFileSync(join(dir, f), join(broken, f));
    writeFileSync(join(broken, MNIST_FILES.trainLabels), read(MNIST_FILES.trainLabels).subarray(0, 1000));
    expect(dataError(() => loadMnist(broken)).message).toBe(
      `${join(broken, MNIST_FILES.trainLabels)}: truncated: expected 60000 bytes of data for dimensions [60000], found 992; re-download the file`,
    );
  });

  it("rejects images that are not 28x28", () => {
    const odd = join(tmp, "odd");
    mkdirSync(odd);
    for (const f of Object.values(MNIST_FILES)) copyFileSync(join(dir, f), join(odd, f));
    // 10 images of 4x4, with 10 labels.
    const header = [0, 0, 8, 3, 0, 0, 0, 10, 0, 0, 0, 4, 0, 0, 0, 4];
    writeFileSync(join(odd, MNIST_FILES.trainImages), new Uint8Array([...header, ...new Array(160).fill(0)]));
    writeFileSync(join(odd, MNIST_FILES.trainLabels), new Uint8Array([0, 0, 8, 1, 0, 0, 0, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    expect(dataError(() => loadMnist(odd)).message).toMatch(/train-images-idx3-ubyte: images are 4x4, but onnx-mnist models take 28x28/);
  });
});
