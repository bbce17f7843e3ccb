// The names an exported ONNX decoder must use so that runtimes find its parts: file names and
// I/O names are those of transformers.js (v4: models/session.js, utils/dtypes.js,
// utils/model-loader.js, models/modeling_utils.js decoder_forward / getPastKeyValues), which
// in turn follow Optimum's exports. One table, so the writer and the runner cannot drift apart.

/** Folder inside the export that holds the .onnx files (transformers.js `subfolder` default). */
export const ONNX_SUBFOLDER = "onnx";

/** Base name of the decoder file: transformers.js loads session "model" from `model{suffix}.onnx`. */
const MODEL_FILE_BASE = "model";

/**
 * transformers.js dtype → file-name suffix (DEFAULT_DTYPE_SUFFIX_MAPPING). topiary writes fp32,
 * fp16 (float16 weights), q4 (4-bit MatMulNBits, float32 elsewhere) and q4f16 (4-bit, float16
 * elsewhere); q8 is 8-bit MatMulNBits, which transformers.js calls "quantized"; q2 is 2-bit.
 */
export const DTYPE_SUFFIX = {
  fp32: "",
  fp16: "_fp16",
  q4: "_q4",
  q4f16: "_q4f16",
  q8: "_quantized",
  q2: "_q2",
} as const;
export type ExportDtype = keyof typeof DTYPE_SUFFIX;

/** "model_q4.onnx" */
export const modelFileName = (dtype: ExportDtype): string => `${MODEL_FILE_BASE}${DTYPE_SUFFIX[dtype]}.onnx`;

/** External weights beside the model: `${file}_data` (getExternalDataChunkNames, chunk 0). */
export const externalDataName = (modelFile: string): string => `${modelFile}_data`;

/** Graph inputs and outputs, with the symbolic dimension names transformers.js resolves. */
export const IO = {
  inputIds: "input_ids",
  attentionMask: "attention_mask",
  positionIds: "position_ids",
  /** int64 scalar: 0 = logits for every position, n = for the last n (setNumLogitsToKeep) */
  numLogitsToKeep: "num_logits_to_keep",
  logits: "logits",
  pastKey: (layer: number) => `past_key_values.${layer}.key`,
  pastValue: (layer: number) => `past_key_values.${layer}.value`,
  presentKey: (layer: number) => `present.${layer}.key`,
  presentValue: (layer: number) => `present.${layer}.value`,
} as const;

/**
 * Symbolic dims. An empty cache is built from the input metadata with "batch_size" → batch and
 * every other symbol → 0 (resolveCacheShape), so the past length must be a symbol of its own.
 */
export const DIM = {
  batch: "batch_size",
  seq: "sequence_length",
  past: "past_sequence_length",
  total: "total_sequence_length",
} as const;

/** ONNX domain of onnxruntime's contrib ops (MatMulNBits). */
export const MS_DOMAIN = "com.microsoft";

