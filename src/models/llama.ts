// The Llama family adapter (models/family.ts): LlamaForCausalLM (also Llama 3 rope scaling),
// MistralForCausalLM, Qwen2ForCausalLM and Qwen3ForCausalLM, which differ from Llama only in
// config fields and small switches (LlamaVariant):
//   - Qwen2: q/k/v projections have a bias (config.qkvBias).
//   - Qwen3: per-head RMSNorm of q and k before the rotary embedding (q_norm, k_norm).
//   - Mistral / Qwen2 / Qwen3: sliding-window attention, applied as a mask on every layer, or on
//     the layers `layer_types` marks "sliding_attention".
// Pre-norm RMSNorm, rotary embeddings (rotate_half), grouped-query causal attention, SwiGLU MLP.
// The linears read four captured inputs:
//   attn_in  → q_proj, k_proj, v_proj      attn_out → o_proj
//   mlp_in   → gate_proj, up_proj          mlp_act  → down_proj
import { z } from "zod";
import { Keys } from "../formats/gguf/constants.js";
import { FormatError } from "../formats/errors.js";
import type { MetadataValue } from "../formats/gguf/writer.js";
import type { WeightSource } from "../formats/weights.js";
import { layerCount, describeZodError, eosList, tokenIds, type ModelConfig } from "./config.js";
import type { FamilyAdapter, GgufFamily, GgufTensorPlan, LinearSpec } from "./family.js";
import { standardUnits, type PrunedLayer, type StructureHooks } from "./structure.js";
import { unpermuteRows } from "../export/gguf-tensors.js";
import { mapTensorName } from "../formats/gguf/names.js";
import { activation, rmsNorm, rotateHalf } from "./graph-ops.js";
import { GgufMeta } from "./gguf-meta.js";
import { inverseFrequencies, parseRopeScaling, rotaryTables, type RopeScaling } from "./rope.js";
import { llamaBlockBackward, llamaHeadBackward } from "../train/llama-block.js";

const ropeParams = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(),
  rope_theta: z.number().positive().optional(),
  factor: z.number().positive().optional(),
  low_freq_factor: z.number().optional(),
  high_freq_factor: z.number().optional(),
  original_max_position_embeddings: z.number().int().optional(),
});

/** The fields topiary reads from a Llama-family config.json; others are kept but ignored. */
const llamaConfigSchema = z.looseObject({
  architectures: z.array(z.string()).min(1),
  model_type: z.string().optional(),
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_hidden_layers: layerCount,
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive().nullish(),
  head_dim: z.number().int().positive().nullish(),
  vocab_size: z.number().int().positive(),
  max_position_embeddings: z.number().int().positive().default(2048),
  rms_norm_eps: z.number().positive().default(1e-6),
  rope_theta: z.number().positive().optional(),
  rope_scaling: ropeParams.nullish(),
  // transformers ≥ 5 writes rope_theta and the scaling together here
  rope_parameters: ropeParams.nullish(),
  hidden_act: z.string().default("silu"),
  tie_word_embeddings: z.boolean().default(false),
  attention_bias: z.boolean().optional(),
  mlp_bias: z.boolean().default(false),
  sliding_window: z.number().int().positive().nullish(),
  use_sliding_window: z.boolean().optional(),
  layer_types: z.array(z.string()).nullish(),
  // Qwen2/3 configs without layer_types: layers below it attend fully
  max_window_layers: z.number().int().nullish(),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  torch_dtype: z.string().nullish(),
  // per-layer widths written by structured pruning (compress/structured/write.ts)
  structured_pruning: z
    .looseObject({
      num_attention_heads: z.array(z.number().int().positive()),
      num_key_value_heads: z.array(z.number().int().positive()),
      intermediate_size: z.array(z.number().int().positive()),
      o_proj_bias: z.array(z.boolean()).optional(),
      down_proj_bias: z.array(z.boolean()).optional(),
    })
    .nullish(),
});

