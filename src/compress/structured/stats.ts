// Per-input-column statistics of a consumer linear (o_proj, down_proj) over calibration samples,
// exactly as FLAP's lib/layerwrapper.py accumulates them, one sample (batch of 1) at a time:
//
//   BiasGPT (FLAP's fluctuation, metric WIFV), for sample k = 1, 2, … with tokens x_t:
//     μ_k = μ_{k−1}·(k−1)/k + mean_t(x_t)/k
//     F_1 = 0 (the first sample's term is discarded)
//     F_k = F_{k−1}·(k−2)/(k−1) + Σ_t (x_t − μ_k)² / k
//   (FLAP's `old_baseline_inp` aliases the mean it updates in place, so both factors of the
//   product use the NEW mean μ_k: the formula above is what its code computes, not a textbook
//   variance. We follow the code, since FLAP's published numbers come from it.)
//
//   WrappedGPT (Wanda's ‖X_j‖², the "scaler_row"): S_k = S_{k−1}·(k−1)/k + Σ_t x_t² / k.
//
// Accumulated in float64 (FLAP runs float32; the difference is far below the score margins).

/** FLAP's mean and fluctuation of each input column. */
export class FluctuationStats {
  readonly mean: Float64Array;
  readonly fluctuation: Float64Array;
  private n = 0;

  constructor(readonly width: number) {
    this.mean = new Float64Array(width);
    this.fluctuation = new Float64Array(width);
  }

  get samples(): number {
    return this.n;
  }

  /** The statistics after `samples` samples, as saved (a resumed job: structured/job-state.ts). */
  static restore(mean: Float64Array, fluctuation: Float64Array, samples: number): FluctuationStats {
    if (mean.length !== fluctuation.length) throw new Error(`fluctuation statistics of ${mean.length} and ${fluctuation.length} columns`);
    const s = new FluctuationStats(mean.length);
    s.mean.set(mean);
    s.fluctuation.set(fluctuation);
    s.n = samples;
    return s;
  }

  /** One calibration sample: X [tokens, width], row-major. */
  addSample(X: Float32Array): void {
    const d = this.width;
    const T = X.length / d;
    const k = this.n + 1;
    const colMean = new Float64Array(d);
    for (let t = 0; t < T; t++) for (let j = 0; j < d; j++) colMean[j]! += X[t * d + j]!;
    for (let j = 0; j < d; j++) this.mean[j] = (this.mean[j]! * (k - 1)) / k + colMean[j]! / T / k;
    if (k === 1) {
      this.fluctuation.fill(0);
    } else {
      const dev = new Float64Array(d);
      for (let t = 0; t < T; t++) {
        for (let j = 0; j < d; j++) {
          const e = X[t * d + j]! - this.mean[j]!;
          dev[j]! += e * e;
        }
      }
      for (let j = 0; j < d; j++) this.fluctuation[j] = (this.fluctuation[j]! * (k - 2)) / (k - 1) + dev[j]! / k;
    }
    this.n = k;
  }
}

/** Wanda's per-column squared norm, averaged over samples (FLAP's WrappedGPT.scaler_row). */
export class SquaredNormStats {
  readonly scalerRow: Float64Array;
  private n = 0;

  constructor(readonly width: number) {
    this.scalerRow = new Float64Array(width);
  }

  addSample(X: Float32Array): void {
    const d = this.width;
    const T = X.length / d;
    const k = this.n + 1;
    const sq = new Float64Array(d);
    for (let t = 0; t < T; t++) {
      for (let j = 0; j < d; j++) {
        const v = X[t * d + j]!;
        sq[j]! += v * v;
      }
    }
    for (let j = 0; j < d; j++) this.scalerRow[j] = (this.scalerRow[j]! * (k - 1)) / k + sq[j]! / k;
    this.n = k;
  }
}

/** Squared L2 norm of each column of W [rows, cols]. */
export function columnSquaredNorms(W: Float32Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(cols);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const w = W[r * cols + j]!;
      out[j]! += w * w;
    }
  }
  return out;
}
