// The quantization grid against the reference Quantizer (gptq quant.py as in ref_compress.py).
// Expected values below were computed by `GPTQQuantizer.find_params` + `gptq_quantize` (torch 1.13,
// float32, CPU) and checked by hand where the comment says why.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import { describe, test } from "node:test";
import { findParams, groupParams, newGrid, quantizeColumn, rtnQuantize, setGroupParams } from "../../../src/compress/quant/grid.js";
import { dequantize, quantizeToCodes, roundHalfEven } from "../../../src/formats/compressed-linear.js";
import { SafetensorsWeights } from "../../../src/formats/weights.js";
import { Tensor } from "../../../src/tensor/tensor.js";
import { referenceResults, STORIES } from "../../helpers.js";

const f32 = (xs: number[]) => Float32Array.from(xs);
const T = (rows: number[][]) => new Tensor(f32(rows.flat()), [rows.length, rows[0]!.length]);

describe("roundHalfEven", () => {
  test("ties go to the even neighbour, like torch.round", () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 2.4999, 2.5001].map(roundHalfEven), [0, 2, 2, -0, -2, -2, 2, 3]);
  });
});

describe("findParams / rtnQuantize by hand", () => {
  test("2×4, 2-bit asymmetric", () => {
    // row 0: xmin −0.6, xmax 0.9 → scale 1.5/3 = 0.5, zero = round(0.6/0.5 = 1.2) = 1
    //        0.3 → round(0.6)+1 = 2 → 0.5;  −0.6 → 0 → −0.5;  0.9 → round(1.8)+1 = 3 → 1.0;  0 → 1 → 0
    // row 1: xmin = min(1, 0) = 0, xmax 4 → scale 4/3 = 1.3333334 (float32), zero 0
    //        2 / 1.3333334 = 1.4999999776 → 1.5 in float32 → round half even → 2 (not 1)
    const W = T([
      [0.3, -0.6, 0.9, 0.0],
      [1.0, 2.0, 3.0, 4.0],
    ]);
    const { weight, quant } = rtnQuantize(W, { bits: 2, sym: false });
    assert.deepEqual(quant.scale, f32([0.5, 1.3333333730697632]));
    assert.deepEqual(quant.zero, f32([1, 0]));
    assert.equal(quant.groupSize, 4);
    assert.deepEqual(weight.data, f32([0.5, -0.5, 1.0, 0.0, 1.3333333730697632, 2.6666667461395264, 2.6666667461395264, 4.0]));
    assert.deepEqual(quantizeToCodes(weight, quant), Uint8Array.from([2, 0, 3, 1, 1, 2, 2, 3]));
  });

  test("half-to-even ties in w/scale and in the zero point", () => {
    const W = T([
      [0, 0.5, 1.5, 2.5, 3], // scale 1, zero 0: 0.5 → 0, 1.5 → 2, 2.5 → 2 (half-up would give 1 and 3)
      [-2.5, 0.5, 0, 0, 0], // scale 1, zero = round(2.5) = 2 (not 3); −2.5 → round(−2.5)+2 = 0 → −2
      [-1.5, 1.5, 0, 0, 0], // scale 1, zero = round(1.5) = 2; 1.5 → round(1.5)+2 = 4 → clamp 3 → 1
    ]);
    const { weight, quant } = rtnQuantize(W, { bits: 2, sym: false });
    assert.deepEqual(quant.scale, f32([1, 1, 1]));
    assert.deepEqual(quant.zero, f32([0, 2, 2]));
    assert.deepEqual(weight.data, f32([0, 0, 2, 2, 3, -2, 0, 0, 0, 0, -2, 1, 0, 0, 0]));
  });

  test("symmetric vs asymmetric", () => {
    const W = T([
      [-1, 0.5, 2],
      [0, 1, 2],
    ]);
    const asym = rtnQuantize(W, { bits: 4, sym: false });
    assert.deepEqual(asym.quant.scale, f32([0.20000000298023224, 0.13333334028720856])); // 3/15, 2/15
    assert.deepEqual(asym.quant.zero, f32([5, 0]));
    assert.deepEqual(asym.weight.data, f32([-1, 0.4000000059604645, 2, 0, 0.9333333969116211, 2]));
    // sym: xmax = max(|xmin|, xmax) = 2, xmin = −2 → scale 4/15; zero 8 = (maxq + 1)/2.
    // Row 1 has xmin = 0, which is not < 0, so xmin stays 0: scale 2/15 and the grid tops out at
    // 7·scale = 0.9333 (the reference's quirk on non-negative rows).
    const sym = rtnQuantize(W, { bits: 4, sym: true });
    assert.deepEqual(sym.quant.scale, f32([0.2666666805744171, 0.13333334028720856]));
    assert.deepEqual(sym.quant.zero, f32([8, 8]));
    assert.deepEqual(sym.weight.data, f32([-1.0666667222976685, 0.5333333611488342, 1.8666667938232422, 0, 0.9333333969116211, 0.9333333969116211]));
    assert.deepEqual(rtnQuantize(T([[0, 1, 2, 3]]), { bits: 2, sym: true }).weight.data, f32([0, 1, 1, 1]));
  });

  test("an all-zero row gets the range [−1, 1]", () => {
    // asym: scale 2/15 = 0.13333334 (float32), zero = round(1/0.13333334 = 7.4999996) = 7
    const a = findParams(T([[0, 0, 0, 0]]), { bits: 4, sym: false });
    assert.deepEqual([a.scale[0], a.zero[0]], [0.13333334028720856, 7]);
    const s = findParams(T([[0, 0, 0, 0]]), { bits: 4, sym: true });
    assert.deepEqual([s.scale[0], s.zero[0]], [0.13333334028720856, 8]);
    assert.deepEqual(rtnQuantize(T([[0, 0, 0, 0]]), { bits: 4, sym: false }).weight.data, f32([0, 0, 0, 0]));
  });

  test("MSE search shrinks the range of a row with an outlier", () => {
    // 15 values in [−0.1, 0.1] and one 0.2, 2 bits: min-max gives scale 0.3/3 = 0.1; the search
    // (p = 1, 0.99, …, 0.21, error Σ|q − w|^2.4) picks p = 0.8: scale 0.08, clipping the outlier to 0.16.
    const row = [
      -0.1, -0.085714, -0.071429, -0.057143, -0.042857, -0.028571, -0.014286, 0.0, 0.014286, 0.028571, 0.042857, 0.057143,
      0.071429, 0.085714, 0.1, 0.2,
    ];
    const W = T([row]);
    const plain = rtnQuantize(W, { bits: 2, sym: false });
    const mse = rtnQuantize(W, { bits: 2, sym: false, mse: true });
    assert.deepEqual([plain.quant.scale[0], plain.quant.zero[0]], [0.10000000149011612, 1]);
    assert.deepEqual([mse.quant.scale[0], mse.quant.zero[0]], [0.08000000566244125, 1]);
    assert.equal(mse.weight.data[15], 0.1600000113248825);
    const err = (q: Float32Array) => row.reduce((a, w, i) => a + Math.abs(q[i]! - Math.fround(w)) ** 2.4, 0);
    assert.ok(err(mse.weight.data) < err(plain.weight.data));
  });
});

