// The exported decoder: one ONNX graph for the whole Llama-family model (embeddings → N decoder
// layers → norm → LM head) with a KV cache, speaking transformers.js's I/O names
// (formats/onnx/names.ts). The math is that of models/llama.ts, which topiary itself runs: the
// differences are that weights are initializers here (added by `GraphWeights`, which decides
// how each is stored), positions come from `position_ids`, and the mask from `attention_mask`.
//
//   input_ids [B, T] ─ Gather(embed) ─▶ x (N = B·T, D)
//   position_ids ─▶ cos, sin [B, T, 1, hd]            attention_mask + causal ─▶ mask [B, 1, T, S]
//   per layer: x += o(Attention(rope(q(h)), rope(k(h)), v(h), mask, past)),  h = rmsnorm(x)
//              x += down(silu(gate(h)) · up(h)),                                h = rmsnorm(x)
//   last num_logits_to_keep positions ─ rmsnorm ─ lm_head ─▶ logits [B, T', V]
import type { ModelConfig } from "../models/config.js";
import { inverseFrequencies, LAYER_TENSORS, layerPrefix, linearSpecs, EMBED_TOKENS, FINAL_NORM, LM_HEAD } from "../models/llama.js";
import { float, type GraphBuilder } from "../runtime/onnx-graph.js";
import { DIM, IO } from "../formats/onnx/names.js";

/** How the graph obtains its weights; the exporter decides the storage (float32/16, MatMulNBits). */
export interface GraphWeights {
  /** A float32 value holding tensor `name` (norm weights, embeddings). */
  float(name: string): string;
  /** Rows `ids` of the embedding table, float32 [..., D]. */
  embed(ids: string): string;
  /** y = x·Wᵀ (+ b) for the linear whose weight is `${prefix}.weight`; x is [N, in]. */
  linear(x: string, prefix: string, hasBias: boolean): string;
  /** Whether the checkpoint has tensor `name` (a tied checkpoint may still carry lm_head.weight). */
  has(name: string): boolean;
}

/** float32's lowest value: a finite "minus infinity" so fully padded rows give no NaN (as HF does). */
const MASKED = -3.4028234663852886e38;
/** An end index past any dimension, for Slice (int64 max does not fit a JS number). */
const TO_END = Number.MAX_SAFE_INTEGER;

function rmsnorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  // weight · x / sqrt(mean(x²) + eps), float32, as LlamaRMSNorm and models/llama.ts
  const ms = g.op("ReduceMean", [g.op("Mul", [x, x]), g.constInt64([-1])], { keepdims: 1 });
  const inv = g.op("Reciprocal", [g.op("Sqrt", [g.op("Add", [ms, g.constFloat([eps], [])])])]);
  return g.op("Mul", [g.op("Mul", [x, inv]), weight]);
}

/** x·cos + rotate_half(x)·sin on [B, T, heads, hd]; cos/sin are [B, T, 1, hd]. */
function rope(g: GraphBuilder, x: string, cos: string, sin: string, headDim: number): string {
  const half = headDim / 2;
  const [x1, x2] = g.opN("Split", [x, g.constInt64([half, half])], 2, { axis: -1 });
  const rotated = g.op("Concat", [g.op("Neg", [x2!]), x1!], { axis: -1 });
  return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])]);
}

/** cos/sin [B, T, 1, hd] from position_ids [B, T]: angle = pos · inv_freq (float32), cat(freqs, freqs). */
function rotaryTables(g: GraphBuilder, c: ModelConfig, positionIds: string): { cos: string; sin: string } {
  const invFreq = g.constFloat(Array.from(inverseFrequencies(c.headDim, c.ropeTheta, c.ropeScaling)), [c.headDim / 2], "rope_inv_freq");
  const pos = g.op("Unsqueeze", [g.op("Cast", [positionIds], { to: 1 }), g.constInt64([2])]); //  (B, T, 1)
  const freqs = g.op("Mul", [pos, invFreq]); //                                                 (B, T, hd/2)
  const emb = g.op("Unsqueeze", [g.op("Concat", [freqs, freqs], { axis: -1 }), g.constInt64([2])]); // (B, T, 1, hd)
  return { cos: g.op("Cos", [emb], {}, { name: "rope_cos" }), sin: g.op("Sin", [emb], {}, { name: "rope_sin" }) };
}

/**
 * Additive mask [B, 1, T, S] (S = past + T): query t sits at position P + t and sees key s when
 * s ≤ P + t, attention_mask[b, s] = 1, and (sliding window W) s > P + t − W.
 */
function attentionMask(g: GraphBuilder, c: ModelConfig, inputIds: string, attentionMask: string): string {
  const scalar = (shapeOf: string, axis: number) => g.op("Gather", [g.op("Shape", [shapeOf]), g.constInt64([axis])], { axis: 0 });
  const squeeze = (v: string) => g.op("Squeeze", [v, g.constInt64([0])]);
  const S = squeeze(scalar(attentionMask, 1));
  const T = squeeze(scalar(inputIds, 1));
  const zero = g.initializer({ name: "mask_zero_i64", type: "int64", dims: [], data: new Uint8Array(8) });
  const one = g.initializer({ name: "mask_one_i64", type: "int64", dims: [], data: new Uint8Array(new BigInt64Array([1n]).buffer) });
  const keys = g.op("Unsqueeze", [g.op("Range", [zero, S, one]), g.constInt64([0])]); //            (1, S)
  const queries = g.op("Unsqueeze", [g.op("Range", [g.op("Sub", [S, T]), S, one]), g.constInt64([1])]); // (T, 1)
  let allowed = g.op("LessOrEqual", [keys, queries]); //                                             (T, S)
  if (c.slidingWindow !== null) {
    allowed = g.op("And", [allowed, g.op("Greater", [keys, g.op("Sub", [queries, g.constInt64([c.slidingWindow])])])]);
  }
  const padding = g.op("Unsqueeze", [g.op("Cast", [attentionMask], { to: 9 }), g.constInt64([1, 2])]); // (B, 1, 1, S) bool
  allowed = g.op("And", [g.op("Unsqueeze", [allowed, g.constInt64([0, 1])]), padding]); //            (B, 1, T, S)
  return g.op("Where", [allowed, g.constFloat([0], []), g.constFloat([MASKED], [])], {}, { name: "attention_bias" });
}

