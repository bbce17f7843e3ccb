// Llama-family decoder (LlamaForCausalLM; Mistral and Qwen2 differ only in config fields):
// pre-norm RMSNorm, rotary embeddings (rotate_half), grouped-query causal attention, SwiGLU MLP.
//
// Each decoder layer is one ONNX graph whose *weights are inputs*, so a single onnxruntime
// session per layer shape serves every layer, and the compression pipeline can run a layer with
// compressed weights just by feeding other arrays. The graph also exposes, as optional outputs,
// the input of every linear layer (what the pipeline's Hessians are built from):
//   attn_in  → q_proj, k_proj, v_proj      attn_out → o_proj
//   mlp_in   → gate_proj, up_proj          mlp_act  → down_proj
//
// Differences between the families handled here (see models/registry.ts):
//   - Qwen2: q/k/v projections have a bias (config.qkvBias).
//   - Mistral: sliding-window attention (config.slidingWindow). Windows never exceed it in the
//     papers' protocol (seqlen ≤ 2048 < 4096), so the mask stays plain causal; the model refuses
//     sequences longer than the window rather than silently attending too far.
import { float, GraphBuilder } from "../runtime/onnx-graph.js";

/** Opset of the compute graphs: 23 brings the fused Attention op (GQA, KV cache, mask). */
export const OPSET = 23;
const IR_VERSION = 10;
import type { ModelConfig, RopeScaling } from "./config.js";

/** HF tensor-name suffixes of a decoder layer, by role (gguf-py tensor_mapping style). */
export const LAYER_TENSORS = {
  inputNorm: "input_layernorm.weight",
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

/** Which captured activation feeds each linear; linears sharing an input share one Hessian. */
export type CaptureName = "attn_in" | "attn_out" | "mlp_in" | "mlp_act";

export interface LinearSpec {
  /** suffix inside the layer, e.g. "self_attn.q_proj" */
  suffix: string;
  input: CaptureName;
  hasBias: boolean;
  outFeatures: number;
  inFeatures: number;
}

/** The seven linears of a decoder layer, in the order the math uses them. */
export function linearSpecs(c: ModelConfig): LinearSpec[] {
  const D = c.hiddenSize;
  const qDim = c.numHeads * c.headDim;
  const kvDim = c.numKvHeads * c.headDim;
  const F = c.intermediateSize;
  return [
    { suffix: LAYER_TENSORS.q, input: "attn_in", hasBias: c.qkvBias, outFeatures: qDim, inFeatures: D },
    { suffix: LAYER_TENSORS.k, input: "attn_in", hasBias: c.qkvBias, outFeatures: kvDim, inFeatures: D },
    { suffix: LAYER_TENSORS.v, input: "attn_in", hasBias: c.qkvBias, outFeatures: kvDim, inFeatures: D },
    { suffix: LAYER_TENSORS.o, input: "attn_out", hasBias: c.oBias, outFeatures: D, inFeatures: qDim },
    { suffix: LAYER_TENSORS.gate, input: "mlp_in", hasBias: c.mlpBias, outFeatures: F, inFeatures: D },
    { suffix: LAYER_TENSORS.up, input: "mlp_in", hasBias: c.mlpBias, outFeatures: F, inFeatures: D },
    { suffix: LAYER_TENSORS.down, input: "mlp_act", hasBias: c.mlpBias, outFeatures: D, inFeatures: F },
  ];
}

/**
 * The order of "true sequential" compression (GPTQ/SparseGPT llama.py --true-sequential): each
 * group's inputs are captured after the earlier groups were compressed.
 */
export const TRUE_SEQUENTIAL_GROUPS: readonly (readonly string[])[] = [
  [LAYER_TENSORS.k, LAYER_TENSORS.v, LAYER_TENSORS.q],
  [LAYER_TENSORS.o],
  [LAYER_TENSORS.up, LAYER_TENSORS.gate],
  [LAYER_TENSORS.down],
];

/** Every tensor a decoder layer needs (suffix → shape). */
export function layerTensorShapes(c: ModelConfig): Map<string, number[]> {
  const shapes = new Map<string, number[]>();
  shapes.set(LAYER_TENSORS.inputNorm, [c.hiddenSize]);
  shapes.set(LAYER_TENSORS.postNorm, [c.hiddenSize]);
  for (const l of linearSpecs(c)) {
    shapes.set(`${l.suffix}.weight`, [l.outFeatures, l.inFeatures]);
    if (l.hasBias) shapes.set(`${l.suffix}.bias`, [l.outFeatures]);
  }
  return shapes;
}

export const CAPTURE_WIDTH = (c: ModelConfig, name: CaptureName): number =>
  name === "attn_out" ? c.numHeads * c.headDim : name === "mlp_act" ? c.intermediateSize : c.hiddenSize;

// ---------------------------------------------------------------------------------------------
// Rotary embeddings

/** inv_freq as transformers computes it (float32), including rope scaling. */
export function inverseFrequencies(headDim: number, theta: number, scaling: RopeScaling): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, Math.fround((2 * i) / headDim));
  if (scaling.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = inv[i]! / scaling.factor;
  } else if (scaling.type === "llama3") {
    // transformers _compute_llama3_parameters
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
    const lowWavelen = originalMaxPositions / lowFreqFactor;
    const highWavelen = originalMaxPositions / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) inv[i] = f / factor;
      else if (wavelen >= highWavelen) {
        const smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = (1 - smooth) * (f / factor) + smooth * f;
      }
    }
  }
  return inv;
}