/** One decoder layer's widths and consumer biases (all equal unless structured pruning made them differ). */
export interface LlamaLayerShape {
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  /** o_proj carries a bias */
  oBias: boolean;
  /** down_proj carries a bias */
  downBias: boolean;
}

export interface LlamaConfig extends ModelConfig {
  rmsNormEps: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  /** each layer's widths and consumer biases */
  layers: LlamaLayerShape[];
  /** q/k/v projections carry a bias (Qwen2; Llama with attention_bias) */
  qkvBias: boolean;
  /** o_proj carries a bias (Llama attention_bias) */
  oBias: boolean;
  /** gate/up/down carry a bias (Llama mlp_bias) */
  mlpBias: boolean;
  /** the config's local attention window; null = full causal attention */
  slidingWindow: number | null;
  /** the window of each layer (slidingWindow, or null where layer_types says full attention) */
  layerWindows: (number | null)[];
  /** per-head RMSNorm of q and k (Qwen3) */
  qkNorm: boolean;
  hiddenAct: string;
}

/** What distinguishes the members of the family that share this file. */
export interface LlamaVariant {
  /** q/k/v biases whatever attention_bias says (Qwen2) */
  qkvBias?: boolean;
  /** the config's sliding_window applies (Mistral, Qwen2, Qwen3) */
  slidingWindowField?: boolean;
  /** q_norm / k_norm per head (Qwen3) */
  qkNorm?: boolean;
}

/** Validates a Llama-family config.json. */
export function parseLlamaConfig(file: string, json: Record<string, unknown>, variant: LlamaVariant = {}): LlamaConfig {
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
  const slidingWindow = variant.slidingWindowField && c.use_sliding_window !== false ? (c.sliding_window ?? null) : null;
  const rope = c.rope_parameters ?? c.rope_scaling ?? null;
  const types = c.layer_types ?? null;
  if (types && types.length !== c.num_hidden_layers) {
    throw new FormatError(file, `layer_types has ${types.length} entries for ${c.num_hidden_layers} layers`);
  }
  const full = (i: number) => (types ? types[i] !== "sliding_attention" : i < (c.max_window_layers ?? 0));
  const layerWindows = Array.from({ length: c.num_hidden_layers }, (_, i) => (full(i) ? null : slidingWindow));
  const oBias = c.attention_bias ?? false;
  const sp = c.structured_pruning;
  const L = c.num_hidden_layers;
  if (sp) {
    for (const key of ["num_attention_heads", "num_key_value_heads", "intermediate_size", "o_proj_bias", "down_proj_bias"] as const) {
      const list = sp[key];
      if (list && list.length !== L) throw new FormatError(file, `structured_pruning.${key} has ${list.length} entries for ${L} layers`);
    }
    sp.num_attention_heads.forEach((h, i) => {
      if (h % sp.num_key_value_heads[i]! !== 0) throw new FormatError(file, `structured_pruning: layer ${i} has ${h} query heads, not a multiple of its ${sp.num_key_value_heads[i]} KV heads`);
    });
  }
  const layers: LlamaLayerShape[] = Array.from({ length: L }, (_, i) => ({
    numHeads: sp?.num_attention_heads[i] ?? c.num_attention_heads,
    numKvHeads: sp?.num_key_value_heads[i] ?? numKvHeads,
    intermediateSize: sp?.intermediate_size[i] ?? c.intermediate_size,
    oBias: oBias || (sp?.o_proj_bias?.[i] ?? false),
    downBias: c.mlp_bias || (sp?.down_proj_bias?.[i] ?? false),
  }));
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
    ropeTheta: c.rope_parameters?.rope_theta ?? c.rope_theta ?? 10000,
    ropeScaling: parseRopeScaling(rope, file),
    tieWordEmbeddings: c.tie_word_embeddings,
    layers,
    layerWidths: sp ? layers.map(({ numHeads, numKvHeads, intermediateSize }) => ({ numHeads, numKvHeads, intermediateSize })) : undefined,
    qkvBias: variant.qkvBias ?? c.attention_bias ?? false,
    oBias,
    mlpBias: c.mlp_bias,
    slidingWindow,
    layerWindows,
    qkNorm: variant.qkNorm ?? false,
    hiddenAct: c.hidden_act,
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
    eosTokenIds: eosList(c.eos_token_id),
    torchDtype: c.torch_dtype ?? null,
    raw: json,
  };
}

