// The BLOOM family adapter (BloomForCausalLM, transformers modeling_bloom.py): ALiBi instead of
// position embeddings, a LayerNorm right after the token embeddings, LayerNorm + biases
// everywhere, GELU (tanh approximation), an MLP of 4·hidden.
//   - query_key_value [3·D, D] is ONE linear to the compressors (as in the SparseGPT reference's
//     bloom.py); its rows are interleaved per head ([heads, 3, headDim]), the block splits its
//     output, and the GGUF export reorders the rows to llama.cpp's q|k|v.
//   - apply_residual_connection_post_layernorm: the residuals start from the LayerNorm outputs.
// The linears read four captured inputs:
//   attn_in → query_key_value   attn_out → dense   mlp_in → dense_h_to_4h   mlp_act → dense_4h_to_h
import { z } from "zod";
import { FormatError } from "../formats/errors.js";
import type { WeightSource } from "../formats/weights.js";
import type { GraphBuilder } from "../runtime/onnx-graph.js";
import { RenamedWeights, prefixMap } from "./checkpoint-view.js";
import { layerCount, describeZodError, eosList, tokenIds, type ModelConfig } from "./config.js";
import type { FamilyAdapter, GraphWeights, LinearSpec } from "./family.js";
import { splitInterleavedQkv } from "./fused-ops.js";
import { alibiSlopes } from "./fused-layout.js";
import { LAYERNORM_EPS, layerNormGguf } from "./gguf-layernorm.js";
import { activation, layerNorm } from "./graph-ops.js";
import { bloomBlockBackward, bloomHeadBackward } from "../train/blocks/bloom.js";
import { interleavedQkvUnits, keepLayersRaw, layerStructures, structuredPruningRaw, type LayerStructure, type PrunedLayer } from "./structure.js";

const bloomConfigSchema = z.looseObject({
  architectures: z.array(z.string()).min(1),
  vocab_size: z.number().int().positive(),
  // BloomConfig accepts n_embed as an alias of hidden_size
  hidden_size: z.number().int().positive().optional(),
  n_embed: z.number().int().positive().optional(),
  n_layer: layerCount,
  n_head: z.number().int().positive(),
  layer_norm_epsilon: z.number().positive().default(1e-5),
  apply_residual_connection_post_layernorm: z.boolean().default(false),
  // ALiBi has no position table; seq_length (when present) is the training length
  seq_length: z.number().int().positive().optional(),
  tie_word_embeddings: z.boolean().default(true),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
});

export interface BloomConfig extends ModelConfig {
  layerNormEps: number;
  /** residual = LayerNorm output instead of its input */
  residualPostNorm: boolean;
  /** ALiBi slope of each head (float32, as build_alibi_tensor) */
  alibiSlopes: number[];
  /** each layer's widths (differ only after structured pruning: config.json structured_pruning) */
  layers: LayerStructure[];
  /**
   * each layer's ALiBi slopes: a head keeps its original slope when others are removed (the
   * slopes are a function of the head index AND the head count), so a pruned model lists them
   * (structured_pruning.alibi_slopes)
   */
  layerSlopes: number[][];
}

/** Sequence length assumed when the config names none (BLOOM was trained on 2048). */
const DEFAULT_MAX_POSITIONS = 2048;

