// Backward of the Llama decoder block (models/llama.ts; Mistral and Qwen2 are config fields of
// it): one graph that takes the block's input, recomputes its forward from it (activation
// checkpointing) and returns the input's gradient and the weights' gradients for a given
// gradient of the block's output. Composed from the op pieces of train/graph-ops.ts in the order
// of the forward, then backwards in reverse.
import { OPSET } from "../models/graph-ops.js";
import { LAYER_TENSORS, linearSpecs, type LlamaConfig } from "../models/llama.js";
import {
  dAttention,
  dLinear,
  dRmsNorm,
  dRope,
  dSwiglu,
  fAttention,
  fLinear,
  fRmsNorm,
  fRope,
  fSwiglu,
  Ops,
  type FloatType,
} from "./graph-ops.js";

export interface BlockBackwardOptions {
  type: FloatType;
  /** sequences and tokens per sequence (the graph is specialised on them) */
  B: number;
  T: number;
  /** also return the gradients of the two RMSNorm scales */
  normGrads: boolean;
}

/** Output name of a parameter's gradient: "grad." + its suffix ("grad.self_attn.q_proj.weight"). */
const gradName = (suffix: string): string => `grad.${suffix}`;

/**
 * Inputs: `hidden` [N, D] (N = B·T), `cos`/`sin` [T, 1, hd], `mask` [T, T] (additive), the layer's
 * weights under their HF suffixes (as the forward graph takes them), `grad_out` [N, D].
 * Outputs: `out` [N, D] (the recomputed forward), `grad_hidden` [N, D], and `grad.<suffix>` for
 * every linear weight (and bias), and with `normGrads` for both norm scales.
 */
export function llamaBlockBackwardGraph(c: LlamaConfig, opts: BlockBackwardOptions): Uint8Array {
  const { B, T, type } = opts;
  const N = B * T;
  const D = c.hiddenSize;
  const H = c.numHeads;
  const KV = c.numKvHeads;
  const hd = c.headDim;
  const o = new Ops("decoder_layer_backward", type);
  const g = o.g;
  const x = g.input("hidden", type, [N, D]);
  const cos = g.input("cos", type, [T, 1, hd]);
  const sin = g.input("sin", type, [T, 1, hd]);
  const mask = g.input("mask", type, [T, T]);
  const dOut = g.input("grad_out", type, [N, D]);
  const inputNorm = g.input(LAYER_TENSORS.inputNorm, type, [D]);
  const postNorm = g.input(LAYER_TENSORS.postNorm, type, [D]);
  const specs = new Map(linearSpecs(c, 0).map((l) => [l.suffix, l]));
  const W = (suffix: string) => g.input(`${suffix}.weight`, type, [specs.get(suffix)!.outFeatures, specs.get(suffix)!.inFeatures]);
  const bias = (suffix: string) => (specs.get(suffix)!.hasBias ? g.input(`${suffix}.bias`, type, [specs.get(suffix)!.outFeatures]) : null);
  const lin = new Map([...specs.keys()].map((s) => [s, { W: W(s), b: bias(s) }]));
  const L = (suffix: string, input: string) => fLinear(o, input, lin.get(suffix)!.W, lin.get(suffix)!.b);
  const att = { B, T, H, KV, hd };

  // ---- forward, recomputed from the block input (what models/llama.ts layerGraph computes)
  const n1 = fRmsNorm(o, x, inputNorm, c.rmsNormEps); //                                   (N, D)
  const q = L(LAYER_TENSORS.q, n1.y);
  const k = L(LAYER_TENSORS.k, n1.y);
  const v = L(LAYER_TENSORS.v, n1.y);
  const qr = fRope(o, o.reshape(q.y, [B, T, H, hd]), cos, sin, hd); //                     (B, T, H, hd)
  const kr = fRope(o, o.reshape(k.y, [B, T, KV, hd]), cos, sin, hd); //                    (B, T, KV, hd)
  const a = fAttention(o, qr, kr, o.reshape(v.y, [B, T, KV, hd]), mask, att); //           (N, H·hd)
  const oProj = L(LAYER_TENSORS.o, a.y);
  const x2 = o.add(x, oProj.y); //                                                         residual
  const n2 = fRmsNorm(o, x2, postNorm, c.rmsNormEps);
  const gate = L(LAYER_TENSORS.gate, n2.y);
  const up = L(LAYER_TENSORS.up, n2.y);
  const act = fSwiglu(o, gate.y, up.y); //                                                 (N, F)
  const down = L(LAYER_TENSORS.down, act.y);
  const out = o.add(x2, down.y); //                                                        residual

  // ---- backward, in reverse
  const grads = new Map<string, string>();
  const dLin = (suffix: string, saved: ReturnType<typeof fLinear>["saved"], dY: string) => {
    const r = dLinear(o, saved, dY, { weight: true, bias: lin.get(suffix)!.b !== null, input: true });
    grads.set(`${suffix}.weight`, r.dW!);
    if (r.db) grads.set(`${suffix}.bias`, r.db);
    return r.dX!;
  };
  const dAct = dLin(LAYER_TENSORS.down, down.saved, dOut);
  const { dGate, dUp } = dSwiglu(o, act.saved, dAct);
  const dn2 = o.add(dLin(LAYER_TENSORS.gate, gate.saved, dGate), dLin(LAYER_TENSORS.up, up.saved, dUp));
  const r2 = dRmsNorm(o, n2.saved, dn2, opts.normGrads);
  const dx2 = o.add(dOut, r2.dx); //                                                       residual
  const dA = dLin(LAYER_TENSORS.o, oProj.saved, dx2);
  const da = dAttention(o, a.saved, dA, att);
  const dq = o.reshape(dRope(o, da.dq, cos, sin, hd), [N, H * hd]);
  const dk = o.reshape(dRope(o, da.dk, cos, sin, hd), [N, KV * hd]);
  const dv = o.reshape(da.dv, [N, KV * hd]);
  const dn1 = o.add(o.add(dLin(LAYER_TENSORS.q, q.saved, dq), dLin(LAYER_TENSORS.k, k.saved, dk)), dLin(LAYER_TENSORS.v, v.saved, dv));
  const r1 = dRmsNorm(o, n1.saved, dn1, opts.normGrads);
  const dx = o.add(dx2, r1.dx); //                                                         residual

  g.output(out, "out", type, [N, D]);
  g.output(dx, "grad_hidden", type, [N, D]);
  for (const [name, value] of grads) {
    const l = specs.get(name.replace(/\.(weight|bias)$/, ""))!;
    g.output(value, gradName(name), type, name.endsWith(".bias") ? [l.outFeatures] : [l.outFeatures, l.inFeatures]);
  }
  if (opts.normGrads) {
    g.output(r1.dw!, gradName(LAYER_TENSORS.inputNorm), type, [D]);
    g.output(r2.dw!, gradName(LAYER_TENSORS.postNorm), type, [D]);
  }
  return g.toBytes({ opset: OPSET, irVersion: 10 });
}
