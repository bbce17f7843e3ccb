// Perplexity with the papers' protocol (GPTQ / SparseGPT / Wanda `llama_eval`):
// the whole text tokenized once (BOS at the start only), cut into floor(n / seqlen)
// non-overlapping windows, the remainder dropped; each window scored on its own from position 0;
// tokens 1..seqlen-1 of each window are predicted; ppl = exp(Σ NLL / #predicted).
// The reference scorer takes log-softmax in float64; here it runs in float32 inside onnxruntime
// (only N numbers leave the graph instead of N·V logits) and is summed in float64. On
// stories260K / TinyStories the two perplexities agree to ~1e-7 relative (test/eval).
import type { CausalLM } from "../models/model.js";

export interface PerplexityResult {
  perplexity: number;
  /** mean negative log-likelihood per predicted token, nats */
  meanNll: number;
  /** tokens in the whole text (with BOS) */
  tokens: number;
  windows: number;
  /** predicted (scored) tokens: windows · (seqlen − 1) */
  predicted: number;
  seqlen: number;
}

export interface Progress {
  done: number;
  total: number;
  /** tokens processed so far */
  tokens: number;
}

/** How many windows to run together: large batches amortise per-run overhead, within memory. */
export function windowsPerBatch(model: CausalLM, seqlen: number): number {
  const c = model.config;
  const scoresBytes = c.numHeads * seqlen * seqlen * 4; // attention scores of one window
  const logitsBytes = seqlen * c.vocabSize * 4;
  const activationBytes = seqlen * Math.max(c.intermediateSize, c.hiddenSize) * 4 * 4;
  const perWindow = scoresBytes + logitsBytes + activationBytes;
  return Math.max(1, Math.min(64, Math.floor((256 * 1024 ** 2) / perWindow)));
}

/** Σ over rows of (logsumexp(row) − row[target]) in float64. `targets[r]` < 0 skips row r. */
export function sumNll(logits: Float32Array, V: number, targets: Int32Array): number {
  let total = 0;
  for (let r = 0; r < targets.length; r++) {
    const t = targets[r]!;
    if (t < 0) continue;
    const off = r * V;
    let max = -Infinity;
    for (let v = 0; v < V; v++) if (logits[off + v]! > max) max = logits[off + v]!;
    let s = 0;
    for (let v = 0; v < V; v++) s += Math.exp(logits[off + v]! - max);
    total += max + Math.log(s) - logits[off + t]!;
  }
  return total;
}

export async function perplexity(
  model: CausalLM,
  ids: Int32Array,
  opts: { seqlen: number; limitWindows?: number; onProgress?: (p: Progress) => void },
): Promise<PerplexityResult> {
  const { seqlen } = opts;
  if (!Number.isInteger(seqlen) || seqlen < 2) throw new Error(`seqlen must be an integer ≥ 2, got ${seqlen}`);
  let windows = Math.floor(ids.length / seqlen);
  if (windows === 0) throw new Error(`the text has ${ids.length} tokens, fewer than one window of ${seqlen}`);
  if (opts.limitWindows !== undefined) windows = Math.min(windows, opts.limitWindows);
  const batch = windowsPerBatch(model, seqlen);
  let nll = 0;
  for (let w0 = 0; w0 < windows; w0 += batch) {
    const B = Math.min(batch, windows - w0);
    const chunk = ids.subarray(w0 * seqlen, (w0 + B) * seqlen);
    // the row at position p predicts token p+1 of the same window; the last position predicts nothing
    const targets = new Int32Array(B * seqlen);
    for (let b = 0; b < B; b++) {
      for (let p = 0; p + 1 < seqlen; p++) targets[b * seqlen + p] = chunk[b * seqlen + p + 1]!;
    }
    const rowNll = await model.tokenNll(await model.hidden(chunk, B, seqlen), targets);
    for (let b = 0; b < B; b++) for (let p = 0; p + 1 < seqlen; p++) nll += rowNll[b * seqlen + p]!;
    opts.onProgress?.({ done: w0 + B, total: windows, tokens: (w0 + B) * seqlen });
  }
  const predicted = windows * (seqlen - 1);
  const meanNll = nll / predicted;
  return { perplexity: Math.exp(meanNll), meanNll, tokens: ids.length, windows, predicted, seqlen };
}

/** The papers' default window: the model's length, capped at 2048. */
export function defaultSeqlen(model: CausalLM): number {
  return Math.min(model.config.maxPositions, 2048);
}
