// The shared OBS column loop (compress/obs.ts) and the kernel under its lazy updates, on small
// synthetic inputs with known answers: the blocked, left-looking schedule (128-column blocks,
// 8-column sub-blocks, GEMMs through onnxruntime) must give what the plain column-by-column loop
// of the papers gives; subtractProduct's JS and onnxruntime branches must agree.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { upperCholeskyOfInverse } from "../../src/compress/cholesky.js";
import { obsColumnLoop } from "../../src/compress/obs.js";
import { Rng } from "../../src/data/rng.js";
import { subtractProduct } from "../../src/runtime/kernels.js";

/** A random SPD matrix XᵀX/t + 0.05·I of size n (float64 sums). */
function spd(n: number, rng: Rng): Float32Array {
  const t = 2 * n;
  const X = Float64Array.from({ length: t * n }, () => rng.next() - 0.5);
  const H = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let r = 0; r < t; r++) s += X[r * n + i]! * X[r * n + j]!;
      H[i * n + j] = H[j * n + i] = s / t + (i === j ? 0.05 : 0);
    }
  }
  return H;
}

/** Soft threshold: continuous in w, so float rounding cannot flip a decision between schedules. */
const shrink = (w: number) => Math.sign(w) * Math.max(Math.abs(w) - 0.3, 0);

/** SparseGPT/GPTQ Algorithm 1 without any blocking, in float64: column k compressed, its error spread right. */
function plainLoop(WT: Float32Array, rows: number, cols: number, Hinv: Float32Array, rule: (w: number) => number): { WT: Float64Array; loss: number } {
  const W = Float64Array.from(WT);
  let loss = 0;
  for (let k = 0; k < cols; k++) {
    const d = Hinv[k * cols + k]!;
    for (let r = 0; r < rows; r++) {
      const w = W[k * rows + r]!;
      const q = rule(w);
      const e = (w - q) / d;
      loss += (e * e) / 2;
      W[k * rows + r] = q;
      for (let c = k + 1; c < cols; c++) W[c * rows + r]! -= e * Hinv[k * cols + c]!;
    }
  }
  return { WT: W, loss };
}

describe("obsColumnLoop: the blocked, left-looking schedule = the plain column loop", () => {
  for (const [rows, cols, blockSize, groupWidth] of [
    [64, 300, 128, 1], // three blocks, the last partial; large enough for the onnxruntime GEMMs
    [16, 100, 32, 4], // N:M-aligned sub-blocks (4 wide), small products through the JS branch
    [7, 45, 128, 1], // one partial block
  ] as const) {
    test(`${rows}×${cols}, blocks of ${blockSize}${groupWidth > 1 ? `, groups of ${groupWidth}` : ""}`, async () => {
      const rng = new Rng(rows * 1000 + cols);
      const Hinv = await upperCholeskyOfInverse(spd(cols, rng), cols);
      const WT = Float32Array.from({ length: rows * cols }, () => 2 * rng.next() - 1);
      const want = plainLoop(WT, rows, cols, Hinv, shrink);
      const got = WT.slice();
      let seen = 0;
      const loss = await obsColumnLoop(got, rows, cols, Hinv, blockSize, {
        groupWidth,
        column: (k, w, q) => {
          assert.equal(k, seen++, "columns in order");
          for (let r = 0; r < rows; r++) q[r] = shrink(w[r]!);
        },
      });
      assert.equal(seen, cols);
      let maxDiff = 0;
      let maxAbs = 0;
      for (let i = 0; i < got.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want.WT[i]!));
        maxAbs = Math.max(maxAbs, Math.abs(want.WT[i]!));
      }
      assert.ok(maxDiff <= 1e-4 * Math.max(1, maxAbs), `max |Δ| ${maxDiff} (values up to ${maxAbs})`);
      assert.ok(Math.abs(loss - want.loss) <= 1e-4 * want.loss, `loss ${loss} vs ${want.loss}`);
      // and the rule really did something: many exact zeros, both ways
      const zeros = got.reduce((n, x) => n + (x === 0 ? 1 : 0), 0);
      assert.ok(zeros > got.length / 10, `${zeros} zeros`);
    });
  }
});

describe("subtractProduct: the JS loop and the onnxruntime graph agree", () => {
  for (const transA of [false, true]) {
    test(`C −= ${transA ? "Aᵀ" : "A"}·B, 40×70 · 70×30`, async () => {
      const [m, k, n] = [40, 70, 30];
      const rng = new Rng(transA ? 2 : 1);
      const A = Float32Array.from({ length: m * k }, () => rng.next() - 0.5);
      A[5] = 0; // the JS loop skips zeros of A
      const B = Float32Array.from({ length: k * n }, () => rng.next() - 0.5);
      const C0 = Float32Array.from({ length: m * n }, () => rng.next() - 0.5);
      const want = new Float64Array(m * n);
      for (let i = 0; i < m; i++) {
        for (let j = 0; j < n; j++) {
          let s = C0[i * n + j]!;
          for (let t = 0; t < k; t++) s -= (transA ? A[t * m + i]! : A[i * k + t]!) * B[t * n + j]!;
          want[i * n + j] = s;
        }
      }
      const viaJs = C0.slice();
      const viaOrt = C0.slice();
      await subtractProduct(viaJs, A, B, m, k, n, { transA, via: "js" });
      await subtractProduct(viaOrt, A, B, m, k, n, { transA, via: "onnxruntime" });
      for (const [name, C] of [["js", viaJs], ["onnxruntime", viaOrt]] as const) {
        const err = C.reduce((e, x, i) => Math.max(e, Math.abs(x - want[i]!)), 0);
        assert.ok(err < 1e-5, `${name}: max error ${err}`);
      }
      const between = viaJs.reduce((e, x, i) => Math.max(e, Math.abs(x - viaOrt[i]!)), 0);
      assert.ok(between < 1e-5, `js vs onnxruntime ${between}`);
      assert.notDeepEqual(viaJs, C0);
    });
  }
});
