// Phi3ForCausalLM (models/family.ts): a Llama with fused checkpoint linears — `qkv_proj` holds
// q, k and v stacked by rows [H·hd + 2·KV·hd, D], `gate_up_proj` holds gate then up [2F, D] —
// and an optionally partial rotary embedding (partial_rotary_factor: Phi-4-mini rotates 3/4 of
// each head). Each fused matrix is one linear to the compressors (as it is one GEMM in the model)
// and is written back as it was stored; the block splits its output.
import { z } from "zod";
import { Keys } from "../formats/gguf/constants.js";
import { FormatError } from "../formats/errors.js";
import { mapTensorName } from "../formats/gguf/names.js";
import type { WeightSource } from "../formats/weights.js";
import { describeZodError } from "./config.js";
import type { FamilyAdapter, GgufTensorPlan, LinearSpec } from "./family.js";
import { GgufMeta } from "./gguf-meta.js";
import { activation, rmsNorm, rotateHalf, splitLast } from "./graph-ops.js";
import { EMBED_TOKENS, FINAL_NORM, layerPrefix, LM_HEAD, llamaPrunedRaw, parseLlamaConfig, type LlamaConfig } from "./llama.js";
import type { StructureHooks, UnitGroup } from "./structure.js";
import { keepLayersRaw } from "./structure.js";
import { inverseFrequencies } from "./rope.js";
import { phi3BlockBackward, phi3HeadBackward } from "../train/blocks/phi3.js";

export interface Phi3Config extends LlamaConfig {
  /** rotated dimensions of each head (head_dim · partial_rotary_factor) */
  rotaryDim: number;
  /** original_max_position_embeddings (llama.cpp's rope.scaling.original_context_length) */
  originalMaxPositions: number;
}

const phi3Fields = z.looseObject({
  partial_rotary_factor: z.number().positive().max(1).optional(),
  rope_parameters: z.looseObject({ partial_rotary_factor: z.number().positive().max(1).optional() }).nullish(),
  original_max_position_embeddings: z.number().int().positive().optional(),
});

function parsePhi3Config(file: string, json: Record<string, unknown>): Phi3Config {
  const base = parseLlamaConfig(file, json, { slidingWindowField: true });
  const parsed = phi3Fields.safeParse(json);
  if (!parsed.success) throw new FormatError(file, describeZodError(parsed.error));
  const factor = parsed.data.rope_parameters?.partial_rotary_factor ?? parsed.data.partial_rotary_factor ?? 1;
  const rotaryDim = Math.floor(base.headDim * factor);
  if (rotaryDim % 2 !== 0 || rotaryDim === 0) throw new FormatError(file, `partial_rotary_factor ${factor} gives ${rotaryDim} rotary dimensions; they must be even and > 0`);
  return { ...base, rotaryDim, originalMaxPositions: parsed.data.original_max_position_embeddings ?? base.maxPositions };
}

const T = {
  inputNorm: "input_layernorm.weight",
  qkv: "self_attn.qkv_proj",
  o: "self_attn.o_proj",
  postNorm: "post_attention_layernorm.weight",
  gateUp: "mlp.gate_up_proj",
  down: "mlp.down_proj",
} as const;

/** The layer's tensor names, for train/blocks/phi3.ts. */
export const PHI3_LAYER = T;

// Layer widths and the consumers' biases come per layer from LlamaConfig.layers (equal unless
// structured pruning made them differ: config.json `structured_pruning`, as Llama's).
function linears(c: Phi3Config, i: number): LinearSpec[] {
  const D = c.hiddenSize;
  const l = c.layers[i]!;
  const qDim = l.numHeads * c.headDim;
  const kvDim = l.numKvHeads * c.headDim;
  const F = l.intermediateSize;
  return [
    { suffix: T.qkv, input: "attn_in", hasBias: false, outFeatures: qDim + 2 * kvDim, inFeatures: D },
    { suffix: T.o, input: "attn_out", hasBias: l.oBias, outFeatures: D, inFeatures: qDim },
    { suffix: T.gateUp, input: "mlp_in", hasBias: false, outFeatures: 2 * F, inFeatures: D },
    { suffix: T.down, input: "mlp_act", hasBias: l.downBias, outFeatures: D, inFeatures: F },
  ];
}

function layerTensors(c: Phi3Config, i: number): Map<string, number[]> {
  const shapes = new Map<string, number[]>([
    [T.inputNorm, [c.hiddenSize]],
    [T.postNorm, [c.hiddenSize]],
  ]);
  for (const l of linears(c, i)) {
    shapes.set(`${l.suffix}.weight`, [l.outFeatures, l.inFeatures]);
    if (l.hasBias) shapes.set(`${l.suffix}.bias`, [l.outFeatures]);
  }
  return shapes;
}

