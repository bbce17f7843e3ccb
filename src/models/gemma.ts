// Gemma2ForCausalLM and Gemma3ForCausalLM (text) (models/family.ts). Differences from Llama:
//   - RMSNorm scales by (1 + w) (weights are stored as offsets from 1);
//   - embeddings are multiplied by √hidden (float32);
//   - four norms per layer: input → attention → post_attention_layernorm, residual;
//     pre_feedforward_layernorm → MLP → post_feedforward_layernorm, residual;
//   - the MLP is down(gelu_tanh(gate(x)) · up(x));
//   - scores are scaled by query_pre_attn_scalar^(-1/2), not head_dim^(-1/2);
//   - Gemma 2: attention logits softcapped (c·tanh(s/c)) and final logits softcapped;
//   - sliding-window layers per `layer_types` (Gemma 2: every other layer; Gemma 3: 5 of 6);
//   - Gemma 3: per-head q/k RMSNorm (1 + w), and a rotary base per layer type (local 10 000,
//     global rope_theta, optionally with linear scaling).
import { z } from "zod";
import { Keys } from "../formats/gguf/constants.js";
import { FormatError } from "../formats/errors.js";
import { mapTensorName } from "../formats/gguf/names.js";
import type { WeightSource } from "../formats/weights.js";
import { layerCount, describeZodError, eosList, tokenIds, type ModelConfig } from "./config.js";
import type { FamilyAdapter, GgufTensorPlan, LinearSpec } from "./family.js";
import { GgufMeta } from "./gguf-meta.js";
import { activation, ACTIVATIONS, rmsNorm, rotateHalf, softcap } from "./graph-ops.js";
import { EMBED_TOKENS, FINAL_NORM, layerPrefix, LM_HEAD } from "./llama.js";
import { inverseFrequencies, parseRopeScaling, type RopeScaling } from "./rope.js";
import { gemmaBlockBackward, gemmaHeadBackward } from "../train/blocks/gemma.js";
import { keepLayersRaw, layerStructures, standardUnits, structuredPruningRaw, type LayerStructure, type PrunedLayer } from "./structure.js";

const ropeParams = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(),
  rope_theta: z.number().positive().optional(),
  factor: z.number().positive().optional(),
});

const gemmaConfigSchema = z.looseObject({
  architectures: z.array(z.string()).min(1),
  hidden_size: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  num_hidden_layers: layerCount,
  num_attention_heads: z.number().int().positive(),
  num_key_value_heads: z.number().int().positive().nullish(),
  head_dim: z.number().int().positive(),
  vocab_size: z.number().int().positive(),
  max_position_embeddings: z.number().int().positive().default(8192),
  rms_norm_eps: z.number().positive().default(1e-6),
  hidden_activation: z.string().nullish(),
  hidden_act: z.string().nullish(),
  query_pre_attn_scalar: z.number().positive(),
  attn_logit_softcapping: z.number().positive().nullish(),
  final_logit_softcapping: z.number().positive().nullish(),
  sliding_window: z.number().int().positive().nullish(),
  layer_types: z.array(z.string()).nullish(),
  sliding_window_pattern: z.number().int().positive().nullish(),
  _sliding_window_pattern: z.number().int().positive().nullish(),
  rope_theta: z.number().positive().optional(),
  rope_local_base_freq: z.number().positive().optional(),
  rope_scaling: ropeParams.nullish(),
  // transformers ≥ 5: {rope_theta, …} (Gemma 2) or {full_attention: {…}, sliding_attention: {…}} (Gemma 3)
  rope_parameters: z.looseObject({ full_attention: ropeParams.optional(), sliding_attention: ropeParams.optional() }).and(ropeParams).nullish(),
  tie_word_embeddings: z.boolean().default(true),
  attention_bias: z.boolean().default(false),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  torch_dtype: z.string().nullish(),
});

export interface GemmaConfig extends ModelConfig {
  version: 2 | 3;
  rmsNormEps: number;
  hiddenAct: string;
  /** multiplies q·kᵀ: query_pre_attn_scalar^(-1/2) */
  attnScale: number;
  attnSoftcap: number | null;
  finalSoftcap: number | null;
  /** window of each layer (null: full attention) */
  layerWindows: (number | null)[];
  slidingWindow: number | null;
  /** rotary base and scaling of full-attention layers, and base of sliding ones */
  ropeTheta: number;
  ropeScaling: RopeScaling;
  localRopeTheta: number;
  /** each layer's widths (differ only after structured pruning: config.json structured_pruning) */
  layers: LayerStructure[];
}

