// The backward pass as ONNX graph pieces: each op a forward `f…` that returns what its backward
// needs, and a backward `d…` that turns the output's gradient into the inputs' (and parameters')
// gradients. A family's block backward (train/llama-block.ts, train/blocks/<family>.ts) composes
// them in the order of its forward, the way models/<family>.ts composes the forward ops.
//
// Why graphs and not TS element-wise code around runtime GEMMs: a decoder block's backward is
// ~25 GEMMs and ~60 element-wise ops. As one onnxruntime graph it is one session run per block:
// the element-wise ops run vectorised and multi-threaded inside MLAS next to the GEMMs, no
// intermediate tensor crosses into JS, and there is no ~50 µs call overhead per op (which alone
// would be a third of a stories260K step). Activation checkpointing falls out of it: the graph
// takes the block's *input* and recomputes the forward it needs.
//
// Every piece is written for either float32 (training) or float64 (the finite-difference checks):
// the same graph code, built with another element type.
//
// Shapes: activations are 2-D [N, width] (N = B·T tokens) except inside attention.
import { GraphBuilder, type ElemType } from "../runtime/onnx-graph.js";

export type FloatType = "float32" | "float64";

/** A graph builder that knows its float type, plus constants of that type. */
export class Ops {
  readonly g: GraphBuilder;

  constructor(
    name: string,
    readonly type: FloatType,
  ) {
    this.g = new GraphBuilder(name);
  }

  get elem(): ElemType {
    return this.type;
  }

  op(op: string, inputs: string[], attrs: Parameters<GraphBuilder["op"]>[2] = {}): string {
    return this.g.op(op, inputs, attrs);
  }

  /** A scalar constant of the graph's float type. */
  scalar(v: number): string {
    const data = this.type === "float64" ? new Float64Array([v]) : new Float32Array([v]);
    return this.g.initializer({ name: `c_${this.type}_${counter++}`, type: this.type, dims: [], data: new Uint8Array(data.buffer) });
  }

  ints(v: readonly number[]): string {
    return this.g.constInt64(v);
  }

  mul(a: string, b: string): string {
    return this.op("Mul", [a, b]);
  }

  add(a: string, b: string): string {
    return this.op("Add", [a, b]);
  }

  sub(a: string, b: string): string {
    return this.op("Sub", [a, b]);
  }

  reshape(x: string, shape: readonly number[]): string {
    return this.op("Reshape", [x, this.ints(shape)]);
  }

  transpose(x: string, perm: number[]): string {
    return this.op("Transpose", [x], { perm });
  }

