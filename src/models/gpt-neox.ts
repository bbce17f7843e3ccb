// The GPT-NeoX family adapter (GPTNeoXForCausalLM, transformers modeling_gpt_neox.py; Pythia):
// LayerNorm, biases, partial rotary embeddings, an untied head (embed_out).
//   - rotary on the first rotary_ndims = int(headDim · partial_rotary_factor) dims of each head
//     (rotary_pct in transformers ≤ 4, rope_parameters.partial_rotary_factor in 5), rotate_half.
//   - use_parallel_residual: x + attn(ln1(x)) + mlp(ln2(x)); else x2 = x + attn(ln1(x)),
//     x2 + mlp(ln2(x2)).
//   - query_key_value [3·D, D] is ONE linear to the compressors; its rows are interleaved per
//     head ([heads, 3, headDim]); the block splits its output.
//   - attention_bias false: query_key_value and dense without biases (the MLP keeps its own).
// The linears read four captured inputs:
//   attn_in → query_key_value   attn_out → dense   mlp_in → dense_h_to_4h   mlp_act → dense_4h_to_h
import { z } from "zod";
import { FormatError } from "../formats/errors.js";
import { Keys } from "../formats/gguf/constants.js";
import type { WeightSource } from "../formats/weights.js";
import type { GraphBuilder } from "../runtime/onnx-graph.js";
import { RenamedWeights, prefixMap } from "./checkpoint-view.js";
import { layerCount, describeZodError, eosList, tokenIds, type ModelConfig } from "./config.js";
import type { FamilyAdapter, GraphWeights, LinearSpec } from "./family.js";
import { partialRope, splitInterleavedQkv } from "./fused-ops.js";
import { LAYERNORM_EPS, layerNormGguf, USE_PARALLEL_RESIDUAL } from "./gguf-layernorm.js";
import { activation, ACTIVATIONS, layerNorm } from "./graph-ops.js";
import { inverseFrequencies, parseRopeScaling, type RopeScaling } from "./rope.js";
import { gptNeoxBlockBackward, gptNeoxHeadBackward } from "../train/blocks/gpt-neox.js";
import { interleavedQkvUnits, keepLayersRaw, layerStructures, structuredPruningRaw, type LayerStructure, type PrunedLayer } from "./structure.js";

const ropeParams = z.looseObject({
  rope_type: z.string().optional(),
  type: z.string().optional(),
  rope_theta: z.number().positive().optional(),
  partial_rotary_factor: z.number().positive().max(1).optional(),
  factor: z.number().positive().optional(),
});

const neoxConfigSchema = z.looseObject({
  architectures: z.array(z.string()).min(1),
  vocab_size: z.number().int().positive(),
  hidden_size: z.number().int().positive(),
  num_hidden_layers: layerCount,
  num_attention_heads: z.number().int().positive(),
  intermediate_size: z.number().int().positive(),
  hidden_act: z.string().default("gelu"),
  // transformers ≤ 4 spellings; 5 writes rope_parameters
  rotary_pct: z.number().positive().max(1).optional(),
  partial_rotary_factor: z.number().positive().max(1).optional(),
  rotary_emb_base: z.number().positive().optional(),
  rope_theta: z.number().positive().optional(),
  rope_scaling: ropeParams.nullish(),
  rope_parameters: ropeParams.nullish(),
  max_position_embeddings: z.number().int().positive().default(2048),
  layer_norm_eps: z.number().positive().default(1e-5),
  use_parallel_residual: z.boolean().default(true),
  attention_bias: z.boolean().default(true),
  tie_word_embeddings: z.boolean().default(false),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
});

export interface NeoxConfig extends ModelConfig {
  layerNormEps: number;
  hiddenAct: string;
  /** dims of each head that are rotated (even, ≤ headDim) */
  rotaryDim: number;
  ropeTheta: number;
  ropeScaling: RopeScaling;
  parallelResidual: boolean;
  /** query_key_value and dense carry biases */
  attentionBias: boolean;
  /** each layer's widths (differ only after structured pruning: config.json structured_pruning) */
  layers: LayerStructure[];
}

