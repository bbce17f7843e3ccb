// GGUF's numbers, in one place (after llama.cpp gguf-py/gguf/constants.py and ggml.h).
// A GGUF file is: header (magic, version, tensor count, key/value count) → key/values →
// tensor infos (name, dims, type, offset) → padding to `alignment` → tensor data, each tensor
// starting at a multiple of `alignment` from the start of the data section. Little-endian.

/** "GGUF" read as a little-endian uint32. */
export const GGUF_MAGIC = 0x46554747;
export const GGUF_VERSION = 3;
/** Default (and our) alignment of the data section and of every tensor in it. */
export const GGUF_DEFAULT_ALIGNMENT = 32;
/** GGML_QNT_VERSION: the layout version of the quantized blocks below. */
export const GGML_QUANT_VERSION = 2;
/** ggml refuses tensors with more dimensions. */
export const GGML_MAX_DIMS = 4;

/** Super-block size of the k-quants. */
export const QK_K = 256;
/** Block size of the legacy quants (Q4_0, Q5_0, Q8_0, …). */
export const QK = 32;

/** Type tags of metadata values. */
export enum ValueType {
  UINT8 = 0,
  INT8 = 1,
  UINT16 = 2,
  INT16 = 3,
  UINT32 = 4,
  INT32 = 5,
  FLOAT32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  UINT64 = 10,
  INT64 = 11,
  FLOAT64 = 12,
}

/** Bytes of each fixed-size value type (STRING and ARRAY are length-prefixed). */
export const SCALAR_SIZES = {
  [ValueType.UINT8]: 1,
  [ValueType.INT8]: 1,
  [ValueType.UINT16]: 2,
  [ValueType.INT16]: 2,
  [ValueType.UINT32]: 4,
  [ValueType.INT32]: 4,
  [ValueType.FLOAT32]: 4,
  [ValueType.BOOL]: 1,
  [ValueType.UINT64]: 8,
  [ValueType.INT64]: 8,
  [ValueType.FLOAT64]: 8,
} as const;

/** ggml tensor types (GGMLQuantizationType); gaps are types ggml has removed. */
export enum QuantType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  IQ2_XXS = 16,
  IQ2_XS = 17,
  IQ3_XXS = 18,
  IQ1_S = 19,
  IQ4_NL = 20,
  IQ3_S = 21,
  IQ2_S = 22,
  IQ4_XS = 23,
  I8 = 24,
  I16 = 25,
  I32 = 26,
  I64 = 27,
  F64 = 28,
  IQ1_M = 29,
  BF16 = 30,
  TQ1_0 = 34,
  TQ2_0 = 35,
  MXFP4 = 39,
}

