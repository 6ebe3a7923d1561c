/** Pixel conventions (src/image/convention.ts): the arithmetic, the presets' descriptions and the flags. */
import { describe, expect, it } from "vitest";
import { applyConvention, conventionFromFlags, describeConvention, presetOf, PRESETS, ConventionError } from "../src/image/convention.ts";

describe("pixel conventions", () => {
  it("map p in [0,1] to ((invert ? 1-p : p) * scale - mean) / std", () => {
    const p = Float32Array.of(0, 0.25, 1);
    expect(Array.from(applyConvention(PRESETS.unit, p, new Float32Array(3)))).toEqual([0, 0.25, 1]);
    expect(Array.from(applyConvention(PRESETS.byte, p, new Float32Array(3)))).toEqual([0, 63.75, 255]);
    expect(Array.from(applyConvention(PRESETS["byte-inverted"], p, new Float32Array(3)))).toEqual([255, 191.25, 0]);
    // MNIST's normalisation: (0 - 0.1307)/0.3081 = -0.42421..., (1 - 0.1307)/0.3081 = 2.82148...
    const m = applyConvention(PRESETS.mnist, p, new Float32Array(3));
    expect(m[0]).toBeCloseTo(-0.1307 / 0.3081, 6);
    expect(m[2]).toBeCloseTo((1 - 0.1307) / 0.3081, 6);
    const inv = applyConvention(PRESETS["mnist-inverted"], p, new Float32Array(3));
    expect(inv[0]).toBeCloseTo((1 - 0.1307) / 0.3081, 6);
    // In place by default; the input is untouched when an output buffer is given.
    const q = Float32Array.of(0.5);
    applyConvention(PRESETS.byte, q);
    expect(q[0]).toBe(127.5);
    expect(p[1]).toBe(0.25);
  });

  it("describe themselves in a few words", () => {
    expect(describeConvention(PRESETS.unit)).toBe("pixels 0-1");
    expect(describeConvention(PRESETS.byte)).toBe("pixels 0-255");
    expect(describeConvention(PRESETS.mnist)).toBe("pixels (p-0.1307)/0.3081");
    expect(describeConvention(PRESETS["unit-inverted"])).toBe("pixels 0-1, inverted (dark ink on white)");
    expect(describeConvention({ scale: 2, mean: 1, std: 1, invert: false })).toBe("pixels (2p-1)/1");
  });

  it("come from flags: a preset, adjusted by the others, or nothing (detect)", () => {
    expect(conventionFromFlags({})).toBeUndefined();
    expect(conventionFromFlags({ inputPreset: "byte" })).toEqual(PRESETS.byte);
    expect(presetOf(conventionFromFlags({ inputPreset: "byte", invert: true })!)).toBe("byte-inverted");
    expect(conventionFromFlags({ invert: true })).toEqual(PRESETS["unit-inverted"]);
    expect(conventionFromFlags({ inputMean: 0.5, inputStd: 0.5 })).toEqual({ scale: 1, mean: 0.5, std: 0.5, invert: false });
    expect(() => conventionFromFlags({ inputPreset: "bytes" })).toThrow(ConventionError);
    expect(() => conventionFromFlags({ inputPreset: "bytes" })).toThrow("--input-preset bytes: unknown; choose one of unit, byte, mnist, unit-inverted, byte-inverted, mnist-inverted");
    expect(() => conventionFromFlags({ inputStd: 0 })).toThrow("--input-std must be greater than 0, got 0");
    expect(() => conventionFromFlags({ inputScale: 0 })).toThrow(/--input-scale must not be 0/);
    expect(() => conventionFromFlags({ inputMean: NaN })).toThrow("--input-mean must be a number, got NaN");
  });
});
