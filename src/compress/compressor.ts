// The one interface every compression method implements. The pipeline knows no method by
// name: it asks each compressor which statistics it needs, collects them while running the
// layer, and hands them over with the weight.
import type { Tensor } from "../tensor/tensor.js";
import type { CompressedLinear } from "../formats/compressed-linear.js";

/**
 * Calibration statistics of one linear layer's input X (tokens × in):
 *   none     — the method looks at the weight only (magnitude, RTN)
 *   diag     — ‖X_j‖² per input column (Wanda)
 *   hessian  — H = (2/n)·Σ XᵀX (SparseGPT, GPTQ)
 */
export type StatsNeed = "none" | "diag" | "hessian";

export interface LayerStats {
  /** linear name, e.g. "model.layers.3.mlp.down_proj" */
  readonly name: string;
  /** calibration samples the statistics were accumulated over */
  readonly nsamples: number;
  /** diag(H) = (2/n)·Σ x_j² [in] */
  diag(): Float32Array;
  /** H [in, in] (hessian statistics only; a shared array: do not modify) */
  hessian(): Float32Array;
  /**
   * Hinv = upper Cholesky factor of (H + λ·mean(diag H)·I)⁻¹ after the dead-input fix, for
   * columns permuted by `perm` when given; memoised, so linears sharing an input share it.
   */
  inverseFactor(opts: { dampening: number; perm?: Int32Array }): Promise<InverseFactor>;
  /** report a numerical fallback (shown to the user, recorded in topiary.json) */
  warn(message: string): void;
}

export interface InverseFactor {
  /** [in, in] upper triangular */
  hinv: Float32Array;
  /** input columns with H_jj = 0 (their weights must be zeroed) */
  dead: Int32Array;
  /** the dampening actually used (raised when Cholesky failed) */
  dampening: number;
}

export interface Compressor {
  readonly name: string;
  readonly needs: StatsNeed;
  /** `name` is the linear's full name; `stats` is null when `needs` is "none". */
  compress(name: string, W: Tensor, stats: LayerStats | null): Promise<CompressedLinear>;
}
