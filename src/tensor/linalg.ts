// Dense linear algebra on small matrices, in plain JS float64: the base cases of the blocked
// routines in compress/cholesky.ts (whose bulk runs as onnxruntime GEMMs) and the whole
// computation for matrices small enough that GEMM dispatch would cost more than it saves.
// Matrices are row-major n×n.

export class NotPositiveDefiniteError extends Error {
  constructor(readonly pivot: number, readonly value: number) {
    super(`matrix is not positive definite (pivot ${pivot} is ${value})`);
    this.name = "NotPositiveDefiniteError";
  }
}

/** In place: A (symmetric, lower triangle read) → its Cholesky factor L (lower; upper zeroed). */
export function choleskyLower(A: Float64Array, n: number): void {
  for (let j = 0; j < n; j++) {
    const rowJ = j * n;
    let d = A[rowJ + j]!;
    for (let k = 0; k < j; k++) d -= A[rowJ + k]! * A[rowJ + k]!;
    if (!(d > 0)) throw new NotPositiveDefiniteError(j, d);
    const ljj = Math.sqrt(d);
    A[rowJ + j] = ljj;
    for (let i = j + 1; i < n; i++) {
      const rowI = i * n;
      let s = A[rowI + j]!;
      for (let k = 0; k < j; k++) s -= A[rowI + k]! * A[rowJ + k]!;
      A[rowI + j] = s / ljj;
    }
    for (let k = j + 1; k < n; k++) A[rowJ + k] = 0;
  }
}

/** In place: L (lower triangular, nonzero diagonal) → L⁻¹ (lower triangular). */
export function invertLower(L: Float64Array, n: number): void {
  // column by column of the inverse: solve L x = e_j by forward substitution, x_i = 0 for i < j
  const x = new Float64Array(n);
  const out = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    x.fill(0);
    for (let i = j; i < n; i++) {
      let s = i === j ? 1 : 0;
      const rowI = i * n;
      for (let k = j; k < i; k++) s -= L[rowI + k]! * x[k]!;
      x[i] = s / L[rowI + i]!;
    }
    for (let i = j; i < n; i++) out[i * n + j] = x[i]!;
  }
  L.set(out);
}
