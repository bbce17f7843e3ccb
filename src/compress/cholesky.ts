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
// Blocks of ≤ CHOLESKY_BASE (192) are done in float64 JS (tensor/linalg.ts).
import { gemm } from "../runtime/kernels.js";
import { choleskyLower, invertLower } from "../tensor/linalg.js";

/** Blocks of at most this size are factored in JS (measured fastest among 128–256 on 2 cores). */
export const CHOLESKY_BASE = 192;

/** A[r0:r0+rows, c0:c0+cols] as a contiguous matrix (A has row stride ld). */
function block(A: Float32Array, ld: number, r0: number, c0: number, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) out.set(A.subarray((r0 + i) * ld + c0, (r0 + i) * ld + c0 + cols), i * cols);
  return out;
}

function place(dst: Float32Array, ld: number, r0: number, c0: number, src: Float32Array, rows: number, cols: number): void {
  for (let i = 0; i < rows; i++) dst.set(src.subarray(i * cols, (i + 1) * cols), (r0 + i) * ld + c0);
}

/** L⁻¹ where A = L·Lᵀ (A symmetric positive definite, n×n row-major; A is not changed). */
export async function inverseCholeskyFactor(A: Float32Array, n: number): Promise<Float32Array> {
  const out = A.slice();
  await inverseCholeskyFactorInPlace(out, n, 0, n);
  return out;
}

/**
 * In place: the n×n diagonal block of A (row stride ld) starting at (o, o), symmetric positive
 * definite with its lower triangle read, becomes L⁻¹ (lower triangular, upper part zeroed).
 * In place because at Llama-7B widths down_proj's Hessian is 11008² (485 MB as float32): the
 * recursion then holds at most ~4 quarter-size blocks besides A, where building each level's
 * result in a fresh matrix held several full copies at once. The arithmetic is unchanged (the
 * same blocks enter the same GEMMs), so results are bit-identical to the copying version.
 */
async function inverseCholeskyFactorInPlace(A: Float32Array, ld: number, o: number, n: number): Promise<void> {
  if (n <= CHOLESKY_BASE) {
    const a = Float64Array.from(block(A, ld, o, o, n, n));
    choleskyLower(a, n);
    invertLower(a, n);
    place(A, ld, o, o, Float32Array.from(a), n, n);
    return;
  }
  const k = Math.ceil(n / 2 / 64) * 64; // split on a multiple of 64: friendlier GEMM shapes
  const m = n - k;
  await inverseCholeskyFactorInPlace(A, ld, o, k); // A11 → L11⁻¹
  let L11inv: Float32Array | null = block(A, ld, o, o, k, k);
  let L21: Float32Array | null = await gemm(block(A, ld, o + k, o, m, k), [m, k], L11inv, [k, k], { transB: true });
  // S = A22 − L21·L21ᵀ goes back into A22's place, where the recursion factors it
  place(A, ld, o + k, o + k, await gemm(L21, [m, k], L21, [m, k], { transB: true, alpha: -1, C: block(A, ld, o + k, o + k, m, m), beta: 1 }), m, m);
  const T = await gemm(L21, [m, k], L11inv, [k, k]);
  L21 = L11inv = null; // dropped before the recursion below allocates its own blocks
  await inverseCholeskyFactorInPlace(A, ld, o + k, m); // S → L22⁻¹
  place(A, ld, o + k, o, await gemm(block(A, ld, o + k, o + k, m, m), [m, m], T, [m, k], { alpha: -1 }), m, k); // (L⁻¹)21
  for (let i = 0; i < k; i++) A.fill(0, (o + i) * ld + o + k, (o + i) * ld + o + n); // upper right block
}

/** U upper triangular with UᵀU = H⁻¹ (throws NotPositiveDefiniteError when H is not PD; H is not changed). */
export async function upperCholeskyOfInverse(H: Float32Array, n: number): Promise<Float32Array> {
  const U = H.slice();
  await upperCholeskyOfInverseInPlace(U, n);
  return U;
}

/**
 * In place: H → U. J·A·J (rows and columns reversed) is the row-major array read backwards, so
 * both reversals are TypedArray.reverse, with no copy.
 */
export async function upperCholeskyOfInverseInPlace(H: Float32Array, n: number): Promise<void> {
  H.reverse();
  await inverseCholeskyFactorInPlace(H, n, 0, n);
  H.reverse();
}