/** cos/sin tables [T, 1, headDim] for positions start..start+T-1: cat(freqs, freqs) as HF does. */
export function ropeTables(c: ModelConfig, start: number, T: number): { cos: Float32Array; sin: Float32Array } {
  const hd = c.headDim;
  const half = hd / 2;
  const inv = inverseFrequencies(hd, c.ropeTheta, c.ropeScaling);
  const cos = new Float32Array(T * hd);
  const sin = new Float32Array(T * hd);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround((start + t) * inv[i]!); // float32 product, as torch computes it
      const cv = Math.cos(angle);
      const sv = Math.sin(angle);
      cos[t * hd + i] = cv;
      cos[t * hd + i + half] = cv;
      sin[t * hd + i] = sv;
      sin[t * hd + i + half] = sv;
    }
  }
  return { cos, sin };
}

/** Additive causal mask [T, P+T]: query t (at position P+t) sees keys 0..P+t. */
export function causalMask(P: number, T: number): Float32Array {
  const S = P + T;
  const m = new Float32Array(T * S);
  for (let t = 0; t < T; t++) for (let s = P + t + 1; s < S; s++) m[t * S + s] = -Infinity;
  return m;
}

// ---------------------------------------------------------------------------------------------
// The decoder-layer graph

function rmsnorm(g: GraphBuilder, x: string, weight: string, eps: number, name?: string): string {
  // weight · x / sqrt(mean(x²) + eps), as LlamaRMSNorm (float32 throughout): one fused op
  return g.op("RMSNormalization", [x, weight], { axis: -1, epsilon: float(eps) }, name ? { name } : {});
}

function linear(g: GraphBuilder, x: string, weight: string, bias: string | null): string {
  // y = x·Wᵀ (+ b); Gemm reads W [out, in] transposed in place, no copy
  return g.op("Gemm", bias ? [x, weight, bias] : [x, weight], { transB: 1 });
}

/** q·cos + rotate_half(q)·sin on [B, T, heads, hd]; cos/sin are [T, 1, hd]. */
function rope(g: GraphBuilder, x: string, cos: string, sin: string, headDim: number): string {
  const half = headDim / 2;
  const [x1, x2] = g.opN("Split", [x, g.constInt64([half, half])], 2, { axis: -1 });
  const rotated = g.op("Concat", [g.op("Neg", [x2!]), x1!], { axis: -1 });
  return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])]);
}

export interface LayerGraphOptions {
  /** take past_key/past_value inputs and return present_key/present_value (decoding) */
  kvCache: boolean;
  /** a fixed sequence length (no cache): lets attention skip the masked half, see below */
  seqLen?: number;
}