/** Builds the whole decoder into `g`. */
export function buildDecoderGraph(g: GraphBuilder, c: ModelConfig, w: GraphWeights): void {
  const D = c.hiddenSize;
  const H = c.numHeads;
  const KV = c.numKvHeads;
  const hd = c.headDim;
  const inputIds = g.input(IO.inputIds, "int64", [DIM.batch, DIM.seq]);
  const attnMask = g.input(IO.attentionMask, "int64", [DIM.batch, DIM.total]);
  const positionIds = g.input(IO.positionIds, "int64", [DIM.batch, DIM.seq]);
  const past = Array.from({ length: c.numLayers }, (_, i) => ({
    key: g.input(IO.pastKey(i), "float32", [DIM.batch, KV, DIM.past, hd]),
    value: g.input(IO.pastValue(i), "float32", [DIM.batch, KV, DIM.past, hd]),
  }));
  const keep = g.input(IO.numLogitsToKeep, "int64", []);

  // shapes built from the runtime batch/seq: [B, T] ++ tail
  const bt = g.op("Shape", [inputIds]);
  const shapeOf = (...tail: number[]) => g.op("Concat", [bt, g.constInt64(tail)], { axis: 0 });
  const { cos, sin } = rotaryTables(g, c, positionIds);
  const mask = attentionMask(g, c, inputIds, attnMask);
  const attrs = { q_num_heads: H, kv_num_heads: KV, scale: float(1 / Math.sqrt(hd)) };

  let x = g.op("Reshape", [w.embed(inputIds), g.constInt64([-1, D])]); //                     (N, D)
  const presents: { key: string; value: string }[] = [];
  const specs = linearSpecs(c);
  for (let i = 0; i < c.numLayers; i++) {
    const p = layerPrefix(i);
    const L = (x: string, role: keyof typeof LAYER_TENSORS) => {
      const spec = specs.find((s) => s.suffix === LAYER_TENSORS[role])!;
      return w.linear(x, p + spec.suffix, spec.hasBias);
    };
    const h = rmsnorm(g, x, w.float(p + LAYER_TENSORS.inputNorm), c.rmsNormEps);
    const q = rope(g, g.op("Reshape", [L(h, "q"), shapeOf(H, hd)]), cos, sin, hd); //               (B, T, H, hd)
    const k = rope(g, g.op("Reshape", [L(h, "k"), shapeOf(KV, hd)]), cos, sin, hd); //              (B, T, KV, hd)
    const qFlat = g.op("Reshape", [q, shapeOf(H * hd)]); //                                      (B, T, H·hd)
    const kFlat = g.op("Reshape", [k, shapeOf(KV * hd)]);
    const vFlat = g.op("Reshape", [L(h, "v"), shapeOf(KV * hd)]);
    // grouped-query causal attention with the cache (ONNX Attention, opset 23)
    const [y, presentK, presentV] = g.opN("Attention", [qFlat, kFlat, vFlat, mask, past[i]!.key, past[i]!.value], 3, attrs);
    presents.push({ key: presentK!, value: presentV! });
    x = g.op("Add", [x, L(g.op("Reshape", [y!, g.constInt64([-1, H * hd])]), "o")]); //          residual
    const h2 = rmsnorm(g, x, w.float(p + LAYER_TENSORS.postNorm), c.rmsNormEps);
    const gate = L(h2, "gate");
    const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), L(h2, "up")]); //     silu(g)·u, (N, F)
    x = g.op("Add", [x, L(act, "down")]); //                                                    residual
  }

  // logits for the last `num_logits_to_keep` positions (0 = all): Slice from −n, so 0 keeps all
  const start = g.op("Neg", [g.op("Unsqueeze", [keep, g.constInt64([0])])]);
  const kept = g.op("Slice", [g.op("Reshape", [x, shapeOf(D)]), start, g.constInt64([TO_END]), g.constInt64([1])]); // (B, T', D)
  const normed = rmsnorm(g, g.op("Reshape", [kept, g.constInt64([-1, D])]), w.float(FINAL_NORM), c.rmsNormEps);
  // tied embeddings: the head is the embedding table, unless the checkpoint stores lm_head anyway
  const headName = c.tieWordEmbeddings && !w.has(LM_HEAD) ? EMBED_TOKENS : LM_HEAD;
  const logits = w.linear(normed, headName.replace(/\.weight$/, ""), false); //                (B·T', V)
  const batch = g.op("Slice", [bt, g.constInt64([0]), g.constInt64([1])]);
  const logitsShape = g.op("Concat", [batch, g.constInt64([-1, c.vocabSize])], { axis: 0 });
  g.output(g.op("Reshape", [logits, logitsShape]), IO.logits, "float32", [DIM.batch, "kept_sequence_length", c.vocabSize]);
  for (let i = 0; i < c.numLayers; i++) {
    g.output(presents[i]!.key, IO.presentKey(i), "float32", [DIM.batch, KV, DIM.total, hd]);
    g.output(presents[i]!.value, IO.presentValue(i), "float32", [DIM.batch, KV, DIM.total, hd]);
  }
}