function parseGemmaConfig(file: string, json: Record<string, unknown>, version: 2 | 3): GemmaConfig {
  const parsed = gemmaConfigSchema.safeParse(json);
  if (!parsed.success) throw new FormatError(file, describeZodError(parsed.error));
  const c = parsed.data;
  if (c.attention_bias) throw new FormatError(file, "attention_bias is not supported for Gemma");
  const act = c.hidden_activation ?? c.hidden_act ?? "gelu_pytorch_tanh";
  if (!ACTIVATIONS.includes(act)) throw new FormatError(file, `hidden_activation "${act}" is not supported`);
  const numKvHeads = c.num_key_value_heads ?? c.num_attention_heads;
  if (c.num_attention_heads % numKvHeads !== 0) {
    throw new FormatError(file, `num_attention_heads (${c.num_attention_heads}) is not a multiple of num_key_value_heads (${numKvHeads})`);
  }
  if (c.head_dim % 2 !== 0) throw new FormatError(file, `head_dim ${c.head_dim} must be even`);
  const pattern = c.sliding_window_pattern ?? c._sliding_window_pattern ?? (version === 2 ? 2 : 6);
  const types = c.layer_types ?? Array.from({ length: c.num_hidden_layers }, (_, i) => ((i + 1) % pattern ? "sliding_attention" : "full_attention"));
  if (types.length !== c.num_hidden_layers) throw new FormatError(file, `layer_types has ${types.length} entries for ${c.num_hidden_layers} layers`);
  const sliding = types.map((t) => t === "sliding_attention");
  if (sliding.some(Boolean) && !c.sliding_window) throw new FormatError(file, `field "sliding_window" is missing (layer_types has sliding layers)`);
  const rp = c.rope_parameters ?? null;
  const global = rp?.full_attention ?? (rp && !rp.sliding_attention ? rp : null) ?? c.rope_scaling ?? null;
  const local = rp?.sliding_attention ?? null;
  const fail = (m: string): never => {
    throw new FormatError(file, m);
  };
  const layers = layerStructures(json, c.num_hidden_layers, { numHeads: c.num_attention_heads, numKvHeads, intermediateSize: c.intermediate_size, oBias: false, downBias: false }, fail);
  return {
    version,
    layers,
    layerWidths: json.structured_pruning ? layers : undefined,
    architecture: c.architectures[0]!,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads,
    headDim: c.head_dim,
    vocabSize: c.vocab_size,
    maxPositions: c.max_position_embeddings,
    tieWordEmbeddings: c.tie_word_embeddings,
    rmsNormEps: c.rms_norm_eps,
    hiddenAct: act,
    attnScale: Math.pow(c.query_pre_attn_scalar, -0.5),
    attnSoftcap: c.attn_logit_softcapping ?? null,
    finalSoftcap: c.final_logit_softcapping ?? null,
    layerWindows: sliding.map((s) => (s ? c.sliding_window! : null)),
    slidingWindow: c.sliding_window ?? null,
    ropeTheta: global?.rope_theta ?? c.rope_theta ?? 10000,
    ropeScaling: parseRopeScaling(global, file),
    localRopeTheta: local?.rope_theta ?? c.rope_local_base_freq ?? 10000,
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
    eosTokenIds: eosList(c.eos_token_id),
    torchDtype: c.torch_dtype ?? null,
    raw: json,
  };
}

const T = {
  inputNorm: "input_layernorm.weight",
  postAttnNorm: "post_attention_layernorm.weight",
  preFfnNorm: "pre_feedforward_layernorm.weight",
  postFfnNorm: "post_feedforward_layernorm.weight",
  qNorm: "self_attn.q_norm.weight",
  kNorm: "self_attn.k_norm.weight",
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
} as const;

/** The layer's tensor names, for train/blocks/gemma.ts. */
export const GEMMA_LAYER = T;