function parseBloomConfig(file: string, json: Record<string, unknown>): BloomConfig {
  const parsed = bloomConfigSchema.safeParse(json);
  if (!parsed.success) throw new FormatError(file, describeZodError(parsed.error));
  const c = parsed.data;
  const D = c.hidden_size ?? c.n_embed;
  if (D === undefined) throw new FormatError(file, `field "hidden_size" is missing`);
  const headDim = D / c.n_head;
  if (!Number.isInteger(headDim)) throw new FormatError(file, `hidden_size ${D} is not a multiple of n_head ${c.n_head}`);
  const fail = (m: string): never => {
    throw new FormatError(file, m);
  };
  const layers = layerStructures(json, c.n_layer, { numHeads: c.n_head, numKvHeads: c.n_head, intermediateSize: 4 * D, oBias: true, downBias: true }, fail);
  const slopes = alibiSlopes(c.n_head);
  const listed = (json.structured_pruning as { alibi_slopes?: unknown } | undefined)?.alibi_slopes;
  if (listed !== undefined && (!Array.isArray(listed) || listed.length !== c.n_layer)) fail(`structured_pruning.alibi_slopes must list one value per layer (${c.n_layer})`);
  const layerSlopes = layers.map((l, i) => {
    if (listed === undefined) {
      if (l.numHeads !== c.n_head) fail(`structured_pruning: layer ${i} has ${l.numHeads} of ${c.n_head} heads but no alibi_slopes`);
      return slopes;
    }
    const s = (listed as unknown[])[i];
    if (!Array.isArray(s) || s.length !== l.numHeads || !s.every((v) => typeof v === "number" && v > 0)) fail(`structured_pruning.alibi_slopes[${i}] must list ${l.numHeads} positive slopes`);
    return s as number[];
  });
  return {
    layers,
    layerSlopes,
    layerWidths: json.structured_pruning ? layers : undefined,
    architecture: c.architectures[0]!,
    hiddenSize: D,
    intermediateSize: 4 * D,
    numLayers: c.n_layer,
    numHeads: c.n_head,
    numKvHeads: c.n_head,
    headDim,
    vocabSize: c.vocab_size,
    maxPositions: c.seq_length ?? DEFAULT_MAX_POSITIONS,
    tieWordEmbeddings: c.tie_word_embeddings,
    layerNormEps: c.layer_norm_epsilon,
    residualPostNorm: c.apply_residual_connection_post_layernorm,
    alibiSlopes: alibiSlopes(c.n_head),
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
    eosTokenIds: eosList(c.eos_token_id),
    torchDtype: c.torch_dtype ?? c.dtype ?? null,
    raw: json,
  };
}

const BASE = "transformer.";
const BLOOM_TENSORS = {
  embed: `${BASE}word_embeddings.weight`,
  embedNorm: `${BASE}word_embeddings_layernorm`,
  finalNorm: `${BASE}ln_f`,
  lmHead: "lm_head",
} as const;
const layerPrefix = (i: number): string => `${BASE}h.${i}.`;

/** Tensor names inside a decoder layer (also read by train/blocks/bloom.ts). */
export const BLOOM_LAYER = {
  attnNorm: "input_layernorm",
  qkv: "self_attention.query_key_value",
  o: "self_attention.dense",
  mlpNorm: "post_attention_layernorm",
  up: "mlp.dense_h_to_4h",
  down: "mlp.dense_4h_to_h",
} as const;

function linearSpecs(c: BloomConfig, i: number): LinearSpec[] {
  const D = c.hiddenSize;
  const A = c.layers[i]!.numHeads * c.headDim;
  const F = c.layers[i]!.intermediateSize;
  return [
    { suffix: BLOOM_LAYER.qkv, input: "attn_in", hasBias: true, outFeatures: 3 * A, inFeatures: D },
    { suffix: BLOOM_LAYER.o, input: "attn_out", hasBias: true, outFeatures: D, inFeatures: A },
    { suffix: BLOOM_LAYER.up, input: "mlp_in", hasBias: true, outFeatures: F, inFeatures: D },
    { suffix: BLOOM_LAYER.down, input: "mlp_act", hasBias: true, outFeatures: D, inFeatures: F },
  ];
}

function layerTensors(c: BloomConfig, i: number): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const norm of [BLOOM_LAYER.attnNorm, BLOOM_LAYER.mlpNorm]) {
    shapes.set(`${norm}.weight`, [c.hiddenSize]);
    shapes.set(`${norm}.bias`, [c.hiddenSize]);
  }
  for (const l of linearSpecs(c, i)) {
    shapes.set(`${l.suffix}.weight`, [l.outFeatures, l.inFeatures]);
    shapes.set(`${l.suffix}.bias`, [l.outFeatures]);
  }
  return shapes;
}