/** HF tensor-name suffixes of a decoder layer, by role (gguf-py tensor_mapping style). */
export const LAYER_TENSORS = {
  inputNorm: "input_layernorm.weight",
  qNorm: "self_attn.q_norm.weight",
  kNorm: "self_attn.k_norm.weight",
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  postNorm: "post_attention_layernorm.weight",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
} as const;

export const EMBED_TOKENS = "model.embed_tokens.weight";
export const FINAL_NORM = "model.norm.weight";
export const LM_HEAD = "lm_head.weight";
export const layerPrefix = (i: number): string => `model.layers.${i}.`;

/** The seven linears of decoder layer i, in the order the math uses them. */
export function linearSpecs(c: LlamaConfig, i: number): LinearSpec[] {
  const D = c.hiddenSize;
  const l = c.layers[i]!;
  const qDim = l.numHeads * c.headDim;
  const kvDim = l.numKvHeads * c.headDim;
  const F = l.intermediateSize;
  return [
    { suffix: LAYER_TENSORS.q, input: "attn_in", hasBias: c.qkvBias, outFeatures: qDim, inFeatures: D },
    { suffix: LAYER_TENSORS.k, input: "attn_in", hasBias: c.qkvBias, outFeatures: kvDim, inFeatures: D },
    { suffix: LAYER_TENSORS.v, input: "attn_in", hasBias: c.qkvBias, outFeatures: kvDim, inFeatures: D },
    { suffix: LAYER_TENSORS.o, input: "attn_out", hasBias: l.oBias, outFeatures: D, inFeatures: qDim },
    { suffix: LAYER_TENSORS.gate, input: "mlp_in", hasBias: c.mlpBias, outFeatures: F, inFeatures: D },
    { suffix: LAYER_TENSORS.up, input: "mlp_in", hasBias: c.mlpBias, outFeatures: F, inFeatures: D },
    { suffix: LAYER_TENSORS.down, input: "mlp_act", hasBias: l.downBias, outFeatures: D, inFeatures: F },
  ];
}

/**
 * The order of "true sequential" compression (GPTQ/SparseGPT llama.py --true-sequential): each
 * group's inputs are captured after the earlier groups were compressed.
 */
const TRUE_SEQUENTIAL_GROUPS: readonly (readonly string[])[] = [
  [LAYER_TENSORS.k, LAYER_TENSORS.v, LAYER_TENSORS.q],
  [LAYER_TENSORS.o],
  [LAYER_TENSORS.up, LAYER_TENSORS.gate],
  [LAYER_TENSORS.down],
];

/** Every tensor decoder layer i needs (suffix → shape). */
export function layerTensorShapes(c: LlamaConfig, i: number): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  shapes.set(LAYER_TENSORS.inputNorm, [c.hiddenSize]);
  shapes.set(LAYER_TENSORS.postNorm, [c.hiddenSize]);
  if (c.qkNorm) {
    shapes.set(LAYER_TENSORS.qNorm, [c.headDim]);
    shapes.set(LAYER_TENSORS.kNorm, [c.headDim]);
  }
  for (const l of linearSpecs(c, i)) {
    shapes.set(`${l.suffix}.weight`, [l.outFeatures, l.inFeatures]);
    if (l.hasBias) shapes.set(`${l.suffix}.bias`, [l.outFeatures]);
  }
  return shapes;
}

/** cos/sin tables [T, 1, headDim] for positions start..start+T-1 (the runtime feeds these). */
export function ropeTables(c: LlamaConfig, start: number, T: number): { cos: Float32Array; sin: Float32Array } {
  return rotaryTables(inverseFrequencies(c.headDim, c.ropeTheta, c.ropeScaling), start, T);
}