function linears(c: GemmaConfig, i: number): LinearSpec[] {
  const D = c.hiddenSize;
  const l = c.layers[i]!;
  const qDim = l.numHeads * c.headDim;
  const kvDim = l.numKvHeads * c.headDim;
  const F = l.intermediateSize;
  return [
    { suffix: T.q, input: "attn_in", hasBias: false, outFeatures: qDim, inFeatures: D },
    { suffix: T.k, input: "attn_in", hasBias: false, outFeatures: kvDim, inFeatures: D },
    { suffix: T.v, input: "attn_in", hasBias: false, outFeatures: kvDim, inFeatures: D },
    { suffix: T.o, input: "attn_out", hasBias: l.oBias, outFeatures: D, inFeatures: qDim },
    { suffix: T.gate, input: "mlp_in", hasBias: false, outFeatures: F, inFeatures: D },
    { suffix: T.up, input: "mlp_in", hasBias: false, outFeatures: F, inFeatures: D },
    { suffix: T.down, input: "mlp_act", hasBias: l.downBias, outFeatures: D, inFeatures: F },
  ];
}

function layerTensors(c: GemmaConfig, i: number): Map<string, number[]> {
  const D = c.hiddenSize;
  const shapes = new Map<string, number[]>([
    [T.inputNorm, [D]],
    [T.postAttnNorm, [D]],
    [T.preFfnNorm, [D]],
    [T.postFfnNorm, [D]],
  ]);
  if (c.version === 3) {
    shapes.set(T.qNorm, [c.headDim]);
    shapes.set(T.kNorm, [c.headDim]);
  }
  for (const l of linears(c, i)) {
    shapes.set(`${l.suffix}.weight`, [l.outFeatures, l.inFeatures]);
    if (l.hasBias) shapes.set(`${l.suffix}.bias`, [l.outFeatures]);
  }
  return shapes;
}

/**
 * config.json of the pruned model: equal widths without compensation biases → Gemma's own keys
 * (head_dim is its own key, so fewer heads change nothing else; q/k norms are per head);
 * otherwise `structured_pruning` per layer (HF's Gemma has no o_proj/down_proj bias keys).
 */
function gemmaPrunedRaw(c: GemmaConfig, layers: PrunedLayer[]): Record<string, unknown> {
  const rep = (i: number) => c.layers[i]!.numHeads / c.layers[i]!.numKvHeads;
  const kv = layers.map((p) => p.kept.attention.length);
  const heads = layers.map((_, i) => kv[i]! * rep(i));
  const ff = layers.map((p) => p.kept.mlp.length);
  const biased = layers.some((p, i) => p.consumerBias || c.layers[i]!.oBias || c.layers[i]!.downBias);
  const uniform = layers.every((_, i) => heads[i] === heads[0] && kv[i] === kv[0] && ff[i] === ff[0]);
  if (!uniform || biased) return structuredPruningRaw(c.raw, c.layers, layers);
  const raw: Record<string, unknown> = { ...c.raw, num_attention_heads: heads[0], num_key_value_heads: kv[0], intermediate_size: ff[0] };
  delete raw.structured_pruning;
  return raw;
}

/** Gemma's RMSNorm: x / sqrt(mean(x²) + eps) · (1 + w), float32. */
function gemmaNorm(g: Parameters<FamilyAdapter["block"]>[0], x: string, w: string, eps: number): string {
  return rmsNorm(g, x, g.op("Add", [w, g.constFloat([1], [])]), eps);
}

const GGUF_NAMES = [
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
  ["model.layers.{bid}.post_attention_layernorm", "blk.{bid}.post_attention_norm"],
  ["model.layers.{bid}.pre_feedforward_layernorm", "blk.{bid}.ffn_norm"],
  ["model.layers.{bid}.post_feedforward_layernorm", "blk.{bid}.post_ffw_norm"],
  ["model.layers.{bid}.mlp.gate_proj", "blk.{bid}.ffn_gate"],
  ["model.layers.{bid}.mlp.up_proj", "blk.{bid}.ffn_up"],
  ["model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"],
] as const;

const plusOne = (d: Float32Array) => d.map((v) => v + 1);
const minusOne = (d: Float32Array) => d.map((v) => v - 1);