function globalTensors(c: BloomConfig): { name: string; shape: number[]; optional?: boolean }[] {
  const D = c.hiddenSize;
  return [
    { name: BLOOM_TENSORS.embed, shape: [c.vocabSize, D] },
    { name: `${BLOOM_TENSORS.embedNorm}.weight`, shape: [D] },
    { name: `${BLOOM_TENSORS.embedNorm}.bias`, shape: [D] },
    { name: `${BLOOM_TENSORS.finalNorm}.weight`, shape: [D] },
    { name: `${BLOOM_TENSORS.finalNorm}.bias`, shape: [D] },
    { name: `${BLOOM_TENSORS.lmHead}.weight`, shape: [c.vocabSize, D], optional: c.tieWordEmbeddings },
  ];
}

const norm = (g: GraphBuilder, w: GraphWeights, c: BloomConfig, name: string, x: string): string =>
  layerNorm(g, x, w.param(`${name}.weight`), w.param(`${name}.bias`), c.layerNormEps);

/** GGUF (convert_hf_to_gguf.py BloomModel): query_key_value rows reordered to q|k|v. */
const bloomGguf = layerNormGguf<BloomConfig>({
  archName: "bloom",
  names: [
    ["transformer.word_embeddings", "token_embd"],
    ["transformer.word_embeddings_layernorm", "token_embd_norm"],
    ["transformer.ln_f", "output_norm"],
    ["lm_head", "output"],
    ["transformer.h.{bid}.input_layernorm", "blk.{bid}.attn_norm"],
    ["transformer.h.{bid}.self_attention.query_key_value", "blk.{bid}.attn_qkv"],
    ["transformer.h.{bid}.self_attention.dense", "blk.{bid}.attn_output"],
    ["transformer.h.{bid}.post_attention_layernorm", "blk.{bid}.ffn_norm"],
    ["transformer.h.{bid}.mlp.dense_h_to_4h", "blk.{bid}.ffn_up"],
    ["transformer.h.{bid}.mlp.dense_4h_to_h", "blk.{bid}.ffn_down"],
  ],
  interleavedQkv: BLOOM_LAYER.qkv,
  // tied: llama.cpp reuses token_embd when output.weight is absent
  tensors: (c, w) => canonicalNames(c).filter((n) => n !== `${BLOOM_TENSORS.lmHead}.weight` || w.has(n)),
  unsupported(c) {
    if (c.layerWidths) return "llama.cpp's bloom architecture derives head_dim from n_embd / n_head and has one width for all layers (this model was structurally pruned)";
    return c.residualPostNorm ? "llama.cpp's bloom graph has no apply_residual_connection_post_layernorm" : null;
  },
  metadata: (c, kv) => kv.f32(LAYERNORM_EPS, c.layerNormEps),
});

/** The [V, ·] matrix of the head: the embedding table when tied, unless the checkpoint stores a head anyway. */
const headWeight = (c: BloomConfig, w: { has(name: string): boolean }): string =>
  c.tieWordEmbeddings && !w.has(`${BLOOM_TENSORS.lmHead}.weight`) ? BLOOM_TENSORS.embed : `${BLOOM_TENSORS.lmHead}.weight`;

