// Calibration statistics shared by every method (SparseGPT §3, GPTQ §4, Wanda §3):
//   H = (2/n)·Σ XᵀX over the n calibration samples, float32, accumulated batch by batch with the
//   reference code's running-mean update (H ← H·n/(n+k) + (2/(n+k))·XᵀX, the GEMM on onnxruntime);
//   the dead-input fix (H_jj = 0 → H_jj = 1, W[:, j] = 0); dampening λ·mean(diag H); and the
//   Cholesky retry with a larger λ when H + λI is not numerically positive definite.
// Linears that read the same input (q/k/v; gate/up) share one accumulator and one Hinv.
import { GramAccumulator } from "../runtime/kernels.js";
import { NotPositiveDefiniteError } from "../tensor/linalg.js";
import { upperCholeskyOfInverseInPlace } from "./cholesky.js";
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
  private H: Float32Array | null = null; // gram.matrix(), assembled on first use (the gram is then dropped)
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
    if (this.H) throw new Error(`statistics for ${this.label} were added to after they were used`);
    if (this.need === "hessian") {
      this.gram ??= new GramAccumulator(d);
      await this.gram.add(X, this.n / n1, 2 / n1);
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
    if (this.need === "hessian") {
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
    return this.need === "hessian" ? this.hessian() : (this.sampleGram ?? this.hessian());
  }

  hessian(): Float32Array {
    if (!this.H) {
      if (!this.gram) throw new Error(this.n > 0 ? `the Hessian of ${this.label} was already released` : `no Hessian was collected for ${this.label}`);
      this.H = this.gram.matrix();
      this.gram = null; // its blocks are a second copy of H (485 MB at Llama-7B's MLP width)
    }
    return this.H;
  }

  /**
   * Drops H and the cached inverse factors once the last linear reading this input is done, so
   * that they are not alive next to the next input's (the pipeline's peak is inside one layer).
   */
  release(): void {
    this.H = null;
    this.sampleGram = null;
    this.diagSum = null;
    this.hinvCache.clear();
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

/**
 * Dead-input fix, optional column permutation, dampening, Hinv with retries. H0 is not changed;
 * each attempt builds one working copy (fixed, permuted and damped in one pass) and factors it in
 * place — at Llama-7B widths down_proj's H is 485 MB, and a copy per step (fixed, permuted,
 * damped, reversed, factor, reversed factor) held ~3 GB at once.
 */
export async function inverseFactor(
  H0: Float32Array,
  d: number,
  dampening: number,
  perm: Int32Array | undefined,
  warn: (m: string) => void,
): Promise<InverseFactor> {
  const dead: number[] = [];
  const diag = new Float32Array(d); // diag(H) after the dead-input fix, in processing order
  for (let i = 0; i < d; i++) {
    const j = perm ? perm[i]! : i;
    const v = H0[j * d + j]!;
    diag[i] = v === 0 ? 1 : v;
  }
  for (let j = 0; j < d; j++) if (H0[j * d + j] === 0) dead.push(j);
  let meanDiag = 0;
  for (let j = 0; j < d; j++) meanDiag += diag[j]!;
  meanDiag /= d;
  let lambda = dampening;
  for (let attempt = 0; ; attempt++) {
    const damped = perm ? permuteSymmetric(H0, d, perm) : H0.slice();
    const damp = Math.fround(lambda * meanDiag);
    for (let j = 0; j < d; j++) damped[j * d + j] = diag[j]! + damp;
    try {
      await upperCholeskyOfInverseInPlace(damped, d);
      if (attempt > 0) warn(`Cholesky failed at dampening ${dampening}; succeeded with ${lambda} (consider a larger --dampening)`);
      return { hinv: damped, dead: Int32Array.from(dead), dampening: lambda };
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
