// The GPT-2 family adapter (GPT2LMHeadModel, transformers modeling_gpt2.py): learned positions,
// pre-norm LayerNorm, biases, gelu_new, multi-head attention.
//   - Conv1D layers store W as [in, out]; the checkpoint view shows topiary the [out, in]
//     transpose (what the compressors and Gemm read) and transposes back on write.
//   - c_attn [3·D, D] (after the transpose) is ONE linear to the compressors; its rows are
//     q|k|v concatenated, the block splits its output.
//   - scale_attn_weights false: no 1/√headDim; scale_attn_by_inverse_layer_idx: also 1/(layer+1).
// The linears read four captured inputs:
//   attn_in → attn.c_attn   attn_out → attn.c_proj   mlp_in → mlp.c_fc   mlp_act → mlp.c_proj
import { z } from "zod";
import { FormatError } from "../formats/errors.js";
import type { WeightSource } from "../formats/weights.js";
import type { GraphBuilder } from "../runtime/onnx-graph.js";
import { RenamedWeights, prefixMap } from "./checkpoint-view.js";
import { layerCount, describeZodError, eosList, tokenIds, type ModelConfig } from "./config.js";
import type { FamilyAdapter, GraphWeights, LinearSpec } from "./family.js";
import { keepLayersRaw, layerStructures, structuredPruningRaw, type LayerStructure } from "./structure.js";
import { LAYERNORM_EPS, layerNormGguf } from "./gguf-layernorm.js";
import { activation, ACTIVATIONS, layerNorm, splitLast } from "./graph-ops.js";
import { gpt2BlockBackward, gpt2HeadBackward } from "../train/blocks/gpt2.js";

const gpt2ConfigSchema = z.looseObject({
  architectures: z.array(z.string()).min(1),
  vocab_size: z.number().int().positive(),
  n_positions: z.number().int().positive().default(1024),
  n_embd: z.number().int().positive(),
  n_layer: layerCount,
  n_head: z.number().int().positive(),
  n_inner: z.number().int().positive().nullish(),
  activation_function: z.string().default("gelu_new"),
  layer_norm_epsilon: z.number().positive().default(1e-5),
  scale_attn_weights: z.boolean().default(true),
  scale_attn_by_inverse_layer_idx: z.boolean().default(false),
  add_cross_attention: z.boolean().default(false),
  tie_word_embeddings: z.boolean().default(true),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
});

export interface Gpt2Config extends ModelConfig {
  layerNormEps: number;
  hiddenAct: string;
  /** divide scores by √headDim (scale_attn_weights) */
  scaleByHeadDim: boolean;
  /** also divide scores of layer i by i + 1 (scale_attn_by_inverse_layer_idx) */
  scaleByLayer: boolean;
  /** each layer's widths (differ only after structured pruning: config.json structured_pruning) */
  layers: LayerStructure[];
}

function parseGpt2Config(file: string, json: Record<string, unknown>): Gpt2Config {
  const parsed = gpt2ConfigSchema.safeParse(json);
  if (!parsed.success) throw new FormatError(file, describeZodError(parsed.error));
  const c = parsed.data;
  if (!ACTIVATIONS.includes(c.activation_function)) {
    throw new FormatError(file, `activation_function "${c.activation_function}" is not supported (supported: ${ACTIVATIONS.join(", ")})`);
  }
  if (c.add_cross_attention) throw new FormatError(file, "add_cross_attention (an encoder-decoder GPT-2) is not supported");
  const headDim = c.n_embd / c.n_head;
  if (!Number.isInteger(headDim)) throw new FormatError(file, `n_embd ${c.n_embd} is not a multiple of n_head ${c.n_head}`);
  const fail = (m: string): never => {
    throw new FormatError(file, m);
  };
  const F = c.n_inner ?? 4 * c.n_embd;
  const layers = layerStructures(json, c.n_layer, { numHeads: c.n_head, numKvHeads: c.n_head, intermediateSize: F, oBias: true, downBias: true }, fail);
  return {
    layers,
    layerWidths: json.structured_pruning ? layers : undefined,
    architecture: c.architectures[0]!,
    hiddenSize: c.n_embd,
    intermediateSize: c.n_inner ?? 4 * c.n_embd,
    numLayers: c.n_layer,
    numHeads: c.n_head,
    numKvHeads: c.n_head,
    headDim,
    vocabSize: c.vocab_size,
    maxPositions: c.n_positions,
    tieWordEmbeddings: c.tie_word_embeddings,
    layerNormEps: c.layer_norm_epsilon,
    hiddenAct: c.activation_function,
    scaleByHeadDim: c.scale_attn_weights,
    scaleByLayer: c.scale_attn_by_inverse_layer_idx,
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
    eosTokenIds: eosList(c.eos_token_id),
    torchDtype: c.torch_dtype ?? c.dtype ?? null,
    raw: json,
  };
}