describe("groups and the column helper", () => {
  // a deterministic 6 × 172 matrix (down_proj width: groups 0..31, …, 128..159, 160..171)
  const cols = 172;
  const W = new Tensor(
    Float32Array.from({ length: 6 * cols }, (_, i) => Math.sin(i * 0.37) * (1 + (i % 7))),
    [6, cols],
  );

  test("g32 on 172 columns: 6 groups, the last of 12 columns with its own params", () => {
    const { weight, quant } = rtnQuantize(W, { bits: 4, sym: false, groupSize: 32 });
    assert.equal(quant.groupSize, 32);
    assert.equal(quant.scale.length, 6 * 6);
    assert.deepEqual(groupParams(quant, 5, 6), findParams(W, { bits: 4, sym: false }, 160, 172));
    assert.deepEqual(groupParams(quant, 0, 6), findParams(W, { bits: 4, sym: false }, 0, 32));
    const codes = quantizeToCodes(weight, quant);
    assert.ok(codes.every((c) => c <= 15));
    assert.deepEqual(dequantize(codes, quant, cols), weight.data);
  });

  test("quantizeColumn is column j of the per-channel RTN result", () => {
    const { weight } = rtnQuantize(W, { bits: 3, sym: false });
    const p = findParams(W, { bits: 3, sym: false });
    const j = 101;
    const col = Float32Array.from({ length: 6 }, (_, r) => W.data[r * cols + j]!);
    const want = Float32Array.from({ length: 6 }, (_, r) => weight.data[r * cols + j]!);
    assert.deepEqual(quantizeColumn(col, p, 3), want);
  });

  test("newGrid + setGroupParams assemble a grid; gIdx routes columns to groups", () => {
    const gIdx = Int32Array.from({ length: cols }, (_, j) => (j * 7) % 6); // scattered groups (act-order)
    const grid = newGrid(6, cols, { bits: 4, sym: true, groupSize: 32, gIdx });
    for (let g = 0; g < 6; g++) setGroupParams(grid, g, { scale: f32([1, 2, 3, 4, 5, 6].map((s) => s * (g + 1))), zero: f32(Array(6).fill(8)) });
    const codes = Uint8Array.from({ length: 6 * cols }, (_, i) => i % 16);
    const w = dequantize(codes, grid, cols);
    const j = 13;
    const g = gIdx[j]!;
    assert.equal(w[2 * cols + j], Math.fround(3 * (g + 1) * (codes[2 * cols + j]! - 8)));
    assert.deepEqual(quantizeToCodes(new Tensor(w, [6, cols]), grid), codes);
  });
});

