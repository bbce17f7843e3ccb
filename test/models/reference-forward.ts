// A plain float64 forward of the OPT, BLOOM, GPT-2 and GPT-NeoX families, written from
// transformers' modeling files with loops and no ONNX, as the yardstick for topiary's graphs on
// configurations no golden checkpoint covers (post-norm OPT, project_in/out, NeoX without the
// parallel residual, other rotary fractions, BLOOM with a non-power-of-2 head count).
// Weights are read in topiary's layout (linears [out, in]) under the canonical names.
import type { BloomConfig } from "../../src/models/bloom.js";
import type { NeoxConfig } from "../../src/models/gpt-neox.js";
import type { Gpt2Config } from "../../src/models/gpt2.js";
import type { OptConfig } from "../../src/models/opt.js";

type Read = (name: string) => Float32Array;
type Mat = Float64Array; // row-major [T, width]

function linear(x: Mat, T: number, W: Float32Array, b: Float32Array | null, out: number): Mat {
  const inF = W.length / out;
  const y = new Float64Array(T * out);
  for (let t = 0; t < T; t++) {
    for (let o = 0; o < out; o++) {
      let s = b ? b[o]! : 0;
      for (let i = 0; i < inF; i++) s += x[t * inF + i]! * W[o * inF + i]!;
      y[t * out + o] = s;
    }
  }
  return y;
}

function layerNorm(x: Mat, T: number, D: number, w: Float32Array | null, b: Float32Array | null, eps: number): Mat {
  const y = new Float64Array(T * D);
  for (let t = 0; t < T; t++) {
    let mean = 0;
    for (let i = 0; i < D; i++) mean += x[t * D + i]!;
    mean /= D;
    let v = 0;
    for (let i = 0; i < D; i++) v += (x[t * D + i]! - mean) ** 2;
    const inv = 1 / Math.sqrt(v / D + eps);
    for (let i = 0; i < D; i++) y[t * D + i] = (x[t * D + i]! - mean) * inv * (w ? w[i]! : 1) + (b ? b[i]! : 0);
  }
  return y;
}

function erf(x: number): number {
  // Abramowitz–Stegun 7.1.26 is too coarse; a series / continued fraction to ~1e-15
  const t = Math.abs(x);
  if (t < 2.5) {
    let sum = t;
    let term = t;
    for (let n = 1; n < 80; n++) {
      term *= (-t * t) / n;
      sum += term / (2 * n + 1);
    }
    return Math.sign(x) * ((2 / Math.sqrt(Math.PI)) * sum);
  }
  // erfc continued fraction (Lentz) for large |x|
  let f = t;
  let C = t;
  let Dv = 0;
  for (let n = 1; n < 200; n++) {
    const an = n / 2;
    Dv = t + an * Dv;
    Dv = 1 / Dv;
    C = t + an / C;
    f *= C * Dv;
  }
  const erfc = Math.exp(-t * t) / (f * Math.sqrt(Math.PI));
  return Math.sign(x) * (1 - erfc);
}

function act(name: string, x: number): number {
  switch (name) {
    case "relu":
      return Math.max(0, x);
    case "gelu":
      return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case "quick_gelu":
      return x / (1 + Math.exp(-1.702 * x));
    case "silu":
      return x / (1 + Math.exp(-x));
    default: // gelu_new, gelu_pytorch_tanh, gelu_fast
      return 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
  }
}

const map = (x: Mat, f: (v: number) => number): Mat => x.map(f);
const add = (a: Mat, b: Mat): Mat => a.map((v, i) => v + b[i]!);

/**
 * Causal multi-head attention of q, k, v [T, H·hd]: scores·scale (+ slope_h·(s − t) for ALiBi),
 * softmax over keys 0..t.
 */
function attention(q: Mat, k: Mat, v: Mat, T: number, H: number, hd: number, scale: number, slopes: number[] | null): Mat {
  const D = H * hd;
  const y = new Float64Array(T * D);
  const p = new Float64Array(T);
  for (let h = 0; h < H; h++) {
    for (let t = 0; t < T; t++) {
      let max = -Infinity;
      for (let s = 0; s <= t; s++) {
        let dot = 0;
        for (let d = 0; d < hd; d++) dot += q[t * D + h * hd + d]! * k[s * D + h * hd + d]!;
        p[s] = dot * scale + (slopes ? slopes[h]! * (s - t) : 0);
        max = Math.max(max, p[s]!);
      }
      let sum = 0;
      for (let s = 0; s <= t; s++) sum += p[s] = Math.exp(p[s]! - max);
      for (let s = 0; s <= t; s++) for (let d = 0; d < hd; d++) y[t * D + h * hd + d]! += (p[s]! / sum) * v[s * D + h * hd + d]!;
    }
  }
  return y;
}

