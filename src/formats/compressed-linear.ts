// What a compressed linear layer is, as writers and readers see it: the dense result, the mask of
// a pruned weight, and the grid of a quantized one — with the grid arithmetic that turns values into
// integer codes and back. Compressors (compress/) produce these; the storage formats (compressed-
// tensors, GGUF, ONNX MatMulNBits) write and read them.
//
// Grid arithmetic is float32, as torch computes it in the reference code: every op is done in
// double and rounded with Math.fround (the correctly rounded float32 result for + − × ÷).
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

export function maxQ(bits: number): number {
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new Error(`quantization bits must be an integer in 1..8, got ${bits}`);
  return 2 ** bits - 1;
}

/** torch.round: half to even. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x); // half up
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** The reference `quantize(x, scale, zero, maxq)` for one value (float32 arithmetic). */
export function quantize(x: number, scale: number, zero: number, maxq: number): number {
  const q = Math.min(Math.max(roundHalfEven(Math.fround(x / scale)) + zero, 0), maxq);
  return Math.fround(scale * (q - zero));
}

/** The integer code clamp(round(w / scale) + zero, 0, maxq) of one value. */
function quantizeCode(x: number, scale: number, zero: number, maxq: number): number {
  return Math.min(Math.max(roundHalfEven(Math.fround(x / scale)) + zero, 0), maxq);
}

/** Number of groups (columns of `scale`) of a grid over `rows` output rows. */
export function gridGroups(grid: QuantGrid, rows: number): number {
  const groups = grid.scale.length / rows;
  if (!Number.isInteger(groups) || grid.zero.length !== grid.scale.length) {
    throw new Error(`quant grid: scale has ${grid.scale.length} entries, zero ${grid.zero.length}, for ${rows} rows`);
  }
  return groups;
}

/** Integer codes [rows·cols] of W on `grid`: clamp(round(w / scale) + zero, 0, maxq). */
export function quantizeToCodes(W: Tensor, grid: QuantGrid): Uint8Array {
  const rows = W.rows;
  const cols = W.cols;
  const groups = gridGroups(grid, rows);
  const maxq = maxQ(grid.bits);
  const codes = new Uint8Array(rows * cols);
  for (let j = 0; j < cols; j++) {
    const g = groupOf(grid, j);
    if (g >= groups) throw new Error(`quantizeToCodes: column ${j} is in group ${g}, the grid has ${groups}`);
    for (let r = 0; r < rows; r++) {
      const k = r * groups + g;
      codes[r * cols + j] = quantizeCode(W.data[r * cols + j]!, grid.scale[k]!, grid.zero[k]!, maxq);
    }
  }
  return codes;
}

/** Values [rows·cols] of `codes` on `grid`: scale · (code − zero), in float32. */
export function dequantize(codes: Uint8Array, grid: QuantGrid, cols: number): Float32Array {
  const rows = codes.length / cols;
  if (!Number.isInteger(rows)) throw new Error(`dequantize: ${codes.length} codes do not fill rows of ${cols} columns`);
  const groups = gridGroups(grid, rows);
  const out = new Float32Array(codes.length);
  for (let j = 0; j < cols; j++) {
    const g = groupOf(grid, j);
    if (g >= groups) throw new Error(`dequantize: column ${j} is in group ${g}, the grid has ${groups}`);
    for (let r = 0; r < rows; r++) {
      const k = r * groups + g;
      out[r * cols + j] = Math.fround(grid.scale[k]! * (codes[r * cols + j]! - grid.zero[k]!));
    }
  }
  return out;
}
