// The OPT family adapter (OPTForCausalLM, transformers modeling_opt.py): learned positions with
// an offset of 2, LayerNorm, biases, ReLU, multi-head attention.
//   - do_layer_norm_before false (OPT-350m): post-norm blocks, LN after each residual add, and no
//     final layer norm (nor with _remove_final_layer_norm).
//   - word_embed_proj_dim ≠ hidden_size (OPT-350m): embeddings of width P, project_in [D, P]
//     after the lookup and project_out [P, D] before the head (not decoder linears: never compressed).
// The linears read four captured inputs:
//   attn_in → q_proj, k_proj, v_proj   attn_out → out_proj   mlp_in → fc1   mlp_act → fc2
// llama.cpp has no OPT architecture: no GGUF export.
import { z } from "zod";
import { FormatError } from "../formats/errors.js";
import type { GraphBuilder } from "../runtime/onnx-graph.js";
import type { WeightSource } from "../formats/weights.js";
import { RenamedWeights, prefixMap } from "./checkpoint-view.js";
import { layerCount, describeZodError, eosList, tokenIds, type ModelConfig } from "./config.js";
import type { FamilyAdapter, GraphWeights, LinearSpec } from "./family.js";
import { keepLayersRaw, layerStructures, standardUnits, structuredPruningRaw, type LayerStructure } from "./structure.js";
import { activation, ACTIVATIONS, layerNorm } from "./graph-ops.js";
import { optBlockBackward, optHeadBackward } from "../train/blocks/opt.js";

const optConfigSchema = z.looseObject({
  architectures: z.array(z.string()).min(1),
  vocab_size: z.number().int().positive(),
  hidden_size: z.number().int().positive(),
  num_hidden_layers: layerCount,
  ffn_dim: z.number().int().positive(),
  num_attention_heads: z.number().int().positive(),
  max_position_embeddings: z.number().int().positive().default(2048),
  do_layer_norm_before: z.boolean().default(true),
  _remove_final_layer_norm: z.boolean().default(false),
  word_embed_proj_dim: z.number().int().positive().nullish(),
  enable_bias: z.boolean().default(true),
  layer_norm_elementwise_affine: z.boolean().default(true),
  activation_function: z.string().default("relu"),
  tie_word_embeddings: z.boolean().default(true),
  bos_token_id: tokenIds,
  eos_token_id: tokenIds,
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
});

export interface OptConfig extends ModelConfig {
  /** LayerNorm before attention and MLP (pre-norm); false: after each residual add (OPT-350m) */
  preNorm: boolean;
  /** a final LayerNorm before the head (pre-norm models unless _remove_final_layer_norm) */
  finalNorm: boolean;
  /** width of the token embeddings and the head input (≠ hiddenSize: project_in / project_out) */
  embedDim: number;
  /** q/k/v/out and fc1/fc2 carry biases (enable_bias) */
  linearBias: boolean;
  /** LayerNorms have weight and bias (layer_norm_elementwise_affine) */
  normAffine: boolean;
  hiddenAct: string;
  /** each layer's widths (differ only after structured pruning: config.json structured_pruning) */
  layers: LayerStructure[];
}

/** torch.nn.LayerNorm's default eps; OPT's config has no field for it. */
const LN_EPS = 1e-5;
/** OPTLearnedPositionalEmbedding: position p reads row p + 2 (fairseq's padding offset). */
const POSITION_OFFSET = 2;