/** Rotates the first `rot` dims of each head of x [T, H·hd] by position (rotate_half). */
function rope(x: Mat, T: number, H: number, hd: number, rot: number, theta: number): Mat {
  const y = Float64Array.from(x);
  const half = rot / 2;
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      const o = t * H * hd + h * hd;
      for (let i = 0; i < half; i++) {
        const angle = t * Math.pow(theta, (-2 * i) / rot);
        const [c, s] = [Math.cos(angle), Math.sin(angle)];
        const a = x[o + i]!;
        const b = x[o + i + half]!;
        y[o + i] = a * c - b * s;
        y[o + i + half] = b * c + a * s;
      }
    }
  }
  return y;
}

/** q, k, v from rows interleaved per head [H, 3, hd] of a fused output [T, 3·H·hd]. */
function splitInterleaved(qkv: Mat, T: number, H: number, hd: number): [Mat, Mat, Mat] {
  const D = H * hd;
  const out: [Mat, Mat, Mat] = [new Float64Array(T * D), new Float64Array(T * D), new Float64Array(T * D)];
  for (let t = 0; t < T; t++) {
    for (let h = 0; h < H; h++) {
      for (let p = 0; p < 3; p++) for (let d = 0; d < hd; d++) out[p]![t * D + h * hd + d] = qkv[t * 3 * D + (h * 3 + p) * hd + d]!;
    }
  }
  return out;
}

function splitConcat(qkv: Mat, T: number, D: number): [Mat, Mat, Mat] {
  const out: [Mat, Mat, Mat] = [new Float64Array(T * D), new Float64Array(T * D), new Float64Array(T * D)];
  for (let t = 0; t < T; t++) for (let p = 0; p < 3; p++) out[p]!.set(qkv.subarray(t * 3 * D + p * D, t * 3 * D + (p + 1) * D), t * D);
  return out;
}

function gatherRows(table: Float32Array, width: number, rows: number[]): Mat {
  const y = new Float64Array(rows.length * width);
  rows.forEach((r, t) => y.set(table.subarray(r * width, (r + 1) * width), t * width));
  return y;
}

const opt = (c: OptConfig, r: Read, ids: number[]): { x: Mat; head: (x: Mat) => Mat } => {
  const T = ids.length;
  const { hiddenSize: D, embedDim: P, numHeads: H, headDim: hd, intermediateSize: F } = c;
  const maybe = (n: string) => (c.normAffine ? r(n) : null);
  const ln = (x: Mat, name: string) => layerNorm(x, T, D, maybe(`${name}.weight`), maybe(`${name}.bias`), 1e-5);
  const bias = (n: string) => (c.linearBias ? r(n) : null);
  let x = gatherRows(r("model.decoder.embed_tokens.weight"), P, ids);
  if (P !== D) x = linear(x, T, r("model.decoder.project_in.weight"), null, D);
  x = add(x, gatherRows(r("model.decoder.embed_positions.weight"), D, ids.map((_, t) => t + 2)));
  for (let i = 0; i < c.numLayers; i++) {
    const p = `model.decoder.layers.${i}.`;
    const L = (name: string, h: Mat, out: number) => linear(h, T, r(`${p}${name}.weight`), bias(`${p}${name}.bias`), out);
    const h = c.preNorm ? ln(x, `${p}self_attn_layer_norm`) : x;
    const y = attention(L("self_attn.q_proj", h, D), L("self_attn.k_proj", h, D), L("self_attn.v_proj", h, D), T, H, hd, 1 / Math.sqrt(hd), null);
    x = add(x, L("self_attn.out_proj", y, D));
    if (!c.preNorm) x = ln(x, `${p}self_attn_layer_norm`);
    const h2 = c.preNorm ? ln(x, `${p}final_layer_norm`) : x;
    x = add(x, L("fc2", map(L("fc1", h2, F), (v) => act(c.hiddenAct, v)), D));
    if (!c.preNorm) x = ln(x, `${p}final_layer_norm`);
  }
  return {
    x,
    head: (x) => {
      let h = c.finalNorm ? ln(x, "model.decoder.final_layer_norm") : x;
      if (P !== D) h = linear(h, T, r("model.decoder.project_out.weight"), null, P);
      return linear(h, T, c.tieWordEmbeddings ? r("model.decoder.embed_tokens.weight") : r("lm_head.weight"), null, c.vocabSize);
    },
  };
};

