// Wanda (Sun et al., 2023, "A Simple and Effective Pruning Approach for LLMs"), §3:
// score S_ij = |W_ij| · ‖X_j‖₂, compared within each output row (Eq. 1–2), or within each group
// of M inputs for N:M. No weight update. ‖X_j‖² is proportional to diag(H), which is all the
// pipeline collects for it (the constant factor does not change any comparison).
import { Tensor } from "../../tensor/tensor.js";
import type { CompressedLinear } from "../../formats/compressed-linear.js";
import { applyMask, nmMask, rowMask, type NM } from "./select.js";

export interface WandaOptions {
  sparsity: number;
  nm?: NM;
}

export function wandaPrune(name: string, W: Tensor, diag: Float32Array, opt: WandaOptions): CompressedLinear {
  const rows = W.rows;
  const cols = W.cols;
  const norm = new Float32Array(cols);
  for (let j = 0; j < cols; j++) norm[j] = Math.sqrt(diag[j]!);
  const score = new Float32Array(W.size);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) score[r * cols + j] = Math.abs(W.data[r * cols + j]!) * norm[j]!;
  }
  const mask = opt.nm ? nmMask(score, rows, cols, opt.nm) : rowMask(score, rows, cols, opt.sparsity);
  return { name, weight: new Tensor(applyMask(W.data.slice(), mask), W.shape), mask };
}
