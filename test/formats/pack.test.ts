// pack-quantized int32 packing against vectors from compressed-tensors itself: `pack_to_int32` of
// 0.18.0 (dense bit stream) and of 0.14.0 (⌊32/b⌋ codes per word), run under torch on the int8
// inputs shown (codes = int8 + 2^(b−1)). The 8-bit [1, 2] → 33409 case is the docstring example;
// the 4- and 8-bit matrices are the inputs of its tests test_repack_4bit / test_repack_8bit.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { packedWords, packInt32, unpackInt32, type PackLayout } from "../../src/formats/pack.js";

interface Vector {
  label: string;
  bits: number;
  dim: 0 | 1;
  int8: number[][];
  dense: number[][];
  wordAligned: number[][];
}

const VECTORS: Vector[] = [
  { label: "docstring, 8-bit", bits: 8, dim: 1, int8: [[1, 2]], dense: [[33409]], wordAligned: [[33409]] },
  { label: "test_repack_8bit", bits: 8, dim: 1, int8: [[30, 40], [50, 60]], dense: [[43166], [48306]], wordAligned: [[43166], [48306]] },
  { label: "test_repack_4bit a", bits: 4, dim: 1, int8: [[1, 2], [3, 4]], dense: [[169], [203]], wordAligned: [[169], [203]] },
  {
    label: "test_repack_4bit b",
    bits: 4,
    dim: 1,
    int8: [
      [1, 2, 3, 4, 5, 6, 7, 0],
      [-1, -2, -3, -4, -5, -6, -7, -8],
    ],
    dense: [[-1880241239], [19088743]],
    wordAligned: [[-1880241239], [19088743]],
  },
  {
    label: "3-bit: the layouts differ from the 11th code on",
    bits: 3,
    dim: 1,
    int8: [
      [-4, -3, -2, -1, 0, 1, 2, 3, 3, 2, 1, 0],
      [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3],
    ],
    dense: [
      [2012923528, 9],
      [-1, 15],
    ],
    wordAligned: [
      [939181704, 37],
      [1073741823, 63],
    ],
  },
  { label: "2-bit, 20 codes", bits: 2, dim: 1, int8: [[-2, -1, 0, 1, -2, -1, 0, 1, -2, -1, 0, 1, -2, -1, 0, 1, -2, -1, 0, 1]], dense: [[-454761244, 228]], wordAligned: [[-454761244, 228]] },
  {
    label: "4-bit zero points packed along dim 0",
    bits: 4,
    dim: 0,
    int8: [[-8], [7], [0], [1], [-1], [2], [3], [4], [5]],
    dense: [[-878208784], [13]],
    wordAligned: [[-878208784], [13]],
  },
  { label: "4-bit zero points, 2 groups", bits: 4, dim: 0, int8: [[-8, 1], [7, 2], [0, 3]], dense: [[2288, 2985]], wordAligned: [[2288, 2985]] },
];

describe("packInt32 / unpackInt32 vs compressed-tensors", () => {
  for (const v of VECTORS) {
    for (const layout of ["dense", "word-aligned"] as PackLayout[]) {
      test(`${v.label} (${layout})`, () => {
        const rows = v.int8.length;
        const cols = v.int8[0]!.length;
        const codes = Uint8Array.from(v.int8.flat().map((x) => x + 2 ** (v.bits - 1)));
        const want = Int32Array.from((layout === "dense" ? v.dense : v.wordAligned).flat());
        const packed = packInt32(codes, rows, cols, v.bits, { dim: v.dim, layout });
        assert.deepEqual(packed, want);
        assert.deepEqual(unpackInt32(packed, rows, cols, v.bits, { dim: v.dim, layout }), codes);
      });
    }
  }
});

describe("round trips", () => {
  for (const bits of [1, 2, 3, 4, 5, 6, 7, 8]) {
    test(`${bits}-bit, odd shapes, both dims and layouts`, () => {
      for (const [rows, cols] of [
        [1, 1],
        [3, 33],
        [7, 100],
        [64, 172],
      ] as const) {
        const codes = Uint8Array.from({ length: rows * cols }, (_, i) => (i * 2654435761) % 2 ** bits);
        for (const layout of ["dense", "word-aligned"] as PackLayout[]) {
          for (const dim of [0, 1] as const) {
            const packed = packInt32(codes, rows, cols, bits, { dim, layout });
            const width = packedWords(dim === 1 ? cols : rows, bits, layout);
            assert.equal(packed.length, width * (dim === 1 ? rows : cols));
            assert.deepEqual(unpackInt32(packed, rows, cols, bits, { dim, layout }), codes);
          }
        }
      }
    });
  }

  test("widths: dense ⌈cols·b/32⌉, word-aligned ⌈cols/⌊32/b⌋⌉", () => {
    assert.equal(packedWords(172, 4), 22);
    assert.equal(packedWords(172, 3), 17);
    assert.equal(packedWords(172, 3, "word-aligned"), 18);
    assert.equal(packedWords(64, 8), 16);
  });

  test("a code too large for the width is an error", () => {
    assert.throws(() => packInt32(Uint8Array.from([16]), 1, 1, 4), /code 16 .* 4 bits/);
  });
});