  /** Σ over `axes`; keepdims as ONNX. */
  sum(x: string, axes: number[], keepdims: boolean): string {
    return this.op("ReduceSum", [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }

  mean(x: string, axes: number[], keepdims: boolean): string {
    return this.op("ReduceMean", [x, this.ints(axes)], { keepdims: keepdims ? 1 : 0 });
  }
}
let counter = 0;

// ---------------------------------------------------------------------------------------------
// linear: y = x·Wᵀ (+ b), W [out, in]

export interface LinearSaved {
  x: string;
  W: string;
}

export function fLinear(o: Ops, x: string, W: string, b: string | null): { y: string; saved: LinearSaved } {
  return { y: o.op("Gemm", b ? [x, W, b] : [x, W], { transB: 1 }), saved: { x, W } };
}

/** dX = dY·W [N, in]; dW = dYᵀ·X [out, in]; db = Σ_n dY. `weight: false` skips dW (frozen). */
export function dLinear(o: Ops, s: LinearSaved, dY: string, want: { weight: boolean; bias: boolean; input: boolean }) {
  return {
    dX: want.input ? o.op("MatMul", [dY, s.W]) : null,
    dW: want.weight ? o.op("Gemm", [dY, s.x], { transA: 1 }) : null,
    db: want.bias ? o.sum(dY, [0], false) : null,
  };
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: y = w ⊙ x·r, r = (mean(x²) + eps)^(-1/2) over the last axis (LlamaRMSNorm)

export interface RmsSaved {
  xn: string;
  r: string;
  w: string;
}

export function fRmsNorm(o: Ops, x: string, w: string, eps: number): { y: string; saved: RmsSaved } {
  const ms = o.mean(o.mul(x, x), [-1], true); //                          (N, 1)
  const r = o.op("Reciprocal", [o.op("Sqrt", [o.add(ms, o.scalar(eps))])]);
  const xn = o.mul(x, r);
  return { y: o.mul(xn, w), saved: { xn, r, w } };
}

/** dx = r·(dxn − xn·mean(dxn ⊙ xn)), dxn = dy ⊙ w; dw = Σ_n dy ⊙ xn. */
export function dRmsNorm(o: Ops, s: RmsSaved, dy: string, wantWeight: boolean): { dx: string; dw: string | null } {
  const dxn = o.mul(dy, s.w);
  const proj = o.mean(o.mul(dxn, s.xn), [-1], true);
  const dx = o.mul(s.r, o.sub(dxn, o.mul(s.xn, proj)));
  return { dx, dw: wantWeight ? o.sum(o.mul(dy, s.xn), [0], false) : null };
}

// ---------------------------------------------------------------------------------------------
// rotary embeddings, rotate_half form: y = x·cos + rot(x)·sin, rot(x) = [−x₂, x₁]
// on [B, T, heads, hd] with cos/sin [T, 1, hd]

function rotateHalf(o: Ops, x: string, half: number, sign: 1 | -1): string {
  const [x1, x2] = o.g.opN("Split", [x, o.ints([half, half])], 2, { axis: -1 });
  // rot(x) = [−x₂, x₁]; its transpose rotᵀ(z) = [z₂, −z₁] = −rot(z)
  return sign === 1 ? o.op("Concat", [o.op("Neg", [x2!]), x1!], { axis: -1 }) : o.op("Concat", [x2!, o.op("Neg", [x1!])], { axis: -1 });
}

export function fRope(o: Ops, x: string, cos: string, sin: string, headDim: number): string {
  return o.add(o.mul(x, cos), o.mul(rotateHalf(o, x, headDim / 2, 1), sin));
}

/** The rotation is linear in x: dx = dy·cos + rotᵀ(dy·sin). */
export function dRope(o: Ops, dy: string, cos: string, sin: string, headDim: number): string {
  return o.add(o.mul(dy, cos), rotateHalf(o, o.mul(dy, sin), headDim / 2, -1));
}

// ---------------------------------------------------------------------------------------------
// causal grouped-query attention. q [B, T, H, hd], k/v [B, T, KV, hd] (after rope);
// query head j reads kv head ⌊j / (H/KV)⌋ (HF repeat_kv); additive mask [T, T] (causal, and the
// sliding window when the family has one). Output [N, H·hd].

export interface AttentionShape {
  B: number;
  T: number;
  H: number;
  KV: number;
  hd: number;
}

export interface AttentionSaved {
  Q: string; // [B, H, T, hd]
  Ke: string; // [B, H, T, hd], kv heads repeated
  Ve: string;
  P: string; // [B, H, T, T] softmax probabilities
  scale: string;
  /** tanh(s / c) of softcapped scores */
  capTanh?: string;
}

/** [B, T, KV, hd] → [B, H, T, hd]: each kv head repeated for its H/KV query heads. */
function repeatKv(o: Ops, x: string, a: AttentionShape): string {
  const G = a.H / a.KV;
  const t = o.transpose(x, [0, 2, 1, 3]); //                                        (B, KV, T, hd)
  if (G === 1) return t;
  const e = o.op("Expand", [o.op("Unsqueeze", [t, o.ints([2])]), o.ints([a.B, a.KV, G, a.T, a.hd])]);
  return o.reshape(e, [a.B, a.H, a.T, a.hd]);
}

/** The gradient of repeatKv: sum over each kv head's group of query heads, back to [B, T, KV, hd]. */
function dRepeatKv(o: Ops, dx: string, a: AttentionShape): string {
  const G = a.H / a.KV;
  const summed = G === 1 ? dx : o.sum(o.reshape(dx, [a.B, a.KV, G, a.T, a.hd]), [2], false);
  return o.transpose(summed, [0, 2, 1, 3]);
}

/**
 * What some families add to the scores: another scale than 1/√hd (Gemma, GPT-2), logit softcapping
 * c·tanh(s / c) before the mask (Gemma 2), an additive bias without gradient (BLOOM's ALiBi,
 * broadcastable to [B, H, T, T]).
 */
export interface AttentionExtras {
  scale?: number;
  softcap?: number | null;
  bias?: string | null;
}

export function fAttention(o: Ops, q: string, k: string, v: string, mask: string, a: AttentionShape, extras: AttentionExtras = {}): { y: string; saved: AttentionSaved } {
  const scale = o.scalar(extras.scale ?? 1 / Math.sqrt(a.hd));
  const Q = o.transpose(q, [0, 2, 1, 3]); //                                          (B, H, T, hd)
  const Ke = repeatKv(o, k, a);
  const Ve = repeatKv(o, v, a);
  // the scale applied to Q (T·hd entries) rather than to the scores (T·T): one pass less over the largest tensor
  let raw = o.op("MatMul", [o.mul(Q, scale), o.transpose(Ke, [0, 1, 3, 2])]); //        (B, H, T, T)
  let capTanh: string | undefined;
  if (extras.softcap) {
    const cap = o.scalar(extras.softcap);
    capTanh = o.op("Tanh", [o.op("Div", [raw, cap])]);
    raw = o.mul(capTanh, cap);
  }
  if (extras.bias) raw = o.add(raw, extras.bias);
  const S = o.add(raw, mask);
  const P = o.op("Softmax", [S], { axis: -1 });
  const O = o.op("MatMul", [P, Ve]); //                                                (B, H, T, hd)
  const y = o.reshape(o.transpose(O, [0, 2, 1, 3]), [a.B * a.T, a.H * a.hd]);
  return { y, saved: { Q, Ke, Ve, P, scale, ...(capTanh ? { capTanh } : {}) } };
}

/**
 * dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)) (softmax), dQ = dS·K·scale,
 * dK = dSᵀ·Q·scale (dS through the softcap's 1 − tanh² when there is one); GQA sums the
 * repeated heads back. Returns dq [B, T, H, hd], dk/dv [B, T, KV, hd].
 */
export function dAttention(o: Ops, s: AttentionSaved, dY: string, a: AttentionShape): { dq: string; dk: string; dv: string } {
  const dO = o.transpose(o.reshape(dY, [a.B, a.T, a.H, a.hd]), [0, 2, 1, 3]); //         (B, H, T, hd)
  const dVe = o.op("MatMul", [o.transpose(s.P, [0, 1, 3, 2]), dO]);
  const dP = o.op("MatMul", [dO, o.transpose(s.Ve, [0, 1, 3, 2])]); //                   (B, H, T, T)
  let dS = o.mul(s.P, o.sub(dP, o.sum(o.mul(dP, s.P), [-1], true)));
  // softcap: d(c·tanh(s/c))/ds = 1 − tanh²
  if (s.capTanh) dS = o.mul(dS, o.sub(o.scalar(1), o.mul(s.capTanh, s.capTanh)));
  const dQ = o.mul(o.op("MatMul", [dS, s.Ke]), s.scale);
  const dKe = o.mul(o.op("MatMul", [o.transpose(dS, [0, 1, 3, 2]), s.Q]), s.scale);
  return { dq: o.transpose(dQ, [0, 2, 1, 3]), dk: dRepeatKv(o, dKe, a), dv: dRepeatKv(o, dVe, a) };
}

// ---------------------------------------------------------------------------------------------
// SwiGLU gate: act = silu(g) ⊙ u, silu(g) = g·σ(g)

export interface SwigluSaved {
  gate: string;
  up: string;
  sig: string;
}

export function fSwiglu(o: Ops, gate: string, up: string): { y: string; saved: SwigluSaved } {
  const sig = o.op("Sigmoid", [gate]);
  return { y: o.mul(o.mul(gate, sig), up), saved: { gate, up, sig } };
}

/** d silu(g)/dg = σ(g)·(1 + g·(1 − σ(g))). */
export function dSwiglu(o: Ops, s: SwigluSaved, dy: string): { dGate: string; dUp: string } {
  const one = o.scalar(1);
  const dsilu = o.mul(s.sig, o.add(one, o.mul(s.gate, o.sub(one, s.sig))));
  return { dGate: o.mul(o.mul(dy, s.up), dsilu), dUp: o.mul(dy, o.mul(s.gate, s.sig)) };
}

// residual: y = x + f(x) → dx = dy + (the branch's dx). Written as an Add where used.

// ---------------------------------------------------------------------------------------------
// LayerNorm: y = x̂ ⊙ w + b, x̂ = (x − mean(x))·r, r = (var(x) + eps)^(-1/2) over the last axis
// (torch LayerNorm; OPT without elementwise affine: w = b = null)

export interface LayerNormSaved {
  xhat: string;
  r: string;
  w: string | null;
}

export function fLayerNorm(o: Ops, x: string, w: string | null, b: string | null, eps: number): { y: string; saved: LayerNormSaved } {
  const xc = o.sub(x, o.mean(x, [-1], true));
  const r = o.op("Reciprocal", [o.op("Sqrt", [o.add(o.mean(o.mul(xc, xc), [-1], true), o.scalar(eps))])]); // (N, 1)
  const xhat = o.mul(xc, r);
  let y = w ? o.mul(xhat, w) : xhat;
  if (b) y = o.add(y, b);
  return { y, saved: { xhat, r, w } };
}

/** dx = r·(dx̂ − mean(dx̂) − x̂·mean(dx̂ ⊙ x̂)), dx̂ = dy ⊙ w; dw = Σ_n dy ⊙ x̂; db = Σ_n dy. */
export function dLayerNorm(o: Ops, s: LayerNormSaved, dy: string, wantParams: boolean): { dx: string; dw: string | null; db: string | null } {
  const dxhat = s.w ? o.mul(dy, s.w) : dy;
  const centred = o.sub(dxhat, o.mean(dxhat, [-1], true));
  const dx = o.mul(s.r, o.sub(centred, o.mul(s.xhat, o.mean(o.mul(dxhat, s.xhat), [-1], true))));
  const params = wantParams && s.w !== null;
  return { dx, dw: params ? o.sum(o.mul(dy, s.xhat), [0], false) : null, db: params ? o.sum(dy, [0], false) : null };
}

// ---------------------------------------------------------------------------------------------
// Activations by their transformers ACT2FN name (models/graph-ops.ts `activation`)

export interface ActivationSaved {
  name: string;
  x: string;
  /** σ(x) (silu), tanh(u) (GELU-tanh), Φ(x) (GELU) */
  aux: string | null;
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_TANH_C = 0.044715;

/**
 * erf of a float64 graph: onnxruntime has no double Erf kernel. The series
 * erf(x) = 2/√π · e^(−x²) · Σ_n 2ⁿ x^(2n+1) / (1·3·…·(2n+1)) has only positive terms (no
 * cancellation); on |x| ≤ 5.5 (erf = ±1 to 1e-14 beyond) 110 terms reach double precision.
 * float32 graphs use the Erf op, as the forward does.
 */
function erf(o: Ops, x: string): string {
  if (o.type === "float32") return o.op("Erf", [x]);
  const xc = o.op("Clip", [x, o.scalar(-5.5), o.scalar(5.5)]);
  const x2 = o.mul(xc, xc);
  const twoX2 = o.add(x2, x2);
  let term = xc;
  let sum = xc;
  for (let n = 1; n < 110; n++) {
    term = o.mul(term, o.mul(twoX2, o.scalar(1 / (2 * n + 1))));
    sum = o.add(sum, term);
  }
  return o.mul(o.mul(sum, o.op("Exp", [o.op("Neg", [x2])])), o.scalar(2 / Math.sqrt(Math.PI)));
}

export function fActivation(o: Ops, name: string, x: string): { y: string; saved: ActivationSaved } {
  const one = () => o.scalar(1);
  switch (name) {
    case "silu":
    case "swish": {
      const sig = o.op("Sigmoid", [x]);
      return { y: o.mul(x, sig), saved: { name, x, aux: sig } };
    }
    case "relu":
      return { y: o.op("Relu", [x]), saved: { name, x, aux: null } };
    case "gelu": {
      // x·Φ(x), Φ(x) = (1 + erf(x/√2)) / 2
      const cdf = o.mul(o.add(one(), erf(o, o.mul(x, o.scalar(Math.SQRT1_2)))), o.scalar(0.5));
      return { y: o.mul(x, cdf), saved: { name, x, aux: cdf } };
    }
    case "gelu_new":
    case "gelu_pytorch_tanh":
    case "gelu_fast": {
      // x·(1 + tanh(u))/2, u = √(2/π)·(x + 0.044715·x³)
      const u = o.mul(o.add(x, o.mul(o.scalar(GELU_TANH_C), o.mul(x, o.mul(x, x)))), o.scalar(SQRT_2_OVER_PI));
      const t = o.op("Tanh", [u]);
      return { y: o.mul(o.mul(x, o.add(one(), t)), o.scalar(0.5)), saved: { name, x, aux: t } };
    }
    default:
      throw new Error(`activation "${name}" has no backward`);
  }
}

/**
 * silu' = σ·(1 + x·(1 − σ)); relu' = [x > 0]; gelu' = Φ(x) + x·φ(x), φ(x) = e^(−x²/2)/√(2π);
 * gelu-tanh' = (1 + t)/2 + x·(1 − t²)/2 · √(2/π)·(1 + 3·0.044715·x²).
 */
export function dActivation(o: Ops, s: ActivationSaved, dy: string): string {
  const one = () => o.scalar(1);
  const { x, aux } = s;
  switch (s.name) {
    case "silu":
    case "swish":
      return o.mul(dy, o.mul(aux!, o.add(one(), o.mul(x, o.sub(one(), aux!)))));
    case "relu":
      return o.op("Where", [o.op("Greater", [x, o.scalar(0)]), dy, o.scalar(0)]);
    case "gelu": {
      const pdf = o.mul(o.op("Exp", [o.mul(o.mul(x, x), o.scalar(-0.5))]), o.scalar(1 / Math.sqrt(2 * Math.PI)));
      return o.mul(dy, o.add(aux!, o.mul(x, pdf)));
    }
    case "gelu_new":
    case "gelu_pytorch_tanh":
    case "gelu_fast": {
      const du = o.mul(o.add(one(), o.mul(o.scalar(3 * GELU_TANH_C), o.mul(x, x))), o.scalar(SQRT_2_OVER_PI));
      const d = o.add(o.mul(o.add(one(), aux!), o.scalar(0.5)), o.mul(o.mul(o.mul(x, o.sub(one(), o.mul(aux!, aux!))), du), o.scalar(0.5)));
      return o.mul(dy, d);
    }
    default:
      throw new Error(`activation "${s.name}" has no backward`);
  }
}

/** Gated MLP act(gate) ⊙ up (SwiGLU with silu, GeGLU with GELU-tanh). */
export function fGated(o: Ops, name: string, gate: string, up: string): { y: string; saved: { act: ActivationSaved; actY: string; up: string } } {
  const a = fActivation(o, name, gate);
  return { y: o.mul(a.y, up), saved: { act: a.saved, actY: a.y, up } };
}

export function dGated(o: Ops, s: ReturnType<typeof fGated>["saved"], dy: string): { dGate: string; dUp: string } {
  return { dGate: dActivation(o, s.act, o.mul(dy, s.up)), dUp: o.mul(dy, s.actY) };
}

// ---------------------------------------------------------------------------------------------
// partial rotary (GPT-NeoX, Phi-3 with partial_rotary_factor): rotate_half on the first
// `rotaryDim` dims of each head, the rest passed through; cos/sin [T, 1, rotaryDim]

export function fPartialRope(o: Ops, x: string, cos: string, sin: string, rotaryDim: number, headDim: number): string {
  if (rotaryDim === headDim) return fRope(o, x, cos, sin, headDim);
  const [r, pass] = o.g.opN("Split", [x, o.ints([rotaryDim, headDim - rotaryDim])], 2, { axis: -1 });
  return o.op("Concat", [fRope(o, r!, cos, sin, rotaryDim), pass!], { axis: -1 });
}

export function dPartialRope(o: Ops, dy: string, cos: string, sin: string, rotaryDim: number, headDim: number): string {
  if (rotaryDim === headDim) return dRope(o, dy, cos, sin, headDim);
  const [r, pass] = o.g.opN("Split", [dy, o.ints([rotaryDim, headDim - rotaryDim])], 2, { axis: -1 });
  return o.op("Concat", [dRope(o, r!, cos, sin, rotaryDim), pass!], { axis: -1 });
}

// ---------------------------------------------------------------------------------------------
// fused linears: one GEMM whose output the block splits (Phi-3 qkv_proj / gate_up_proj, GPT-2
// c_attn: parts side by side; BLOOM / GPT-NeoX query_key_value: interleaved per head
// [heads, 3, hd]). The backward joins the parts' gradients in the same layout, so the fused
// weight's gradient has the layout of the one linear the compressors see.

export function splitParts(o: Ops, y: string, widths: number[]): string[] {
  return o.g.opN("Split", [y, o.ints(widths)], widths.length, { axis: -1 });
}

export function joinParts(o: Ops, parts: string[]): string {
  return o.op("Concat", parts, { axis: -1 });
}

/** [N, heads·3·hd] (per head q|k|v) → q, k, v [N, heads·hd] (models/fused-ops.ts splitInterleavedQkv). */
export function splitInterleaved(o: Ops, y: string, N: number, heads: number, hd: number): [string, string, string] {
  const parts = o.g.opN("Split", [o.reshape(y, [N, heads, 3 * hd]), o.ints([hd, hd, hd])], 3, { axis: -1 });
  return parts.map((p) => o.reshape(p, [N, heads * hd])) as [string, string, string];
}

export function joinInterleaved(o: Ops, dq: string, dk: string, dv: string, N: number, heads: number, hd: number): string {
  const perHead = [dq, dk, dv].map((d) => o.reshape(d, [N, heads, hd]));
  return o.reshape(o.op("Concat", perHead, { axis: -1 }), [N, heads * 3 * hd]);
}
