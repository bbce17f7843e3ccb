import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { QuantType, QUANT_SIZES } from "../../../src/formats/gguf/constants.js";
import { dequantize, packCodes, quantize, type PackableType } from "../../../src/formats/gguf/quants.js";
import { floatToHalf, halfToFloat } from "../../../src/tensor/dtype.js";
import { REPO, tempDir } from "../../helpers.js";

const FIXTURES = path.join(import.meta.dirname, "fixtures");
const LIBGGML = path.join(REPO, "node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/libggml-base.so");
const TYPES: Record<string, PackableType> = { q8_0: QuantType.Q8_0, q4_0: QuantType.Q4_0, q5_0: QuantType.Q5_0, q4_K: QuantType.Q4_K, q6_K: QuantType.Q6_K };

interface Case {
  kind: number;
  input: string;
  [type: string]: string | number;
}

const b64 = (s: string) => new Uint8Array(Buffer.from(s, "base64"));
const f32 = (s: string) => new Float32Array(b64(s).buffer);

/** Compares every case of a vectors file with quantize/dequantize; returns mismatch descriptions. */
function mismatches(cases: Case[]): string[] {
  const bad: string[] = [];
  for (const [i, c] of cases.entries()) {
    const x = f32(c.input);
    for (const [name, type] of Object.entries(TYPES)) {
      const want = b64(c[name] as string);
      const got = quantize(type, x, 256);
      if (Buffer.compare(Buffer.from(want), Buffer.from(got)) !== 0) {
        const at = want.findIndex((v, j) => v !== got[j]);
        bad.push(`case ${i} (kind ${c.kind}) ${name}: byte ${at} is ${got[at]}, ggml wrote ${want[at]}`);
        continue;
      }
      const back = dequantize(type, got);
      const wantBack = f32(c[`${name}_back`] as string);
      const j = back.findIndex((v, k) => !Object.is(v, wantBack[k]));
      if (j >= 0) bad.push(`case ${i} (kind ${c.kind}) ${name}: value ${j} unpacks to ${back[j]}, ggml to ${wantBack[j]}`);
    }
  }
  return bad;
}

