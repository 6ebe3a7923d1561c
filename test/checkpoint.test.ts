/** The checkpoint file format on its own (no training): layout, CRC, round trip, and one-line refusals. */
import { describe, expect, it } from "vitest";
import { CheckpointError, crc32, decodeCheckpoint, encodeCheckpoint, type CheckpointData } from "../src/runtime/checkpoint.ts";
import { builtinSpec } from "../src/nn/spec.ts";
import { optimizerConfig } from "../src/optim/optimizer.ts";

const data: CheckpointData = {
  header: { model: { kind: "spec", spec: builtinSpec("mycnn") }, optimizer: optimizerConfig("adam", {}), step: 7, epoch: 1, stepInEpoch: 3, epochRng: [1, 2, 3, 4], config: {} },
  tensors: [
    { name: "conv.0.weight", shape: [2, 3], data: Float32Array.of(1, -2, 0.5, 1e-30, -0, Math.PI) },
    { name: "adam.m.conv.0.weight", shape: [3], data: Float32Array.of(Infinity, -Infinity, 3) },
  ],
};

describe("checkpoint format", () => {
  it("uses the standard CRC-32 (IEEE 802.3, the one zlib and PNG use)", () => {
    expect(crc32(new TextEncoder().encode("123456789"))).toBe(0xcbf43926); // the check value of CRC-32
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it("lays out magic, version, header and little-endian float32 data, and round-trips bit for bit", () => {
    const bytes = encodeCheckpoint(data);
    expect(new TextDecoder().decode(bytes.subarray(0, 8))).toBe("OMNISTCK");
    const dv = new DataView(bytes.buffer);
    expect(dv.getUint32(8, true)).toBe(1);
    const hlen = dv.getUint32(12, true);
    // 16 bytes of preamble, the header, 6 + 3 floats, and the CRC
    expect(bytes.length).toBe(16 + hlen + 4 * 9 + 4);
    expect(dv.getFloat32(16 + hlen + 4, true)).toBe(-2); // conv.0.weight[0][1]
    const back = decodeCheckpoint(bytes, "ck");
    expect(back.header).toEqual(data.header);
    expect(back.tensors.map((t) => [t.name, t.shape, Array.from(t.data)])).toEqual(data.tensors.map((t) => [t.name, t.shape, Array.from(t.data)]));
    expect(Object.is(back.tensors[0].data[4], -0)).toBe(true);
    expect(encodeCheckpoint(back)).toEqual(bytes); // same data, same bytes
  });

  it("refuses foreign, truncated, corrupt and future files with one line naming the source", () => {
    const bytes = encodeCheckpoint(data);
    const refuse = (b: Uint8Array) => {
      try {
        decodeCheckpoint(b, "runs/x/checkpoint");
      } catch (e) {
        expect(e).toBeInstanceOf(CheckpointError);
        expect((e as Error).message).not.toContain("\n");
        return (e as Error).message;
      }
      throw new Error("accepted");
    };
    expect(refuse(new TextEncoder().encode("PK\x03\x04 not a checkpoint at all"))).toMatch(/^runs\/x\/checkpoint: not an onnx-mnist checkpoint/);
    expect(refuse(bytes.subarray(0, bytes.length - 10))).toMatch(/corrupt or truncated/);
    const flipped = bytes.slice();
    flipped[bytes.length - 20] ^= 1;
    expect(refuse(flipped)).toMatch(/corrupt or truncated/);
    const future = bytes.slice();
    new DataView(future.buffer).setUint32(8, 2, true);
    expect(refuse(future)).toMatch(/version 2 is not supported/);
  });
});