const BASE = "transformer.";
const GPT2_TENSORS = {
  embed: `${BASE}wte.weight`,
  positions: `${BASE}wpe.weight`,
  finalNorm: `${BASE}ln_f`,
  lmHead: "lm_head",
} as const;
const layerPrefix = (i: number): string => `${BASE}h.${i}.`;

/** Tensor names inside a decoder layer (also read by train/blocks/gpt2.ts). */
export const GPT2_LAYER = {
  attnNorm: "ln_1",
  qkv: "attn.c_attn",
  o: "attn.c_proj",
  mlpNorm: "ln_2",
  up: "mlp.c_fc",
  down: "mlp.c_proj",
} as const;
/** The Conv1D layers, stored [in, out]. */
const CONV1D = [GPT2_LAYER.qkv, GPT2_LAYER.o, GPT2_LAYER.up, GPT2_LAYER.down];

function linearSpecs(c: Gpt2Config, i: number): LinearSpec[] {
  const D = c.hiddenSize;
  const A = c.layers[i]!.numHeads * c.headDim;
  const F = c.layers[i]!.intermediateSize;
  return [
    { suffix: GPT2_LAYER.qkv, input: "attn_in", hasBias: true, outFeatures: 3 * A, inFeatures: D },
    { suffix: GPT2_LAYER.o, input: "attn_out", hasBias: true, outFeatures: D, inFeatures: A },
    { suffix: GPT2_LAYER.up, input: "mlp_in", hasBias: true, outFeatures: F, inFeatures: D },
    { suffix: GPT2_LAYER.down, input: "mlp_act", hasBias: true, outFeatures: D, inFeatures: F },
  ];
}

/** Layer tensors in topiary's layout (Conv1D weights already [out, in]). */
function layerTensors(c: Gpt2Config, i: number): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  for (const norm of [GPT2_LAYER.attnNorm, GPT2_LAYER.mlpNorm]) {
    shapes.set(`${norm}.weight`, [c.hiddenSize]);
    shapes.set(`${norm}.bias`, [c.hiddenSize]);
  }
  for (const l of linearSpecs(c, i)) {
    shapes.set(`${l.suffix}.weight`, [l.outFeatures, l.inFeatures]);
    shapes.set(`${l.suffix}.bias`, [l.outFeatures]);
  }
  return shapes;
}

function globalTensors(c: Gpt2Config): { name: string; shape: number[]; optional?: boolean }[] {
  const D = c.hiddenSize;
  return [
    { name: GPT2_TENSORS.embed, shape: [c.vocabSize, D] },
    { name: GPT2_TENSORS.positions, shape: [c.maxPositions, D] },
    { name: `${GPT2_TENSORS.finalNorm}.weight`, shape: [D] },
    { name: `${GPT2_TENSORS.finalNorm}.bias`, shape: [D] },
    { name: `${GPT2_TENSORS.lmHead}.weight`, shape: [c.vocabSize, D], optional: c.tieWordEmbeddings },
  ];
}

const norm = (g: GraphBuilder, w: GraphWeights, c: Gpt2Config, name: string, x: string): string =>
  layerNorm(g, x, w.param(`${name}.weight`), w.param(`${name}.bias`), c.layerNormEps);