describe("GGUF quants vs ggml's reference quantizers", () => {
  test("bit-exact on the committed vectors (libggml quantize_row_*_ref, dequantize_row_*)", () => {
    const fx = JSON.parse(fs.readFileSync(path.join(FIXTURES, "ggml-ref-vectors.json"), "utf8")) as { cases: Case[] };
    assert.ok(fx.cases.length >= 12);
    assert.deepEqual(mismatches(fx.cases), []);
  });

  const gcc = spawnSync("gcc", ["--version"]).status === 0;
  const skip = !gcc ? "gcc is not installed" : !fs.existsSync(LIBGGML) ? `${LIBGGML} is missing` : false;
  test("bit-exact on fresh vectors from the libggml that node-llama-cpp ships (100 rows per distribution)", { skip }, () => {
    const dir = tempDir();
    const exe = path.join(dir, "ggml-ref-vectors");
    const cc = spawnSync("gcc", ["-O1", "-o", exe, path.join(FIXTURES, "ggml-ref-vectors.c"), "-ldl", "-lm"], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
    const run = spawnSync(exe, [LIBGGML, "100"], { encoding: "utf8", maxBuffer: 1 << 28 });
    assert.equal(run.status, 0, run.stderr);
    const cases = (JSON.parse(run.stdout) as { cases: Case[] }).cases;
    assert.equal(cases.length, 10 * 100 + 2);
    assert.deepEqual(mismatches(cases), []);
  });
});

describe("GGUF quants by hand", () => {
  test("Q8_0: d = amax / 127, codes round half away from zero", () => {
    const x = new Float32Array(32);
    x[0] = 127;
    x[1] = -2.5; // −2.5 → −3 (roundf), not −2 (half to even)
    x[2] = 0.5;
    const b = quantize(QuantType.Q8_0, x, 32);
    assert.equal(b.length, 34);
    assert.equal(halfToFloat(b[0]! | (b[1]! << 8)), 1);
    assert.deepEqual([...new Int8Array(b.buffer, 2, 3)], [127, -3, 1]);
    assert.deepEqual([...dequantize(QuantType.Q8_0, b).subarray(0, 3)], [127, -3, 1]);
  });

  test("Q4_0: d = max / −8 of the largest-magnitude value, nibble j | nibble j+16 << 4", () => {
    const x = new Float32Array(32).map((_, j) => (j % 16) - 8); // −8 … 7, twice
    const b = quantize(QuantType.Q4_0, x, 32);
    assert.equal(b.length, 18);
    assert.equal(halfToFloat(b[0]! | (b[1]! << 8)), 1); // max = −8 → d = 1
    assert.equal(b[2], 0x00); // q = x + 8 = 0 for both halves
    assert.equal(b[17], 0xff);
    assert.deepEqual([...dequantize(QuantType.Q4_0, b)], [...x]);
  });

  test("Q4_K: a row on its own grid comes back within half a step; zeros stay zero", () => {
    const x = new Float32Array(256).map((_, j) => (j % 32 < 8 ? 0 : Math.sin(j) * 0.1));
    const back = dequantize(QuantType.Q4_K, quantize(QuantType.Q4_K, x, 256));
    const maxErr = Math.max(...back.map((v, j) => Math.abs(v - x[j]!)));
    assert.ok(maxErr < 0.2 / 15, `max error ${maxErr}`);
    assert.equal(quantize(QuantType.Q4_K, x, 256).length, QUANT_SIZES[QuantType.Q4_K][1]);
  });

  test("Q6_K: a row on the grid d·sc·(q − 32) comes back exactly; ql, qh, int8 scales, then d", () => {
    // sub-block j (16 values): c·(j + 1)/64 for c = −32, −28, …, 28; the largest scale 16/64 → sc −128
    const x = new Float32Array(256).map((_, i) => ((-32 + 4 * (i % 16)) * ((i >> 4) + 1)) / 64);
    const b = quantize(QuantType.Q6_K, x, 256);
    assert.equal(b.length, 128 + 64 + 16 + 2);
    assert.deepEqual([...new Int8Array(b.buffer, 192, 16)], Array.from({ length: 16 }, (_, j) => -8 * (j + 1)));
    assert.equal(halfToFloat(b[208]! | (b[209]! << 8)), -1 / 512); // d = −max scale / 128
    assert.deepEqual([...dequantize(QuantType.Q6_K, b)], [...x]);
    const z = quantize(QuantType.Q6_K, new Float32Array(256), 256);
    assert.ok(z.every((v) => v === 0));
    assert.ok(dequantize(QuantType.Q6_K, z).every((v) => v === 0));
  });

  test("F16 and F32 round trip; F16 rounds to nearest even; BF16 unpacks", () => {
    const x = Float32Array.of(1, -2.5, 65504, 1 + 2 ** -11, 1 + 3 * 2 ** -11);
    assert.deepEqual([...dequantize(QuantType.F32, quantize(QuantType.F32, x, 5))], [...x]);
    assert.deepEqual([...dequantize(QuantType.F16, quantize(QuantType.F16, x, 5))], [1, -2.5, 65504, 1, 1 + 4 * 2 ** -11]);
    assert.deepEqual([...dequantize(QuantType.BF16, Uint8Array.of(0xc0, 0x3f, 0x20, 0xc1))], [1.5, -10]); // bf16 0x3fc0, 0xc120
  });

  test("rows that are not whole blocks are refused", () => {
    assert.throws(() => quantize(QuantType.Q4_0, new Float32Array(48), 48), /rows of 48 values as Q4_0 \(block size 32\)/);
    assert.throws(() => quantize(QuantType.Q4_K, new Float32Array(128), 128), /block size 256/);
  });

  test("packCodes keeps codes and f16 scales: w = d·c exactly", () => {
    const codes = new Int8Array(64).map((_, j) => (j % 16) - 8);
    const scaleBits = Uint16Array.of(floatToHalf(0.0123), floatToHalf(0.5));
    for (const type of [QuantType.Q4_0, QuantType.Q8_0] as const) {
      const w = dequantize(type, packCodes(type, codes, scaleBits));
      for (let j = 0; j < 64; j++) assert.equal(w[j], Math.fround(codes[j]! * halfToFloat(scaleBits[j >> 5]!)));
    }
    assert.throws(() => packCodes(QuantType.Q4_0, new Int8Array(32).fill(8), Uint16Array.of(0)), /code 8 at block 0 is outside Q4_0's range \[-8, 7\]/);
  });
});