// ---------------------------------------------------------------------------------------------
// GGUF (convert_hf_to_gguf.py LlamaModel): llama.cpp names, q/k rows permuted to ggml's rope order

/** HF module path (without .weight/.bias) → llama.cpp name; "{bid}" is the block index. */
export const LLAMA_GGUF_NAMES: readonly (readonly [string, string])[] = [
  ["model.embed_tokens", "token_embd"],
  ["model.norm", "output_norm"],
  ["lm_head", "output"],
  ["model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"],
  ["model.layers.{bid}.self_attn.q_proj", "blk.{bid}.attn_q"],
  ["model.layers.{bid}.self_attn.k_proj", "blk.{bid}.attn_k"],
  ["model.layers.{bid}.self_attn.v_proj", "blk.{bid}.attn_v"],
  ["model.layers.{bid}.self_attn.o_proj", "blk.{bid}.attn_output"],
  ["model.layers.{bid}.self_attn.q_norm", "blk.{bid}.attn_q_norm"],
  ["model.layers.{bid}.self_attn.k_norm", "blk.{bid}.attn_k_norm"],
  ["model.layers.{bid}.post_attention_layernorm", "blk.{bid}.ffn_norm"],
  ["model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"],
  ["model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"],
  ["model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"],
];

/**
 * The GGUF plan of a Llama-shaped model. `ggufArch` is llama.cpp's architecture; `permute`: its
 * rope pairs adjacent dimensions (llama), so q/k rows are permuted — the NEOX-rope architectures
 * (qwen2, qwen3) rotate halves as HF does and take q/k as they are.
 */