function parseOptConfig(file: string, json: Record<string, unknown>): OptConfig {
  const parsed = optConfigSchema.safeParse(json);
  if (!parsed.success) throw new FormatError(file, describeZodError(parsed.error));
  const c = parsed.data;
  if (!ACTIVATIONS.includes(c.activation_function)) {
    throw new FormatError(file, `activation_function "${c.activation_function}" is not supported (supported: ${ACTIVATIONS.join(", ")})`);
  }
  const headDim = c.hidden_size / c.num_attention_heads;
  if (!Number.isInteger(headDim)) throw new FormatError(file, `hidden_size ${c.hidden_size} is not a multiple of num_attention_heads ${c.num_attention_heads}`);
  const fail = (m: string): never => {
    throw new FormatError(file, m);
  };
  const defaults = { numHeads: c.num_attention_heads, numKvHeads: c.num_attention_heads, intermediateSize: c.ffn_dim, oBias: c.enable_bias, downBias: c.enable_bias };
  const layers = layerStructures(json, c.num_hidden_layers, defaults, fail);
  return {
    layers,
    layerWidths: json.structured_pruning ? layers : undefined,
    architecture: c.architectures[0]!,
    hiddenSize: c.hidden_size,
    intermediateSize: c.ffn_dim,
    numLayers: c.num_hidden_layers,
    numHeads: c.num_attention_heads,
    numKvHeads: c.num_attention_heads,
    headDim,
    vocabSize: c.vocab_size,
    maxPositions: c.max_position_embeddings,
    tieWordEmbeddings: c.tie_word_embeddings,
    preNorm: c.do_layer_norm_before,
    finalNorm: c.do_layer_norm_before && !c._remove_final_layer_norm,
    embedDim: c.word_embed_proj_dim ?? c.hidden_size,
    linearBias: c.enable_bias,
    normAffine: c.layer_norm_elementwise_affine,
    hiddenAct: c.activation_function,
    bosTokenId: typeof c.bos_token_id === "number" ? c.bos_token_id : null,
    eosTokenIds: eosList(c.eos_token_id),
    torchDtype: c.torch_dtype ?? c.dtype ?? null,
    raw: json,
  };
}

const BASE = "model.decoder.";
const OPT_TENSORS = {
  embedTokens: `${BASE}embed_tokens.weight`,
  embedPositions: `${BASE}embed_positions.weight`,
  projectIn: `${BASE}project_in`,
  projectOut: `${BASE}project_out`,
  finalNorm: `${BASE}final_layer_norm`,
  lmHead: "lm_head",
} as const;
const layerPrefix = (i: number): string => `${BASE}layers.${i}.`;

const LAYER = {
  attnNorm: "self_attn_layer_norm",
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.out_proj",
  mlpNorm: "final_layer_norm",
  fc1: "fc1",
  fc2: "fc2",
} as const;

/** The layer's tensor names, for train/blocks/opt.ts. */
export const OPT_LAYER = LAYER;

function linearSpecs(c: OptConfig, i: number): LinearSpec[] {
  const D = c.hiddenSize;
  const l = c.layers[i]!;
  const A = l.numHeads * c.headDim;
  const F = l.intermediateSize;
  const b = c.linearBias;
  return [
    { suffix: LAYER.q, input: "attn_in", hasBias: b, outFeatures: A, inFeatures: D },
    { suffix: LAYER.k, input: "attn_in", hasBias: b, outFeatures: A, inFeatures: D },
    { suffix: LAYER.v, input: "attn_in", hasBias: b, outFeatures: A, inFeatures: D },
    { suffix: LAYER.o, input: "attn_out", hasBias: l.oBias, outFeatures: D, inFeatures: A },
    { suffix: LAYER.fc1, input: "mlp_in", hasBias: b, outFeatures: F, inFeatures: D },
    { suffix: LAYER.fc2, input: "mlp_act", hasBias: l.downBias, outFeatures: D, inFeatures: F },
  ];
}

function layerTensors(c: OptConfig, i: number): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  if (c.normAffine) {
    for (const norm of [LAYER.attnNorm, LAYER.mlpNorm]) {
      shapes.set(`${norm}.weight`, [c.hiddenSize]);
      shapes.set(`${norm}.bias`, [c.hiddenSize]);
    }
  }
  for (const l of linearSpecs(c, i)) {
    shapes.set(`${l.suffix}.weight`, [l.outFeatures, l.inFeatures]);
    if (l.hasBias) shapes.set(`${l.suffix}.bias`, [l.outFeatures]);
  }
  return shapes;
}

