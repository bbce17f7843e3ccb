// Fidelity to the original model (the distillation view of compression: keep the teacher's
// predictions, not just a low perplexity): over every position of every window,
//   KL(original ‖ compressed) = Σ_v p(v) (log p(v) − log q(v)),  averaged, in nats, and
//   top-1 agreement = how often both models' argmax is the same token (first index on ties).
// Both log-softmaxes are taken in float64 of the float32 logits, as ../shared/reference does.
import type { CausalLM } from "../models/model.js";
import type { Progress } from "./perplexity.js";
import { argmax } from "./sampling.js";

export interface FidelityResult {
  /** mean KL(original ‖ compressed) per position, nats */
  klMean: number;
  /** fraction of positions whose argmax agrees */
  top1Agree: number;
  positions: number;
  windows: number;
  seqlen: number;
}

/** log-softmax of one row in float64. */
function logSoftmax(row: Float32Array, out: Float64Array): void {
  let max = -Infinity;
  for (let v = 0; v < row.length; v++) if (row[v]! > max) max = row[v]!;
  let sum = 0;
  for (let v = 0; v < row.length; v++) sum += Math.exp(row[v]! - max);
  const lse = max + Math.log(sum);
  for (let v = 0; v < row.length; v++) out[v] = row[v]! - lse;
}

/** Compares `model` with `original` on the same windows as perplexity() (every position scored). */
export async function fidelity(
  original: CausalLM,
  model: CausalLM,
  ids: Int32Array,
  opts: { seqlen: number; limitWindows?: number; windowsPerBatch?: number; onProgress?: (p: Progress) => void },
): Promise<FidelityResult> {
  const { seqlen } = opts;
  const V = model.config.vocabSize;
  if (original.config.vocabSize !== V) throw new Error(`the models' vocabularies differ (${original.config.vocabSize} vs ${V})`);
  let windows = Math.floor(ids.length / seqlen);
  if (windows === 0) throw new Error(`the text has ${ids.length} tokens, fewer than one window of ${seqlen}`);
  if (opts.limitWindows !== undefined) windows = Math.min(windows, opts.limitWindows);
  const batch = opts.windowsPerBatch ?? 8;
  const lp = new Float64Array(V);
  const lq = new Float64Array(V);
  let kl = 0;
  let agree = 0;
  for (let w0 = 0; w0 < windows; w0 += batch) {
    const B = Math.min(batch, windows - w0);
    const chunk = ids.subarray(w0 * seqlen, (w0 + B) * seqlen);
    const P = await original.forward(chunk, B, seqlen);
    const Q = await model.forward(chunk, B, seqlen);
    for (let r = 0; r < B * seqlen; r++) {
      const p = P.subarray(r * V, (r + 1) * V);
      const q = Q.subarray(r * V, (r + 1) * V);
      logSoftmax(p, lp);
      logSoftmax(q, lq);
      let s = 0;
      for (let v = 0; v < V; v++) s += Math.exp(lp[v]!) * (lp[v]! - lq[v]!);
      kl += s;
      if (argmax(p) === argmax(q)) agree++;
    }
    opts.onProgress?.({ done: w0 + B, total: windows, tokens: (w0 + B) * seqlen });
  }
  const positions = windows * seqlen;
  return { klMean: kl / positions, top1Agree: agree / positions, positions, windows, seqlen };
}
