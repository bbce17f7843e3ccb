// GPTQ (Frantar et al., 2023, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers"), Algorithm 1, as IST-DASLab/gptq gptq.py `fasterquant` computes it.
// Same skeleton as prune/sparsegpt.ts — the column loop quantizes where SparseGPT masks:
//   §4 Step 1  arbitrary order → columns quantized left to right (act-order: by decreasing H_jj)
//   §4 Step 2  lazy batch updates: the OBS error of a 128-column block reaches the later columns
//              in one GEMM
//   §4 Step 3  Cholesky reformulation: Hinv = upper Cholesky factor of H⁻¹ (compress/cholesky.ts)
// Groups (§5 "grouping"): without static groups, a group's (scale, zero) are computed when the
// loop reaches its first column, from W as it is then — updated by the earlier blocks' lazy
// updates but not by the current block's in-block updates (the repo reads W, not the block copy).
import { gemm } from "../../runtime/kernels.js";
import { Tensor } from "../../tensor/tensor.js";
import { transpose } from "../prune/sparsegpt.js";
import type { QuantGrid } from "../types.js";
import { findParams, maxQ, newGrid, quantize, setGroupParams, type GridOptions, type RowParams } from "./grid.js";

export interface GPTQOptions extends GridOptions {
  /** input columns per group; ≥ cols (or ≤ 0) = one grid per output row */
  groupSize: number;
  blockSize: number;
  /** quantize columns in order of decreasing H_jj; `perm` must then be given */
  actOrder: boolean;
  /** all groups' params from the original W up front, in natural column order */
  staticGroups: boolean;
  /** 1 = kept; pruned weights (0) stay exactly zero, so a pruned model stays pruned */
  mask?: Uint8Array;
}

export interface GPTQResult {
  /** quantized weight [rows, cols], in the original column order */
  W: Tensor;
  grid: QuantGrid;
  /** Σ (w − q)² / [Hinv]²_jj / 2 */
  loss: number;
}

/**
 * @param W0    weight [rows, cols] (dead input columns already zeroed)
 * @param Hinv  upper Cholesky factor of the damped H⁻¹, of the *permuted* H when `perm` is given
 * @param perm  act-order column order (perm[k] = original column quantized k-th)
 * @param perChannel (scale, zero) per row computed by the caller from the original W, for the
 *              per-channel case (the repo computes them before the dead-input fix)
 */
