// The column loop SparseGPT and GPTQ share (SparseGPT Alg. 1, GPTQ Alg. 1): walk the columns of W
// left to right; each column is replaced by its compressed values q (pruned or quantized — the
// rule decides), and its error (w − q) / [Hinv]_kk is spread over the columns to its right with the
// row of Hinv (the OBS update, SparseGPT Eq. 3). Written here once; the methods supply the rule.
//
// How the updates are scheduled (the result is the same as applying each update at once, up to
// float rounding):
//   - Columns live in Wᵀ (one contiguous row of memory per column of W).
//   - Blocks of `blockSize` (128) columns, "lazy batch updates" (GPTQ §4 Step 2). Before a block
//     starts, it receives the updates of every earlier block in one GEMM
//         Wᵀ[k1:k2] −= Hinv[0:k1, k1:k2]ᵀ · Err[0:k1]
//     ("left-looking": the GEMM's output is one block, not every later column, which keeps the
//     per-block memory traffic small and the GEMM's inner dimension long).
//   - Inside a block, sub-blocks of 8 columns (SUB_BLOCK) do the same with the block's earlier sub-blocks; only
//     within a sub-block are updates applied column by column in JS.
// A rule sees a column after every update from the columns before it, exactly as in the paper.
import { subtractProduct } from "../runtime/kernels.js";

/** Columns per sub-block: the only ones updated by JS loops, one column at a time (8 measured
 * faster than 16 and 32 on TinyLlama shapes: fewer JS multiply-adds, GEMM calls still cheap). */
const SUB_BLOCK = 8;

export interface BlockView {
  rows: number;
  /** the current values of column k (processing order), k inside the current block */
  column(k: number): Float32Array;
  /**
   * Columns [c0, c1) as they stand at the start of the current block — every earlier block's
   * update applied, none of this block's — transposed like the working matrix: [c1 − c0, rows].
   * Only valid inside `blockStart`.
   */
  atBlockStart(c0: number, c1: number): Promise<Float32Array>;
}

export interface ObsRule {
  /** N:M groups must not straddle sub-blocks: sub-blocks are made a multiple of this width */
  groupWidth?: number;
  /** A block [k1, k2) begins (its columns hold all earlier blocks' updates, none of its own). */
  blockStart?(k1: number, k2: number, view: BlockView): void | Promise<void>;
  /** Column k: `w` is its current value; write its compressed values into `q`. */
  column(k: number, w: Float32Array, q: Float32Array, view: BlockView): void;
}

/**
 * Runs the loop on WT [cols, rows] (column k of the working matrix is WT[k]; replaced in place by
 * its compressed values) with Hinv [cols, cols] upper triangular. Returns Σ (w − q)² / [Hinv]²_kk / 2.
 */
export async function obsColumnLoop(WT: Float32Array, rows: number, cols: number, Hinv: Float32Array, blockSize: number, rule: ObsRule): Promise<number> {
  const Err = new Float32Array(cols * rows); // Err[k] = (w − q) / Hinv_kk for processed columns
  const q = new Float32Array(rows);
  const width = rule.groupWidth ?? 1;
  const sub = Math.max(width, Math.ceil(SUB_BLOCK / width) * width);
  let loss = 0;
  let inBlockStart = false;
  let k1 = 0;
  let k2 = 0;

  // Hinv[a0:a1, b0:b1] as a contiguous [a1 − a0, b1 − b0] matrix: a stack of row segments
  const hinvBlock = (a0: number, a1: number, b0: number, b1: number): Float32Array => {
    const m = b1 - b0;
    const out = new Float32Array((a1 - a0) * m);
    for (let a = a0; a < a1; a++) out.set(Hinv.subarray(a * cols + b0, a * cols + b1), (a - a0) * m);
    return out;
  };
  /** WT[t0:t1] −= Hinv[e0:e1, t0:t1]ᵀ · Err[e0:e1], the updates of columns e0..e1 on t0..t1 */
  const applyErrors = async (target: Float32Array, t0: number, t1: number, e0: number, e1: number) => {
    if (e1 <= e0) return;
    await subtractProduct(target, hinvBlock(e0, e1, t0, t1), Err.subarray(e0 * rows, e1 * rows), t1 - t0, e1 - e0, rows, { transA: true });
  };

  const view: BlockView = {
    rows,
    column: (k) => WT.subarray(k * rows, (k + 1) * rows),
    atBlockStart: async (c0, c1) => {
      if (!inBlockStart || c0 < k1) throw new Error("atBlockStart: only while a block starts, for columns from the block on");
      const colsT = WT.slice(c0 * rows, c1 * rows); // [c1 − c0, rows]
      // columns after the current block have not received the earlier blocks' updates yet
      const from = Math.max(c0, k2);
      if (from < c1) await applyErrors(colsT.subarray((from - c0) * rows), from, c1, 0, k1);
      return colsT;
    },
  };

  for (k1 = 0; k1 < cols; k1 += blockSize) {
    k2 = Math.min(k1 + blockSize, cols);
    await applyErrors(WT.subarray(k1 * rows, k2 * rows), k1, k2, 0, k1); // lazy batch update
    inBlockStart = true;
    await rule.blockStart?.(k1, k2, view);
    inBlockStart = false;
    for (let s1 = k1; s1 < k2; s1 += sub) {
      const s2 = Math.min(s1 + sub, k2);
      await applyErrors(WT.subarray(s1 * rows, s2 * rows), s1, s2, k1, s1);
      for (let k = s1; k < s2; k++) {
        const w = WT.subarray(k * rows, (k + 1) * rows);
        rule.column(k, w, q, view);
        const d = Hinv[k * cols + k]!;
        const err = Err.subarray(k * rows, (k + 1) * rows);
        for (let r = 0; r < rows; r++) {
          const e = (w[r]! - q[r]!) / d;
          err[r] = e;
          loss += (e * e) / 2;
          w[r] = q[r]!;
        }
        // the OBS update of the sub-block's remaining columns, one column at a time
        const hRow = k * cols;
        for (let c = k + 1; c < s2; c++) {
          const h = Hinv[hRow + c]!;
          if (h === 0) continue;
          const wc = WT.subarray(c * rows, (c + 1) * rows);
          for (let r = 0; r < rows; r++) wc[r] = wc[r]! - err[r]! * h;
        }
      }
    }
  }
  return loss;
}

/** Aᵀ of a row-major [rows, cols] float32 matrix, in 16×16 tiles so that reads and writes stay in cache. */
export function transpose(A: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let r0 = 0; r0 < rows; r0 += 16) {
    const r1 = Math.min(r0 + 16, rows);
    for (let c0 = 0; c0 < cols; c0 += 16) {
      const c1 = Math.min(c0 + 16, cols);
      for (let c = c0; c < c1; c++) {
        let o = c * rows + r0;
        for (let i = r0 * cols + c; i < r1 * cols; i += cols) out[o++] = A[i]!;
      }
    }
  }
  return out;
}

/** The same for a byte matrix (masks). A separate function keeps each one monomorphic (fast). */
export function transposeBytes(A: Uint8Array, rows: number, cols: number): Uint8Array {
  const out = new Uint8Array(rows * cols);
  for (let r0 = 0; r0 < rows; r0 += 16) {
    const r1 = Math.min(r0 + 16, rows);
    for (let c0 = 0; c0 < cols; c0 += 16) {
      const c1 = Math.min(c0 + 16, cols);
      for (let c = c0; c < c1; c++) {
        let o = c * rows + r0;
        for (let i = r0 * cols + c; i < r1 * cols; i += cols) out[o++] = A[i]!;
      }
    }
  }
  return out;
}
