// LoRA (Hu et al., 2021): W_eff = W + s·B·A with A [r, in], B [out, r], s = alpha / r; only A and B
// train. The block backward gives d loss / d W_eff = dW; the chain rule through W_eff gives
//   dA = s·Bᵀ·dW,   dB = s·dW·Aᵀ
// — two GEMMs of r·out·in each, small next to dW's own N·out·in (r ≪ N tokens). Taking dW
// first keeps one block backward graph for every mode.
import { Rng } from "../data/rng.js";
import { gemm } from "../runtime/kernels.js";

export interface LoraAdapter {
  out: number;
  in: number;
  rank: number;
  /** alpha / rank */
  scale: number;
  /** [rank, in] */
  A: Float32Array;
  /** [out, rank] */
  B: Float32Array;
}

/** peft's default init: A ~ kaiming-uniform(a = √5) = U(−1/√in, 1/√in), B = 0 (so W_eff = W at start). */
export function initLora(out: number, inFeatures: number, rank: number, alpha: number, rng: Rng): LoraAdapter {
  const bound = 1 / Math.sqrt(inFeatures);
  const A = Float32Array.from({ length: rank * inFeatures }, () => (2 * rng.next() - 1) * bound);
  return { out, in: inFeatures, rank, scale: alpha / rank, A, B: new Float32Array(out * rank) };
}

/** W + s·B·A [out, in]. */
export function mergedWeight(W: Float32Array, a: LoraAdapter): Promise<Float32Array> {
  return gemm(a.B, [a.out, a.rank], a.A, [a.rank, a.in], { alpha: a.scale, C: W, beta: 1 });
}

/** d loss / d A and d loss / d B from d loss / d W_eff [out, in]. */
export async function loraGradients(dW: Float32Array, a: LoraAdapter): Promise<{ dA: Float32Array; dB: Float32Array }> {
  const dA = await gemm(a.B, [a.out, a.rank], dW, [a.out, a.in], { transA: true, alpha: a.scale });
  const dB = await gemm(dW, [a.out, a.in], a.A, [a.rank, a.in], { transB: true, alpha: a.scale });
  return { dA, dB };
}