export async function gptq(W0: Tensor, Hinv: Float32Array, opt: GPTQOptions, perm?: Int32Array, perChannel?: RowParams): Promise<GPTQResult> {
  const rows = W0.rows;
  const cols = W0.cols;
  const maxq = maxQ(opt.bits);
  const grouped = opt.groupSize > 0 && opt.groupSize < cols;
  const gs = grouped ? opt.groupSize : cols;
  const dynamicActOrder = grouped && opt.actOrder && !opt.staticGroups;
  const order = perm ?? Int32Array.from({ length: cols }, (_, j) => j);
  // dynamic act-order groups are runs of gs columns in quantization order: scattered in W
  let gIdx: Int32Array | undefined;
  if (dynamicActOrder) {
    gIdx = new Int32Array(cols);
    for (let k = 0; k < cols; k++) gIdx[order[k]!] = Math.floor(k / gs);
  }
  const grid = newGrid(rows, cols, { bits: opt.bits, sym: opt.sym, groupSize: gs, gIdx });

  // static groups (and per channel): every group's params before the loop, in natural order
  const staticParams: RowParams[] = [];
  if (!grouped) {
    const p = perChannel ?? findParams(W0, opt);
    staticParams.push(p);
    setGroupParams(grid, 0, p);
  } else if (opt.staticGroups) {
    for (let g = 0, c0 = 0; c0 < cols; g++, c0 += gs) {
      staticParams.push(findParams(W0, opt, c0, Math.min(c0 + gs, cols)));
      setGroupParams(grid, g, staticParams[g]!);
    }
  }

  // working copy in quantization order, transposed: WT[k] = column order[k] of W
  const WT = new Float32Array(cols * rows);
  const W = W0.data;
  for (let k = 0; k < cols; k++) {
    const j = order[k]!;
    for (let r = 0; r < rows; r++) WT[k * rows + r] = W[r * cols + j]!;
  }
  const keptT = opt.mask ? new Uint8Array(cols * rows) : null;
  if (keptT) for (let k = 0; k < cols; k++) for (let r = 0; r < rows; r++) keptT[k * rows + r] = opt.mask![r * cols + order[k]!]!;

  const q = new Float32Array(rows);
  let params: RowParams = staticParams[0] ?? { scale: new Float32Array(rows), zero: new Float32Array(rows) };
  let loss = 0;
  for (let i1 = 0; i1 < cols; i1 += opt.blockSize) {
    const i2 = Math.min(i1 + opt.blockSize, cols);
    const count = i2 - i1;
    const blockStart = grouped && !opt.staticGroups ? WT.slice(i1 * rows, i2 * rows) : null; // W before in-block updates
    const Err1 = new Float32Array(count * rows);
    for (let i = 0; i < count; i++) {
      const k = i1 + i;
      const w = WT.subarray(k * rows, (k + 1) * rows);
      const d = Hinv[k * cols + k]!;

      if (grouped && !opt.staticGroups && k % gs === 0) {
        params = findParams(groupColumns(WT, blockStart!, i1, i2, rows, k, Math.min(k + gs, cols)), opt);
        setGroupParams(grid, k / gs, params);
      } else if (grouped && opt.staticGroups) {
        params = staticParams[Math.floor(order[k]! / gs)]!;
      }

      for (let r = 0; r < rows; r++) {
        q[r] = keptT && !keptT[k * rows + r] ? 0 : quantize(w[r]!, params.scale[r]!, params.zero[r]!, maxq);
      }

      // OBS update of the block's remaining columns
      const err = Err1.subarray(i * rows, (i + 1) * rows);
      for (let r = 0; r < rows; r++) {
        const e = (w[r]! - q[r]!) / d;
        err[r] = e;
        loss += (e * e) / 2;
      }
      w.set(q);
      const hRow = k * cols;
      for (let c = k + 1; c < i2; c++) {
        const h = Hinv[hRow + c]!;
        if (h === 0) continue;
        const wc = WT.subarray(c * rows, (c + 1) * rows);
        for (let r = 0; r < rows; r++) wc[r] = wc[r]! - err[r]! * h;
      }
    }
    // lazy batch update of the later columns: one GEMM (see sparsegpt.ts)
    if (i2 < cols) {
      const rest = cols - i2;
      const hBlock = new Float32Array(count * rest);
      for (let c = 0; c < count; c++) hBlock.set(Hinv.subarray((i1 + c) * cols + i2, (i1 + c + 1) * cols), c * rest);
      const tail = WT.subarray(i2 * rows);
      tail.set(await gemm(hBlock, [count, rest], Err1, [count, rows], { transA: true, alpha: -1, C: tail, beta: 1 }));
    }
  }

  // back to [rows, cols] in the original column order
  const out = new Float32Array(rows * cols);
  for (let k = 0; k < cols; k++) {
    const j = order[k]!;
    for (let r = 0; r < rows; r++) out[r * cols + j] = WT[k * rows + r]!;
  }
  return { W: new Tensor(out, [rows, cols]), grid, loss };
}

/**
 * Columns [c0, c1) (in quantization order) as a [rows, c1 − c0] matrix, read as the repo reads
 * `W[:, c0:c1]`: columns of the current block from its start-of-block copy, later ones from WT.
 */
function groupColumns(WT: Float32Array, blockStart: Float32Array, i1: number, i2: number, rows: number, c0: number, c1: number): Tensor {
  const width = c1 - c0;
  const out = new Float32Array(rows * width);
  for (let c = c0; c < c1; c++) {
    const src = c < i2 ? blockStart.subarray((c - i1) * rows, (c - i1 + 1) * rows) : WT.subarray(c * rows, (c + 1) * rows);
    for (let r = 0; r < rows; r++) out[r * width + (c - c0)] = src[r]!;
  }
  return new Tensor(out, [rows, width]);
}

/** act-order: columns by decreasing H_jj (stable on ties). */
export function actOrderPermutation(diag: Float32Array): Int32Array {
  return Int32Array.from(diag.keys()).sort((a, b) => diag[b]! - diag[a]! || a - b);
}