function globalTensors(c: OptConfig): { name: string; shape: number[]; optional?: boolean }[] {
  const D = c.hiddenSize;
  const P = c.embedDim;
  const t: { name: string; shape: number[]; optional?: boolean }[] = [
    { name: OPT_TENSORS.embedTokens, shape: [c.vocabSize, P] },
    { name: OPT_TENSORS.embedPositions, shape: [c.maxPositions + POSITION_OFFSET, D] },
  ];
  if (P !== D) {
    t.push({ name: `${OPT_TENSORS.projectIn}.weight`, shape: [D, P] });
    t.push({ name: `${OPT_TENSORS.projectOut}.weight`, shape: [P, D] });
  }
  if (c.finalNorm && c.normAffine) {
    t.push({ name: `${OPT_TENSORS.finalNorm}.weight`, shape: [D] });
    t.push({ name: `${OPT_TENSORS.finalNorm}.bias`, shape: [D] });
  }
  t.push({ name: `${OPT_TENSORS.lmHead}.weight`, shape: [c.vocabSize, P], optional: c.tieWordEmbeddings });
  return t;
}

/** LayerNorm `name` (weight/bias params, or none when not elementwise-affine). */
function norm(g: GraphBuilder, w: GraphWeights, c: OptConfig, name: string, x: string): string {
  const D = c.hiddenSize;
  if (c.normAffine) return layerNorm(g, x, w.param(`${name}.weight`), w.param(`${name}.bias`), LN_EPS);
  return layerNorm(g, x, g.constFloat(new Array<number>(D).fill(1), [D]), g.constFloat(new Array<number>(D).fill(0), [D]), LN_EPS);
}

/** The [V, ·] matrix of the head: the embedding table when tied, unless the checkpoint stores a head anyway. */
const headWeight = (c: OptConfig, w: { has(name: string): boolean }): string =>
  c.tieWordEmbeddings && !w.has(`${OPT_TENSORS.lmHead}.weight`) ? OPT_TENSORS.embedTokens : `${OPT_TENSORS.lmHead}.weight`;

