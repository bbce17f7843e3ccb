// SparseGPT (Frantar & Alistarh, 2023, "Massive Language Models Can Be Accurately Pruned in
// One-Shot"), Algorithm 1, as IST-DASLab/sparsegpt sparsegpt.py `fasterprune` computes it.
//
// Layout: the working copy is Wᵀ [cols, rows], so column j of W (what the OBS update touches) is
// one contiguous row of memory, and "the columns after the block" are a contiguous tail, which
// the lazy update hands to one GEMM without copying.
import { gemm } from "../../runtime/kernels.js";
import { Tensor } from "../../tensor/tensor.js";
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
  const q = new Float32Array(rows);
  let loss = 0;

  for (let i1 = 0; i1 < cols; i1 += opt.blockSize) {
    const i2 = Math.min(i1 + opt.blockSize, cols);
    const count = i2 - i1;

    // §3.3 adaptive mask for the block: the smallest w² / [Hinv]²_jj (unstructured)
    if (!opt.nm && opt.sparsity > 0) {
      const score = new Float32Array(count * rows);
      for (let c = 0; c < count; c++) {
        const d = Hinv[(i1 + c) * cols + i1 + c]!;
        const d2 = Math.fround(d * d);
        for (let r = 0; r < rows; r++) {
          const w = WT[(i1 + c) * rows + r]!;
          score[c * rows + r] = Math.fround(w * w) / d2;
        }
      }
      const thresh = kthSmallest(score, Math.floor(score.length * opt.sparsity));
      for (let t = 0; t < score.length; t++) if (score[t]! <= thresh) prunedT[i1 * rows + t] = 1;
    }

    const Err1 = new Float32Array(count * rows);
    for (let i = 0; i < count; i++) {
      const j = i1 + i;
      const w = WT.subarray(j * rows, (j + 1) * rows);
      const d = Hinv[j * cols + j]!;

      // N:M: every M-th column chooses the N smallest of the next M (after the updates so far)
      if (opt.nm && i % opt.nm.m === 0) nmBlockMask(WT, Hinv, prunedT, rows, cols, j, Math.min(j + opt.nm.m, i2), opt.nm);

      for (let r = 0; r < rows; r++) q[r] = prunedT[j * rows + r] ? 0 : w[r]!;
      opt.quantizeColumn?.(q, j);

      // OBS update of the remaining columns of the block (Eq. 3), one column at a time
      const err = Err1.subarray(i * rows, (i + 1) * rows);
      for (let r = 0; r < rows; r++) {
        const e = (w[r]! - q[r]!) / d;
        err[r] = e;
        loss += (e * e) / 2;
      }
      w.set(q);
      const hRow = j * cols;
      for (let c = j + 1; c < i2; c++) {
        const h = Hinv[hRow + c]!;
        if (h === 0) continue;
        const wc = WT.subarray(c * rows, (c + 1) * rows);
        for (let r = 0; r < rows; r++) wc[r] = wc[r]! - err[r]! * h;
      }
    }

    // §3.4 lazy batch update of every later column: W[:, i2:] −= Err1 · Hinv[i1:i2, i2:], i.e.
    // Wᵀ[i2:] −= Hinv[i1:i2, i2:]ᵀ · Err1ᵀ, one GEMM
    if (i2 < cols) {
      const rest = cols - i2;
      const hBlock = new Float32Array(count * rest);
      for (let c = 0; c < count; c++) hBlock.set(Hinv.subarray((i1 + c) * cols + i2, (i1 + c + 1) * cols), c * rest);
      const tail = WT.subarray(i2 * rows);
      const updated = await gemm(hBlock, [count, rest], Err1, [count, rows], { transA: true, alpha: -1, C: tail, beta: 1 });
      tail.set(updated);
    }
  }

  const mask = new Uint8Array(rows * cols);
  for (let j = 0; j < cols; j++) for (let r = 0; r < rows; r++) mask[r * cols + j] = prunedT[j * rows + r] ? 0 : 1;
  return { W: new Tensor(transpose(WT, cols, rows), [rows, cols]), mask, loss };
}

/** Marks, per row, the N smallest w² / [Hinv]²_jj among columns [c0, c1) as pruned. */
function nmBlockMask(WT: Float32Array, Hinv: Float32Array, prunedT: Uint8Array, rows: number, cols: number, c0: number, c1: number, nm: NM): void {
  const width = c1 - c0;
  const score = new Float32Array(width);
  const keep = new Uint8Array(width);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < width; c++) {
      const d = Hinv[(c0 + c) * cols + c0 + c]!;
      const w = WT[(c0 + c) * rows + r]!;
      score[c] = Math.fround(w * w) / Math.fround(d * d);
    }
    keep.fill(1);
    pruneGroup(score, 0, 0, width, nm.n, keep);
    for (let c = 0; c < width; c++) if (!keep[c]) prunedT[(c0 + c) * rows + r] = 1;
  }
}

export function transpose(A: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const off = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = A[off + c]!;
  }
  return out;
}
