// OWL — outlier-weighted layerwise sparsity (Yin et al., 2024; github.com/luuyin/OWL,
// lib/prune_all.py, prune_{wanda,sparsegpt,mag}_outlier). Layers with more outliers keep more
// weights. What we follow from the reference code:
//   - the outlier ratios are measured in a first pass over the *dense* model (its calibration
//     activations, each layer fed the dense outputs of the previous one), before anything is pruned;
//   - a layer's score matrix is the Wanda metric |W_ij|·‖X_j‖₂ of all its (targeted) linears,
//     concatenated; its outlier ratio is the share of scores > M × their mean (check_outlier_mean:
//     the mean over all elements, so large linears weigh more);
//   - ratios are mapped linearly onto [0, 2λ] (min → 0, max → 2λ), shifted so that their plain,
//     unweighted mean over layers (np.mean) equals the target density 1 − S, and each layer's
//     sparsity is 1 − that density; a sparsity ≤ 0 becomes 0.01 (as in prune_wanda_outlier).
//     Every decoder layer of the supported families has the same linears, so the unweighted mean
//     is also the parameter-weighted one: the model's sparsity is the target.
//   - defaults M = 5, λ = 0.08: the values of OWL's README scripts for LLaMA unstructured sparsity.
// The same ratios serve magnitude, Wanda and SparseGPT (OWL computes them with the Wanda metric for
// all three); the pruning pass that follows is the usual sequential pipeline.
import type { CalibrationBatch } from "../../data/calibration.js";
import type { CausalLM } from "../../models/model.js";
import type { Stage } from "../registry.js";
import { probeDenseModel } from "./probe.js";

export interface OwlOptions {
  /** outlier threshold: scores above M × the layer's mean score */
  m: number;
  /** the layers' sparsities span 2λ (OWL's "S ± λ"; after the shift to mean S not symmetric) */
  lambda: number;
}

export const OWL_DEFAULTS: OwlOptions = { m: 5, lambda: 0.08 };

export interface OwlLayer {
  layer: number;
  /** share of the layer's Wanda scores above M × their mean */
  outlierRatio: number;
  sparsity: number;
  /** the layer's targeted linears */
  linears: string[];
}

/**
 * Share of `scores` (all of one layer's linears) above m × their mean. Each array is one linear's
 * |W_ij|·‖X_j‖ scores.
 */
export function outlierRatio(scores: Float32Array[], m: number): number {
  let sum = 0;
  let n = 0;
  for (const s of scores) {
    for (const v of s) sum += v;
    n += s.length;
  }
  if (n === 0) return 0;
  const threshold = (sum / n) * m;
  let count = 0;
  for (const s of scores) for (const v of s) if (v > threshold) count++;
  return count / n;
}

/** Wanda's score |W_ij|·‖X_j‖₂ of a [rows, cols] weight, from ‖X_j‖² (up to a common factor). */
export function wandaScores(W: Float32Array, cols: number, normsSquared: Float32Array): Float32Array {
  const norms = normsSquared.map(Math.sqrt);
  const out = new Float32Array(W.length);
  for (let i = 0; i < W.length; i++) out[i] = Math.abs(W[i]!) * norms[i % cols]!;
  return out;
}

/** Per-layer sparsities from outlier ratios, as OWL maps them (see the header). */
export function owlSparsities(ratios: number[], target: number, lambda: number): number[] {
  const min = Math.min(...ratios);
  const max = Math.max(...ratios);
  // OWL divides by (max − min); with equal ratios (or one layer) every layer gets the target
  if (!(max > min)) return ratios.map(() => target);
  const scaled = ratios.map((r) => ((r - min) / (max - min)) * lambda * 2);
  const mean = scaled.reduce((a, b) => a + b, 0) / scaled.length;
  return scaled.map((d) => {
    const s = 1 - (d - mean + (1 - target));
    if (s >= 1) throw new Error(`OWL: target sparsity ${target} + λ ${lambda} gives a layer sparsity ≥ 1`);
    return s <= 0 ? 0.01 : s;
  });
}

/**
 * The first pass: outlier ratios of every decoder layer that has targeted linears, measured on the
 * dense model, and the sparsity OWL gives each.
 */
export async function owlAllocation(
  model: CausalLM,
  calibration: CalibrationBatch,
  select: Pick<Stage, "targets" | "ignore">,
  target: number,
  o: OwlOptions,
  warn?: (m: string) => void,
): Promise<OwlLayer[]> {
  const byLayer = new Map<number, { scores: Float32Array[]; linears: string[] }>();
  await probeDenseModel(model, calibration, select, "diag", async (l) => {
    const entry = byLayer.get(l.layer) ?? { scores: [], linears: [] };
    byLayer.set(l.layer, entry);
    entry.scores.push(wandaScores(l.W.data, l.W.cols, l.stats.diag()));
    entry.linears.push(l.name);
  }, { warn });
  const layers = [...byLayer.keys()].sort((a, b) => a - b);
  const ratios = layers.map((i) => outlierRatio(byLayer.get(i)!.scores, o.m));
  const sparsities = owlSparsities(ratios, target, o.lambda);
  return layers.map((layer, k) => ({ layer, outlierRatio: ratios[k]!, sparsity: sparsities[k]!, linears: byLayer.get(layer)!.linears }));
}