const range = (a: number, n: number): number[] => Array.from({ length: n }, (_, j) => a + j);

/**
 * Structured pruning of the fused layout: a KV group's rows of qkv_proj are three blocks (its
 * query heads in the q block, its k head, its v head); an MLP channel's rows of gate_up_proj are
 * two (its gate row and its up row, F apart). Kept rows stay in order, so the smaller matrices
 * are again q'|k'|v' and gate'|up'.
 */
const phi3Structure: StructureHooks<Phi3Config> = {
  units(c, i): UnitGroup[] {
    const { numHeads: H, numKvHeads: KV, intermediateSize: F } = c.layers[i]!;
    const hd = c.headDim;
    const D = c.hiddenSize;
    const rep = H / KV;
    return [
      {
        kind: "attention",
        count: KV,
        consumer: T.o,
        consumerInput: "attn_out",
        producers: [T.qkv],
        columns: (u) => range(u * rep * hd, rep * hd),
        rows: (_p, u) => [...range(u * rep * hd, rep * hd), ...range(H * hd + u * hd, hd), ...range((H + KV) * hd + u * hd, hd)],
        weightsPerUnit: (2 * rep * hd + 2 * hd) * D,
      },
      {
        kind: "mlp",
        count: F,
        consumer: T.down,
        consumerInput: "mlp_act",
        producers: [T.gateUp],
        columns: (u) => [u],
        rows: (_p, u) => [u, F + u],
        weightsPerUnit: 3 * D,
      },
    ];
  },
  // HF's Phi3Config has no bias keys: a compensated model lists its biases per layer
  prune: (c, layers) => parsePhi3Config("config.json (structured pruning)", llamaPrunedRaw(c, layers, false)),
  keepLayers: (c, keep) => parsePhi3Config("config.json (structured pruning)", keepLayersRaw(c.raw, keep, "num_hidden_layers")),
};

/** x·cos + rotate_half(x)·sin on the first `rot` dimensions of each head, the rest passed through. */
function partialRotary(g: Parameters<FamilyAdapter["block"]>[0], x: string, cos: string, sin: string, hd: number, rot: number): string {
  if (rot === hd) return rotateHalf(g, x, cos, sin, hd);
  const [r, pass] = splitLast(g, x, [rot, hd - rot]) as [string, string];
  return g.op("Concat", [rotateHalf(g, r, cos, sin, rot), pass], { axis: -1 });
}

const GGUF_NAMES = [
  ["model.embed_tokens", "token_embd"],
  ["model.norm", "output_norm"],
  ["lm_head", "output"],
  ["model.layers.{bid}.input_layernorm", "blk.{bid}.attn_norm"],
  ["model.layers.{bid}.self_attn.qkv_proj", "blk.{bid}.attn_qkv"],
  ["model.layers.{bid}.self_attn.o_proj", "blk.{bid}.attn_output"],
  ["model.layers.{bid}.post_attention_layernorm", "blk.{bid}.ffn_norm"],
  // llama.cpp's phi3 keeps gate and up fused in ffn_up (LLM_FFN_SWIGLU splits it)
  ["model.layers.{bid}.mlp.gate_up_proj", "blk.{bid}.ffn_up"],
  ["model.layers.{bid}.mlp.down_proj", "blk.{bid}.ffn_down"],
] as const;

