// Calibration statistics shared by every method (SparseGPT §3, GPTQ §4, Wanda §3):
//   H = (2/n)·Σ XᵀX over the n calibration samples, float32, accumulated batch by batch with the
//   reference code's running-mean update (H ← H·n/(n+k) + (2/(n+k))·XᵀX, the GEMM on onnxruntime);
//   the dead-input fix (H_jj = 0 → H_jj = 1, W[:, j] = 0); dampening λ·mean(diag H); and the
//   Cholesky retry with a larger λ when H + λI is not numerically positive definite.
// Linears that read the same input (q/k/v; gate/up) share one accumulator and one Hinv.
import { GramAccumulator } from "../runtime/kernels.js";
import { NotPositiveDefiniteError } from "../tensor/linalg.js";
import { upperCholeskyOfInverse } from "./cholesky.js";
import type { InverseFactor, LayerStats, StatsNeed } from "./compressor.js";

/** How many times dampening is raised ×10 before giving up. */
const MAX_DAMPENING_RETRIES = 5;

/**
 * Tokens whose XᵀX is kept for the reconstruction-error report when a method collects only
 * diag(H): enough for a stable ratio, small enough to cost ~one extra GEMM per layer.
 */
const ERROR_SAMPLE_TOKENS = 2048;

export class InputStatistics {
  private gram: GramAccumulator | null = null;
  private H: Float32Array | null = null; // gram.matrix(), assembled on first use
  private sampleGram: Float32Array | null = null;
  private diagSum: Float64Array | null = null;
  private n = 0;
  private readonly hinvCache = new Map<string, Promise<InverseFactor>>();

  constructor(
    /** input width (columns of the linears reading this input) */
    readonly width: number,
    readonly need: Exclude<StatsNeed, "none">,
    /** what the input is, for error messages: "layer 3 attn_in (q_proj, k_proj, v_proj)" */
    readonly label: string,
  ) {}

  get nsamples(): number {
    return this.n;
  }

  /** Adds a batch X [tokens, width] holding `samples` calibration samples. */
  async add(X: Float32Array, samples: number): Promise<void> {
    const d = this.width;
    const n1 = this.n + samples;
    if (this.need === "hessian") {
      this.gram ??= new GramAccumulator(d);
      await this.gram.add(X, this.n / n1, 2 / n1);
      this.H = null;
    } else {
      if (!this.sampleGram) {
        const rows = Math.min(ERROR_SAMPLE_TOKENS, X.length / d);
        const sample = new GramAccumulator(d);
        await sample.add(X.subarray(0, rows * d), 0, 1);
        this.sampleGram = sample.matrix();
      }
      const acc = (this.diagSum ??= new Float64Array(d));
      const decay = this.n / n1;
      const colSq = new Float64Array(d);
      const t = X.length / d;
      for (let r = 0; r < t; r++) {
        const off = r * d;
        for (let j = 0; j < d; j++) {
          const x = X[off + j]!;
          colSq[j] = colSq[j]! + x * x;
        }
      }
      for (let j = 0; j < d; j++) acc[j] = acc[j]! * decay + (2 / n1) * colSq[j]!;
    }
    this.n = n1;
  }

  /** Throws when the accumulated statistics hold NaN or Inf (bad activations upstream). */
  checkFinite(): void {
    const diag = this.diag();
    for (let j = 0; j < diag.length; j++) {
      if (!Number.isFinite(diag[j]!)) {
        throw new Error(`calibration activations entering ${this.label} contain NaN or Inf (input column ${j})`);
      }
    }
  }

  diag(): Float32Array {
    const d = this.width;
    if (this.gram) {
      const H = this.hessian();
      const out = new Float32Array(d);
      for (let j = 0; j < d; j++) out[j] = H[j * d + j]!;
      return out;
    }
    if (this.diagSum) return Float32Array.from(this.diagSum);
    throw new Error(`no calibration statistics were collected for ${this.label}`);
  }

  /** XᵀX up to a constant: H, or for diag-only statistics the Gram of the first tokens. */
  errorGram(): Float32Array {
    return this.gram ? this.hessian() : (this.sampleGram ?? this.hessian());
  }

  hessian(): Float32Array {
    if (!this.gram) throw new Error(`no Hessian was collected for ${this.label}`);
    this.H ??= this.gram.matrix();
    return this.H;
  }

  inverseFactor(opts: { dampening: number; perm?: Int32Array }, warn: (m: string) => void): Promise<InverseFactor> {
    const key = `${opts.dampening}:${opts.perm ? Array.from(opts.perm).join(",") : ""}`;
    let f = this.hinvCache.get(key);
    if (!f) {
      f = inverseFactor(this.hessian(), this.width, opts.dampening, opts.perm, (m) => warn(`${this.label}: ${m}`));
      this.hinvCache.set(key, f);
    }
    return f;
  }

  /** The LayerStats view one linear sees. */
  view(name: string, warn: (m: string) => void): LayerStats {
    return {
      name,
      nsamples: this.n,
      diag: () => this.diag(),
      hessian: () => this.hessian(),
      inverseFactor: (opts) => this.inverseFactor(opts, warn),
      warn,
    };
  }
}

/** Dead-input fix, optional column permutation, dampening, Hinv with retries. */
export async function inverseFactor(
  H0: Float32Array,
  d: number,
  dampening: number,
  perm: Int32Array | undefined,
  warn: (m: string) => void,
): Promise<InverseFactor> {
  const H = H0.slice();
  const dead: number[] = [];
  for (let j = 0; j < d; j++) {
    if (H[j * d + j] === 0) {
      dead.push(j);
      H[j * d + j] = 1;
    }
  }
  const P = perm ? permuteSymmetric(H, d, perm) : H;
  let meanDiag = 0;
  for (let j = 0; j < d; j++) meanDiag += P[j * d + j]!;
  meanDiag /= d;
  let lambda = dampening;
  for (let attempt = 0; ; attempt++) {
    const damped = P.slice();
    const damp = Math.fround(lambda * meanDiag);
    for (let j = 0; j < d; j++) damped[j * d + j] = damped[j * d + j]! + damp;
    try {
      const hinv = await upperCholeskyOfInverse(damped, d);
      if (attempt > 0) warn(`Cholesky failed at dampening ${dampening}; succeeded with ${lambda} (consider a larger --dampening)`);
      return { hinv, dead: Int32Array.from(dead), dampening: lambda };
    } catch (e) {
      if (!(e instanceof NotPositiveDefiniteError) || attempt >= MAX_DAMPENING_RETRIES) {
        if (e instanceof NotPositiveDefiniteError) {
          throw new Error(`Hessian is not positive definite even with dampening ${lambda} (${e.message}); increase --dampening`);
        }
        throw e;
      }
      lambda *= 10;
    }
  }
}

/** H[perm][:, perm] */
function permuteSymmetric(H: Float32Array, d: number, perm: Int32Array): Float32Array {
  const out = new Float32Array(d * d);
  for (let i = 0; i < d; i++) {
    const src = perm[i]! * d;
    for (let j = 0; j < d; j++) out[i * d + j] = H[src + perm[j]!]!;
  }
  return out;
}
