// The seam between topiary and a model family. Everything that differs between architectures
// lives in one adapter file in src/models/ (llama.ts, …) implementing `FamilyAdapter`, plus one
// line in models/registry.ts. Nothing outside src/models/ switches on the architecture: the
// evaluator, the compression pipeline, the KV-cache decoder, the ONNX and GGUF exporters and the
// checkpoint writers all ask the adapter.
//
// ONE forward definition. An adapter describes its model as three graph fragments — `embed`,
// `block` (one decoder layer) and `head` — written against two small interfaces:
//   - `GraphWeights` names weights (`param`, `linear`, `gather`); the host decides what a weight
//     is: a graph *input* fed per call (runtime: one session per layer shape serves every layer,
//     and the pipeline runs a layer with compressed weights just by feeding other arrays), or an
//     *initializer* stored as float32/float16 or as MatMulNBits codes (ONNX export).
//   - `BlockContext` supplies what depends on the host: rotary cos/sin tables, attention with its
//     mask / sliding window / KV cache / ALiBi bias / softcap, and `capture` (the inputs of the
//     linears, which the pipeline builds its Hessians from; a no-op in the export).
// Two hosts assemble the fragments: models/runtime-graphs.ts (per-layer graphs onnxruntime runs
// for eval, calibration and decoding) and models/decoder-graph.ts (the exported whole-model graph
// with transformers.js I/O). Both run the same fragment code, so topiary's forward and the ONNX
// export cannot drift apart.
//
// How the families in issue 11 fit (checked before fixing the interface):
//   - Llama/Mistral/Qwen2/Qwen3/Llama 3 (llama.ts): RMSNorm, rotary, GQA, SwiGLU; q/k norm per
//     head is two `param`s and an RMSNormalization inside `block`.
//   - Phi-3: fused `qkv_proj` and `gate_up_proj` are single `LinearSpec`s (the compressors see one
//     matrix, the checkpoint keeps its layout); `block` Splits their outputs.
//   - Gemma 2/3: (1 + w) norms, GELU-tanh, pre/post norms, `scale` and `softcap` of `attention`,
//     per-layer `window` and rotary table (`rotary()` may return several named tables: global and
//     local base), √hidden embedding scale in `embed`, final-logit softcap in `head`.
//   - OPT: LayerNorm + biases + ReLU are fragment code; learned positions are
//     `w.gather(table, "positions", 2)`; project_in/out are linears of `embed`/`head` (not decoder
//     linears, so not compressed); the post-norm variant is a config switch inside `block`.
//   - BLOOM: `attention(…, { alibiSlopes })`; embedding LayerNorm in `embed`; the interleaved
//     per-head `query_key_value` is one fused LinearSpec whose output `block` de-interleaves.
//   - GPT-2: Conv1D stores [in, out]: `checkpointView` presents it as [out, in] to topiary
//     (and turns compressed weights back on write); checkpoints without the `transformer.` prefix
//     or tied ones that store only `lm_head.weight` are renamed by the same view.
//   - GPT-NeoX: partial rotary (a table narrower than head_dim, `block` rotates a slice) and the
//     parallel residual are fragment code.
//   - Per-layer variation: every per-layer function takes the layer index (`layerKey` makes the
//     runtime cache one session per distinct layer), so per-layer windows, rotary bases and
//     (later) per-layer widths after structured pruning fit.
import type { GraphBuilder } from "../runtime/onnx-graph.js";
import type { MetadataValue } from "../formats/gguf/writer.js";
import type { WeightSource } from "../formats/weights.js";
import type { ModelConfig } from "./config.js";
import type { StructureHooks } from "./structure.js";
import type { TrainHooks } from "./train-hooks.js";

/** One linear of a decoder layer, as the compressors see it: W [outFeatures, inFeatures]. */
export interface LinearSpec {
  /** name inside the layer, e.g. "self_attn.q_proj" (tensors `${suffix}.weight` / `.bias`) */
  suffix: string;
  /** the captured activation it reads; linears reading the same capture share one Hessian */
  input: string;
  hasBias: boolean;
  outFeatures: number;
  inFeatures: number;
}