function gemmaFamily(version: 2 | 3): FamilyAdapter<GemmaConfig> {
  const arch = version === 2 ? "gemma2" : "gemma3";
  return {
    name: arch,
    parseConfig: (file, json) => parseGemmaConfig(file, json, version),
    layerPrefix,
    globalTensors: (c) => [
      { name: EMBED_TOKENS, shape: [c.vocabSize, c.hiddenSize] },
      { name: FINAL_NORM, shape: [c.hiddenSize] },
      { name: LM_HEAD, shape: [c.vocabSize, c.hiddenSize], optional: c.tieWordEmbeddings },
    ],
    headWeight: (c, w) => (c.tieWordEmbeddings && !w.has(LM_HEAD) ? EMBED_TOKENS : LM_HEAD),
    layerTensors: (c, i) => layerTensors(c, i),
    linears: (c, i) => linears(c, i),
    captureWidths: (c, i) => ({ attn_in: c.hiddenSize, attn_out: c.layers[i]!.numHeads * c.headDim, mlp_in: c.hiddenSize, mlp_act: c.layers[i]!.intermediateSize }),
    trueSequentialGroups: () => [[T.k, T.v, T.q], [T.o], [T.up, T.gate], [T.down]],
    layerKey: (c, i) => ({ v: c.version, D: c.hiddenSize, l: c.layers[i], hd: c.headDim, eps: c.rmsNormEps, w: c.layerWindows[i], cap: c.attnSoftcap, s: c.attnScale }),
    rotary: (c) => ({
      global: { invFreq: inverseFrequencies(c.headDim, c.ropeTheta, c.ropeScaling) },
      // Gemma 2 has one base for every layer; Gemma 3's sliding layers use the local base
      local: { invFreq: inverseFrequencies(c.headDim, c.version === 3 ? c.localRopeTheta : c.ropeTheta, c.version === 3 ? { type: "none" } : c.ropeScaling) },
    }),

    embed(g, _ctx, w, c) {
      // × √hidden in float32 (Gemma2Model: hidden_states * normalizer)
      return g.op("Mul", [w.gather(EMBED_TOKENS, "tokens"), g.constFloat([Math.fround(Math.sqrt(c.hiddenSize))], [])]);
    },

    block(g, ctx, w, c, layer, x) {
      const { numHeads: H, numKvHeads: KV, oBias, downBias } = c.layers[layer]!;
      const hd = c.headDim;
      const L = (suffix: string, h: string, bias = false) => w.linear(h, suffix, bias);
      const window = c.layerWindows[layer] ?? null;
      const { cos, sin } = ctx.rope(window !== null ? "local" : "global");
      const h = gemmaNorm(g, x, w.param(T.inputNorm), c.rmsNormEps);
      ctx.capture("attn_in", h);
      const headNorm = (t: string, weight: string) => (c.version === 3 ? gemmaNorm(g, t, w.param(weight), c.rmsNormEps) : t);
      const qr = rotateHalf(g, headNorm(g.op("Reshape", [L(T.q, h), ctx.shape(H, hd)]), T.qNorm), cos, sin, hd);
      const kr = rotateHalf(g, headNorm(g.op("Reshape", [L(T.k, h), ctx.shape(KV, hd)]), T.kNorm), cos, sin, hd);
      const flat = (t: string, n: number) => g.op("Reshape", [t, g.constInt64([0, 0, n])]);
      const vr = g.op("Reshape", [L(T.v, h), ctx.shape(KV * hd)]);
      const y = ctx.attention(flat(qr, H * hd), flat(kr, KV * hd), vr, { numHeads: H, numKvHeads: KV, headDim: hd, scale: c.attnScale, softcap: c.attnSoftcap, window });
      ctx.capture("attn_out", y);
      const x2 = g.op("Add", [x, gemmaNorm(g, L(T.o, y, oBias), w.param(T.postAttnNorm), c.rmsNormEps)]);
      const h2 = gemmaNorm(g, x2, w.param(T.preFfnNorm), c.rmsNormEps);
      ctx.capture("mlp_in", h2);
      const act = g.op("Mul", [activation(g, c.hiddenAct, L(T.gate, h2)), L(T.up, h2)]);
      ctx.capture("mlp_act", act);
      return g.op("Add", [x2, gemmaNorm(g, L(T.down, act, downBias), w.param(T.postFfnNorm), c.rmsNormEps)]);
    },

    head(g, _ctx, w, c, x) {
      const head = c.tieWordEmbeddings && !w.has(LM_HEAD) ? EMBED_TOKENS : LM_HEAD;
      const logits = w.linear(gemmaNorm(g, x, w.param(FINAL_NORM), c.rmsNormEps), head.replace(/\.weight$/, ""), false);
      return c.finalSoftcap ? softcap(g, logits, c.finalSoftcap) : logits;
    },

    // recovery training; arrows so the import cycle with train/blocks/ resolves at call time
    train: {
      blockBackward: (c, layer, opts) => gemmaBlockBackward(c, layer, opts),
      headBackward: (o, c, x, w) => gemmaHeadBackward(o, c, x, w),
    },
    // structured pruning: KV groups (q/k/v rows, o_proj columns) and gated-MLP channels
    structure: {
      units(c, i) {
        const l = c.layers[i]!;
        return standardUnits({
          numHeads: l.numHeads,
          numKvHeads: l.numKvHeads,
          headDim: c.headDim,
          hidden: c.hiddenSize,
          intermediate: l.intermediateSize,
          q: T.q,
          k: T.k,
          v: T.v,
          o: T.o,
          attnInput: "attn_out",
          mlpProducers: [T.gate, T.up],
          down: T.down,
          mlpInput: "mlp_act",
        });
      },
      prune: (c, layers) => parseGemmaConfig("config.json (structured pruning)", gemmaPrunedRaw(c, layers), version),
      // layer_types written out, so the kept layers keep their own windows whatever the pattern
      keepLayers: (c, keep) => {
        const types = c.layerWindows.map((w) => (w !== null ? "sliding_attention" : "full_attention"));
        return parseGemmaConfig("config.json (structured pruning)", keepLayersRaw({ ...c.raw, layer_types: types }, keep, "num_hidden_layers"), version);
      },
    },

    // convert_hf_to_gguf.py Gemma2Model / Gemma3Model: norms stored as 1 + w, NEOX rope (no permutation)
    gguf: {
      archName: arch,
      arch(c) {
        if (c.layerWidths) throw new Error(`GGUF export of this ${c.architecture}: llama.cpp's ${arch} architecture has one width for all layers and no output biases (this model was structurally pruned per layer or with compensation biases; prune with --uniform and without them)`);
        return arch;
      },
      tensors(c, w: WeightSource): GgufTensorPlan[] {
        const plan: GgufTensorPlan[] = [];
        const add = (source: string) => {
          const name = mapTensorName(GGUF_NAMES, source, "toGguf");
          if (!name) throw new Error(`no llama.cpp name for tensor "${source}"`);
          if (!w.has(source)) throw new FormatError(w.location, `missing tensor "${source}"`);
          const norm = source.endsWith("norm.weight");
          plan.push({ name, source, shape: [...w.shape(source)], permuteHeads: null, ...(norm ? { transform: plusOne } : {}) });
        };
        add(EMBED_TOKENS);
        for (let i = 0; i < c.numLayers; i++) for (const suffix of layerTensors(c, i).keys()) add(layerPrefix(i) + suffix);
        add(FINAL_NORM);
        // llama.cpp's Gemma always ties the head to token_embd (the converter skips lm_head)
        return plan;
      },
      metadata(c, a) {
        const m = new GgufMeta(a).common(c, c.rmsNormEps).f32(Keys.Rope.FREQ_BASE, c.ropeTheta);
        if (c.slidingWindow !== null) m.u32("attention.sliding_window", c.slidingWindow);
        if (c.version === 2) {
          m.f32("attn_logit_softcapping", c.attnSoftcap ?? 0).f32("final_logit_softcapping", c.finalSoftcap ?? 0);
        } else if (c.ropeScaling.type === "linear") {
          m.str(Keys.Rope.SCALING_TYPE, "linear").f32(Keys.Rope.SCALING_FACTOR, c.ropeScaling.factor);
        }
        return m.kv;
      },
      warnings(c) {
        const out: string[] = [];
        if (!c.tieWordEmbeddings) out.push("llama.cpp's Gemma ties the LM head to token_embd: the untied lm_head.weight is left out");
        if (c.version === 3) {
          const pattern = c.layerWindows.map((w, i) => (w !== null) === ((i + 1) % 6 !== 0));
          if (pattern.some((ok) => !ok)) out.push("llama.cpp's gemma3 assumes 5 sliding layers of every 6; this model's layer_types differ, so sequences longer than the window compute differently there");
        }
        return out;
      },
      hfName: (name) => mapTensorName(GGUF_NAMES, name, "toHf"),
      fromGguf: (name, data) => (name.endsWith("norm.weight") ? minusOne(data) : data),
    },
  };
}

export const gemma2Family = gemmaFamily(2);
export const gemma3Family = gemmaFamily(3);