/** The view of a GPT-2 checkpoint: canonical names (with or without the prefix), Conv1D transposed. */
function gpt2View(c: Gpt2Config, w: WeightSource): WeightSource {
  const names = canonicalNames(c);
  const map = prefixMap(w, BASE, names);
  // a tied checkpoint that stores only lm_head.weight: the embedding is that tensor
  if (!w.has(GPT2_TENSORS.embed) && !map.has(GPT2_TENSORS.embed) && w.has(`${GPT2_TENSORS.lmHead}.weight`)) {
    map.set(GPT2_TENSORS.embed, `${GPT2_TENSORS.lmHead}.weight`);
  }
  const transposed = new Set(names.filter((n) => CONV1D.some((s) => n.endsWith(`.${s}.weight`))));
  for (const n of transposed) if (!map.has(n)) map.set(n, n);
  return new RenamedWeights(w, map, transposed);
}

/** GGUF (convert_hf_to_gguf.py GPT2Model): Conv1D weights in [out, in], c_attn as attn_qkv. */
const gpt2Gguf = layerNormGguf<Gpt2Config>({
  archName: "gpt2",
  names: [
    ["transformer.wte", "token_embd"],
    ["transformer.wpe", "position_embd"],
    ["transformer.ln_f", "output_norm"],
    ["lm_head", "output"],
    ["transformer.h.{bid}.ln_1", "blk.{bid}.attn_norm"],
    ["transformer.h.{bid}.attn.c_attn", "blk.{bid}.attn_qkv"],
    ["transformer.h.{bid}.attn.c_proj", "blk.{bid}.attn_output"],
    ["transformer.h.{bid}.ln_2", "blk.{bid}.ffn_norm"],
    ["transformer.h.{bid}.mlp.c_fc", "blk.{bid}.ffn_up"],
    ["transformer.h.{bid}.mlp.c_proj", "blk.{bid}.ffn_down"],
  ],
  // tied: llama.cpp reuses token_embd when output.weight is absent
  tensors: (c, w) => canonicalNames(c).filter((n) => n !== `${GPT2_TENSORS.lmHead}.weight` || w.has(n)),
  unsupported(c) {
    if (c.layerWidths) return "llama.cpp's gpt2 architecture has one head count for all layers (this model was structurally pruned per layer)";
    // llama.cpp's gpt2 graph: GELU (tanh), scores scaled by 1/√headDim in every layer
    if (!["gelu_new", "gelu_pytorch_tanh", "gelu_fast"].includes(c.hiddenAct)) return `llama.cpp runs GELU (tanh), not ${c.hiddenAct}`;
    if (!c.scaleByHeadDim || c.scaleByLayer) return "llama.cpp scales attention scores by 1/√headDim only";
    return null;
  },
  metadata: (c, kv) => kv.f32(LAYERNORM_EPS, c.layerNormEps),
});

/** The [V, ·] matrix of the head: the embedding table when tied, unless the checkpoint stores a head anyway. */
const headWeight = (c: Gpt2Config, w: { has(name: string): boolean }): string =>
  c.tieWordEmbeddings && !w.has(`${GPT2_TENSORS.lmHead}.weight`) ? GPT2_TENSORS.embed : `${GPT2_TENSORS.lmHead}.weight`;

