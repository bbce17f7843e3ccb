// Choosing which units stay: FLAP (An et al., 2024) and Wanda-sp, as FLAP's lib/prune.py does.
//
// FLAP (metric WIFV, structure AL-AM — the repo's defaults):
//   1. per consumer input column j: WIFV_j = F_j · ‖W[:, j]‖² (fluctuation × squared column norm);
//      attention columns use WIFV² (FLAP squares the o_proj metric; we keep it);
//   2. standardize each layer's column scores, per module: z = (s − mean) / std (unbiased std);
//   3. a unit's score is the mean of its columns' z (one column for an MLP channel);
//   4. all units of all layers and both modules are sorted together, descending, each costing
//      its weights in MLP-channel units (a KV group of a GQA layer costs (2·rep·hd + 2·hd)/3
//      channels; FLAP's int64 cost tensor truncates it, e.g. 512/3 → 170 for MHA, head_dim 128);
//      the threshold is the score where the cumulative cost comes closest to (1 − r)·total, and
//      units scoring strictly above it stay (the unit at the threshold goes too);
//   5. bias compensation: the removed columns' mean input times their weights, b = W[:, R]·μ_R,
//      becomes a bias of the consumer, so the layer's output keeps its mean.
// Wanda-sp: per layer, score column j by mean_r |W[r, j]|·√S_j (S: mean squared norm of input
// j), a unit by the SUM of its columns; remove floor(r·count) units of each group (those below
// the floor(r·count)-th smallest score), in every layer alike; no compensation.
import { nearestKept, roundedKeptCounts, topUnits, unitGranularity } from "./multiple.js";
import { columnSquaredNorms, type FluctuationStats, type SquaredNormStats } from "./stats.js";
import type { KeptUnits, UnitGroup, UnitKind } from "./units.js";

export interface LayerInputs<S> {
  groups: UnitGroup[];
  /** the consumers' weights [out, in], by suffix */
  consumers: Map<string, { W: Float32Array; rows: number; cols: number }>;
  /** the consumers' input statistics, by consumer suffix */
  stats: Map<string, S>;
}

export interface LayerSelection {
  kept: KeptUnits;
  /** bias added to each consumer (FLAP's compensation, or the refit's), by consumer suffix */
  biases: Map<string, Float32Array>;
  /** refitted consumer weights at their original shape (removed columns zero), when reconstructed */
  consumers?: Map<string, Float32Array>;
}

function standardize(x: Float64Array): Float64Array {
  const n = x.length;
  let mean = 0;
  for (const v of x) mean += v;
  mean /= n;
  let ss = 0;
  for (const v of x) ss += (v - mean) ** 2;
  const std = Math.sqrt(ss / (n - 1)); // torch.std: unbiased
  return x.map((v) => (v - mean) / std);
}

function unitScores(group: UnitGroup, columnScores: Float64Array, reduce: "mean" | "sum"): Float64Array {
  const out = new Float64Array(group.count);
  for (let u = 0; u < group.count; u++) {
    const cols = group.columns(u);
    let s = 0;
    for (const j of cols) s += columnScores[j]!;
    out[u] = reduce === "mean" ? s / cols.length : s;
  }
  return out;
}

/** FLAP's per-unit scores of one layer: standardized WIFV, averaged per unit. */
function flapUnitScores(layer: LayerInputs<FluctuationStats>): Map<UnitKind, Float64Array> {
  const scores = new Map<UnitKind, Float64Array>();
  for (const g of layer.groups) {
    const { W, rows, cols } = layer.consumers.get(g.consumer)!;
    const F = layer.stats.get(g.consumer)!.fluctuation;
    const norms = columnSquaredNorms(W, rows, cols);
    const wifv = new Float64Array(cols);
    for (let j = 0; j < cols; j++) {
      const m = F[j]! * norms[j]!;
      wifv[j] = g.kind === "attention" ? m * m : m;
    }
    scores.set(g.kind, unitScores(g, standardize(wifv), "mean"));
  }
  return scores;
}

/** The cost of a unit in MLP-channel units, truncated as FLAP's int64 cost tensor does. */
function unitCost(g: UnitGroup, groups: UnitGroup[]): number {
  const mlp = groups.find((x) => x.kind === "mlp");
  return mlp ? Math.trunc(g.weightsPerUnit / mlp.weightsPerUnit) : 1;
}

/** b = W[:, R]·μ_R for the removed columns R of a consumer W [rows, cols]. */
function compensationBias(W: Float32Array, rows: number, cols: number, mean: Float64Array, keptCols: ReadonlySet<number>): Float32Array {
  const b = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < cols; j++) if (!keptCols.has(j)) s += W[r * cols + j]! * mean[j]!;
    b[r] = s;
  }
  return b;
}

/**
 * FLAP AL-AM: one global threshold over every unit of every layer, with bias compensation.
 * `uniform` instead removes floor(r·count) units of every group in every layer (equal widths, the
 * counts Wanda-sp removes), the lowest FLAP scores first, still with compensation.
 * `multipleOf` m > 1 (multiple.ts): each layer's kept count of a group rounded to the nearest
 * multiple of its granularity (global threshold), or the equal counts rounded jointly (uniform);
 * the highest-scoring units stay.
 */
