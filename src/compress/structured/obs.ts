// Structured OBS: removing whole input columns of a consumer linear (a KV group's o_proj columns,
// an MLP channel's down_proj column) and refitting the rest by least squares on the calibration
// inputs — the structured form of SparseGPT's update (ZipLM, Kurtic et al. 2023).
//
// With X the consumer's inputs augmented by a constant 1 (so the bias is refitted too: FLAP's
// mean compensation is the special case that refits only the bias), H = XᵀX + λI and
// Hinv = H⁻¹, removing the column set R from W (rows of outputs) costs
//     loss(R) = tr( W_R · (Hinv_RR)⁻¹ · W_Rᵀ )      (= min ‖W X − Ŵ X‖² with Ŵ_R = 0)
// and the optimal update of the remaining columns, after which R's columns are exactly zero, is
//     W ← W − W_R · (Hinv_RR)⁻¹ · Hinv_R,:        Hinv ← Hinv − Hinv_:,R · (Hinv_RR)⁻¹ · Hinv_R,:
// (the second line is H⁻¹ of the problem without R, so later removals see the earlier ones).
// Units are removed greedily, cheapest first, and every removal updates the survivors.
import { inverseCholeskyFactor } from "../cholesky.js";
import { gemm, subtractProduct } from "../../runtime/kernels.js";
import { choleskyLower, invertLower } from "../../tensor/linalg.js";

/** The inverse of a small symmetric positive definite matrix, float64. */
function invertSpd(A: Float64Array, n: number): Float64Array {
  const L = A.slice();
  choleskyLower(L, n);
  invertLower(L, n); // L⁻¹
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < n; k++) s += L[k * n + i]! * L[k * n + j]!; // (L⁻ᵀ L⁻¹)_ij
      out[i * n + j] = s;
      out[j * n + i] = s;
    }
  }
  return out;
}

export class StructuredObs {
  /** [rows, d + 1]: the weights, last column the bias */
  readonly W: Float32Array;
  /** [(d + 1)²] */
  private Hinv!: Float32Array;
  readonly width: number;

  private constructor(
    W: Float32Array,
    bias: Float32Array | null,
    readonly rows: number,
    readonly cols: number,
  ) {
    this.width = cols + 1;
    this.W = new Float32Array(rows * this.width);
    for (let r = 0; r < rows; r++) {
      this.W.set(W.subarray(r * cols, (r + 1) * cols), r * this.width);
      this.W[r * this.width + cols] = bias ? bias[r]! : 0;
    }
  }

  /**
   * `H` is the augmented Gram matrix [(cols+1)²] of the inputs (last row/column: the constant 1);
   * `dampening` adds λ·mean(diag H) to the diagonal, as SparseGPT does.
   */
  static async create(W: Float32Array, bias: Float32Array | null, rows: number, cols: number, H: Float32Array, dampening: number): Promise<StructuredObs> {
    const s = new StructuredObs(W, bias, rows, cols);
    const n = s.width;
    const Hd = H.slice();
    let mean = 0;
    for (let i = 0; i < n; i++) mean += Hd[i * n + i]!;
    mean /= n;
    for (let i = 0; i < n; i++) {
      // a dead input (never nonzero) would make H singular: it costs nothing to remove
      if (Hd[i * n + i] === 0) Hd[i * n + i] = 1;
      Hd[i * n + i]! += dampening * mean;
    }
    const Linv = await inverseCholeskyFactor(Hd, n);
    s.Hinv = await gemm(Linv, [n, n], Linv, [n, n], { transA: true }); // L⁻ᵀL⁻¹ = H⁻¹
    return s;
  }

  private sub(R: readonly number[]): Float64Array {
    const n = this.width;
    const k = R.length;
    const out = new Float64Array(k * k);
    for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) out[a * k + b] = this.Hinv[R[a]! * n + R[b]!]!;
    return out;
  }

  /** tr(W_R (Hinv_RR)⁻¹ W_Rᵀ): the output error of removing columns R now. */
  loss(R: readonly number[]): number {
    const n = this.width;
    const k = R.length;
    if (k === 1) {
      const j = R[0]!;
      let s = 0;
      for (let r = 0; r < this.rows; r++) s += this.W[r * n + j]! ** 2;
      return s / this.Hinv[j * n + j]!;
    }
    const inv = invertSpd(this.sub(R), k);
    let total = 0;
    const w = new Float64Array(k);
    for (let r = 0; r < this.rows; r++) {
      for (let a = 0; a < k; a++) w[a] = this.W[r * n + R[a]!]!;
      for (let a = 0; a < k; a++) {
        let s = 0;
        for (let b = 0; b < k; b++) s += inv[a * k + b]! * w[b]!;
        total += w[a]! * s;
      }
    }
    return total;
  }

  /** Removes columns R (they become exactly zero) and refits the others. */
  async remove(R: readonly number[]): Promise<void> {
    const n = this.width;
    const k = R.length;
    const inv = invertSpd(this.sub(R), k);
    // A = (Hinv_RR)⁻¹ · Hinv_R,:   [k, n]
    const A = new Float32Array(k * n);
    for (let a = 0; a < k; a++) {
      for (let b = 0; b < k; b++) {
        const f = inv[a * k + b]!;
        if (f === 0) continue;
        const row = R[b]! * n;
        for (let j = 0; j < n; j++) A[a * n + j]! += f * this.Hinv[row + j]!;
      }
    }
    // W −= W_R · A,  Hinv −= Hinv_:,R · A
    const WR = new Float32Array(this.rows * k);
    for (let r = 0; r < this.rows; r++) for (let a = 0; a < k; a++) WR[r * k + a] = this.W[r * n + R[a]!]!;
    await subtractProduct(this.W, WR, A, this.rows, k, n);
    const HR = new Float32Array(n * k);
    for (let i = 0; i < n; i++) for (let a = 0; a < k; a++) HR[i * k + a] = this.Hinv[i * n + R[a]!]!;
    await subtractProduct(this.Hinv, HR, A, n, k, n);
    for (let r = 0; r < this.rows; r++) for (const j of R) this.W[r * n + j] = 0; // exact zeros, not rounding residue
  }

  /** The refitted weights [rows, cols] and bias [rows]. */
  result(): { W: Float32Array; bias: Float32Array } {
    const n = this.width;
    const W = new Float32Array(this.rows * this.cols);
    const bias = new Float32Array(this.rows);
    for (let r = 0; r < this.rows; r++) {
      W.set(this.W.subarray(r * n, r * n + this.cols), r * this.cols);
      bias[r] = this.W[r * n + this.cols]!;
    }
    return { W, bias };
  }
}