/**
 * Causal attention over a fixed length T, cut into row chunks: query rows [a, b) only ever see
 * keys [0, b), so each chunk attends to a prefix and the upper triangle of the score matrix is
 * never computed. 16 chunks do ~53 % of the full T×T work; the result is bit-identical to one
 * Attention over the full mask (measured 37 → 21 ms for 24 × 512 tokens, stories260K shapes).
 */
function chunkedCausalAttention(
  g: GraphBuilder,
  q: string,
  k: string,
  v: string,
  mask: string,
  T: number,
  attrs: Record<string, number | ReturnType<typeof float>>,
): string {
  const chunks = Math.max(1, Math.min(16, Math.floor(T / 32)));
  if (chunks === 1) return g.op("Attention", [q, k, v, mask], attrs);
  const seqAxis = g.constInt64([1]);
  const zero = g.constInt64([0]);
  const outs: string[] = [];
  for (let i = 0; i < chunks; i++) {
    const a = Math.floor((i * T) / chunks);
    const b = Math.floor(((i + 1) * T) / chunks);
    const end = g.constInt64([b]);
    const qi = g.op("Slice", [q, g.constInt64([a]), end, seqAxis]);
    const ki = g.op("Slice", [k, zero, end, seqAxis]);
    const vi = g.op("Slice", [v, zero, end, seqAxis]);
    const mi = g.op("Slice", [mask, g.constInt64([a, 0]), g.constInt64([b, b]), g.constInt64([0, 1])]);
    outs.push(g.op("Attention", [qi, ki, vi, mi], attrs));
  }
  return g.op("Concat", outs, { axis: 1 });
}

