// config.json → a typed, validated model configuration. One field per line, with its meaning.
// Families that differ from Llama only in details (Mistral, Qwen2) express them as fields here
// (qkvBias, slidingWindow), not as subclasses: see models/registry.ts.
import path from "node:path";
import { z } from "zod";
import { FormatError } from "../formats/errors.js";
import { readJsonFile } from "../formats/json.js";

const tokenIds = z.union([z.number().int(), z.array(z.number().int())]).nullish();

/** The fields topiary reads from a Llama-family config.json; others are kept but ignored. */
export const llamaConfigSchema = z.looseObject({
  architectures: z.array(z.string()).min(1),
  model_type: z.string().optional(),
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_hidden_layers: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive().nullish(),
  head_dim: z.number().int().positive().nullish(),
  vocab_size: z.number().int().positive(),
  max_position_embeddings: z.number().int().positive().default(2048),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().default(10000),
  rope_scaling: z
    .looseObject({
      rope_type: z.string().optional(),
      type: z.string().optional(),
      factor: z.number().positive().optional(),
      low_freq_factor: z.number().optional(),
      high_freq_factor: z.number().optional(),
      original_max_position_embeddings: z.number().int().optional(),
    })
    .nullish(),
  hidden_act: z.string().default("silu"),
  tie_word_embeddings: z.boolean().default(false),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().default(false),
  sliding_window: z.number().int().positive().nullish(),
  use_sliding_window: z.boolean().optional(),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  torch_dtype: z.string().nullish(),
});

export type RawLlamaConfig = z.infer<typeof llamaConfigSchema>;

/** Rotary embedding frequency scaling, as transformers' ROPE_INIT_FUNCTIONS define it. */
export type RopeScaling =
  | { type: "none" }
  | { type: "linear"; factor: number }
  | { type: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

export interface ModelConfig {
  /** HF architecture name, e.g. "LlamaForCausalLM". */
  architecture: string;
  /** model width (d_model) */
  hiddenSize: number;
  /** SwiGLU inner width */
  intermediateSize: number;
  numLayers: number;
  /** query heads */
  numHeads: number;
  /** key/value heads (< numHeads: grouped-query attention) */
  numKvHeads: number;
  headDim: number;
  vocabSize: number;
  /** longest sequence the model was trained for */
  maxPositions: number;
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /** LM head shares the embedding matrix (no lm_head.weight) */
  tieWordEmbeddings: boolean;
  /** q/k/v projections carry a bias (Qwen2; Llama with attention_bias) */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama attention_bias) */
  oBias: boolean;
  /** gate/up/down carry a bias (Llama mlp_bias) */
  mlpBias: boolean;
  /** Mistral-style local attention window; null = full causal attention */
  slidingWindow: number | null;
  bosTokenId: number | null;
  eosTokenIds: number[];
  /** dtype the checkpoint says it was saved in */
  torchDtype: string | null;
  /** the parsed config.json, for writing it back out unchanged */
  raw: Record<string, unknown>;
}

/** Formats the first zod issue as `field "a.b": problem`. */
export function describeZodError(err: z.ZodError): string {
  const issue = err.issues[0]!;
  const where = issue.path.length ? `field "${issue.path.join(".")}"` : "value";
  const missing = issue.code === "invalid_type" && /received undefined/.test(issue.message);
  return missing ? `${where} is missing` : `${where}: ${issue.message}`;
}

export function readRawConfig(dir: string): { file: string; json: Record<string, unknown> } {
  const file = path.join(dir, "config.json");
  const json = readJsonFile(file, "every Hugging Face model folder has a config.json");
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new FormatError(file, "is not a JSON object");
  return { file, json: json as Record<string, unknown> };
}

function ropeScalingOf(raw: RawLlamaConfig, file: string): RopeScaling {
  const rs = raw.rope_scaling;
  if (!rs) return { type: "none" };
  const kind = rs.rope_type ?? rs.type;
  if (kind === "default") return { type: "none" };
  if (kind === "linear" && rs.factor) return { type: "linear", factor: rs.factor };
  if (kind === "llama3" && rs.factor && rs.original_max_position_embeddings) {
    return {
      type: "llama3",
      factor: rs.factor,
      lowFreqFactor: rs.low_freq_factor ?? 1,
      highFreqFactor: rs.high_freq_factor ?? 4,
      originalMaxPositions: rs.original_max_position_embeddings,
    };
  }
  throw new FormatError(file, `rope_scaling ${JSON.stringify(rs)} is not supported (supported: linear, llama3)`);
}

/** Validates a Llama-family config.json; `defaults` lets a family set what its configs leave out. */
export function parseLlamaConfig(
  file: string,
  json: Record<string, unknown>,
  family: { qkvBias?: boolean; slidingWindowField?: boolean } = {},
): ModelConfig {
  const parsed = llamaConfigSchema.safeParse(json);
  if (!parsed.success) throw new FormatError(file, describeZodError(parsed.error));
  const c = parsed.data;
  if (c.hidden_act !== "silu") throw new FormatError(file, `hidden_act "${c.hidden_act}" is not supported (only silu)`);
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKvHeads !== 0) {
    throw new FormatError(file, `num_attention_heads (${c.num_attention_heads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  }
  const headDim = c.head_dim ?? c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim) || headDim % 2 !== 0) throw new FormatError(file, `head_dim ${headDim} must be an even integer`);
  const eos = c.eos_token_id;
  const slidingWindow = family.slidingWindowField && c.use_sliding_window !== false ? (c.sliding_window ?? null) : null;
  return {
    architecture: c.architectures[0]!,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim,
    vocabSize: c.vocab_size,
    maxPositions: c.max_position_embeddings,
    rmsNormEps: c.rms_norm_eps,
    ropeTheta: c.rope_theta,
    ropeScaling: ropeScalingOf(c, file),
    tieWordEmbeddings: c.tie_word_embeddings,
    qkvBias: family.qkvBias ?? c.attention_bias ?? false,
    oBias: c.attention_bias ?? false,
    mlpBias: c.mlp_bias,
    slidingWindow,
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
    eosTokenIds: eos == null ? [] : Array.isArray(eos) ? eos : [eos],
    torchDtype: c.torch_dtype ?? null,
    raw: json,
  };
}
