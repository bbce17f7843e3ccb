// Kept widths rounded to a multiple of m (`--multiple-of m`): quantized runtimes store a row in
// blocks along its input dimension — llama.cpp's q4_0/q8_0 blocks of 32 values, its k-quants
// 256, onnxruntime's MatMulNBits blocks of 32 — and fall back (llama.cpp keeps the tensor in F16)
// when a row length is not a multiple. The row length that structured pruning changes is the
// consumer's input width: down_proj's = kept MLP channels, o_proj's = kept KV groups × the
// group's columns. So a group's kept count must be a multiple of its granularity
// m / gcd(m, columns per unit): m for MLP channels, 1 for attention when a KV group's width is
// already a multiple of m (head_dim 64 and m = 32), more otherwise.
import type { UnitGroup, UnitKind } from "./units.js";

const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));

/**
 * The step of `g`'s kept count for multiple-of `m`: m / gcd(m, columns of a unit); 1 (no
 * rounding) when m is 1 or the step is not below the group's size — a group that small cannot
 * be rounded without emptying it or keeping it whole.
 */
export function unitGranularity(g: UnitGroup, m: number): number {
  if (m <= 1) return 1;
  const a = m / gcd(m, g.columns(0).length);
  return a < g.count ? a : 1;
}

/** The multiples of `a` nearest to `kept` from below and above, within [a, largest multiple ≤ count]; `count` itself when nothing is removed. */
function candidates(count: number, kept: number, a: number): number[] {
  if (a === 1 || kept >= count) return [kept];
  const top = Math.floor(count / a) * a;
  const down = Math.min(top, Math.max(a, Math.floor(kept / a) * a));
  const up = Math.min(top, Math.max(a, Math.ceil(kept / a) * a));
  return down === up ? [down] : [down, up];
}

/** `kept` rounded to the nearest multiple of `a` (ties: the larger), within [a, count]. */
export function nearestKept(count: number, kept: number, a: number): number {
  const c = candidates(count, kept, a);
  return c.reduce((best, k) => (Math.abs(k - kept) < Math.abs(best - kept) || (Math.abs(k - kept) === Math.abs(best - kept) && k > best) ? k : best));
}

/**
 * The kept count of every group of a layer, each a multiple of its granularity, chosen jointly
 * (each group rounded down or up) so the weights removed come closest to those `kept` removes:
 * the rounding of the MLP and of attention can cancel. Ties keep more.
 */
export function roundedKeptCounts(groups: UnitGroup[], kept: Record<UnitKind, number>, m: number): Record<UnitKind, number> {
  const options = groups.map((g) => candidates(g.count, kept[g.kind], unitGranularity(g, m)));
  const target = groups.reduce((s, g) => s + (g.count - kept[g.kind]) * g.weightsPerUnit, 0);
  let best: number[] = [];
  let bestGap = Infinity;
  let bestKept = -1;
  const walk = (i: number, chosen: number[]) => {
    if (i === groups.length) {
      const removed = groups.reduce((s, g, j) => s + (g.count - chosen[j]!) * g.weightsPerUnit, 0);
      const keptWeights = groups.reduce((s, g, j) => s + chosen[j]! * g.weightsPerUnit, 0);
      const gap = Math.abs(removed - target);
      if (gap < bestGap || (gap === bestGap && keptWeights > bestKept)) {
        best = [...chosen];
        bestGap = gap;
        bestKept = keptWeights;
      }
      return;
    }
    for (const k of options[i]!) walk(i + 1, [...chosen, k]);
  };
  walk(0, []);
  return Object.fromEntries(groups.map((g, j) => [g.kind, best[j]!])) as Record<UnitKind, number>;
}

/** The `k` highest-scoring units (ties: the lower index), ascending. */
export function topUnits(scores: ArrayLike<number>, k: number): number[] {
  const order = Array.from({ length: scores.length }, (_, u) => u).sort((a, b) => scores[b]! - scores[a]! || a - b);
  return order.slice(0, k).sort((a, b) => a - b);
}