/** [block size, bytes per block] of each type: a row of n values takes n / block · bytes. */
export const QUANT_SIZES: Readonly<Record<QuantType, readonly [number, number]>> = {
  [QuantType.F32]: [1, 4],
  [QuantType.F16]: [1, 2],
  [QuantType.Q4_0]: [32, 2 + 16], // f16 scale + 32 nibbles
  [QuantType.Q4_1]: [32, 2 + 2 + 16], // f16 scale, f16 min + 32 nibbles
  [QuantType.Q5_0]: [32, 2 + 4 + 16], // f16 scale + 32 fifth bits + 32 nibbles
  [QuantType.Q5_1]: [32, 2 + 2 + 4 + 16], // f16 scale, f16 min + fifth bits + nibbles
  [QuantType.Q8_0]: [32, 2 + 32], // f16 scale + 32 int8
  [QuantType.Q8_1]: [32, 4 + 4 + 32], // f32 scale, f32 sum + 32 int8
  [QuantType.Q2_K]: [256, 2 + 2 + QK_K / 16 + QK_K / 4], // d, dmin, 16 4-bit scale/min pairs, 2-bit quants
  [QuantType.Q3_K]: [256, 2 + QK_K / 4 + QK_K / 8 + 12], // d, 2-bit quants, high bits, 6-bit scales
  [QuantType.Q4_K]: [256, 2 + 2 + QK_K / 2 + 12], // d, dmin, 4-bit quants, 8 6-bit scale/min pairs
  [QuantType.Q5_K]: [256, 2 + 2 + QK_K / 2 + QK_K / 8 + 12], // Q4_K + fifth bits
  [QuantType.Q6_K]: [256, QK_K / 2 + QK_K / 4 + QK_K / 16 + 2], // low nibbles, high 2 bits, int8 scales, d
  [QuantType.Q8_K]: [256, 4 + QK_K + QK_K / 8], // f32 d, int8 quants, int16 block sums
  [QuantType.IQ2_XXS]: [256, 2 + QK_K / 4],
  [QuantType.IQ2_XS]: [256, 2 + QK_K / 4 + QK_K / 32],
  [QuantType.IQ3_XXS]: [256, 2 + QK_K / 4 + QK_K / 8],
  [QuantType.IQ1_S]: [256, 2 + QK_K / 8 + QK_K / 16],
  [QuantType.IQ4_NL]: [32, 2 + 16],
  [QuantType.IQ3_S]: [256, 2 + QK_K / 4 + QK_K / 8 + QK_K / 32 + 4],
  [QuantType.IQ2_S]: [256, 2 + QK_K / 4 + QK_K / 16],
  [QuantType.IQ4_XS]: [256, 2 + 2 + QK_K / 2 + QK_K / 64],
  [QuantType.I8]: [1, 1],
  [QuantType.I16]: [1, 2],
  [QuantType.I32]: [1, 4],
  [QuantType.I64]: [1, 8],
  [QuantType.F64]: [1, 8],
  [QuantType.IQ1_M]: [256, QK_K / 8 + QK_K / 16 + QK_K / 32],
  [QuantType.BF16]: [1, 2],
  [QuantType.TQ1_0]: [256, 2 + 4 * 13],
  [QuantType.TQ2_0]: [256, 2 + 64],
  [QuantType.MXFP4]: [32, 1 + 16], // e8m0 shared exponent + 32 fp4 nibbles
};

export function isQuantType(t: number): t is QuantType {
  return Object.hasOwn(QUANT_SIZES, t);
}

export function quantTypeName(t: number): string {
  return isQuantType(t) ? QuantType[t] : `type ${t}`;
}

/** Bytes of a tensor whose innermost dimension (ne[0], a row) has `rowLength` values. */
export function tensorBytes(type: QuantType, rowLength: number, rows: number): number {
  const [block, bytes] = QUANT_SIZES[type];
  if (rowLength % block !== 0) throw new Error(`row of ${rowLength} values is not a multiple of ${QuantType[type]}'s block size ${block}`);
  return (rowLength / block) * bytes * rows;
}

/** general.file_type (llama_ftype): what most of the weights are stored as. */
export enum FileType {
  ALL_F32 = 0,
  MOSTLY_F16 = 1,
  MOSTLY_Q4_0 = 2,
  MOSTLY_Q4_1 = 3,
  MOSTLY_Q8_0 = 7,
  MOSTLY_Q5_0 = 8,
  MOSTLY_Q5_1 = 9,
  MOSTLY_Q2_K = 10,
  MOSTLY_Q3_K_S = 11,
  MOSTLY_Q3_K_M = 12,
  MOSTLY_Q3_K_L = 13,
  MOSTLY_Q4_K_S = 14,
  MOSTLY_Q4_K_M = 15,
  MOSTLY_Q5_K_S = 16,
  MOSTLY_Q5_K_M = 17,
  MOSTLY_Q6_K = 18,
  MOSTLY_BF16 = 32,
}