/** Input names of the layer graph's weights: the HF suffixes themselves. */
export function layerGraph(c: ModelConfig, opts: LayerGraphOptions): Uint8Array {
  const D = c.hiddenSize;
  const H = c.numHeads;
  const KV = c.numKvHeads;
  const hd = c.headDim;
  const F = c.intermediateSize;
  const g = new GraphBuilder("decoder_layer");

  const hidden = g.input("hidden", "float32", ["batch", "seq", D]);
  const cos = g.input("cos", "float32", ["seq", 1, hd]);
  const sin = g.input("sin", "float32", ["seq", 1, hd]);
  const mask = g.input("mask", "float32", ["seq", "total"]);
  const pastK = opts.kvCache ? g.input("past_key", "float32", ["batch", KV, "past", hd]) : null;
  const pastV = opts.kvCache ? g.input("past_value", "float32", ["batch", KV, "past", hd]) : null;
  const w = (suffix: string, shape: number[]) => g.input(suffix, "float32", shape);
  const inputNorm = w(LAYER_TENSORS.inputNorm, [D]);
  const postNorm = w(LAYER_TENSORS.postNorm, [D]);
  const lin: Record<string, { weight: string; bias: string | null }> = {};
  for (const l of linearSpecs(c)) {
    lin[l.suffix] = {
      weight: w(`${l.suffix}.weight`, [l.outFeatures, l.inFeatures]),
      bias: l.hasBias ? w(`${l.suffix}.bias`, [l.outFeatures]) : null,
    };
  }
  const L = (suffix: string, x: string) => linear(g, x, lin[suffix]!.weight, lin[suffix]!.bias);

  // shapes built from the runtime batch/seq: [B, T] ++ tail
  const bt = g.op("Slice", [g.op("Shape", [hidden]), g.constInt64([0]), g.constInt64([2])]);
  const shapeOf = (...tail: number[]) => g.op("Concat", [bt, g.constInt64(tail)], { axis: 0 });

  const x = g.op("Reshape", [hidden, g.constInt64([-1, D])]); //                       (N, D), N = B·T
  const h = rmsnorm(g, x, inputNorm, c.rmsNormEps, "attn_in"); //                        (N, D)
  const q = rope(g, g.op("Reshape", [L(LAYER_TENSORS.q, h), shapeOf(H, hd)]), cos, sin, hd); //  (B, T, H, hd)
  const k = rope(g, g.op("Reshape", [L(LAYER_TENSORS.k, h), shapeOf(KV, hd)]), cos, sin, hd); // (B, T, KV, hd)
  const v = g.op("Reshape", [L(LAYER_TENSORS.v, h), shapeOf(KV, hd)]); //                 (B, T, KV, hd)

  // grouped-query causal attention (ONNX Attention, opset 23): query head j uses kv head
  // floor(j / (H / KV)); scores scaled by 1/sqrt(hd), plus the additive causal mask, softmax.
  const qFlat = g.op("Reshape", [q, g.constInt64([0, 0, H * hd])]); //                   (B, T, H·hd)
  const kFlat = g.op("Reshape", [k, g.constInt64([0, 0, KV * hd])]);
  const vFlat = g.op("Reshape", [v, g.constInt64([0, 0, KV * hd])]);
  const attrs = { q_num_heads: H, kv_num_heads: KV, scale: float(1 / Math.sqrt(hd)) };
  let y: string;
  let presentK: string | undefined;
  let presentV: string | undefined;
  if (pastK && pastV) {
    [y, presentK, presentV] = g.opN("Attention", [qFlat, kFlat, vFlat, mask, pastK, pastV], 3, attrs) as [string, string, string];
  } else if (opts.seqLen) {
    y = chunkedCausalAttention(g, qFlat, kFlat, vFlat, mask, opts.seqLen, attrs);
  } else {
    y = g.op("Attention", [qFlat, kFlat, vFlat, mask], attrs);
  }
  const attnOut = g.op("Reshape", [y, g.constInt64([-1, H * hd])], {}, { name: "attn_out" }); // (N, H·hd)
  const x2 = g.op("Add", [x, L(LAYER_TENSORS.o, attnOut)]); //                         residual

  const h2 = rmsnorm(g, x2, postNorm, c.rmsNormEps, "mlp_in");
  const gate = L(LAYER_TENSORS.gate, h2);
  const act = g.op("Mul", [g.op("Mul", [gate, g.op("Sigmoid", [gate])]), L(LAYER_TENSORS.up, h2)], {}, { name: "mlp_act" }); // silu(g)·u, (N, F)
  const out = g.op("Add", [x2, L(LAYER_TENSORS.down, act)]); //                         residual
  g.output(g.op("Reshape", [out, shapeOf(D)]), "out", "float32", ["batch", "seq", D]);
  if (presentK && presentV) {
    g.output(presentK, "present_key", "float32", ["batch", KV, "total", hd]);
    g.output(presentV, "present_value", "float32", ["batch", KV, "total", hd]);
  }
  g.output("attn_in", "attn_in", "float32", ["n", D]);
  g.output("attn_out", "attn_out", "float32", ["n", H * hd]);
  g.output("mlp_in", "mlp_in", "float32", ["n", D]);
  g.output("mlp_act", "mlp_act", "float32", ["n", F]);
  return g.toBytes({ opset: OPSET, irVersion: IR_VERSION });
}

/**
 * Final norm + LM head: hidden [N, D] → logits [N, V]. With `nll`, the graph instead takes
 * `targets` [N] (int32) and returns each row's −log softmax(logits)[target] [N]: perplexity then
 * copies N floats out instead of N·V (log-softmax in float32; see eval/perplexity.ts).
 */
export function headGraph(c: ModelConfig, opts: { nll: boolean }): Uint8Array {
  const g = new GraphBuilder("lm_head");
  const x = g.input("hidden", "float32", ["n", c.hiddenSize]);
  const norm = g.input("norm", "float32", [c.hiddenSize]);
  const head = g.input("lm_head", "float32", [c.vocabSize, c.hiddenSize]);
  const logits = linear(g, rmsnorm(g, x, norm, c.rmsNormEps), head, null);
  if (opts.nll) {
    const targets = g.input("targets", "int32", ["n"]);
    const logp = g.op("LogSoftmax", [logits], { axis: -1 });
    const picked = g.op("GatherElements", [logp, g.op("Unsqueeze", [targets, g.constInt64([1])])], { axis: 1 });
    g.output(g.op("Neg", [g.op("Reshape", [picked, g.constInt64([-1])])]), "nll", "float32", ["n"]);
  } else {
    g.output(logits, "logits", "float32", ["n", c.vocabSize]);
  }
  return g.toBytes({ opset: OPSET, irVersion: IR_VERSION });
}