function parseNeoxConfig(file: string, json: Record<string, unknown>): NeoxConfig {
  const parsed = neoxConfigSchema.safeParse(json);
  if (!parsed.success) throw new FormatError(file, describeZodError(parsed.error));
  const c = parsed.data;
  if (!ACTIVATIONS.includes(c.hidden_act)) {
    throw new FormatError(file, `hidden_act "${c.hidden_act}" is not supported (supported: ${ACTIVATIONS.join(", ")})`);
  }
  const headDim = c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim)) throw new FormatError(file, `hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`);
  const rp = c.rope_parameters;
  const fraction = rp?.partial_rotary_factor ?? c.partial_rotary_factor ?? c.rotary_pct ?? 0.25;
  const rotaryDim = Math.floor(headDim * fraction);
  if (rotaryDim < 2 || rotaryDim % 2 !== 0) {
    throw new FormatError(file, `rotary dims int(${headDim} · ${fraction}) = ${rotaryDim} must be an even number ≥ 2`);
  }
  const fail = (m: string): never => {
    throw new FormatError(file, m);
  };
  const H = c.num_attention_heads;
  const layers = layerStructures(json, c.num_hidden_layers, { numHeads: H, numKvHeads: H, intermediateSize: c.intermediate_size, oBias: c.attention_bias, downBias: true }, fail);
  return {
    layers,
    layerWidths: json.structured_pruning ? layers : undefined,
    architecture: c.architectures[0]!,
    hiddenSize: c.hidden_size,
    intermediateSize: c.intermediate_size,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads: c.num_attention_heads,
    headDim,
    vocabSize: c.vocab_size,
    maxPositions: c.max_position_embeddings,
    tieWordEmbeddings: c.tie_word_embeddings,
    layerNormEps: c.layer_norm_eps,
    hiddenAct: c.hidden_act,
    rotaryDim,
    ropeTheta: rp?.rope_theta ?? c.rope_theta ?? c.rotary_emb_base ?? 10000,
    ropeScaling: parseRopeScaling(rp ?? c.rope_scaling ?? null, file),
    parallelResidual: c.use_parallel_residual,
    attentionBias: c.attention_bias,
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
    eosTokenIds: eosList(c.eos_token_id),
    torchDtype: c.torch_dtype ?? c.dtype ?? null,
    raw: json,
  };
}

const BASE = "gpt_neox.";
const NEOX_TENSORS = {
  embed: `${BASE}embed_in.weight`,
  finalNorm: `${BASE}final_layer_norm`,
  lmHead: "embed_out",
} as const;
const layerPrefix = (i: number): string => `${BASE}layers.${i}.`;

/** Tensor names inside a decoder layer (also read by train/blocks/gpt-neox.ts). */
export const NEOX_LAYER = {
  attnNorm: "input_layernorm",
  qkv: "attention.query_key_value",
  o: "attention.dense",
  mlpNorm: "post_attention_layernorm",
  up: "mlp.dense_h_to_4h",
  down: "mlp.dense_4h_to_h",
} as const;

function linearSpecs(c: NeoxConfig, i: number): LinearSpec[] {
  const D = c.hiddenSize;
  const l = c.layers[i]!;
  const A = l.numHeads * c.headDim;
  const F = l.intermediateSize;
  const b = c.attentionBias;
  return [
    { suffix: NEOX_LAYER.qkv, input: "attn_in", hasBias: b, outFeatures: 3 * A, inFeatures: D },
    { suffix: NEOX_LAYER.o, input: "attn_out", hasBias: l.oBias, outFeatures: D, inFeatures: A },
    { suffix: NEOX_LAYER.up, input: "mlp_in", hasBias: true, outFeatures: F, inFeatures: D },
    { suffix: NEOX_LAYER.down, input: "mlp_act", hasBias: true, outFeatures: D, inFeatures: F },
  ];
}

function layerTensors(c: NeoxConfig, i: number): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const norm of [NEOX_LAYER.attnNorm, NEOX_LAYER.mlpNorm]) {
    shapes.set(`${norm}.weight`, [c.hiddenSize]);
    shapes.set(`${norm}.bias`, [c.hiddenSize]);
  }
  for (const l of linearSpecs(c, i)) {
    shapes.set(`${l.suffix}.weight`, [l.outFeatures, l.inFeatures]);
    if (l.hasBias) shapes.set(`${l.suffix}.bias`, [l.outFeatures]);
  }
  return shapes;
}

function globalTensors(c: NeoxConfig): { name: string; shape: number[]; optional?: boolean }[] {
  const D = c.hiddenSize;
  return [
    { name: NEOX_TENSORS.embed, shape: [c.vocabSize, D] },
    { name: `${NEOX_TENSORS.finalNorm}.weight`, shape: [D] },
    { name: `${NEOX_TENSORS.finalNorm}.bias`, shape: [D] },
    { name: `${NEOX_TENSORS.lmHead}.weight`, shape: [c.vocabSize, D], optional: c.tieWordEmbeddings },
  ];
}

