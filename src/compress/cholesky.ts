// Hinv for SparseGPT and GPTQ: the upper Cholesky factor U of H⁻¹ (UᵀU = H⁻¹).
//
// The reference code takes three O(n³) steps: chol(H), cholesky_inverse, chol(upper).
// Here it is one Cholesky and one triangular inverse. With J the reversal permutation
// (J·A·J reverses rows and columns), factor the reversed matrix JHJ = L·Lᵀ. Then
//   H⁻¹ = J·L⁻ᵀ·L⁻¹·J = (J·L⁻¹·J)ᵀ·(J·L⁻¹·J),
// and J·L⁻¹·J is upper triangular with a positive diagonal, so it *is* U (the factor is unique).
//
// L⁻¹ is computed recursively on 2×2 blocks, so the bulk is four GEMMs per level on onnxruntime:
//   [A11 A21ᵀ; A21 A22] = L·Lᵀ,  L11⁻¹ = rec(A11),  L21 = A21·L11⁻ᵀ,  S = A22 − L21·L21ᵀ,
//   L22⁻¹ = rec(S),  (L⁻¹)21 = −L22⁻¹·L21·L11⁻¹.
// Blocks of ≤ 256 are done in float64 JS (tensor/linalg.ts).
import { gemm } from "../runtime/kernels.js";
import { choleskyLower, invertLower, reverseBoth } from "../tensor/linalg.js";

/** Blocks of at most this size are factored in JS (measured fastest among 128–256 on 2 cores). */
export const CHOLESKY_BASE = 192;

function block(A: Float32Array, n: number, r0: number, c0: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) out.set(A.subarray((r0 + i) * n + c0, (r0 + i) * n + c0 + cols), i * cols);
  return out;
}

function place(dst: Float32Array, n: number, r0: number, c0: number, src: Float32Array, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) dst.set(src.subarray(i * cols, (i + 1) * cols), (r0 + i) * n + c0);
}

/** L⁻¹ where A = L·Lᵀ (A symmetric positive definite, n×n row-major). */
async function inverseCholeskyFactor(A: Float32Array, n: number): Promise<Float32Array> {
  if (n <= CHOLESKY_BASE) {
    const a = Float64Array.from(A);
    choleskyLower(a, n);
    invertLower(a, n);
    return Float32Array.from(a);
  }
  const k = Math.ceil(n / 2 / 64) * 64; // split on a multiple of 64: friendlier GEMM shapes
  const m = n - k;
  const L11inv = await inverseCholeskyFactor(block(A, n, 0, 0, k, k), k);
  const L21 = await gemm(block(A, n, k, 0, m, k), [m, k], L11inv, [k, k], { transB: true });
  const S = await gemm(L21, [m, k], L21, [m, k], { transB: true, alpha: -1, C: block(A, n, k, k, m, m), beta: 1 });
  const L22inv = await inverseCholeskyFactor(S, m);
  const T = await gemm(L21, [m, k], L11inv, [k, k]);
  const Linv21 = await gemm(L22inv, [m, m], T, [m, k], { alpha: -1 });
  const out = new Float32Array(n * n);
  place(out, n, 0, 0, L11inv, k, k);
  place(out, n, k, 0, Linv21, m, k);
  place(out, n, k, k, L22inv, m, m);
  return out;
}

/** U upper triangular with UᵀU = H⁻¹ (throws NotPositiveDefiniteError when H is not PD). */
export async function upperCholeskyOfInverse(H: Float32Array, n: number): Promise<Float32Array> {
  return reverseBoth(await inverseCholeskyFactor(reverseBoth(H, n), n), n);
}