/** How a fragment obtains its weights; names are relative to the fragment's scope. */
export interface GraphWeights {
  /** A float32 value holding tensor `name` (norm weights, biases, tables). */
  param(name: string): string;
  /** y = x·Wᵀ (+ b) for the linear whose weight is `${prefix}.weight`; x is [N, in], y [N, out]. */
  linear(x: string, prefix: string, hasBias: boolean): string;
  /**
   * Rows of table `name` (float32 [N, width]) for the token ids, or for the positions
   * (+ `offset`, OPT's 2) of the tokens: the embedding lookups.
   */
  gather(name: string, index: "tokens" | "positions", offset?: number): string;
  /** Whether the checkpoint has tensor `name`. */
  has(name: string): boolean;
}

export interface AttentionOptions {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  /** multiplies q·kᵀ (default 1/√headDim) */
  scale?: number;
  /** attention-logit softcapping: c·tanh(s / c) before the mask (Gemma 2) */
  softcap?: number | null;
  /** sliding window: a query sees the last `window` positions, itself included; null = all */
  window?: number | null;
  /** ALiBi: slope per query head, adding slope·key_position to the scores (BLOOM) */
  alibiSlopes?: number[] | null;
}

/** What a fragment gets from its host besides weights. */
export interface BlockContext {
  /** the layer being built (-1 in embed/head) */
  readonly layer: number;
  /** rows of the flat activations: N = B·T; `shape(...tail)` is the int64 shape [B, T, ...tail] */
  shape(...tail: number[]): string;
  /** cos/sin of rotary table `name` (see FamilyAdapter.rotary), broadcastable to [B, T, heads, dim] */
  rope(name: string): { cos: string; sin: string };
  /**
   * Causal attention of q [B, T, H·hd], k, v [B, T, KV·hd] against this layer's KV cache when
   * the host keeps one: returns [N, H·hd].
   */
  attention(q: string, k: string, v: string, opts: AttentionOptions): string;
  /** Declares `x` [N, width] as the captured input `name` (the runtime host may return it). */
  capture(name: string, x: string): void;
}

/** A rotary table: inv_freq (float32, length dim/2) and the cos/sin multiplier (1 unless yarn/longrope). */
export interface RotaryTable {
  invFreq: Float32Array;
  attentionScaling?: number;
}

/** One tensor of a GGUF file and where it comes from. */
export interface GgufTensorPlan {
  /** llama.cpp name, e.g. "blk.0.attn_q.weight" */
  name: string;
  /** topiary (HF) tensor name, or null for generated data */
  source: string | null;
  shape: number[];
  /** q/k: rows permuted to ggml's rope layout within this many heads (also applied to codes) */
  permuteHeads: number | null;
  /**
   * Rows reordered: file row i = source row rowOrder[i] (BLOOM/GPT-NeoX query_key_value, per-head
   * interleaved → q|k|v); applied to floats and to quantization codes alike, so codes are kept.
   */
  rowOrder?: Int32Array;
  /** generated data (rope_freqs) instead of a checkpoint tensor */
  generated?: Float32Array;
  /** float data → what llama.cpp stores (e.g. Gemma's norm w → 1 + w); forces re-quantization */
  transform?: (data: Float32Array) => Float32Array;
}