export function flapSelect(layers: LayerInputs<FluctuationStats>[], ratio: number, uniform = false, multipleOf = 1): LayerSelection[] {
  if (uniform) {
    return layers.map((l) => {
      const scores = flapUnitScores(l);
      const kept = uniformKept(l.groups, scores, ratio, multipleOf);
      return { kept, biases: compensation(l, kept) };
    });
  }
  const all: { score: number; cost: number; layer: number; kind: UnitKind; unit: number }[] = [];
  const perLayer = layers.map((l) => flapUnitScores(l));
  layers.forEach((l, i) => {
    for (const g of l.groups) {
      const cost = unitCost(g, l.groups);
      perLayer[i]!.get(g.kind)!.forEach((score, unit) => all.push({ score, cost, layer: i, kind: g.kind, unit }));
    }
  });
  all.sort((a, b) => b.score - a.score);
  const total = all.reduce((s, u) => s + u.cost, 0);
  const target = total * (1 - ratio);
  let best = 0;
  let bestGap = Infinity;
  let cum = 0;
  all.forEach((u, i) => {
    cum += u.cost;
    const gap = Math.abs(cum - target);
    if (gap < bestGap) {
      bestGap = gap;
      best = i;
    }
  });
  const threshold = all[best]!.score;
  return layers.map((l, i) => {
    const kept = {} as KeptUnits;
    for (const g of l.groups) {
      const s = perLayer[i]!.get(g.kind)!;
      kept[g.kind] = [...s.keys()].filter((u) => s[u]! > threshold);
      if (kept[g.kind].length === 0) throw new Error(`ratio ${ratio} would remove every ${g.kind} unit of layer ${i}`);
      const a = unitGranularity(g, multipleOf);
      if (a > 1) kept[g.kind] = topUnits(s, nearestKept(g.count, kept[g.kind].length, a));
    }
    return { kept, biases: compensation(l, kept) };
  });
}

/** FLAP's bias for each consumer of a layer, given the kept units. */
function compensation(l: LayerInputs<FluctuationStats>, kept: KeptUnits): Map<string, Float32Array> {
  const biases = new Map<string, Float32Array>();
  for (const g of l.groups) {
    const { W, rows, cols } = l.consumers.get(g.consumer)!;
    const keptCols = new Set(kept[g.kind].flatMap((u) => g.columns(u)));
    biases.set(g.consumer, compensationBias(W, rows, cols, l.stats.get(g.consumer)!.mean, keptCols));
  }
  return biases;
}

/** The units left after removing the `removed` lowest scores (ties at the cut stay), ascending. */
function keepHighest(s: Float64Array, removed: number, kind: UnitKind): number[] {
  if (removed >= s.length) throw new Error(`ratio would remove every ${kind} unit of a layer (${s.length})`);
  const thresh = [...s].sort((a, b) => a - b)[removed]!;
  return [...s.keys()].filter((u) => s[u]! >= thresh);
}

/** Wanda-sp's per-unit scores of one layer: Σ over the unit's columns of mean_r |W|·√S. */
function wandaSpUnitScores(layer: LayerInputs<SquaredNormStats>): Map<UnitKind, Float64Array> {
  const scores = new Map<UnitKind, Float64Array>();
  for (const g of layer.groups) {
    const { W, rows, cols } = layer.consumers.get(g.consumer)!;
    const S = layer.stats.get(g.consumer)!.scalerRow;
    const colScore = new Float64Array(cols);
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) colScore[j]! += Math.abs(W[r * cols + j]!);
    for (let j = 0; j < cols; j++) colScore[j] = (colScore[j]! / rows) * Math.sqrt(S[j]!);
    scores.set(g.kind, unitScores(g, colScore, "sum"));
  }
  return scores;
}

/** Units Wanda-sp removes from a group of `count`: floor(r·count), as FLAP's int(ratio·n). */
function wandaSpRemoved(ratio: number, count: number): number {
  return Math.floor(ratio * count);
}

/** Wanda-sp for one layer: the same fraction of every group removed, lowest scores first (`multipleOf`: see uniformKept). */
export function wandaSpSelect(layer: LayerInputs<SquaredNormStats>, ratio: number, multipleOf = 1): LayerSelection {
  return { kept: uniformKept(layer.groups, wandaSpUnitScores(layer), ratio, multipleOf), biases: new Map() };
}

/**
 * The equal-widths rule (Wanda-sp, FLAP/obs-sp --uniform): floor(r·count) units of each group
 * removed, lowest scores first; with `multipleOf` m > 1 the kept counts are first rounded to
 * multiples (jointly, closest to the same weights removed: multiple.ts).
 */
function uniformKept(groups: UnitGroup[], scores: Map<UnitKind, Float64Array>, ratio: number, multipleOf: number): KeptUnits {
  const kept = {} as KeptUnits;
  const counts = uniformKeptCounts(groups, ratio, multipleOf);
  for (const g of groups) {
    const s = scores.get(g.kind)!;
    const removed = wandaSpRemoved(ratio, g.count);
    if (removed >= g.count) throw new Error(`ratio would remove every ${g.kind} unit of a layer (${g.count})`);
    // m = 1: FLAP's rule exactly (ties at the cut stay); else exactly the rounded count
    kept[g.kind] = multipleOf > 1 ? topUnits(s, counts[g.kind]) : keepHighest(s, removed, g.kind);
  }
  return kept;
}

/** Kept units of each group under the equal-widths rule, rounded to multiples when m > 1. */
export function uniformKeptCounts(groups: UnitGroup[], ratio: number, multipleOf: number): Record<UnitKind, number> {
  const kept = Object.fromEntries(groups.map((g) => [g.kind, g.count - wandaSpRemoved(ratio, g.count)])) as Record<UnitKind, number>;
  return multipleOf > 1 ? roundedKeptCounts(groups, kept, multipleOf) : kept;
}
