// Which ggml type each tensor gets, and its bytes: from float weights by ggml's reference
// quantizers, or — for weights topiary already quantized on a grid a ggml block can hold — from
// the checkpoint's own integer codes and scales, unchanged.
//
// Type rule (llama.cpp src/llama-quant.cpp, `tensor_allows_quantization`, `tensor_type_fallback`,
// and the output-tensor case of `llama_tensor_get_type`):
//   - 1-D tensors (norms) stay F32;
//   - the output tensor (output.weight, or token_embd when the LM head is tied to it) is kept at
//     6–8 bits when the target is smaller: Q6_K, or Q8_0 when its rows are not whole 256-blocks
//     (llama.cpp's Q6_K → Q8_0 fallback), or F16 when they are not whole 32-blocks either;
//   - any other 2-D weight gets the requested type when its rows (ne[0], the input width) are a
//     multiple of the type's block size, otherwise it falls back:
//       Q4_K (block 256) → Q5_0 (block 32) → F16,     Q4_0, Q8_0 (block 32) → F16
//     (llama.cpp defines no fallback for Q4_0/Q8_0 and stops; its last resort for every type is
//     F16, which we take instead of stopping).
import { groupOf, type QuantGrid } from "../formats/compressed-linear.js";
import { QK, QUANT_SIZES, QuantType } from "../formats/gguf/constants.js";
import { packCodes, type PackableType } from "../formats/gguf/quants.js";
import { gatherRows } from "../models/fused-layout.js";
import { floatToHalf, halfToFloat } from "../tensor/dtype.js";

export interface TypeChoice {
  type: PackableType;
  /** why the tensor fell back from the requested type (rows not whole blocks), or null */
  fallback: string | null;
  /** other reasons the type differs from the requested one (the output tensor), or null */
  note: string | null;
}

/** Types at least as precise as Q8_0, which the output-tensor rule leaves alone. */
const HIGH_PRECISION: readonly QuantType[] = [QuantType.F32, QuantType.F16, QuantType.BF16, QuantType.Q8_0];

/** The note on the output tensor kept at `type` (Q6_K, Q8_0 or F16) by the output-tensor rule. */
export function outputNote(type: QuantType): string {
  return `output tensor (LM head) kept at ${QuantType[type]}, as llama.cpp keeps it at 6–8 bits`;
}

/** Is `name` the tensor llama.cpp multiplies the final hidden state with? */
export function isOutputTensor(name: string, hasOutput: boolean): boolean {
  return name === "output.weight" || (!hasOutput && name === "token_embd.weight");
}

/** The type one tensor gets for a requested `target` (see the rule above). */
export function chooseType(target: PackableType, shape: readonly number[], isOutput = false): TypeChoice {
  if (shape.length < 2) return { type: QuantType.F32, fallback: null, note: null };
  const cols = shape[shape.length - 1]!;
  const fits = (t: QuantType) => cols % QUANT_SIZES[t][0] === 0;
  const why = (t: QuantType) => `${cols} columns are not a multiple of ${QuantType[t]}'s block of ${QUANT_SIZES[t][0]}`;
  if (isOutput && !HIGH_PRECISION.includes(target)) {
    if (fits(QuantType.Q6_K)) return { type: QuantType.Q6_K, fallback: null, note: outputNote(QuantType.Q6_K) };
    if (fits(QuantType.Q8_0)) return { type: QuantType.Q8_0, fallback: null, note: outputNote(QuantType.Q8_0) };
    return { type: QuantType.F16, fallback: why(QuantType.Q8_0), note: outputNote(QuantType.F16) };
  }
  if (fits(target)) return { type: target, fallback: null, note: null };
  if (target === QuantType.Q4_K && fits(QuantType.Q5_0)) return { type: QuantType.Q5_0, fallback: why(target), note: null };
  return { type: QuantType.F16, fallback: why(target), note: null };
}

/**
 * For any GGUF (inspect): why a tensor of a file whose file type aims at `target` is stored as
 * `type` — a fallback (rows not whole blocks of `target`) or the output-tensor rule — or nulls.
 */
export function explainType(target: QuantType | undefined, name: string, type: QuantType, shape: readonly number[], hasOutput: boolean): { fallback: string | null; note: string | null } {
  if (target === undefined || shape.length < 2 || type === target) return { fallback: null, note: null };
  const cols = shape[shape.length - 1]!;
  const block = QUANT_SIZES[target][0];
  if (isOutputTensor(name, hasOutput) && HIGH_PRECISION.concat(QuantType.Q6_K).includes(type) && !HIGH_PRECISION.includes(target)) {
    return { fallback: null, note: "output tensor (LM head): llama.cpp keeps it at 6–8 bits" };
  }
  return { fallback: cols % block === 0 ? null : `${cols} columns are not a multiple of ${QuantType[target]}'s block of ${block}`, note: null };
}

/**
 * llama.cpp's q/k row order (convert_hf_to_gguf.py `LlamaModel.permute`): within each head, HF
 * keeps the rotated pairs half a head apart (rotate_half), ggml keeps them adjacent. Row
 * h·hd + 2i + j of the result is row h·hd + j·hd/2 + i of the input. Rows of any width: float
 * weights, codes, or per-group scales.
 */