export function llamaGguf(ggufArch: string, permute: boolean, names = LLAMA_GGUF_NAMES): GgufFamily<LlamaConfig> {
  return {
    archName: ggufArch,
    // Per-layer widths (structured pruning): llama.cpp's llama and qwen loaders size every layer
    // from the layer-0 head counts; its "deci" architecture (DeciLM / Nemotron-NAS, Llama math
    // with per-layer head_count, head_count_kv and feed_forward_length arrays, optional biases)
    // reads each layer's own, with llama's tensor names and rope layout.
    arch(c) {
      if (!c.layerWidths) return ggufArch;
      if (!permute) throw new Error(`GGUF export of ${c.architecture} with per-layer widths is not supported (llama.cpp's per-layer "deci" architecture is Llama's math; export with --uniform widths instead)`);
      return "deci";
    },
    tensors(c: LlamaConfig, w: WeightSource): GgufTensorPlan[] {
      const plan: GgufTensorPlan[] = [];
      const add = (source: string, permuteHeads: number | null = null) => {
        const name = mapTensorName(names, source, "toGguf");
        if (!name) throw new Error(`no llama.cpp name for tensor "${source}"`);
        if (!w.has(source)) throw new FormatError(w.location, `missing tensor "${source}"`);
        plan.push({ name, source, shape: [...w.shape(source)], permuteHeads });
      };
      if (c.ropeScaling.type === "llama3") {
        // llama.cpp divides each rotary frequency by rope_freqs[i] (convert_hf_to_gguf.py generate_extra_tensors)
        const plain = inverseFrequencies(c.headDim, c.ropeTheta, { type: "none" });
        const scaled = inverseFrequencies(c.headDim, c.ropeTheta, c.ropeScaling);
        const factors = plain.map((f, i) => f / scaled[i]!);
        plan.push({ name: "rope_freqs.weight", source: null, shape: [factors.length], permuteHeads: null, generated: factors });
      }
      add(EMBED_TOKENS);
      for (let i = 0; i < c.numLayers; i++) {
        const p = layerPrefix(i);
        const { numHeads, numKvHeads } = c.layers[i]!;
        // a linear and its bias (llama.cpp's llama/qwen architectures read every bias when present);
        // q/k biases are permuted like their rows
        const linear = (suffix: string, hasBias: boolean, heads: number | null = null) => {
          add(`${p}${suffix}.weight`, heads);
          if (hasBias) add(`${p}${suffix}.bias`, heads);
        };
        const [q, k, v, o, gate, up, down] = linearSpecs(c, i) as [LinearSpec, LinearSpec, LinearSpec, LinearSpec, LinearSpec, LinearSpec, LinearSpec];
        add(p + LAYER_TENSORS.inputNorm);
        linear(q.suffix, q.hasBias, permute ? numHeads : null);
        if (c.qkNorm) add(p + LAYER_TENSORS.qNorm);
        linear(k.suffix, k.hasBias, permute ? numKvHeads : null);
        if (c.qkNorm) add(p + LAYER_TENSORS.kNorm);
        linear(v.suffix, v.hasBias);
        linear(o.suffix, o.hasBias);
        add(p + LAYER_TENSORS.postNorm);
        linear(gate.suffix, gate.hasBias);
        linear(up.suffix, up.hasBias);
        linear(down.suffix, down.hasBias);
      }
      add(FINAL_NORM);
      // tied embeddings: llama.cpp uses token_embd when output.weight is absent
      if (w.has(LM_HEAD)) add(LM_HEAD);
      return plan;
    },
    metadata(c: LlamaConfig, arch: string): [string, MetadataValue][] {
      const m = new GgufMeta(arch).common(c, c.rmsNormEps).u32(Keys.Rope.DIMENSION_COUNT, c.headDim).f32(Keys.Rope.FREQ_BASE, c.ropeTheta);
      if (c.ropeScaling.type === "linear") m.str(Keys.Rope.SCALING_TYPE, "linear").f32(Keys.Rope.SCALING_FACTOR, c.ropeScaling.factor);
      return m.kv;
    },
    warnings(c: LlamaConfig): string[] {
      return c.slidingWindow !== null
        ? [`llama.cpp's ${ggufArch} architecture ignores the sliding window (${c.slidingWindow}): sequences longer than it attend further than the original model`]
        : [];
    },
    hfName: (ggufName) => mapTensorName(names, ggufName, "toHf"),
    fromGguf(hfName, data, shape, heads) {
      if (!permute) return data;
      if (hfName.endsWith(`${LAYER_TENSORS.q}.weight`)) return unpermuteRows(data, shape[0]!, heads.q);
      if (hfName.endsWith(`${LAYER_TENSORS.k}.weight`)) return unpermuteRows(data, shape[0]!, heads.kv);
      return data;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Structured pruning: KV groups and SwiGLU channels; the pruned model's config.json

/** Per-layer lists of `raw` (layer_types, structured_pruning.*) cut to the layers kept. */
function sliceLayerLists(raw: Record<string, unknown>, keep: readonly number[]): Record<string, unknown> {
  const out: Record<string, unknown> = { ...raw, num_hidden_layers: keep.length };
  if (Array.isArray(raw.layer_types)) out.layer_types = keep.map((i) => (raw.layer_types as unknown[])[i]);
  const sp = raw.structured_pruning as Record<string, unknown[]> | undefined;
  if (sp) out.structured_pruning = Object.fromEntries(Object.entries(sp).map(([k, v]) => [k, Array.isArray(v) ? keep.map((i) => v[i]) : v]));
  return out;
}

/**
 * config.json of a Llama-shaped model (Llama, Qwen, Mistral, Phi-3) whose layer i keeps
 * `layers[i]`. Equal widths → the family's own keys; a compensation bias then needs
 * attention_bias/mlp_bias (which also give q/k/v and gate/up a bias: those are zeros) — when the
 * family's config has no such keys (`biasKeys` false: Phi-3), biased layers are listed per layer
 * instead. Per-layer widths → the top-level widths stay and `structured_pruning` lists each
 * layer's widths, kept units and consumer biases.
 */
export function llamaPrunedRaw(c: LlamaConfig, layers: PrunedLayer[], biasKeys: boolean): Record<string, unknown> {
  const shapes = layers.map((p, i) => {
    const l = c.layers[i]!;
    const rep = l.numHeads / l.numKvHeads;
    return { heads: p.kept.attention.length * rep, kv: p.kept.attention.length, ff: p.kept.mlp.length, bias: p.consumerBias };
  });
  const raw: Record<string, unknown> = { ...c.raw, num_hidden_layers: layers.length, head_dim: c.headDim };
  delete raw.structured_pruning;
  const s0 = shapes[0]!;
  const uniform = shapes.every((s) => s.heads === s0.heads && s.kv === s0.kv && s.ff === s0.ff && s.bias === s0.bias);
  const hadBias = c.layers.some((l) => (l.oBias && !c.oBias) || (l.downBias && !c.mlpBias));
  if (uniform && (biasKeys || (!s0.bias && !hadBias))) {
    Object.assign(raw, { num_attention_heads: s0.heads, num_key_value_heads: s0.kv, intermediate_size: s0.ff });
    if (s0.bias) Object.assign(raw, { attention_bias: true, mlp_bias: true });
  } else {
    raw.structured_pruning = {
      num_attention_heads: shapes.map((s) => s.heads),
      num_key_value_heads: shapes.map((s) => s.kv),
      intermediate_size: shapes.map((s) => s.ff),
      kept_kv_groups: layers.map((p) => p.kept.attention),
      kept_mlp_channels: layers.map((p) => p.kept.mlp),
      o_proj_bias: shapes.map((s, i) => s.bias || c.layers[i]!.oBias),
      down_proj_bias: shapes.map((s, i) => s.bias || c.layers[i]!.downBias),
    };
  }
  return raw;
}

function llamaStructure(variant: LlamaVariant): StructureHooks<LlamaConfig> {
  const file = "config.json (structured pruning)";
  return {
    units: (c, i) => {
      const l = c.layers[i]!;
      return standardUnits({
        numHeads: l.numHeads,
        numKvHeads: l.numKvHeads,
        headDim: c.headDim,
        hidden: c.hiddenSize,
        intermediate: l.intermediateSize,
        q: LAYER_TENSORS.q,
        k: LAYER_TENSORS.k,
        v: LAYER_TENSORS.v,
        o: LAYER_TENSORS.o,
        attnInput: "attn_out",
        mlpProducers: [LAYER_TENSORS.gate, LAYER_TENSORS.up],
        down: LAYER_TENSORS.down,
        mlpInput: "mlp_act",
      });
    },
    prune: (c, layers) => parseLlamaConfig(file, llamaPrunedRaw(c, layers, true), variant),
    keepLayers: (c, keep) => parseLlamaConfig(file, sliceLayerLists(c.raw, keep), variant),
  };
}

// ---------------------------------------------------------------------------------------------
// The adapter

/** A Llama-shaped family: the variant decides config details, `ggufArch` llama.cpp's name. */
export function llamaFamily(name: string, variant: LlamaVariant, gguf: GgufFamily<LlamaConfig> | null): FamilyAdapter<LlamaConfig> {
  return {
    name,
    parseConfig: (file, json) => parseLlamaConfig(file, json, variant),
    layerPrefix,
    globalTensors: (c) => [
      { name: EMBED_TOKENS, shape: [c.vocabSize, c.hiddenSize] },
      { name: FINAL_NORM, shape: [c.hiddenSize] },
      { name: LM_HEAD, shape: [c.vocabSize, c.hiddenSize], optional: c.tieWordEmbeddings },
    ],
    // tied embeddings: the head is the embedding table, unless the checkpoint stores lm_head anyway
    headWeight: (c, w) => (c.tieWordEmbeddings && !w.has(LM_HEAD) ? EMBED_TOKENS : LM_HEAD),
    layerTensors: (c, i) => layerTensorShapes(c, i),
    linears: (c, i) => linearSpecs(c, i),
    captureWidths: (c, i) => ({ attn_in: c.hiddenSize, attn_out: c.layers[i]!.numHeads * c.headDim, mlp_in: c.hiddenSize, mlp_act: c.layers[i]!.intermediateSize }),
    trueSequentialGroups: () => TRUE_SEQUENTIAL_GROUPS.map((g) => [...g]),
    layerKey: (c, i) => ({ D: c.hiddenSize, hd: c.headDim, eps: c.rmsNormEps, b: [c.qkvBias, c.mlpBias], l: c.layers[i], qk: c.qkNorm, w: c.layerWindows[i] }),
    rotary: (c) => ({ rope: { invFreq: inverseFrequencies(c.headDim, c.ropeTheta, c.ropeScaling) } }),

    embed: (_g, _ctx, w) => w.gather(EMBED_TOKENS, "tokens"),

    block(g, ctx, w, c, layer, x) {
      const { numHeads: H, numKvHeads: KV } = c.layers[layer]!;
      const hd = c.headDim;
      const L = (s: LinearSpec, h: string) => w.linear(h, s.suffix, s.hasBias);
      const [q, k, v, o, gate, up, down] = linearSpecs(c, layer) as [LinearSpec, LinearSpec, LinearSpec, LinearSpec, LinearSpec, LinearSpec, LinearSpec];
      const { cos, sin } = ctx.rope("rope");
      const h = rmsNorm(g, x, w.param(LAYER_TENSORS.inputNorm), c.rmsNormEps);
      ctx.capture("attn_in", h);
      // Qwen3: RMSNorm over each head's hd values of q and k, before the rotation
      const headNorm = (t: string, weight: string) => (c.qkNorm ? rmsNorm(g, t, w.param(weight), c.rmsNormEps) : t);
      const qh = headNorm(g.op("Reshape", [L(q, h), ctx.shape(H, hd)]), LAYER_TENSORS.qNorm); //  (B, T, H, hd)
      const kh = headNorm(g.op("Reshape", [L(k, h), ctx.shape(KV, hd)]), LAYER_TENSORS.kNorm); // (B, T, KV, hd)
      const qr = rotateHalf(g, qh, cos, sin, hd);
      const kr = rotateHalf(g, kh, cos, sin, hd);
      const flat = (t: string, n: number) => g.op("Reshape", [t, g.constInt64([0, 0, n])]);
      const vr = g.op("Reshape", [L(v, h), ctx.shape(KV * hd)]);
      const y = ctx.attention(flat(qr, H * hd), flat(kr, KV * hd), vr, { numHeads: H, numKvHeads: KV, headDim: hd, window: c.layerWindows[layer] });
      ctx.capture("attn_out", y);
      const x2 = g.op("Add", [x, L(o, y)]); //                                                    residual
      const h2 = rmsNorm(g, x2, w.param(LAYER_TENSORS.postNorm), c.rmsNormEps);
      ctx.capture("mlp_in", h2);
      const act = g.op("Mul", [activation(g, c.hiddenAct, L(gate, h2)), L(up, h2)]); //          silu(g)·u, (N, F)
      ctx.capture("mlp_act", act);
      return g.op("Add", [x2, L(down, act)]); //                                                  residual
    },

    head(g, _ctx, w, c, x) {
      const head = c.tieWordEmbeddings && !w.has(LM_HEAD) ? EMBED_TOKENS : LM_HEAD;
      return w.linear(rmsNorm(g, x, w.param(FINAL_NORM), c.rmsNormEps), head.replace(/\.weight$/, ""), false);
    },

    structure: llamaStructure(variant),

    // recovery training; arrows so the import cycle with train/llama-block.ts resolves at call time
    train: {
      blockBackward: (c, layer, opts) => llamaBlockBackward(c, layer, opts),
      headBackward: (o, c, x, w) => llamaHeadBackward(o, c, x, w),
    },

    gguf: gguf ?? undefined,
  };
}
