// SparseGPT (Frantar & Alistarh, 2023, "Massive Language Models Can Be Accurately Pruned in
// One-Shot"), Algorithm 1, as IST-DASLab/sparsegpt sparsegpt.py `fasterprune` computes it.
// The column loop itself (OBS updates, lazy batches) is compress/obs.ts, shared with GPTQ; this
// file is what pruning adds to it: the mask.
import { Tensor } from "../../tensor/tensor.js";
import { obsColumnLoop, transpose, transposeBytes } from "../obs.js";
import { kthSmallest, pruneGroup, type NM } from "./select.js";

export interface SparseGPTOptions {
  /** fraction pruned per block (unstructured); ignored with `nm` */
  sparsity: number;
  nm?: NM;
  /** columns per lazy-update block (the paper's B = 128) */
  blockSize: number;
  /**
   * Joint quantization (§3.5): called on each column right after masking, quantizes `col`
   * (length rows) in place. Pruned weights must stay exactly zero (0 is on every asym grid).
   */
  quantizeColumn?: (col: Float32Array, j: number) => void;
}

export interface SparseGPTResult {
  /** pruned (and quantized) weight [rows, cols] */
  W: Tensor;
  /** 1 = kept */
  mask: Uint8Array;
  /** Σ over rows and columns of (w − q)² / [Hinv]²_jj / 2, the OBS error SparseGPT reports */
  loss: number;
}

export async function sparsegpt(W0: Tensor, Hinv: Float32Array, opt: SparseGPTOptions): Promise<SparseGPTResult> {
  const rows = W0.rows;
  const cols = W0.cols;
  const WT = transpose(W0.data, rows, cols); // [cols, rows]
  const prunedT = new Uint8Array(cols * rows); // 1 = pruned, [cols, rows]
  const diag = (j: number) => Hinv[j * cols + j]!;
  let blockStart = 0;

  const loss = await obsColumnLoop(WT, rows, cols, Hinv, opt.blockSize, {
    groupWidth: opt.nm?.m,
    // §3.3 adaptive mask selection: per block, the smallest w² / [Hinv]²_jj (unstructured)
    blockStart: (k1, k2, view) => {
      blockStart = k1;
      if (opt.nm || opt.sparsity <= 0) return;
      const count = k2 - k1;
      const score = new Float32Array(count * rows);
      for (let c = 0; c < count; c++) {
        const d2 = Math.fround(diag(k1 + c) * diag(k1 + c));
        const w = view.column(k1 + c);
        for (let r = 0; r < rows; r++) score[c * rows + r] = Math.fround(w[r]! * w[r]!) / d2;
      }
      const thresh = kthSmallest(score, Math.floor(score.length * opt.sparsity));
      for (let t = 0; t < score.length; t++) if (score[t]! <= thresh) prunedT[k1 * rows + t] = 1;
    },
    column: (j, w, q, view) => {
      // N:M: every M-th column of the block chooses the N smallest of the next M (after the
      // updates so far; the group ends at the block's end, as the reference's W1 slice does)
      if (opt.nm && (j - blockStart) % opt.nm.m === 0) {
        nmMask(view, diag, prunedT, rows, j, Math.min(j + opt.nm.m, blockStart + opt.blockSize, cols), opt.nm);
      }
      for (let r = 0; r < rows; r++) q[r] = prunedT[j * rows + r] ? 0 : w[r]!;
      opt.quantizeColumn?.(q, j);
    },
  });

  for (let i = 0; i < prunedT.length; i++) prunedT[i] = prunedT[i]! ^ 1; // pruned → kept
  const mask = transposeBytes(prunedT, cols, rows);
  return { W: new Tensor(transpose(WT, cols, rows), [rows, cols]), mask, loss };
}

/** Marks, per row, the N smallest w² / [Hinv]²_jj among columns [c0, c1) as pruned. */
function nmMask(
  view: { column(k: number): Float32Array },
  diag: (j: number) => number,
  prunedT: Uint8Array,
  rows: number,
  c0: number,
  c1: number,
  nm: NM,
): void {
  const width = c1 - c0;
  const score = new Float32Array(width);
  const keep = new Uint8Array(width);
  const columns = Array.from({ length: width }, (_, c) => view.column(c0 + c));
  const d2 = Array.from({ length: width }, (_, c) => Math.fround(diag(c0 + c) * diag(c0 + c)));
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < width; c++) score[c] = Math.fround(columns[c]![r]! * columns[c]![r]!) / d2[c]!;
    keep.fill(1);
    pruneGroup(score, 0, 0, width, nm.n, keep);
    for (let c = 0; c < width; c++) if (!keep[c]) prunedT[(c0 + c) * rows + r] = 1;
  }
}