/** The weight type a file type stands for (the type a quantizer aims every 2-D weight at). */
export const FILE_TYPE_TARGET: Partial<Record<FileType, QuantType>> = {
  [FileType.ALL_F32]: QuantType.F32,
  [FileType.MOSTLY_F16]: QuantType.F16,
  [FileType.MOSTLY_Q4_0]: QuantType.Q4_0,
  [FileType.MOSTLY_Q4_1]: QuantType.Q4_1,
  [FileType.MOSTLY_Q8_0]: QuantType.Q8_0,
  [FileType.MOSTLY_Q5_0]: QuantType.Q5_0,
  [FileType.MOSTLY_Q5_1]: QuantType.Q5_1,
  [FileType.MOSTLY_Q4_K_S]: QuantType.Q4_K,
  [FileType.MOSTLY_Q4_K_M]: QuantType.Q4_K,
  [FileType.MOSTLY_Q5_K_S]: QuantType.Q5_K,
  [FileType.MOSTLY_Q5_K_M]: QuantType.Q5_K,
  [FileType.MOSTLY_Q6_K]: QuantType.Q6_K,
  [FileType.MOSTLY_BF16]: QuantType.BF16,
};

/** tokenizer.ggml.token_type values (sentencepiece's piece types). */
export enum TokenType {
  NORMAL = 1,
  UNKNOWN = 2,
  CONTROL = 3,
  USER_DEFINED = 4,
  UNUSED = 5,
  BYTE = 6,
}

/** Metadata keys. `{arch}` is replaced by general.architecture (see `archKey`). */
export const Keys = {
  General: {
    TYPE: "general.type",
    ARCHITECTURE: "general.architecture",
    QUANTIZATION_VERSION: "general.quantization_version",
    ALIGNMENT: "general.alignment",
    FILE_TYPE: "general.file_type",
    NAME: "general.name",
  },
  LLM: {
    VOCAB_SIZE: "{arch}.vocab_size",
    CONTEXT_LENGTH: "{arch}.context_length",
    EMBEDDING_LENGTH: "{arch}.embedding_length",
    BLOCK_COUNT: "{arch}.block_count",
    FEED_FORWARD_LENGTH: "{arch}.feed_forward_length",
  },
  Attention: {
    HEAD_COUNT: "{arch}.attention.head_count",
    HEAD_COUNT_KV: "{arch}.attention.head_count_kv",
    KEY_LENGTH: "{arch}.attention.key_length",
    VALUE_LENGTH: "{arch}.attention.value_length",
    LAYERNORM_RMS_EPS: "{arch}.attention.layer_norm_rms_epsilon",
  },
  Rope: {
    DIMENSION_COUNT: "{arch}.rope.dimension_count",
    FREQ_BASE: "{arch}.rope.freq_base",
    SCALING_TYPE: "{arch}.rope.scaling.type",
    SCALING_FACTOR: "{arch}.rope.scaling.factor",
  },
  Tokenizer: {
    MODEL: "tokenizer.ggml.model",
    PRE: "tokenizer.ggml.pre",
    LIST: "tokenizer.ggml.tokens",
    TOKEN_TYPE: "tokenizer.ggml.token_type",
    SCORES: "tokenizer.ggml.scores",
    BOS_ID: "tokenizer.ggml.bos_token_id",
    EOS_ID: "tokenizer.ggml.eos_token_id",
    UNK_ID: "tokenizer.ggml.unknown_token_id",
    PAD_ID: "tokenizer.ggml.padding_token_id",
    ADD_BOS: "tokenizer.ggml.add_bos_token",
    ADD_EOS: "tokenizer.ggml.add_eos_token",
    ADD_PREFIX: "tokenizer.ggml.add_space_prefix",
    MERGES: "tokenizer.ggml.merges",
    CHAT_TEMPLATE: "tokenizer.chat_template",
    /** names of the templates besides the default one, each at `tokenizer.chat_template.NAME` */
    CHAT_TEMPLATES: "tokenizer.chat_templates",
  },
} as const;

/** "{arch}.block_count" → "llama.block_count". */
export function archKey(key: string, arch: string): string {
  return key.replace("{arch}", arch);
}