export const bloomFamily: FamilyAdapter<BloomConfig> = {
  name: "bloom",
  parseConfig: parseBloomConfig,
  layerPrefix,
  globalTensors,
  headWeight,
  layerTensors: (c, i) => layerTensors(c, i),
  linears: (c, i) => linearSpecs(c, i),
  captureWidths: (c, i) => ({ attn_in: c.hiddenSize, attn_out: c.layers[i]!.numHeads * c.headDim, mlp_in: c.hiddenSize, mlp_act: c.layers[i]!.intermediateSize }),
  trueSequentialGroups: () => [[BLOOM_LAYER.qkv], [BLOOM_LAYER.o], [BLOOM_LAYER.up], [BLOOM_LAYER.down]],
  layerKey: (c, i) => ({ D: c.hiddenSize, l: c.layers[i], s: c.layerSlopes[i], eps: c.layerNormEps, post: c.residualPostNorm }),
  rotary: () => ({}),

  embed(g, _ctx, w, c) {
    return norm(g, w, c, BLOOM_TENSORS.embedNorm, w.gather(BLOOM_TENSORS.embed, "tokens"));
  },

  block(g, ctx, w, c, layer, x) {
    const H = c.layers[layer]!.numHeads;
    const hd = c.headDim;
    const [qkv, o, up, down] = linearSpecs(c, layer) as [LinearSpec, LinearSpec, LinearSpec, LinearSpec];
    const L = (s: LinearSpec, h: string) => w.linear(h, s.suffix, true);
    const h = norm(g, w, c, BLOOM_LAYER.attnNorm, x);
    ctx.capture("attn_in", h);
    const [q, k, v] = splitInterleavedQkv(g, L(qkv, h), H, hd); //                   each (N, D)
    const flat = (t: string) => g.op("Reshape", [t, ctx.shape(H * hd)]);
    // scores = q·kᵀ/√hd + slope_h · key_position (softmax is shift-invariant per query row)
    const y = ctx.attention(flat(q), flat(k), flat(v), { numHeads: H, numKvHeads: H, headDim: hd, alibiSlopes: c.layerSlopes[layer] });
    ctx.capture("attn_out", y);
    const x2 = g.op("Add", [c.residualPostNorm ? h : x, L(o, y)]); //                   residual
    const h2 = norm(g, w, c, BLOOM_LAYER.mlpNorm, x2);
    ctx.capture("mlp_in", h2);
    const act = activation(g, "gelu_pytorch_tanh", L(up, h2)); //                      (N, F)
    ctx.capture("mlp_act", act);
    return g.op("Add", [c.residualPostNorm ? h2 : x2, L(down, act)]); //               residual
  },

  head(g, _ctx, w, c, x) {
    const head = headWeight(c, w).replace(/\.weight$/, "");
    return w.linear(norm(g, w, c, BLOOM_TENSORS.finalNorm, x), head, false);
  },

  // recovery training; arrows so the import cycle with train/blocks/ resolves at call time
  train: {
    blockBackward: (c, layer, opts) => bloomBlockBackward(c, layer, opts),
    headBackward: (o, c, x, w) => bloomHeadBackward(o, c, x, w),
  },
  // structured pruning: heads (a head's 3·hd interleaved query_key_value rows, dense columns) and
  // MLP channels; BLOOM's keys tie head_dim to hidden / n_head and the MLP to 4·hidden, so a
  // pruned model always lists its widths per layer, with each kept head's original ALiBi slope
  structure: {
    units(c, i) {
      const l = c.layers[i]!;
      return interleavedQkvUnits({ heads: l.numHeads, headDim: c.headDim, hidden: c.hiddenSize, intermediate: l.intermediateSize, qkv: BLOOM_LAYER.qkv, o: BLOOM_LAYER.o, up: BLOOM_LAYER.up, down: BLOOM_LAYER.down });
    },
    prune: (c, layers) => parseBloomConfig("config.json (structured pruning)", bloomPrunedRaw(c, layers)),
    keepLayers: (c, keep) => parseBloomConfig("config.json (structured pruning)", keepLayersRaw(c.raw, keep, "n_layer")),
  },

  checkpointView: {
    // bigscience's own files hold h.0.… and word_embeddings.weight (no "transformer." prefix)
    toTopiary(c: BloomConfig, w: WeightSource): WeightSource {
      const map = prefixMap(w, BASE, canonicalNames(c));
      return map.size ? new RenamedWeights(w, map, new Set()) : w;
    },
    toCheckpoint: (_c: BloomConfig, w: WeightSource) => w,
  },

  gguf: bloomGguf,
};

function canonicalNames(c: BloomConfig): string[] {
  const names = globalTensors(c).map((t) => t.name);
  for (let i = 0; i < c.numLayers; i++) for (const suffix of layerTensors(c, i).keys()) names.push(layerPrefix(i) + suffix);
  return names;
}

/** config.json of the pruned model: per-layer widths and the kept heads' slopes. */
function bloomPrunedRaw(c: BloomConfig, layers: PrunedLayer[]): Record<string, unknown> {
  const raw = structuredPruningRaw(c.raw, c.layers, layers);
  const sp = raw.structured_pruning as Record<string, unknown>;
  sp.alibi_slopes = layers.map((p, i) => p.kept.attention.map((u) => c.layerSlopes[i]![u]!));
  return raw;
}