const norm = (g: GraphBuilder, w: GraphWeights, c: NeoxConfig, name: string, x: string): string =>
  layerNorm(g, x, w.param(`${name}.weight`), w.param(`${name}.bias`), c.layerNormEps);

/** GGUF (convert_hf_to_gguf.py GPTNeoXModel): query_key_value rows reordered to q|k|v. */
const neoxGguf = layerNormGguf<NeoxConfig>({
  archName: "gptneox",
  names: [
    ["gpt_neox.embed_in", "token_embd"],
    ["gpt_neox.final_layer_norm", "output_norm"],
    ["embed_out", "output"],
    ["gpt_neox.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"],
    ["gpt_neox.layers.{bid}.attention.query_key_value", "blk.{bid}.attn_qkv"],
    ["gpt_neox.layers.{bid}.attention.dense", "blk.{bid}.attn_output"],
    ["gpt_neox.layers.{bid}.post_attention_layernorm", "blk.{bid}.ffn_norm"],
    ["gpt_neox.layers.{bid}.mlp.dense_h_to_4h", "blk.{bid}.ffn_up"],
    ["gpt_neox.layers.{bid}.mlp.dense_4h_to_h", "blk.{bid}.ffn_down"],
  ],
  interleavedQkv: NEOX_LAYER.qkv,
  tensors(c, w) {
    const head = `${NEOX_TENSORS.lmHead}.weight`;
    const names = canonicalNames(c).filter((n) => n !== head);
    // llama.cpp's gptneox requires output.weight: a tied model writes the embedding there too
    return [...names, w.has(head) ? head : { source: NEOX_TENSORS.embed, name: "output.weight" }];
  },
  unsupported(c) {
    if (c.layerWidths) return "llama.cpp's gptneox architecture has one width for all layers (this model was structurally pruned per layer or by heads)";
    if (!c.attentionBias) return "llama.cpp's gptneox graph needs query_key_value and dense biases (attention_bias false)";
    if (c.ropeScaling.type !== "none") return `llama.cpp's gptneox reads no rope scaling (${c.ropeScaling.type})`;
    return null;
  },
  warnings: (c) => (c.hiddenAct === "gelu" ? ["llama.cpp's gptneox computes GELU with the tanh approximation, the original with erf: logits differ slightly"] : []),
  metadata(c, kv) {
    kv.u32(Keys.Rope.DIMENSION_COUNT, c.rotaryDim);
    kv.f32(Keys.Rope.FREQ_BASE, c.ropeTheta);
    kv.bool(USE_PARALLEL_RESIDUAL, c.parallelResidual);
    kv.f32(LAYERNORM_EPS, c.layerNormEps);
  },
});

/** The [V, ·] matrix of the head: the embedding table when tied, unless the checkpoint stores a head anyway. */
const headWeight = (c: NeoxConfig, w: { has(name: string): boolean }): string =>
  c.tieWordEmbeddings && !w.has(`${NEOX_TENSORS.lmHead}.weight`) ? NEOX_TENSORS.embed : `${NEOX_TENSORS.lmHead}.weight`;