/** The GGUF side of a family (llama.cpp convert_hf_to_gguf.py's Model subclass). */
export interface GgufFamily<C extends ModelConfig = ModelConfig> {
  /** llama.cpp architecture name its files carry ("llama", "qwen3", …) */
  readonly archName: string;
  /** archName, after checking the config can be written (throws one line otherwise) */
  arch(c: C): string;
  /** every tensor, in file order */
  tensors(c: C, w: WeightSource): GgufTensorPlan[];
  /** architecture metadata (`{arch}.…` keys; general.* and tokenizer.* are written by the exporter) */
  metadata(c: C, arch: string): [string, MetadataValue][];
  /** warnings about what llama.cpp will compute differently */
  warnings?(c: C): string[];
  /** Reading a GGUF back: llama.cpp name → HF name, and undoing the file's layout on float data. */
  hfName(ggufName: string): string | null;
  fromGguf(hfName: string, data: Float32Array, shape: readonly number[], heads: { q: number; kv: number }): Float32Array;
}

/**
 * A model family. `C` is its normalized config (ModelConfig plus the family's own fields).
 * Adding a family: write `src/models/<family>.ts` exporting a FamilyAdapter and add one line per
 * HF architecture name to FAMILIES in models/registry.ts.
 */
export interface FamilyAdapter<C extends ModelConfig = ModelConfig> {
  /** short name, e.g. "llama" */
  readonly name: string;
  /** config.json → validated config; a missing or contradictory field throws FormatError(file, …) */
  parseConfig(file: string, json: Record<string, unknown>): C;

  /** Full name of layer i's tensors: `${layerPrefix(i)}${suffix}`. */
  layerPrefix(i: number): string;
  /** Global tensors (embeddings, final norm, head; not per-layer) → shape; optional ones may be absent. */
  globalTensors(c: C): { name: string; shape: number[]; optional?: boolean }[];
  /** The tensor the LM head multiplies by ([V, D]; the embedding table when tied and no lm_head is stored). */
  headWeight(c: C, w: { has(name: string): boolean }): string;
  /** Layer i's tensors (suffix → shape), linears included. */
  layerTensors(c: C, i: number): Map<string, number[]>;
  /** Layer i's linears in the order the math uses them (the compressors' units). */
  linears(c: C, i: number): LinearSpec[];
  /** Width of each captured input of layer i (the keys `LinearSpec.input` uses). */
  captureWidths(c: C, i: number): Record<string, number>;
  /** true-sequential order: groups of linear suffixes, each compressed seeing the earlier ones */
  trueSequentialGroups(c: C, i: number): string[][];
  /** A key of everything that changes layer i's graph (the runtime builds one session per key). */
  layerKey(c: C, i: number): unknown;

  /** Rotary tables by name (empty: no rotary). */
  rotary(c: C): Record<string, RotaryTable>;
  /** token ids (+ positions) → hidden [N, D] */
  embed(g: GraphBuilder, ctx: BlockContext, w: GraphWeights, c: C): string;
  /** one decoder layer: hidden [N, D] → hidden [N, D]; weights scoped to the layer */
  block(g: GraphBuilder, ctx: BlockContext, w: GraphWeights, c: C, layer: number, x: string): string;
  /** final hidden [N, D] → logits [N, V] (final norm, head, softcapping) */
  head(g: GraphBuilder, ctx: BlockContext, w: GraphWeights, c: C, x: string): string;

  /**
   * Checkpoint layout ↔ topiary layout, when they differ (GPT-2 Conv1D [in, out], a missing
   * base-model prefix, a tied checkpoint storing only lm_head.weight). `toTopiary` wraps the
   * opened weights; `toCheckpoint` wraps the weights a writer saves, so outputs keep the
   * checkpoint's own names and layouts. Absent: identity.
   */
  checkpointView?: {
    toTopiary(c: C, w: WeightSource): WeightSource;
    toCheckpoint(c: C, w: WeightSource): WeightSource;
  };

  /** Structured pruning: the layer's units and the pruned model's config (models/structure.ts); absent: not supported. */
  structure?: StructureHooks<C>;

  /** Recovery training: the backward of a block and of the head (models/train-hooks.ts); absent: `topiary recover` refuses the family. */
  train?: TrainHooks<C>;

  /** GGUF export; absent when llama.cpp has no such architecture (export refuses in one line). */
  gguf?: GgufFamily<C>;
}
