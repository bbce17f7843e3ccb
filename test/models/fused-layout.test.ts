import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { alibiSlopes, gatherRows, interleavedToConcatenatedRows, invertRows, transpose } from "../../src/models/fused-layout.js";

describe("fused checkpoint layouts", () => {
  test("transpose of a 2×3 matrix (GPT-2 Conv1D [in, out] → [out, in])", () => {
    const w = Float32Array.from([1, 2, 3, 4, 5, 6]); // [[1, 2, 3], [4, 5, 6]]
    assert.deepEqual(Array.from(transpose(w, 2, 3)), [1, 4, 2, 5, 3, 6]);
    assert.deepEqual(transpose(transpose(w, 2, 3), 3, 2), w);
    assert.throws(() => transpose(w, 4, 2), /6 values is not 4×2/);
  });

  test("query_key_value rows [heads, 3, headDim] → q|k|v [3, heads, headDim]", () => {
    // 2 heads of 2 dims; each source row holds its own label: 100·head + 10·part + dim
    const heads = 2;
    const hd = 2;
    const label = (h: number, p: number, d: number) => 100 * h + 10 * p + d;
    const src = new Float32Array(3 * heads * hd);
    for (let h = 0; h < heads; h++) for (let p = 0; p < 3; p++) for (let d = 0; d < hd; d++) src[(h * 3 + p) * hd + d] = label(h, p, d);
    const order = interleavedToConcatenatedRows(heads, hd);
    const concat = gatherRows(src, order, 1);
    // q of head 0, q of head 1, then k…, then v…
    assert.deepEqual(Array.from(concat), [0, 1, 100, 101, 10, 11, 110, 111, 20, 21, 120, 121]);
    assert.deepEqual(gatherRows(concat, invertRows(order), 1), src);
  });

  test("gatherRows moves whole rows, of floats or of integer codes", () => {
    const m = Float32Array.from([1, 2, 3, 4, 5, 6]); // 3 rows of 2
    const order = Int32Array.from([2, 0, 1]);
    assert.deepEqual(Array.from(gatherRows(m, order, 2)), [5, 6, 1, 2, 3, 4]);
    const codes = Uint8Array.from([1, 2, 3, 4, 5, 6]);
    const moved = gatherRows(codes, order, 2);
    assert.ok(moved instanceof Uint8Array);
    assert.deepEqual(Array.from(moved), [5, 6, 1, 2, 3, 4]);
  });
});

describe("ALiBi slopes (transformers build_alibi_tensor)", () => {
  test("a power of two: 2^(−8i/n)", () => {
    assert.deepEqual(alibiSlopes(4), [0.25, 0.0625, 0.015625, 0.00390625]);
    assert.deepEqual(alibiSlopes(8), [1, 2, 3, 4, 5, 6, 7, 8].map((i) => Math.fround(2 ** -i)));
  });

  test("12 heads: the 8 slopes of 8 heads, then the odd slopes of 16 heads", () => {
    const s = alibiSlopes(12);
    assert.equal(s.length, 12);
    assert.deepEqual(s.slice(0, 8), alibiSlopes(8));
    // 16 heads: base 2^(−1/2), powers 1, 3, 5, 7
    assert.deepEqual(s.slice(8), [1, 3, 5, 7].map((i) => Math.fround(Math.fround(2 ** -0.5) ** i)));
  });

  test("3 heads: 2 slopes of base 2^−4, then 1 of base 2^−2", () => {
    assert.deepEqual(alibiSlopes(3), [2 ** -4, 2 ** -8, 2 ** -2]);
  });
});
