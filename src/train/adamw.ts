// AdamW (Loshchilov & Hutter, 2019) exactly as torch.optim.AdamW computes it, a linear warm-up +
// cosine learning-rate schedule, and global gradient-norm clipping. Element-wise JS: one pass per
// parameter, O(parameters) — small next to the step's GEMMs, O(parameters · tokens).

export interface AdamWOptions {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

export const ADAMW_DEFAULTS: AdamWOptions = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0 };

/** A trainable tensor: its values (updated in place) and, for masked training, the 0/1 mask. */
export interface Param {
  name: string;
  value: Float32Array;
  /** 1 = trainable, 0 = pruned (kept exactly zero); null = every entry trains */
  mask: Uint8Array | null;
}

export class AdamW {
  private readonly m = new Map<string, Float32Array>();
  private readonly v = new Map<string, Float32Array>();
  private t = 0;

  constructor(readonly opts: AdamWOptions = ADAMW_DEFAULTS) {}

  /** Steps taken so far. */
  get steps(): number {
    return this.t;
  }

  /** The moments of `params` (same order; zeros before its first update) and the step count, for a checkpoint. */
  moments(params: readonly Param[]): { t: number; m: Float32Array[]; v: Float32Array[] } {
    const get = (map: Map<string, Float32Array>, p: Param) => map.get(p.name) ?? new Float32Array(p.value.length);
    return { t: this.t, m: params.map((p) => get(this.m, p)), v: params.map((p) => get(this.v, p)) };
  }

  /** Restores what `moments` returned (resuming a checkpoint). */
  restore(params: readonly Param[], s: { t: number; m: Float32Array[]; v: Float32Array[] }): void {
    this.t = s.t;
    params.forEach((p, k) => {
      this.m.set(p.name, s.m[k]!);
      this.v.set(p.name, s.v[k]!);
    });
  }

  /**
   * One update of every param with its gradient (same order). Masked entries get no gradient,
   * no decay and stay exactly 0: W ← mask ⊙ W after the update, as the reference does.
   */
  step(params: readonly Param[], grads: readonly Float32Array[], lr: number): void {
    const s = this.begin(lr);
    params.forEach((p, k) => this.update(s, p, grads[k]!));
  }

  /**
   * Starts a step at learning rate `lr`: its constants for `update`, which then updates each
   * param once, in any order (AdamW is element-wise: a param's update needs only its own
   * gradient, so a param can be updated as soon as its gradient exists and the gradient freed).
   */
  begin(lr: number): AdamWStep {
    this.t++;
    const { beta1, beta2, weightDecay } = this.opts;
    const bc1 = 1 - beta1 ** this.t;
    return { bc2Sqrt: Math.sqrt(1 - beta2 ** this.t), stepSize: lr / bc1, decay: 1 - lr * weightDecay };
  }

  /** Updates one param with its gradient within the step `s` (begin). */
  update(s: AdamWStep, p: Param, g: Float32Array): void {
    const { beta1, beta2, eps } = this.opts;
    const { bc2Sqrt, stepSize, decay } = s;
    const w = p.value;
    if (g.length !== w.length) throw new Error(`AdamW: gradient of ${p.name} has ${g.length} entries, the parameter ${w.length}`);
    let m = this.m.get(p.name);
    let v = this.v.get(p.name);
    if (!m || !v) {
      m = new Float32Array(w.length);
      v = new Float32Array(w.length);
      this.m.set(p.name, m);
      this.v.set(p.name, v);
    }
    const mask = p.mask;
    for (let i = 0; i < w.length; i++) {
      if (mask && mask[i] === 0) {
        w[i] = 0;
        continue;
      }
      const gi = g[i]!;
      const mi = beta1 * m[i]! + (1 - beta1) * gi;
      const vi = beta2 * v[i]! + (1 - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      w[i] = w[i]! * decay - (stepSize * Math.fround(mi)) / (Math.sqrt(Math.fround(vi)) / bc2Sqrt + eps);
    }
  }
}

/** The per-step constants of an AdamW step (AdamW.begin). */
export interface AdamWStep {
  bc2Sqrt: number;
  stepSize: number;
  decay: number;
}

/**
 * Learning rate at step s = 1..steps: linear warm-up to `lr` over `warmup` steps, then cosine
 * decay to exactly 0 at the last step (the reference's schedule).
 */
export function learningRate(s: number, lr: number, steps: number, warmup: number): number {
  if (s <= warmup) return (lr * s) / warmup;
  if (steps <= warmup) return lr;
  return lr * 0.5 * (1 + Math.cos((Math.PI * (s - warmup)) / (steps - warmup)));
}

/** The global L2 norm of the (masked) gradients. */
export function gradNorm(grads: readonly Float32Array[]): number {
  let s = 0;
  for (const g of grads) for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
  return Math.sqrt(s);
}

/** Scales every gradient by maxNorm / norm when the global norm exceeds maxNorm (torch clip_grad_norm_). */
export function clipGradients(grads: readonly Float32Array[], norm: number, maxNorm: number): void {
  if (!(maxNorm > 0) || norm <= maxNorm) return;
  const f = maxNorm / (norm + 1e-6);
  for (const g of grads) for (let i = 0; i < g.length; i++) g[i] = g[i]! * f;
}