export const gpt2Family: FamilyAdapter<Gpt2Config> = {
  name: "gpt2",
  parseConfig: parseGpt2Config,
  layerPrefix,
  globalTensors,
  headWeight,
  layerTensors: (c, i) => layerTensors(c, i),
  linears: (c, i) => linearSpecs(c, i),
  captureWidths: (c, i) => ({ attn_in: c.hiddenSize, attn_out: c.layers[i]!.numHeads * c.headDim, mlp_in: c.hiddenSize, mlp_act: c.layers[i]!.intermediateSize }),
  trueSequentialGroups: () => [[GPT2_LAYER.qkv], [GPT2_LAYER.o], [GPT2_LAYER.up], [GPT2_LAYER.down]],
  layerKey: (c, i) => ({ D: c.hiddenSize, hd: c.headDim, l: c.layers[i], eps: c.layerNormEps, act: c.hiddenAct, s: c.scaleByHeadDim, li: c.scaleByLayer ? i : null }),
  rotary: () => ({}),

  embed(g, _ctx, w) {
    return g.op("Add", [w.gather(GPT2_TENSORS.embed, "tokens"), w.gather(GPT2_TENSORS.positions, "positions")]);
  },

  block(g, ctx, w, c, layer, x) {
    const H = c.layers[layer]!.numHeads;
    const hd = c.headDim;
    const A = H * hd;
    const [qkv, o, up, down] = linearSpecs(c, layer) as [LinearSpec, LinearSpec, LinearSpec, LinearSpec];
    const L = (s: LinearSpec, h: string) => w.linear(h, s.suffix, true);
    const h = norm(g, w, c, GPT2_LAYER.attnNorm, x);
    ctx.capture("attn_in", h);
    const [q, k, v] = splitLast(g, L(qkv, h), [A, A, A]); //                             each (N, H·hd)
    const flat = (t: string) => g.op("Reshape", [t, ctx.shape(H * hd)]);
    const scale = (c.scaleByHeadDim ? 1 / Math.sqrt(hd) : 1) / (c.scaleByLayer ? layer + 1 : 1);
    const y = ctx.attention(flat(q!), flat(k!), flat(v!), { numHeads: H, numKvHeads: H, headDim: hd, scale });
    ctx.capture("attn_out", y);
    const x2 = g.op("Add", [x, L(o, y)]); //                                               residual
    const h2 = norm(g, w, c, GPT2_LAYER.mlpNorm, x2);
    ctx.capture("mlp_in", h2);
    const act = activation(g, c.hiddenAct, L(up, h2)); //                                  (N, F)
    ctx.capture("mlp_act", act);
    return g.op("Add", [x2, L(down, act)]); //                                             residual
  },

  head(g, _ctx, w, c, x) {
    const head = headWeight(c, w).replace(/\.weight$/, "");
    return w.linear(norm(g, w, c, GPT2_TENSORS.finalNorm, x), head, false);
  },

  // structured pruning: heads (c_attn's q|k|v rows of a head, c_proj's columns) and MLP channels
  // (c_fc row, mlp.c_proj column); GPT-2's keys tie head_dim to n_embd / n_head, so a pruned model
  // always lists its widths per layer
  structure: {
    units(c, i) {
      const { numHeads: H, intermediateSize: F } = c.layers[i]!;
      const hd = c.headDim;
      const D = c.hiddenSize;
      const span = (a: number) => Array.from({ length: hd }, (_, j) => a + j);
      return [
        {
          kind: "attention",
          count: H,
          consumer: GPT2_LAYER.o,
          consumerInput: "attn_out",
          producers: [GPT2_LAYER.qkv],
          columns: (u) => span(u * hd),
          rows: (_p, u) => [...span(u * hd), ...span(H * hd + u * hd), ...span(2 * H * hd + u * hd)],
          weightsPerUnit: 4 * hd * D,
        },
        {
          kind: "mlp",
          count: F,
          consumer: GPT2_LAYER.down,
          consumerInput: "mlp_act",
          producers: [GPT2_LAYER.up],
          columns: (u) => [u],
          rows: (_p, u) => [u],
          weightsPerUnit: 2 * D,
        },
      ];
    },
    prune: (c, layers) => parseGpt2Config("config.json (structured pruning)", structuredPruningRaw(c.raw, c.layers, layers)),
    keepLayers: (c, keep) => parseGpt2Config("config.json (structured pruning)", keepLayersRaw(c.raw, keep, "n_layer")),
  },

  // recovery training; arrows so the import cycle with train/blocks/ resolves at call time
  train: {
    blockBackward: (c, layer, opts) => gpt2BlockBackward(c, layer, opts),
    headBackward: (o, c, x, w) => gpt2HeadBackward(o, c, x, w),
  },

  checkpointView: {
    toTopiary: gpt2View,
    // what a writer saves: Conv1D weights back to [in, out]
    toCheckpoint(c: Gpt2Config, w: WeightSource): WeightSource {
      const transposed = new Set(canonicalNames(c).filter((n) => CONV1D.some((s) => n.endsWith(`.${s}.weight`))));
      return new RenamedWeights(w, new Map([...transposed].map((n) => [n, n])), transposed);
    },
  },

  gguf: gpt2Gguf,
};

function canonicalNames(c: Gpt2Config): string[] {
  const names = globalTensors(c).map((t) => t.name);
  for (let i = 0; i < c.numLayers; i++) for (const suffix of layerTensors(c, i).keys()) names.push(layerPrefix(i) + suffix);
  return names;
}