export const phi3Family: FamilyAdapter<Phi3Config> = {
  name: "phi3",
  parseConfig: parsePhi3Config,
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
  trueSequentialGroups: () => [[T.qkv], [T.o], [T.gateUp], [T.down]],
  layerKey: (c, i) => ({ D: c.hiddenSize, l: c.layers[i], hd: c.headDim, rot: c.rotaryDim, eps: c.rmsNormEps, w: c.layerWindows[i] }),
  rotary: (c) => ({ rope: { invFreq: inverseFrequencies(c.rotaryDim, c.ropeTheta, c.ropeScaling) } }),

  embed: (_g, _ctx, w) => w.gather(EMBED_TOKENS, "tokens"),

  block(g, ctx, w, c, layer, x) {
    const { numHeads: H, numKvHeads: KV, intermediateSize: F, oBias, downBias } = c.layers[layer]!;
    const hd = c.headDim;
    const { cos, sin } = ctx.rope("rope");
    const h = rmsNorm(g, x, w.param(T.inputNorm), c.rmsNormEps);
    ctx.capture("attn_in", h);
    const [q, k, v] = splitLast(g, w.linear(h, T.qkv, false), [H * hd, KV * hd, KV * hd]) as [string, string, string];
    const qr = partialRotary(g, g.op("Reshape", [q, ctx.shape(H, hd)]), cos, sin, hd, c.rotaryDim);
    const kr = partialRotary(g, g.op("Reshape", [k, ctx.shape(KV, hd)]), cos, sin, hd, c.rotaryDim);
    const flat = (t: string, n: number) => g.op("Reshape", [t, g.constInt64([0, 0, n])]);
    const vr = g.op("Reshape", [v, ctx.shape(KV * hd)]);
    const y = ctx.attention(flat(qr, H * hd), flat(kr, KV * hd), vr, { numHeads: H, numKvHeads: KV, headDim: hd, window: c.layerWindows[layer] });
    ctx.capture("attn_out", y);
    const x2 = g.op("Add", [x, w.linear(y, T.o, oBias)]);
    const h2 = rmsNorm(g, x2, w.param(T.postNorm), c.rmsNormEps);
    ctx.capture("mlp_in", h2);
    const [gate, up] = splitLast(g, w.linear(h2, T.gateUp, false), [F, F]) as [string, string];
    const act = g.op("Mul", [up, activation(g, c.hiddenAct, gate)]);
    ctx.capture("mlp_act", act);
    return g.op("Add", [x2, w.linear(act, T.down, downBias)]);
  },

  head(g, _ctx, w, c, x) {
    const head = c.tieWordEmbeddings && !w.has(LM_HEAD) ? EMBED_TOKENS : LM_HEAD;
    return w.linear(rmsNorm(g, x, w.param(FINAL_NORM), c.rmsNormEps), head.replace(/\.weight$/, ""), false);
  },

  // recovery training; arrows so the import cycle with train/blocks/ resolves at call time
  train: {
    blockBackward: (c, layer, opts) => phi3BlockBackward(c, layer, opts),
    headBackward: (o, c, x, w) => phi3HeadBackward(o, c, x, w),
  },
  structure: phi3Structure,

  // convert_hf_to_gguf.py Phi3MiniModel: fused tensors as stored, NEOX rope (no q/k permutation)
  gguf: {
    archName: "phi3",
    arch(c) {
      // llama.cpp's phi3 sizes every layer alike and has no o/down biases
      if (c.layerWidths) throw new Error(`GGUF export of this ${c.architecture}: llama.cpp's phi3 architecture has one width for all layers and no output biases (this model was structurally pruned per layer or with compensation biases; prune with --uniform and without them)`);
      // llama.cpp's phi3 loader sizes qkv_proj's query rows as hidden_size (n_embd), not heads × head_dim
      if (c.numHeads * c.headDim !== c.hiddenSize) throw new Error(`GGUF export of this ${c.architecture}: llama.cpp's phi3 architecture needs num_attention_heads × head_dim = hidden_size (${c.numHeads} × ${c.headDim} ≠ ${c.hiddenSize}: attention heads were pruned; only MLP channels can be)`);
      return "phi3";
    },
    tensors(c, w: WeightSource): GgufTensorPlan[] {
      const plan: GgufTensorPlan[] = [];
      const add = (source: string) => {
        const name = mapTensorName(GGUF_NAMES, source, "toGguf");
        if (!name) throw new Error(`no llama.cpp name for tensor "${source}"`);
        if (!w.has(source)) throw new FormatError(w.location, `missing tensor "${source}"`);
        plan.push({ name, source, shape: [...w.shape(source)], permuteHeads: null });
      };
      add(EMBED_TOKENS);
      for (let i = 0; i < c.numLayers; i++) for (const suffix of layerTensors(c, i).keys()) add(layerPrefix(i) + suffix);
      add(FINAL_NORM);
      if (w.has(LM_HEAD)) add(LM_HEAD);
      return plan;
    },
    metadata: (c, arch) =>
      new GgufMeta(arch)
        .common(c, c.rmsNormEps)
        .u32("rope.scaling.original_context_length", c.originalMaxPositions)
        .u32(Keys.Rope.DIMENSION_COUNT, c.rotaryDim)
        .f32(Keys.Rope.FREQ_BASE, c.ropeTheta)
        .u32("attention.sliding_window", c.slidingWindow ?? 0).kv,
    hfName: (name) => mapTensorName(GGUF_NAMES, name, "toHf"),
    fromGguf: (_name, data) => data,
  },
};
