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
import { Tensor } from "../../tensor/tensor.js";
import { obsColumnLoop, transpose, transposeBytes } from "../obs.js";
import type { QuantGrid } from "../../formats/compressed-linear.js";
import { findParams, findParamsOfColumns, newGrid, setGroupParams, type GridOptions, type RowParams } from "./grid.js";
import { maxQ, quantize } from "../../formats/compressed-linear.js";

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
  const staticParams: RowParams[] = [{ scale: new Float32Array(rows), zero: new Float32Array(rows) }];
  if (!grouped) {
    staticParams[0] = perChannel ?? findParams(W0, opt);
    setGroupParams(grid, 0, staticParams[0]);
  } else if (opt.staticGroups) {
    for (let g = 0, c0 = 0; c0 < cols; g++, c0 += gs) {
      staticParams[g] = findParams(W0, opt, c0, Math.min(c0 + gs, cols));
      setGroupParams(grid, g, staticParams[g]!);
    }
  }

  // working copy in quantization order, transposed: WT[k] = column order[k] of W
  const WT = permuteRows(transpose(W0.data, rows, cols), rows, perm);
  const keptT = opt.mask ? permuteRows(transposeBytes(opt.mask, rows, cols), rows, perm) : null;

  const dynamicParams = new Map<number, RowParams>(); // group → params, for groups begun this block
  let lastParams = staticParams[0]!; // a group begun in an earlier block keeps its params
  const loss = await obsColumnLoop(WT, rows, cols, Hinv, opt.blockSize, {
    // groups without static params take them from W "as it is" when the loop reaches them: every
    // earlier block's update applied, none of the current block's — the state at block start
    blockStart: async (k1, k2, view) => {
      if (!grouped || opt.staticGroups) return;
      dynamicParams.clear();
      for (let g0 = Math.ceil(k1 / gs) * gs; g0 < k2; g0 += gs) {
        const g1 = Math.min(g0 + gs, cols);
        const params = findParamsOfColumns(await view.atBlockStart(g0, g1), g1 - g0, rows, opt);
        setGroupParams(grid, g0 / gs, params);
        dynamicParams.set(g0 / gs, params);
      }
    },
    column: (k, w, q) => {
      const params = !grouped
        ? staticParams[0]!
        : opt.staticGroups
          ? staticParams[Math.floor(order[k]! / gs)]!
          : dynamicParams.get(Math.floor(k / gs)) ?? lastParams;
      lastParams = params;
      for (let r = 0; r < rows; r++) {
        q[r] = keptT && !keptT[k * rows + r] ? 0 : quantize(w[r]!, params.scale[r]!, params.zero[r]!, maxq);
      }
    },
  });

  // back to [rows, cols] in the original column order
  const inverse = perm ? Int32Array.from(perm.keys()).sort((a, b) => perm[a]! - perm[b]!) : undefined;
  return { W: new Tensor(transpose(permuteRows(WT, rows, inverse), cols, rows), [rows, cols]), grid, loss };
}

/** Rows of a [n, width] matrix reordered: out[k] = A[perm[k]] (A itself when perm is absent). */
function permuteRows<T extends Float32Array | Uint8Array>(A: T, width: number, perm: Int32Array | undefined): T {
  if (!perm) return A;
  const out = new (A.constructor as { new (n: number): T })(A.length);
  for (let k = 0; k < perm.length; k++) out.set(A.subarray(perm[k]! * width, (perm[k]! + 1) * width), k * width);
  return out;
}

/** act-order: columns by decreasing H_jj (stable on ties). */
export function actOrderPermutation(diag: Float32Array): Int32Array {
  return Int32Array.from(diag.keys()).sort((a, b) => diag[b]! - diag[a]! || a - b);
}

