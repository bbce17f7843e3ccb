// Bitmask layout against compressed-tensors 0.14.0 `bitmask_compress` and `get_24_bytemasks` +
// `pack_bitmasks` (numpy.packbits, bitorder "little"), run under torch on the matrices below.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { bitmask24Compress, bitmaskCompress, bitmaskCount, bitmaskDecompress } from "../../../src/formats/compressed-tensors/bitmask.js";

const f32 = (xs: number[]) => Float32Array.from(xs);

describe("sparse-bitmask", () => {
  // 3 × 10: bytes per row ⌈10/8⌉ = 2; columns 0 and 3 → 0b1001 = 9, column 8 → byte 1 bit 0
  const W = f32([1.5, 0, 0, -2, 0, 0, 0, 0, 3, 0, /* row 1 empty */ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 5, 0, 0, 0, 0, 6, 0, 7]);

  test("matches compressed-tensors bitmask_compress", () => {
    const b = bitmaskCompress(W, 3, 10);
    assert.deepEqual(b.values, f32([1.5, -2, 3, 4, 5, 6, 7]));
    assert.deepEqual(b.bitmask, Uint8Array.from([9, 1, 0, 0, 134, 2]));
    assert.deepEqual(b.rowOffsets, Float64Array.from([0, 3, 3]));
    assert.equal(bitmaskCount(b.bitmask, 3, 10), 7);
  });

  test("decompresses bit-exactly and checks row_offsets", () => {
    const b = bitmaskCompress(W, 3, 10);
    assert.deepEqual(bitmaskDecompress(b.values, b.bitmask, 3, 10, b.rowOffsets, "w"), W);
    assert.throws(() => bitmaskDecompress(b.values, b.bitmask, 3, 10, [0, 2, 3], "w"), /row_offsets\[1\] is 2/);
    assert.throws(() => bitmaskDecompress(b.values.subarray(1), b.bitmask, 3, 10, null, "w"), /more set bits/);
  });

  test("random matrices round-trip, −0 reads back as 0", () => {
    const rows = 17;
    const cols = 45;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => (i % 3 === 0 ? 0 : Math.sin(i) * 10));
    w[4] = -0;
    const b = bitmaskCompress(w, rows, cols);
    const back = bitmaskDecompress(b.values, b.bitmask, rows, cols, b.rowOffsets, "w");
    assert.deepEqual(Array.from(back), Array.from(w).map((v) => (v === 0 ? 0 : v)));
  });
});

describe("sparse-24-bitmask", () => {
  test("matches compressed-tensors get_24_bytemasks + pack_bitmasks", () => {
    const W = f32([0, 1, 0, -2, 3, 0, 0, 4, 5, -6, 0, 0, 0, 0, 7, 8]);
    const b = bitmask24Compress(W, 2, 8, "w");
    assert.deepEqual(b.values, f32([1, -2, 3, 4, 5, -6, 7, 8]));
    assert.deepEqual(b.bitmask, Uint8Array.from([154, 195]));
    assert.deepEqual(bitmaskDecompress(b.values, b.bitmask, 2, 8, null, "w"), W);
  });

  test("groups with fewer than 2 non-zeros keep their first zeros; values stay cols/2 per row", () => {
    const W = f32([0, 0, 0, 9, 0, 0, 0, 0]);
    const b = bitmask24Compress(W, 1, 8, "w");
    assert.deepEqual(b.values, f32([0, 9, 0, 0]));
    assert.deepEqual(b.bitmask, Uint8Array.from([0b00111001]));
    assert.deepEqual(bitmaskDecompress(b.values, b.bitmask, 1, 8, null, "w"), W);
  });

  test("rejects 3 non-zeros in a group and widths not divisible by 4", () => {
    assert.throws(() => bitmask24Compress(f32([1, 2, 3, 0]), 1, 4, "q_proj"), /q_proj: row 0, columns 0\.\.3 hold 3 non-zeros/);
    assert.throws(() => bitmask24Compress(f32([1, 0, 0, 0, 0, 0]), 1, 6, "q_proj"), /multiple of 4/);
  });
});
