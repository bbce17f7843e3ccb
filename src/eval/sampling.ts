// Choosing the next token from logits: greedy (temperature 0) or sampled with temperature,
// top-k and top-p (nucleus) filtering, in the order transformers' generate applies them.
import type { Rng } from "../data/rng.js";

export interface SamplingOptions {
  /** 0 = greedy (argmax, first index on ties) */
  temperature: number;
  /** keep the k most likely tokens (0 = off) */
  topK: number;
  /** keep the smallest set whose probability reaches p (1 = off) */
  topP: number;
}

export function argmax(row: Float32Array): number {
  let best = 0;
  for (let v = 1; v < row.length; v++) if (row[v]! > row[best]!) best = v;
  return best;
}

export function sampleToken(row: Float32Array, opts: SamplingOptions, rng: Rng): number {
  if (opts.temperature <= 0) return argmax(row);
  const V = row.length;
  // candidates sorted by logit, descending
  let order = Array.from({ length: V }, (_, i) => i).sort((a, b) => row[b]! - row[a]! || a - b);
  if (opts.topK > 0 && opts.topK < V) order = order.slice(0, opts.topK);
  const max = row[order[0]!]!;
  let probs = order.map((i) => Math.exp((row[i]! - max) / opts.temperature));
  let sum = probs.reduce((a, b) => a + b, 0);
  if (opts.topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length) {
      acc += probs[keep]! / sum;
      keep++;
      if (acc >= opts.topP) break;
    }
    order = order.slice(0, keep);
    probs = probs.slice(0, keep);
    sum = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.next() * sum;
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i]!;
    if (r < 0) return order[i]!;
  }
  return order[order.length - 1]!;
}