export const optFamily: FamilyAdapter<OptConfig> = {
  name: "opt",
  parseConfig: parseOptConfig,
  layerPrefix,
  globalTensors,
  headWeight,
  layerTensors: (c, i) => layerTensors(c, i),
  linears: (c, i) => linearSpecs(c, i),
  captureWidths: (c, i) => ({ attn_in: c.hiddenSize, attn_out: c.layers[i]!.numHeads * c.headDim, mlp_in: c.hiddenSize, mlp_act: c.layers[i]!.intermediateSize }),
  // SparseGPT/GPTQ opt.py --true-sequential
  trueSequentialGroups: () => [[LAYER.k, LAYER.v, LAYER.q], [LAYER.o], [LAYER.fc1], [LAYER.fc2]],
  layerKey: (c, i) => ({ D: c.hiddenSize, hd: c.headDim, l: c.layers[i], pre: c.preNorm, b: c.linearBias, a: c.normAffine, act: c.hiddenAct }),
  rotary: () => ({}),

  embed(g, _ctx, w, c) {
    let x = w.gather(OPT_TENSORS.embedTokens, "tokens"); //                                  (N, P)
    if (c.embedDim !== c.hiddenSize) x = w.linear(x, OPT_TENSORS.projectIn, false); //        (N, D)
    return g.op("Add", [x, w.gather(OPT_TENSORS.embedPositions, "positions", POSITION_OFFSET)]);
  },

  block(g, ctx, w, c, layer, x) {
    const H = c.layers[layer]!.numHeads;
    const hd = c.headDim;
    const [q, k, v, o, fc1, fc2] = linearSpecs(c, layer) as [LinearSpec, LinearSpec, LinearSpec, LinearSpec, LinearSpec, LinearSpec];
    const L = (s: LinearSpec, h: string) => w.linear(h, s.suffix, s.hasBias);
    // pre-norm: h = LN(x) feeds attention; post-norm: x itself does, and LN follows the residual add
    const h = c.preNorm ? norm(g, w, c, LAYER.attnNorm, x) : x;
    ctx.capture("attn_in", h);
    const flat = (t: string) => g.op("Reshape", [t, ctx.shape(H * hd)]); //                  (B, T, D)
    const y = ctx.attention(flat(L(q, h)), flat(L(k, h)), flat(L(v, h)), { numHeads: H, numKvHeads: H, headDim: hd });
    ctx.capture("attn_out", y);
    let x2 = g.op("Add", [x, L(o, y)]); //                                                    residual
    if (!c.preNorm) x2 = norm(g, w, c, LAYER.attnNorm, x2);
    const h2 = c.preNorm ? norm(g, w, c, LAYER.mlpNorm, x2) : x2;
    ctx.capture("mlp_in", h2);
    const act = activation(g, c.hiddenAct, L(fc1, h2)); //                                    (N, F)
    ctx.capture("mlp_act", act);
    const out = g.op("Add", [x2, L(fc2, act)]); //                                            residual
    return c.preNorm ? out : norm(g, w, c, LAYER.mlpNorm, out);
  },

  head(g, _ctx, w, c, x) {
    let h = c.finalNorm ? norm(g, w, c, OPT_TENSORS.finalNorm, x) : x;
    if (c.embedDim !== c.hiddenSize) h = w.linear(h, OPT_TENSORS.projectOut, false); //        (N, P)
    const head = headWeight(c, w).replace(/\.weight$/, "");
    return w.linear(h, head, false);
  },

  // structured pruning: heads (MHA: a KV group is one head) and fc1/fc2 channels; OPT's own keys
  // tie head_dim to hidden_size / heads, so a pruned model always lists its widths per layer
  structure: {
    units: (c, i) =>
      standardUnits({
        numHeads: c.layers[i]!.numHeads,
        numKvHeads: c.layers[i]!.numKvHeads,
        headDim: c.headDim,
        hidden: c.hiddenSize,
        intermediate: c.layers[i]!.intermediateSize,
        q: LAYER.q,
        k: LAYER.k,
        v: LAYER.v,
        o: LAYER.o,
        attnInput: "attn_out",
        mlpProducers: [LAYER.fc1],
        down: LAYER.fc2,
        mlpInput: "mlp_act",
      }),
    prune: (c, layers) => parseOptConfig("config.json (structured pruning)", structuredPruningRaw(c.raw, c.layers, layers)),
    keepLayers: (c, keep) => parseOptConfig("config.json (structured pruning)", keepLayersRaw(c.raw, keep, "num_hidden_layers")),
  },

  // recovery training; arrows so the import cycle with train/blocks/ resolves at call time
  train: {
    blockBackward: (c, layer, opts) => optBlockBackward(c, layer, opts),
    headBackward: (o, c, x, w) => optHeadBackward(o, c, x, w),
  },

  checkpointView: {
    // files saved from OPTModel hold decoder.* (no "model." prefix)
    toTopiary(c: OptConfig, w: WeightSource): WeightSource {
      const map = prefixMap(w, "model.", canonicalNames(c));
      return map.size ? new RenamedWeights(w, map, new Set()) : w;
    },
    toCheckpoint: (_c: OptConfig, w: WeightSource) => w,
  },
};

/** Every tensor name the adapter reads, with the base-model prefix. */
function canonicalNames(c: OptConfig): string[] {
  const names = globalTensors(c).map((t) => t.name);
  for (let i = 0; i < c.numLayers; i++) for (const suffix of layerTensors(c, i).keys()) names.push(layerPrefix(i) + suffix);
  return names;
}
