// Magnitude pruning: drop the smallest |W|. The baseline of SparseGPT's and Wanda's papers
// (wanda lib/prune.py prune_magnitude; sparsegpt llama.py --gmp): one threshold over the whole
// matrix by default, per output row with scope "row", or N:M.
import { Tensor } from "../../tensor/tensor.js";
import type { CompressedLinear } from "../../formats/compressed-linear.js";
import { applyMask, nmMask, rowMask, thresholdMask, type NM } from "./select.js";

export interface MagnitudeOptions {
  sparsity: number;
  scope: "layer" | "row";
  nm?: NM;
}

export function magnitudePrune(name: string, W: Tensor, opt: MagnitudeOptions): CompressedLinear {
  const score = new Float32Array(W.size);
  for (let i = 0; i < W.size; i++) score[i] = Math.abs(W.data[i]!);
  const mask = opt.nm
    ? nmMask(score, W.rows, W.cols, opt.nm)
    : opt.scope === "row"
      ? rowMask(score, W.rows, W.cols, opt.sparsity)
      : thresholdMask(score, opt.sparsity);
  return { name, weight: new Tensor(applyMask(W.data.slice(), mask), W.shape), mask };
}