const bloom = (c: BloomConfig, r: Read, ids: number[]): { x: Mat; head: (x: Mat) => Mat } => {
  const T = ids.length;
  const { hiddenSize: D, numHeads: H, headDim: hd } = c;
  const ln = (x: Mat, name: string) => layerNorm(x, T, D, r(`${name}.weight`), r(`${name}.bias`), c.layerNormEps);
  let x = ln(gatherRows(r("transformer.word_embeddings.weight"), D, ids), "transformer.word_embeddings_layernorm");
  for (let i = 0; i < c.numLayers; i++) {
    const p = `transformer.h.${i}.`;
    const L = (name: string, h: Mat, out: number) => linear(h, T, r(`${p}${name}.weight`), r(`${p}${name}.bias`), out);
    const h = ln(x, `${p}input_layernorm`);
    const [q, k, v] = splitInterleaved(L("self_attention.query_key_value", h, 3 * D), T, H, hd);
    x = add(c.residualPostNorm ? h : x, L("self_attention.dense", attention(q, k, v, T, H, hd, 1 / Math.sqrt(hd), c.alibiSlopes), D));
    const h2 = ln(x, `${p}post_attention_layernorm`);
    x = add(c.residualPostNorm ? h2 : x, L("mlp.dense_4h_to_h", map(L("mlp.dense_h_to_4h", h2, 4 * D), (v) => act("gelu_new", v)), D));
  }
  const head = c.tieWordEmbeddings ? "transformer.word_embeddings.weight" : "lm_head.weight";
  return { x, head: (x) => linear(ln(x, "transformer.ln_f"), T, r(head), null, c.vocabSize) };
};

const gpt2 = (c: Gpt2Config, r: Read, ids: number[]): { x: Mat; head: (x: Mat) => Mat } => {
  const T = ids.length;
  const { hiddenSize: D, numHeads: H, headDim: hd, intermediateSize: F } = c;
  const ln = (x: Mat, name: string) => layerNorm(x, T, D, r(`${name}.weight`), r(`${name}.bias`), c.layerNormEps);
  let x = add(gatherRows(r("transformer.wte.weight"), D, ids), gatherRows(r("transformer.wpe.weight"), D, ids.map((_, t) => t)));
  for (let i = 0; i < c.numLayers; i++) {
    const p = `transformer.h.${i}.`;
    const L = (name: string, h: Mat, out: number) => linear(h, T, r(`${p}${name}.weight`), r(`${p}${name}.bias`), out);
    const [q, k, v] = splitConcat(L("attn.c_attn", ln(x, `${p}ln_1`), 3 * D), T, D);
    const scale = (c.scaleByHeadDim ? 1 / Math.sqrt(hd) : 1) / (c.scaleByLayer ? i + 1 : 1);
    x = add(x, L("attn.c_proj", attention(q, k, v, T, H, hd, scale, null), D));
    x = add(x, L("mlp.c_proj", map(L("mlp.c_fc", ln(x, `${p}ln_2`), F), (v) => act(c.hiddenAct, v)), D));
  }
  const head = c.tieWordEmbeddings ? "transformer.wte.weight" : "lm_head.weight";
  return { x, head: (x) => linear(ln(x, "transformer.ln_f"), T, r(head), null, c.vocabSize) };
};

const neox = (c: NeoxConfig, r: Read, ids: number[]): { x: Mat; head: (x: Mat) => Mat } => {
  const T = ids.length;
  const { hiddenSize: D, numHeads: H, headDim: hd, intermediateSize: F } = c;
  const ln = (x: Mat, name: string) => layerNorm(x, T, D, r(`${name}.weight`), r(`${name}.bias`), c.layerNormEps);
  let x = gatherRows(r("gpt_neox.embed_in.weight"), D, ids);
  for (let i = 0; i < c.numLayers; i++) {
    const p = `gpt_neox.layers.${i}.`;
    const L = (name: string, h: Mat, out: number, b = true) => linear(h, T, r(`${p}${name}.weight`), b ? r(`${p}${name}.bias`) : null, out);
    const [q, k, v] = splitInterleaved(L("attention.query_key_value", ln(x, `${p}input_layernorm`), 3 * D, c.attentionBias), T, H, hd);
    const qr = rope(q, T, H, hd, c.rotaryDim, c.ropeTheta);
    const kr = rope(k, T, H, hd, c.rotaryDim, c.ropeTheta);
    const attn = L("attention.dense", attention(qr, kr, v, T, H, hd, 1 / Math.sqrt(hd), null), D, c.attentionBias);
    const mlp = (h: Mat) => L("mlp.dense_4h_to_h", map(L("mlp.dense_h_to_4h", ln(h, `${p}post_attention_layernorm`), F), (v) => act(c.hiddenAct, v)), D);
    if (c.parallelResidual) x = add(add(x, attn), mlp(x));
    else {
      x = add(x, attn);
      x = add(x, mlp(x));
    }
  }
  const head = c.tieWordEmbeddings ? "gpt_neox.embed_in.weight" : "embed_out.weight";
  return { x, head: (x) => linear(ln(x, "gpt_neox.final_layer_norm"), T, r(head), null, c.vocabSize) };
};

/** Logits [T, V] (float64) of one sequence `ids` at positions 0..T−1. */
export function referenceLogits(family: "opt" | "bloom" | "gpt2" | "gpt_neox", config: unknown, read: Read, ids: number[]): Float64Array {
  const run =
    family === "opt"
      ? opt(config as OptConfig, read, ids)
      : family === "bloom"
        ? bloom(config as BloomConfig, read, ids)
        : family === "gpt2"
          ? gpt2(config as Gpt2Config, read, ids)
          : neox(config as NeoxConfig, read, ids);
  return run.head(run.x);
}
