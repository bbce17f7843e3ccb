// GPTQ, and SparseGPT's joint quantization, as Compressors. (RTN is in rtn.ts.)
import { z } from "zod";
import type { Tensor } from "../../tensor/tensor.js";
import type { Compressor, LayerStats } from "../compressor.js";
import { bits, blocksize, dampening, pattern, sparsity } from "../options.js";
import { SparseGPTCompressor, zeroColumns } from "../prune/compressors.js";
import type { CompressedLinear } from "../../formats/compressed-linear.js";
import { findParams, newGrid, setGroupParams } from "./grid.js";
import { maxQ, quantize } from "../../formats/compressed-linear.js";
import { actOrderPermutation, gptq } from "./gptq.js";
import { groupSize } from "./rtn.js";

/**
 * ```yaml
 * - method: gptq
 *   bits: 4                # 2 | 3 | 4 | 8
 *   group_size: 128        # -1: one grid per output row
 *   sym: false
 *   act_order: false       # quantize columns by decreasing H_jj (records g_idx)
 *   static_groups: false   # with act_order: group params from the original W, natural order
 *   blocksize: 128
 *   dampening: 0.01
 *   mse: false
 * ```
 * Weights that are exactly zero (a pruned model) stay zero: they are never quantized away from 0.
 */
export const gptqSchema = z
  .object({
    bits: bits.default(4),
    group_size: groupSize.default(-1),
    sym: z.boolean().default(false),
    act_order: z.boolean().default(false),
    static_groups: z.boolean().default(false),
    blocksize: blocksize.default(128),
    dampening: dampening.default(0.01),
    mse: z.boolean().default(false),
  })
  .strict();

export class GPTQCompressor implements Compressor {
  readonly name = "gptq";
  readonly needs = "hessian";
  constructor(private readonly opt: z.infer<typeof gptqSchema>) {}

  async compress(name: string, W0: Tensor, stats: LayerStats | null): Promise<CompressedLinear> {
    if (!stats) throw new Error("gptq needs calibration data (--calib)");
    const o = this.opt;
    const grid = { bits: o.bits, sym: o.sym, mse: o.mse };
    // per channel: params from W before the dead-input fix, as gptq.py (groups compute their own)
    const perChannel = o.group_size === -1 ? findParams(W0, grid) : undefined;
    const perm = o.act_order ? actOrderPermutation(deadFixedDiag(stats.diag())) : undefined;
    const { hinv, dead } = await stats.inverseFactor({ dampening: o.dampening, perm });
    const W = W0.clone();
    zeroColumns(W, dead);
    const mask = zerosMask(W0.data);
    const r = await gptq(
      W,
      hinv,
      { ...grid, groupSize: o.group_size, blockSize: o.blocksize, actOrder: o.act_order, staticGroups: o.static_groups, mask },
      perm,
      perChannel,
    );
    return { name, weight: r.W, quant: r.grid, loss: r.loss, mask };
  }
}

/** diag(H) as the repo permutes by it: after the dead-input fix (H_jj = 0 → 1). */
function deadFixedDiag(diag: Float32Array): Float32Array {
  return diag.map((v) => (v === 0 ? 1 : v));
}

/** 1 = kept, for weights with exact zeros (a pruned model); undefined for a dense weight. */
function zerosMask(W: Float32Array): Uint8Array | undefined {
  let zeros = 0;
  for (const v of W) if (v === 0) zeros++;
  if (zeros === 0) return undefined;
  return Uint8Array.from(W, (v) => (v === 0 ? 0 : 1));
}

/**
 * SparseGPT with `bits`: joint sparsification + quantization (SparseGPT §3.5; sparsegpt.py
 * `--wbits`): one asymmetric grid per output row from the original W, each column masked, then
 * quantized, and the OBS error of the masked+quantized column propagated.
 * ```yaml
 * - method: sparsegpt
 *   sparsity: 0.5
 *   bits: 4
 * ```
 */
export const jointSchema = z
  .object({
    sparsity: sparsity.default(0.5),
    pattern: pattern.default("unstructured"),
    blocksize: blocksize.default(128),
    dampening: dampening.default(0.01),
    bits: bits.optional(),
    sym: z.boolean().default(false),
  })
  .strict();

export function createSparseGPT(o: z.infer<typeof jointSchema>): Compressor {
  const { bits: b, sym, ...prune } = o;
  if (b === undefined) return new SparseGPTCompressor(prune);
  const maxq = maxQ(b);
  return new SparseGPTCompressor(prune, (W) => {
    const params = findParams(W, { bits: b, sym });
    const grid = newGrid(W.rows, W.cols, { bits: b, sym });
    setGroupParams(grid, 0, params);
    return {
      grid,
      quantizeColumn: (col) => {
        for (let r = 0; r < col.length; r++) col[r] = quantize(col[r]!, params.scale[r]!, params.zero[r]!, maxq);
      },
    };
  });
}