export const gptNeoxFamily: FamilyAdapter<NeoxConfig> = {
  name: "gpt_neox",
  parseConfig: parseNeoxConfig,
  layerPrefix,
  globalTensors,
  headWeight,
  layerTensors: (c, i) => layerTensors(c, i),
  linears: (c, i) => linearSpecs(c, i),
  captureWidths: (c, i) => ({ attn_in: c.hiddenSize, attn_out: c.layers[i]!.numHeads * c.headDim, mlp_in: c.hiddenSize, mlp_act: c.layers[i]!.intermediateSize }),
  trueSequentialGroups: () => [[NEOX_LAYER.qkv], [NEOX_LAYER.o], [NEOX_LAYER.up], [NEOX_LAYER.down]],
  layerKey: (c, i) => ({ D: c.hiddenSize, l: c.layers[i], eps: c.layerNormEps, act: c.hiddenAct, r: c.rotaryDim, p: c.parallelResidual, b: c.attentionBias }),
  rotary: (c) => ({ rope: { invFreq: inverseFrequencies(c.rotaryDim, c.ropeTheta, c.ropeScaling) } }),

  embed: (_g, _ctx, w) => w.gather(NEOX_TENSORS.embed, "tokens"),

  block(g, ctx, w, c, layer, x) {
    const H = c.layers[layer]!.numHeads;
    const hd = c.headDim;
    const [qkv, o, up, down] = linearSpecs(c, layer) as [LinearSpec, LinearSpec, LinearSpec, LinearSpec];
    const L = (s: LinearSpec, h: string) => w.linear(h, s.suffix, s.hasBias);
    const { cos, sin } = ctx.rope("rope");
    const h = norm(g, w, c, NEOX_LAYER.attnNorm, x);
    ctx.capture("attn_in", h);
    const [q, k, v] = splitInterleavedQkv(g, L(qkv, h), H, hd); //                     each (N, D)
    const heads = (t: string) => g.op("Reshape", [t, ctx.shape(H, hd)]); //            (B, T, H, hd)
    const flat = (t: string) => g.op("Reshape", [t, ctx.shape(H * hd)]); //            (B, T, H·hd)
    const qr = partialRope(g, heads(q), cos, sin, c.rotaryDim, hd);
    const kr = partialRope(g, heads(k), cos, sin, c.rotaryDim, hd);
    const y = ctx.attention(flat(qr), flat(kr), flat(v), { numHeads: H, numKvHeads: H, headDim: hd });
    ctx.capture("attn_out", y);
    const attn = L(o, y);
    // parallel: the MLP reads ln2(x), beside attention; sequential: ln2(x + attn)
    const x2 = c.parallelResidual ? x : g.op("Add", [x, attn]);
    const h2 = norm(g, w, c, NEOX_LAYER.mlpNorm, x2);
    ctx.capture("mlp_in", h2);
    const act = activation(g, c.hiddenAct, L(up, h2)); //                               (N, F)
    ctx.capture("mlp_act", act);
    const mlp = L(down, act);
    return c.parallelResidual ? g.op("Add", [g.op("Add", [mlp, attn]), x]) : g.op("Add", [x2, mlp]);
  },

  head(g, _ctx, w, c, x) {
    const head = headWeight(c, w).replace(/\.weight$/, "");
    return w.linear(norm(g, w, c, NEOX_TENSORS.finalNorm, x), head, false);
  },

  // recovery training; arrows so the import cycle with train/blocks/ resolves at call time
  train: {
    blockBackward: (c, layer, opts) => gptNeoxBlockBackward(c, layer, opts),
    headBackward: (o, c, x, w) => gptNeoxHeadBackward(o, c, x, w),
  },
  // structured pruning: heads (a head's 3·hd interleaved query_key_value rows, dense columns; the
  // partial rotary acts within each head, so it is unchanged) and MLP channels. With every head
  // kept and equal MLP widths, intermediate_size says it all; otherwise (head_dim is
  // hidden / heads in GPT-NeoX's keys) the widths are listed per layer.
  structure: {
    units(c, i) {
      const l = c.layers[i]!;
      return interleavedQkvUnits({ heads: l.numHeads, headDim: c.headDim, hidden: c.hiddenSize, intermediate: l.intermediateSize, qkv: NEOX_LAYER.qkv, o: NEOX_LAYER.o, up: NEOX_LAYER.up, down: NEOX_LAYER.down });
    },
    prune: (c, layers) => parseNeoxConfig("config.json (structured pruning)", neoxPrunedRaw(c, layers)),
    keepLayers: (c, keep) => parseNeoxConfig("config.json (structured pruning)", keepLayersRaw(c.raw, keep, "num_hidden_layers")),
  },

  checkpointView: {
    // files saved from GPTNeoXModel hold layers.… and embed_in.weight (no "gpt_neox." prefix)
    toTopiary(c: NeoxConfig, w: WeightSource): WeightSource {
      const map = prefixMap(w, BASE, canonicalNames(c));
      return map.size ? new RenamedWeights(w, map, new Set()) : w;
    },
    toCheckpoint: (_c: NeoxConfig, w: WeightSource) => w,
  },

  gguf: neoxGguf,
};

function canonicalNames(c: NeoxConfig): string[] {
  const names = globalTensors(c).map((t) => t.name);
  for (let i = 0; i < c.numLayers; i++) for (const suffix of layerTensors(c, i).keys()) names.push(layerPrefix(i) + suffix);
  return names;
}

function neoxPrunedRaw(c: NeoxConfig, layers: PrunedLayer[]): Record<string, unknown> {
  const ff = layers[0]!.kept.mlp.length;
  const standard =
    layers.every((p) => p.kept.mlp.length === ff && p.kept.attention.length === c.numHeads) &&
    layers.every((p, i) => (c.layers[i]!.oBias || !p.consumerBias) && c.layers[i]!.oBias === c.attentionBias);
  if (!standard) return structuredPruningRaw(c.raw, c.layers, layers);
  const raw: Record<string, unknown> = { ...c.raw, intermediate_size: ff };
  delete raw.structured_pruning;
  return raw;
}
