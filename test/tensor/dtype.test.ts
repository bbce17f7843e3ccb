import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  bf16ArrayToFloat,
  bf16ToFloat,
  floatArrayToBf16,
  floatArrayToHalf,
  floatToBf16,
  floatToHalf,
  halfArrayToFloat,
  halfToFloat,
} from "../../src/tensor/dtype.js";

/** The float32 whose bits are `u`. */
function fromBits(u: number): number {
  return new Float32Array(Uint32Array.of(u >>> 0).buffer)[0]!;
}

const hex = (n: number) => `0x${n.toString(16).padStart(4, "0")}`;

describe("float16", () => {
  test("known bit patterns decode exactly", () => {
    const cases: [number, number][] = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 0.333251953125],
      [0x7bff, 65504], // largest finite
      [0x0400, 2 ** -14], // smallest normal
      [0x0001, 2 ** -24], // smallest subnormal
      [0x03ff, 1023 * 2 ** -24], // largest subnormal
      [0x8001, -(2 ** -24)],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
    ];
    for (const [bits, value] of cases) assert.equal(halfToFloat(bits), value, hex(bits));
    assert.ok(Object.is(halfToFloat(0x8000), -0));
    assert.ok(Number.isNaN(halfToFloat(0x7e00)) && Number.isNaN(halfToFloat(0x7c01)));
  });

  test("encoding rounds to nearest, ties to even (normals, subnormals, overflow)", () => {
    const cases: [number, number][] = [
      [1, 0x3c00],
      [65504, 0x7bff],
      [65519, 0x7bff], // below the midpoint to 65536
      [65520, 0x7c00], // midpoint 65504 | 65536: ties to even = 65536 = Inf
      [1e6, 0x7c00],
      [-1e6, 0xfc00],
      [1 + 2 ** -11, 0x3c00], // midpoint 1 | 1+2^-10: even is 1
      [1 + 3 * 2 ** -11, 0x3c02], // midpoint 0x3c01 | 0x3c02: even is 0x3c02
      [1 + 2 ** -11 + 2 ** -20, 0x3c01], // just above the midpoint
      [2 ** -24, 0x0001],
      [2 ** -25, 0x0000], // midpoint 0 | 2^-24: even is 0
      [1.5 * 2 ** -25, 0x0001],
      [3 * 2 ** -25, 0x0002], // midpoint 1 | 2 subnormal ulps: even is 2
      [2 ** -26, 0x0000],
      [1023.5 * 2 ** -24, 0x0400], // largest subnormal + half ulp carries into the smallest normal
      [-(2 ** -14), 0x8400],
      [Infinity, 0x7c00],
      [-Infinity, 0xfc00],
    ];
    for (const [value, bits] of cases) assert.equal(hex(floatToHalf(value)), hex(bits), String(value));
    assert.equal(floatToHalf(-0), 0x8000);
    assert.equal(floatToHalf(NaN) & 0x7c00, 0x7c00);
    assert.notEqual(floatToHalf(NaN) & 0x3ff, 0, "NaN stays NaN");
  });

  test("every non-NaN half survives half → float → half", () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && h & 0x3ff) continue;
      if (floatToHalf(halfToFloat(h)) !== h) assert.fail(`${hex(h)} → ${halfToFloat(h)} → ${hex(floatToHalf(halfToFloat(h)))}`);
    }
  });

  test("array versions agree with the scalar ones", () => {
    const src = Float32Array.of(0.1, -3.5, 70000, 2 ** -25, 1e-30);
    const half = floatArrayToHalf(src);
    assert.deepEqual(Array.from(half), Array.from(src, floatToHalf));
    assert.deepEqual(Array.from(halfArrayToFloat(half)), Array.from(half, halfToFloat));
  });
});

describe("bfloat16", () => {
  test("known bit patterns decode exactly", () => {
    assert.equal(bf16ToFloat(0x3f80), 1);
    assert.equal(bf16ToFloat(0xc020), -2.5);
    assert.equal(bf16ToFloat(0x7f7f), fromBits(0x7f7f0000)); // largest finite, ≈ 3.39e38
    assert.equal(bf16ToFloat(0x0001), fromBits(0x00010000)); // subnormal
    assert.equal(bf16ToFloat(0x7f80), Infinity);
    assert.equal(bf16ToFloat(0xff80), -Infinity);
    assert.ok(Number.isNaN(bf16ToFloat(0x7fc0)));
  });

  test("encoding rounds to nearest, ties to even; NaN stays NaN", () => {
    const cases: [number, number][] = [
      [1, 0x3f80],
      [-2.5, 0xc020],
      [0.1, 0x3dcd], // 0x3dcccccd rounds up
      [fromBits(0x3f808000), 0x3f80], // midpoint 1 | 1+2^-7: even is 0x3f80
      [fromBits(0x3f818000), 0x3f82], // midpoint 0x3f81 | 0x3f82: even is 0x3f82
      [fromBits(0x3f808001), 0x3f81], // just above the midpoint
      [fromBits(0x000116c2), 0x0001], // float32 subnormal
      [fromBits(0x00008000), 0x0000], // subnormal midpoint: even is 0
      [fromBits(0x7f7fffff), 0x7f80], // max float32 rounds to Inf, as torch does
      [Infinity, 0x7f80],
      [-Infinity, 0xff80],
    ];
    for (const [value, bits] of cases) assert.equal(hex(floatToBf16(value)), hex(bits), String(value));
    assert.equal(floatToBf16(-0), 0x8000);
    // a NaN whose payload is only in the low 16 bits must not become Inf by truncation
    assert.equal(hex(floatToBf16(fromBits(0x7f800001))), "0x7fc0");
    assert.ok(Number.isNaN(bf16ToFloat(floatToBf16(NaN))));
  });

  test("every non-NaN bf16 survives bf16 → float → bf16, arrays agree", () => {
    for (let b = 0; b < 0x10000; b++) {
      if ((b & 0x7f80) === 0x7f80 && b & 0x7f) continue;
      if (floatToBf16(bf16ToFloat(b)) !== b) assert.fail(`${hex(b)} does not round-trip`);
    }
    const src = Float32Array.of(0.1, -3.5, 70000, 1e-40);
    const bf = floatArrayToBf16(src);
    assert.deepEqual(Array.from(bf), Array.from(src, floatToBf16));
    assert.deepEqual(Array.from(bf16ArrayToFloat(bf)), Array.from(bf, bf16ToFloat));
  });
});
