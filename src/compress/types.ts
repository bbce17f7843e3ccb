// What a compressor produces for one linear layer, and what writers turn into bytes.
// The dense weight is always there (evaluators run it); mask and grid say how it was made,
// so a writer can store it sparsely (bitmask, 2:4) or as integer codes (pack-quantized, GGUF).
import type { Tensor } from "../tensor/tensor.js";

/**
 * A quantization grid for a [rows, cols] weight, in the reference code's convention
 * (gptq/sparsegpt quant.py): codes q ∈ [0, maxq], maxq = 2^bits − 1, and
 *   w = scale · (q − zero),  q = clamp(round(w / scale) + zero, 0, maxq)   (round half to even).
 */
export interface QuantGrid {
  bits: number;
  /** symmetric grid: zero = (maxq + 1) / 2 for every group */
  sym: boolean;
  /** input columns per group; equal to cols for one group per output row ("per channel") */
  groupSize: number;
  /** [rows, groups] row-major */
  scale: Float32Array;
  /** [rows, groups] row-major; integer-valued */
  zero: Float32Array;
  /**
   * Group of each input column [cols]. Absent: column j is in group floor(j / groupSize).
   * Present after act-order without static groups, where groups follow the permuted order.
   */
  gIdx?: Int32Array;
}

export interface CompressedLinear {
  /** full tensor name without ".weight", e.g. "model.layers.0.self_attn.q_proj" */
  name: string;
  /** the compressed weight, dense float32 [out, in]: exactly what the model computes with */
  weight: Tensor;
  /** 1 = kept, 0 = pruned, [out·in] row-major; absent for dense results */
  mask?: Uint8Array;
  quant?: QuantGrid;
  /** the algorithm's own loss (SparseGPT/GPTQ: Σ of the OBS errors), when it has one */
  loss?: number;
}

/** Number of groups of a grid over `cols` input columns. */
export function groupCount(grid: Pick<QuantGrid, "groupSize" | "gIdx">, cols: number): number {
  if (grid.gIdx) return grid.gIdx.reduce((m, g) => Math.max(m, g + 1), 0);
  return Math.ceil(cols / grid.groupSize);
}

/** Group index of input column j. */
export function groupOf(grid: Pick<QuantGrid, "groupSize" | "gIdx">, j: number): number {
  return grid.gIdx ? grid.gIdx[j]! : Math.floor(j / grid.groupSize);
}