// Exact bit patterns of RTN over all 35 stories260K linears (sorted by name, float32 bytes
// concatenated), from ref_compress.py's GPTQQuantizer: the `--nearest` branch per channel and the
// static-group extension for g32. `mse` rows exercise the MSE search (not in the reference table).
const RTN_SHA256: [string, { bits: number; sym: boolean; groupSize?: number; mse?: boolean }, string][] = [
  ["rtn-4bit-perchannel", { bits: 4, sym: false }, "bc083f009e064e6dada8988d7d60c55c97f080c3d00399891a5b8ed0b01ea95a"],
  ["rtn-4bit-g32", { bits: 4, sym: false, groupSize: 32 }, "095211df5265810f054e530b1ee9b52c248fc4c7880f98031ada2c96c82a779b"],
  ["rtn-3bit-perchannel", { bits: 3, sym: false }, "4ecd0eef9e1f709212d3e354478b26dd77ca7fcb372d501a7a8c4c8bb2e1b2c9"],
  ["rtn-8bit-perchannel", { bits: 8, sym: false }, "de975a4c8575ae0f7fe557389772711490945797863bc4bac8df14ea6aa56d5f"],
  ["rtn-2bit-g32", { bits: 2, sym: false, groupSize: 32 }, "7a25e93ab0d6022243e98ff03c98d19e8a73f53993c7b7da92a2ec0ca856d8da"],
  ["4-bit sym per channel", { bits: 4, sym: true }, "94bf56a62de2bbcd1b8b261b7e4fc9a778641586e15bd242729e4bc829a68e81"],
  ["4-bit mse per channel", { bits: 4, sym: false, mse: true }, "544e9e77a31c087e2cc8b1d71288a3af99ec766a0b5c5bbf9a591563291ab57b"],
  ["3-bit sym mse g32", { bits: 3, sym: true, groupSize: 32, mse: true }, "60e120eeaad64ebe44b212bf7fe66fa0c27bef75e1fcb330859914c48023e4da"],
];

describe("RTN on stories260K against the reference", () => {
  const weights = SafetensorsWeights.open(STORIES);
  const names = weights
    .names()
    .filter((n) => /^model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(n))
    .sort();
  const matrices = names.map((n) => new Tensor(weights.read(n), weights.shape(n)));
  weights.close();

  test("35 linears", () => assert.equal(names.length, 35));

  for (const [label, opt, sha] of RTN_SHA256) {
    test(`${label}: bit-identical to the reference code, codes round-trip exactly`, () => {
      const hash = crypto.createHash("sha256");
      for (const W of matrices) {
        const { weight, quant } = rtnQuantize(W, opt);
        hash.update(new Uint8Array(weight.data.buffer));
        const back = dequantize(quantizeToCodes(weight, quant), quant, W.cols);
        assert.deepEqual(new Uint32Array(back.buffer), new Uint32Array(weight.data.buffer));
      }
      assert.equal(hash.digest("hex"), sha);
    });
  }

  // reference.json: distinct values per row / per group of 32 and exact zeros, per linear
  const ref = referenceResults().results;
  for (const [method, opt] of RTN_SHA256.slice(0, 5).map(([m, o]) => [m, o] as const)) {
    test(`${method}: distinct values per row/group and zeros match reference.json`, () => {
      const r = ref[method] as unknown as {
        quant_distinct_values: Record<string, Record<string, number>>;
        sparsity: { per_linear_zero_fraction: Record<string, number> };
      };
      names.forEach((n, k) => {
        const linear = n.slice(0, -".weight".length);
        const W = matrices[k]!;
        const { weight } = rtnQuantize(W, opt);
        const want = r.quant_distinct_values[linear]!;
        const perRow = distinctCounts(weight, W.cols);
        assert.equal(Math.max(...perRow), want.distinct_per_row_max, `${linear} distinct_per_row_max`);
        assert.equal(mean(perRow), want.distinct_per_row_mean, `${linear} distinct_per_row_mean`);
        if (opt.groupSize) {
          const perGroup = distinctCounts(weight, opt.groupSize);
          assert.equal(Math.max(...perGroup), want.distinct_per_group_max, `${linear} distinct_per_group_max`);
          assert.equal(mean(perGroup), want.distinct_per_group_mean, `${linear} distinct_per_group_mean`);
        }
        const zeros = weight.data.reduce((a, v) => a + (v === 0 ? 1 : 0), 0);
        assert.equal(zeros / weight.size, r.sparsity.per_linear_zero_fraction[linear], `${linear} zero fraction`);
      });
    });
  }
});

/** Distinct values in each run of `width` columns of each row (torch.unique counts −0 = 0). */
function distinctCounts(W: Tensor, width: number): number[] {
  const out: number[] = [];
  for (let r = 0; r < W.rows; r++) {
    for (let c = 0; c < W.cols; c += width) out.push(new Set(W.data.subarray(r * W.cols + c, r * W.cols + Math.min(c + width, W.cols))).size);
  }
  return out;
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