export function permuteRows<T extends Float32Array | Int8Array | Uint16Array>(data: T, rows: number, nHead: number): T {
  const width = data.length / rows;
  const hd = rows / nHead;
  if (!Number.isInteger(width) || !Number.isInteger(hd) || hd % 2 !== 0) {
    throw new Error(`cannot permute ${rows} rows into ${nHead} heads of even size`);
  }
  const out = new (data.constructor as { new (n: number): T })(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * hd + j * (hd / 2) + i;
        const dst = h * hd + 2 * i + j;
        out.set(data.subarray(src * width, (src + 1) * width), dst * width);
      }
    }
  }
  return out;
}

/** The inverse of `permuteRows` (ggml order → HF order). */
export function unpermuteRows(data: Float32Array, rows: number, nHead: number): Float32Array {
  const width = data.length / rows;
  const hd = rows / nHead;
  const out = new Float32Array(data.length);
  for (let h = 0; h < nHead; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const src = h * hd + 2 * i + j;
        const dst = h * hd + j * (hd / 2) + i;
        out.set(data.subarray(src * width, (src + 1) * width), dst * width);
      }
    }
  }
  return out;
}

export interface SourceCodes {
  grid: QuantGrid;
  /** codes q ∈ [0, 2^bits − 1], [rows·cols] row-major */
  codes: Uint8Array;
  shape: readonly number[];
}

export interface CodesResult {
  bytes: Uint8Array;
  /** largest |f16(scale) − scale| / |scale| over the blocks: 0 when every scale is f16-exact */
  scaleRelError: number;
}

/**
 * Stores a grid-quantized weight as Q4_0 or Q8_0 without re-quantizing: ggml's w = d·c with
 * c = q − zero and d = scale, for every 32-column block whose columns share one group. Returns
 * a reason string instead when the grid does not fit: a block spanning two groups (act-order
 * g_idx, groups narrower than 32), a non-integer zero, or a code q − zero outside the type's
 * range ([−8, 7] for Q4_0: a symmetric grid of ≤ 4 bits; [−128, 127] for Q8_0: any grid of
 * ≤ 8 bits). Scales are stored as f16; one that is not f16-representable is rounded to nearest
 * and the worst relative rounding is reported (it is 0 for scales saved as f16 or, within f16's
 * range, bf16).
 */
export function packSourceCodes(type: QuantType.Q4_0 | QuantType.Q8_0, src: SourceCodes, rowsPermutedByHeads: number | null, rowOrder?: Int32Array): CodesResult | string {
  const [rows, cols] = src.shape as [number, number];
  const { grid } = src;
  if (src.shape.length !== 2 || cols % QK !== 0) return `shape [${src.shape.join(", ")}] has no whole ${QK}-column blocks`;
  const nGroups = grid.scale.length / rows;
  const blocksPerRow = cols / QK;
  const blockGroup = new Int32Array(blocksPerRow);
  for (let b = 0; b < blocksPerRow; b++) {
    const g = groupOf(grid, b * QK);
    for (let j = 1; j < QK; j++) {
      if (groupOf(grid, b * QK + j) !== g) return `columns ${b * QK}..${b * QK + QK - 1} span more than one quantization group`;
    }
    blockGroup[b] = g;
  }
  const [lo, hi] = type === QuantType.Q4_0 ? [-8, 7] : [-128, 127];
  let codes = new Int8Array(rows * cols);
  let scaleBits = new Uint16Array(rows * blocksPerRow);
  let scaleRelError = 0;
  for (let r = 0; r < rows; r++) {
    for (let b = 0; b < blocksPerRow; b++) {
      const g = r * nGroups + blockGroup[b]!;
      const zero = grid.zero[g]!;
      const scale = grid.scale[g]!;
      if (!Number.isInteger(zero)) return `row ${r} has a non-integer zero point ${zero}`;
      const bits = floatToHalf(scale);
      const stored = halfToFloat(bits);
      if (!Number.isFinite(stored)) return `row ${r} has scale ${scale}, outside f16's range`;
      if (scale !== 0) scaleRelError = Math.max(scaleRelError, Math.abs(stored - scale) / Math.abs(scale));
      scaleBits[r * blocksPerRow + b] = bits;
      for (let j = 0; j < QK; j++) {
        const at = r * cols + b * QK + j;
        const c = src.codes[at]! - zero;
        if (c < lo || c > hi) return `code ${src.codes[at]} − zero ${zero} = ${c} at row ${r} is outside ${QuantType[type]}'s range [${lo}, ${hi}]`;
        codes[at] = c;
      }
    }
  }
  if (rowsPermutedByHeads !== null) {
    codes = permuteRows(codes, rows, rowsPermutedByHeads);
    scaleBits = permuteRows(scaleBits, rows, rowsPermutedByHeads);
  }
  if (rowOrder) {
    codes = gatherRows(codes, rowOrder, cols);
    scaleBits = gatherRows(scaleBits, rowOrder, blocksPerRow);
  }
  return { bytes: packCodes(type, codes, scaleBits), scaleRelError };
}
