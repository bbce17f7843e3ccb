import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { upperCholeskyOfInverse } from "../../../src/compress/cholesky.js";
import { inverseFactor } from "../../../src/compress/hessian.js";
import { magnitudePrune } from "../../../src/compress/prune/magnitude.js";
import { sparsegpt } from "../../../src/compress/prune/sparsegpt.js";
import { Rng } from "../../../src/data/rng.js";
import { Tensor } from "../../../src/tensor/tensor.js";

/** A random SPD matrix XᵀX/t + 0.1·I of size n. */
function spd(n: number, rng: Rng): Float32Array {
  const t = 3 * n;
  const X = Float64Array.from({ length: t * n }, () => rng.next() - 0.5);
  const H = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let r = 0; r < t; r++) s += X[r * n + i]! * X[r * n + j]!;
      H[i * n + j] = s / t + (i === j ? 0.1 : 0);
    }
  }
  return H;
}

/** Solves A x = b (small, Gaussian elimination with partial pivoting, float64). */
function solve(A: number[][], b: number[]): number[] {
  const n = b.length;
  const M = A.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r]![c]!) > Math.abs(M[p]![c]!)) p = r;
    [M[c], M[p]] = [M[p]!, M[c]!];
    for (let r = c + 1; r < n; r++) {
      const f = M[r]![c]! / M[c]![c]!;
      for (let k = c; k <= n; k++) M[r]![k]! -= f * M[c]![k]!;
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let s = M[r]![n]!;
    for (let k = r + 1; k < n; k++) s -= M[r]![k]! * x[k]!;
    x[r] = s / M[r]![r]!;
  }
  return x;
}

describe("SparseGPT (Algorithm 1)", () => {
  it("equals the closed-form OBS solution: ŵ_K = w_K + H_KK⁻¹·H_KP·w_P", async () => {
    // The pruned set is a prefix of the columns (the three tiny weights), so every kept column
    // comes after every pruned one and the sequential OBS updates reach the joint optimum.
    const n = 6;
    const H = spd(n, new Rng(1));
    const w = [0.001, -0.002, 0.0015, 0.9, -1.1, 0.7];
    const hinv = await upperCholeskyOfInverse(H, n);
    // sparsity 0.4: k = ⌊6·0.4⌋ = 2, and the `<=` rule prunes the three smallest scores
    const r = await sparsegpt(new Tensor(Float32Array.from(w), [1, n]), hinv, { sparsity: 0.4, blockSize: 128 });
    const P = [0, 1, 2];
    const K = [3, 4, 5];
    const HKK = K.map((i) => K.map((j) => H[i * n + j]!));
    const HKPw = K.map((i) => P.reduce((s, j) => s + H[i * n + j]! * w[j]!, 0));
    const delta = solve(HKK, HKPw);
    const expected = [0, 0, 0, ...K.map((k, i) => w[k]! + delta[i]!)];
    assert.deepEqual(Array.from(r.mask), [0, 0, 0, 1, 1, 1]);
    for (let j = 0; j < n; j++) assert.ok(Math.abs(r.W.data[j]! - expected[j]!) < 1e-5, `column ${j}: ${r.W.data[j]} vs ${expected[j]}`);
  });

  it("with sparsity 0 the layer is unchanged", async () => {
    const rng = new Rng(2);
    const n = 40;
    const H = spd(n, rng);
    const W = new Tensor(Float32Array.from({ length: 8 * n }, () => rng.next() - 0.5), [8, n]);
    const { hinv } = await inverseFactor(H, n, 0.01, undefined, () => {});
    const r = await sparsegpt(W, hinv, { sparsity: 0, blockSize: 16 });
    assert.deepEqual(r.W.data, W.data);
    assert.ok(r.mask.every((m) => m === 1));
    assert.equal(r.loss, 0);
  });

  it("with H = I it makes no OBS updates and its mask is magnitude's within each block", async () => {
    const rng = new Rng(3);
    const rows = 6;
    const n = 48;
    const blockSize = 16;
    const I = new Float32Array(n * n);
    for (let i = 0; i < n; i++) I[i * n + i] = 1;
    const W = new Tensor(Float32Array.from({ length: rows * n }, () => rng.next() - 0.5), [rows, n]);
    const { hinv } = await inverseFactor(I, n, 0.01, undefined, () => {});
    const r = await sparsegpt(W, hinv, { sparsity: 0.5, blockSize });
    for (let b = 0; b < n; b += blockSize) {
      const block = new Float32Array(rows * blockSize);
      for (let i = 0; i < rows; i++) block.set(W.data.subarray(i * n + b, i * n + b + blockSize), i * blockSize);
      const mag = magnitudePrune("b", new Tensor(block, [rows, blockSize]), { sparsity: 0.5, scope: "layer" });
      for (let i = 0; i < rows; i++) {
        for (let j = 0; j < blockSize; j++) {
          const kept = mag.mask![i * blockSize + j]!;
          assert.equal(r.mask[i * n + b + j], kept);
          // kept weights are untouched: no OBS update reached them
          assert.equal(r.W.data[i * n + b + j], kept ? W.data[i * n + b + j] : 0);
        }
      }
    }
  });

  it("N:M: every full group of M inputs has exactly N zeros", async () => {
    const rng = new Rng(4);
    const n = 40;
    const H = spd(n, rng);
    const W = new Tensor(Float32Array.from({ length: 5 * n }, () => rng.next() - 0.5), [5, n]);
    const { hinv } = await inverseFactor(H, n, 0.01, undefined, () => {});
    const r = await sparsegpt(W, hinv, { sparsity: 0, nm: { n: 2, m: 4 }, blockSize: 16 });
    for (let i = 0; i < 5; i++) {
      for (let g = 0; g < n; g += 4) {
        const zeros = Array.from(r.W.data.subarray(i * n + g, i * n + g + 4)).filter((v) => v === 0).length;
        assert.equal(zeros, 2);
      }
    }
  });
});
