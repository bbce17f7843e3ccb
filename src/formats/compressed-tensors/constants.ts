// compressed-tensors (vllm-project/compressed-tensors, read by vLLM, transformers and llm-compressor):
// a Hugging Face folder whose config.json has a `quantization_config` with quant_method
// "compressed-tensors", and whose safetensors hold, per compressed linear `<name>`, these tensors
// instead of `<name>.weight`. Names, dtypes and shapes follow the compressors cited per format.
//
// Versions mirrored:
//   pack-quantized: compressed-tensors 0.18.0 (what llm-compressor 0.13.0 pins), files
//     compressors/pack_quantized/{base,helpers}.py, quantization/quant_{config,scheme,args}.py,
//     compressors/model_compressors/model_compressor.py `update_config` (the config.json layout).
//   sparse-bitmask, sparse-24-bitmask: compressed-tensors 0.14.0, the last release with sparse
//     compressors (removed in 0.15.0, PR #610): compressors/sparse_compressors/sparse_{bitmask,24_bitmask}.py,
//     utils/helpers.py `pack_bitmasks`, config/{base,sparse_bitmask,sparse_24_bitmask,dense}.py.

export const QUANT_METHOD = "compressed-tensors";

export const Format = {
  PACK_QUANTIZED: "pack-quantized",
  DENSE: "dense",
  SPARSE_BITMASK: "sparse-bitmask",
  SPARSE_24_BITMASK: "sparse-24-bitmask",
} as const;

export type CompressedTensorsFormat = (typeof Format)[keyof typeof Format];

/** The compressed-tensors version written into quantization_config.version, per format. */
export const VERSION: Record<CompressedTensorsFormat, string> = {
  "pack-quantized": "0.18.0",
  dense: "0.18.0",
  "sparse-bitmask": "0.14.0",
  "sparse-24-bitmask": "0.14.0",
};

/**
 * pack-quantized, per linear `<name>` (PackedQuantizationCompressor.compression_param_names):
 *   weight_packed      I32  [out, ⌈in·b/32⌉]        codes packed along the input dim (see compress/quant/pack.ts)
 *   weight_scale       F32/F16/BF16 [out, groups]   groups = 1 per channel, ⌈in/group_size⌉ per group
 *   weight_zero_point  I32  [⌈out·b/32⌉, groups]    asymmetric only; codes packed along the OUTPUT dim
 *   weight_g_idx       I32  [in]                    actorder "group" only: group of each input column
 *   weight_shape       I64  [2]                     [out, in]
 */
export const Packed = {
  PACKED: "weight_packed",
  SCALE: "weight_scale",
  ZERO_POINT: "weight_zero_point",
  G_IDX: "weight_g_idx",
  SHAPE: "weight_shape",
} as const;

/**
 * sparse-bitmask (BitmaskCompressor), per linear `<name>`:
 *   shape        I64 [2]               dense shape
 *   compressed   weight dtype [nnz]    the non-zero values, row-major
 *   bitmask      U8  [rows, ⌈cols/8⌉]  numpy.packbits(w != 0, axis=-1, bitorder="little"): column j of a
 *                                      row is bit (j mod 8) (LSB first) of byte ⌊j/8⌋
 *   row_offsets  I64 [rows]            index in `compressed` of each row's first value
 * sparse-24-bitmask (Sparse24BitMaskCompressor): exactly 2 values kept per 4 consecutive columns
 *   shape        I64 [2, 1]
 *   compressed   weight dtype [rows, cols/2]
 *   bitmask      U8  [rows, ⌈cols/8⌉]  as above, exactly 2 bits set per 4 columns
 */
export const Sparse = {
  SHAPE: "shape",
  COMPRESSED: "compressed",
  BITMASK: "bitmask",
  ROW_OFFSETS: "row_offsets",
} as const;

/** compressed-tensors stores b-bit codes as signed int8 q − 2^(b−1); packing adds this back. */
export const codeOffset = (bits: number) => 1 << (bits - 1);

/** torch dtype names as compressed-tensors serialises them (`str(torch.float16)`). */
export const TORCH_DTYPE = { F32: "torch.float32", F16: "torch.float16", BF16: "torch.bfloat16" } as const;

/** config.json `torch_dtype` values. */
export const CONFIG_DTYPE = { F32: "float32", F16: "float16", BF16: "bfloat16" } as const;
