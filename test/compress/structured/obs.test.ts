// Structured OBS on small synthetic problems with known answers: removing columns R gives the
// least-squares refit of the remaining columns and the bias (solved here directly, float64), and
// the predicted loss is the true output error.
import assert from "node:assert/strict";
import { test } from "node:test";
import { StructuredObs } from "../../../src/compress/structured/obs.js";
import { Rng } from "../../../src/data/rng.js";
import { choleskyLower } from "../../../src/tensor/linalg.js";

/** Standard normal draws (Box–Muller). */
function randn(rng: Rng, n: number): Float32Array {
  return Float32Array.from({ length: n }, () => Math.sqrt(-2 * Math.log(1 - rng.next())) * Math.cos(2 * Math.PI * rng.next()));
}

/** Mean of XaugᵀXaug over rows of X [t, d] augmented by a 1 column. */
function augmentedGram(X: Float32Array, t: number, d: number): Float32Array {
  const n = d + 1;
  const H = new Float64Array(n * n);
  const row = new Float64Array(n);
  for (let r = 0; r < t; r++) {
    for (let j = 0; j < d; j++) row[j] = X[r * d + j]!;
    row[d] = 1;
    for (let a = 0; a < n; a++) for (let b = 0; b < n; b++) H[a * n + b]! += (row[a]! * row[b]!) / t;
  }
  return Float32Array.from(H);
}

/** Mean over rows of ‖(W x + b) − (Ŵ x + b̂)‖². */
function outputError(X: Float32Array, t: number, d: number, W: Float32Array, b: Float32Array, W2: Float32Array, b2: Float32Array, rows: number): number {
  let s = 0;
  for (let r = 0; r < t; r++) {
    for (let o = 0; o < rows; o++) {
      let y = b[o]! - b2[o]!;
      for (let j = 0; j < d; j++) y += (W[o * d + j]! - W2[o * d + j]!) * X[r * d + j]!;
      s += y * y;
    }
  }
  return s / t;
}

/** Least squares of targets W x + b on the kept columns K plus a bias, float64 normal equations. */
function leastSquares(X: Float32Array, t: number, d: number, W: Float32Array, b: Float32Array, rows: number, K: number[]): { W: Float64Array; b: Float64Array } {
  const k = K.length + 1;
  const A = new Float64Array(k * k);
  const rhs = new Float64Array(rows * k);
  const z = new Float64Array(k);
  for (let r = 0; r < t; r++) {
    K.forEach((j, a) => (z[a] = X[r * d + j]!));
    z[k - 1] = 1;
    for (let a = 0; a < k; a++) for (let c = 0; c < k; c++) A[a * k + c]! += z[a]! * z[c]!;
    for (let o = 0; o < rows; o++) {
      let y = b[o]!;
      for (let j = 0; j < d; j++) y += W[o * d + j]! * X[r * d + j]!;
      for (let a = 0; a < k; a++) rhs[o * k + a]! += y * z[a]!;
    }
  }
  choleskyLower(A, k);
  const Wout = new Float64Array(rows * d);
  const bout = new Float64Array(rows);
  for (let o = 0; o < rows; o++) {
    // solve L Lᵀ x = rhs_o
    const x = rhs.slice(o * k, (o + 1) * k);
    for (let i = 0; i < k; i++) {
      for (let j = 0; j < i; j++) x[i]! -= A[i * k + j]! * x[j]!;
      x[i]! /= A[i * k + i]!;
    }
    for (let i = k - 1; i >= 0; i--) {
      for (let j = i + 1; j < k; j++) x[i]! -= A[j * k + i]! * x[j]!;
      x[i]! /= A[i * k + i]!;
    }
    K.forEach((j, a) => (Wout[o * d + j] = x[a]!));
    bout[o] = x[k - 1]!;
  }
  return { W: Wout, b: bout };
}

test("removing columns refits the rest and the bias to the least-squares solution", async () => {
  const rng = new Rng(7);
  const t = 400;
  const d = 12;
  const rows = 5;
  const X = randn(rng, t * d);
  for (let r = 0; r < t; r++) for (let j = 0; j < d; j++) X[r * d + j]! += 0.5 * j; // nonzero means: the bias matters
  const W = randn(rng, rows * d);
  const b = randn(rng, rows);
  const obs = await StructuredObs.create(W, b, rows, d, augmentedGram(X, t, d), 0);
  const R = [2, 3, 7];
  const predicted = obs.loss(R);
  await obs.remove(R);
  const got = obs.result();
  const K = [...Array(d).keys()].filter((j) => !R.includes(j));
  const want = leastSquares(X, t, d, W, b, rows, K);
  for (let o = 0; o < rows; o++) {
    for (const j of R) assert.equal(got.W[o * d + j], 0, "removed columns are exactly zero");
    for (const j of K) assert.ok(Math.abs(got.W[o * d + j]! - want.W[o * d + j]!) < 2e-3, `W[${o},${j}] ${got.W[o * d + j]} vs ${want.W[o * d + j]}`);
    assert.ok(Math.abs(got.bias[o]! - want.b[o]!) < 2e-3, `b[${o}] ${got.bias[o]} vs ${want.b[o]}`);
  }
  const actual = outputError(X, t, d, W, b, got.W, got.bias, rows);
  assert.ok(Math.abs(predicted / actual - 1) < 1e-3, `predicted loss ${predicted} vs actual ${actual}`);
});

test("two removals in sequence equal one joint removal", async () => {
  const rng = new Rng(11);
  const t = 300;
  const d = 10;
  const rows = 4;
  const X = randn(rng, t * d);
  const W = randn(rng, rows * d);
  const H = augmentedGram(X, t, d);
  const a = await StructuredObs.create(W, null, rows, d, H, 0);
  await a.remove([1]);
  await a.remove([4, 5]);
  const b = await StructuredObs.create(W, null, rows, d, H, 0);
  await b.remove([1, 4, 5]);
  const ra = a.result();
  const rb = b.result();
  for (let i = 0; i < ra.W.length; i++) assert.ok(Math.abs(ra.W[i]! - rb.W[i]!) < 1e-4);
  for (let i = 0; i < rows; i++) assert.ok(Math.abs(ra.bias[i]! - rb.bias[i]!) < 1e-4);
});
