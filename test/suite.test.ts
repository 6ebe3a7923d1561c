/**
 * The handwriting suite's writers part (src/node/suite.ts): the UCI test set's 8x8 ink counts drawn as 96x96
 * scans and preprocessed as `predict` would, appended after the fonts and the pen; and what a damaged source
 * file gives: a DataError naming the file and the line, never a suite with silently wrong digits.
 */
import { gzipSync } from "node:zlib";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadSuite, loadWriters, SUITE_DIR, WRITERS_FILE } from "../src/node/suite.ts";
import { DataError } from "../src/data/idx.ts";
import { centreOfMass } from "./helpers/images.ts";

const csv = (lines: string[]) => gzipSync(Buffer.from(lines.join("\n") + "\n"));
const line = (cells: (r: number, c: number) => number, label: number) =>
  [...Array.from({ length: 64 }, (_, i) => cells(Math.floor(i / 8), i % 8)), label].join(",");

describe("the writers part: UCI's handwritten digits", () => {
  const w = loadWriters(new Uint8Array(readFileSync(join(SUITE_DIR, WRITERS_FILE))), WRITERS_FILE);

  it("holds the 1,797 digits of the UCI test set, about 180 of each class", () => {
    expect(w.count).toBe(1797);
    const perClass = Array.from({ length: 10 }, (_, d) => w.labels.filter((l) => l === d).length);
    expect(perClass).toEqual([178, 182, 177, 183, 181, 182, 181, 179, 174, 180]); // scikit-learn's load_digits
  });

  it("each becomes an MNIST-style input: bright ink on black, strongest pixel 255, centre of mass near (14, 14), a border of background", () => {
    for (let n = 0; n < w.count; n += 97) {
      const img = w.images.subarray(n * 784, (n + 1) * 784);
      expect(Math.max(...img)).toBe(255);
      const [c, r] = centreOfMass(img);
      expect(Math.abs(r - 14)).toBeLessThan(1);
      expect(Math.abs(c - 14)).toBeLessThan(1);
      for (let i = 0; i < 28; i++) for (const k of [i, 27 * 28 + i, i * 28, i * 28 + 27]) expect(img[k]).toBe(0);
    }
  });

  it("draws the 8x8 grid the right way up: a long bar along the top row and a short stem down the left column stay so", () => {
    // ink counts, row by row: row 1 has ink in columns 1..6, column 1 has it in rows 1..3 (a wide, upside-down "L")
    const g = loadWriters(csv([line((r, c) => ((r === 1 && c >= 1 && c <= 6) || (c === 1 && r >= 1 && r <= 3) ? 16 : 0), 7)]), "L.csv.gz");
    const img = g.images;
    const rows = Array.from({ length: 28 }, (_, r) => img.subarray(r * 28, r * 28 + 28).reduce((a, b) => a + b, 0));
    const cols = Array.from({ length: 28 }, (_, c) => Array.from({ length: 28 }, (_, r) => img[r * 28 + c]).reduce((a, b) => a + b, 0));
    const extent = (v: number[]) => [v.findIndex((x) => x > 0), v.length - 1 - [...v].reverse().findIndex((x) => x > 0)];
    const [top, bottom] = extent(rows);
    const [left, right] = extent(cols);
    expect(right - left).toBeGreaterThan(1.5 * (bottom - top)); // wide, not tall: not transposed
    const heaviest = (v: number[]) => v.indexOf(Math.max(...v));
    expect(heaviest(rows)).toBeLessThan((top + bottom) / 2); // the bar is at the top: not upside down
    expect(heaviest(cols)).toBeLessThan((left + right) / 2); // the stem is at the left: not mirrored
    expect(g.labels[0]).toBe(7);
  });

  it("a damaged file is a DataError naming it and the line", () => {
    const good = line(() => 8, 3);
    expect(() => loadWriters(csv([good, good.replace(/,3$/, "")]), "short.csv.gz")).toThrow(/short\.csv\.gz: line 2 is not 64 ink counts 0\.\.16 and a label 0\.\.9/);
    expect(() => loadWriters(csv([good.replace(/^8,/, "17,")]), "range.csv.gz")).toThrow(/range\.csv\.gz: line 1 /);
    expect(() => loadWriters(csv([good.replace(/,3$/, ",10")]), "label.csv.gz")).toThrow(/label\.csv\.gz: line 1 /);
    expect(() => loadWriters(csv([good.replace(/^8,/, "x,")]), "text.csv.gz")).toThrow(DataError);
    expect(() => loadWriters(new Uint8Array(Buffer.from(good)), "plain.csv")).toThrow(/plain\.csv: not a gzipped CSV/);
    expect(() => loadWriters(csv([]), "empty.csv.gz")).toThrow(/empty\.csv\.gz: no digits/);
  });
});

describe("the whole suite", () => {
  it("is the fonts, the pen and the writers, one after the other", () => {
    const s = loadSuite();
    expect(s.groups.map((g) => g.name)).toEqual(["fonts", "pen", "writers"]);
    s.groups.forEach((g, i) => expect(g.start).toBe(i ? s.groups[i - 1].start + s.groups[i - 1].count : 0));
    expect(s.split.count).toBe(s.groups.reduce((n, g) => n + g.count, 0));
    expect(s.split.images.length).toBe(s.split.count * 784);
    const w = s.groups[2];
    expect(Array.from(s.split.labels.subarray(w.start, w.start + 5))).toEqual([0, 1, 2, 3, 4]); // the CSV's first digits
  });
});
