// Backward of the Llama decoder block (models/llama.ts; Mistral, Qwen2 and Qwen3 are config fields
// of it), the `train` hook of its adapter (models/train-hooks.ts): one graph that takes the block's
// input, recomputes its forward from it (activation checkpointing) and returns the input's gradient
// and the weights' gradients for a given gradient of the block's output. Composed from the op
// pieces of train/graph-ops.ts in the order of the forward, then backwards in reverse. Every layer
// is built with its own widths and biases (structured pruning: heads, KV heads, intermediate size,
// FLAP's o_proj / down_proj compensation biases) and window.
import { OPSET } from "../models/graph-ops.js";
import { FINAL_NORM, LAYER_TENSORS, LM_HEAD, EMBED_TOKENS, linearSpecs, type LlamaConfig } from "../models/llama.js";
import { maskName } from "../models/runtime-graphs.js";
import { noTrainInputs, type BlockBackwardGraph, type BlockBackwardOptions, type HeadTrainWeights } from "../models/train-hooks.js";
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
} from "./graph-ops.js";

/** Output name of a parameter's gradient: "grad." + its suffix ("grad.self_attn.q_proj.weight"). */
const gradName = (suffix: string): string => `grad.${suffix}`;

/** The backward graph of layer `layer` (contract in models/train-hooks.ts); rope table "rope". */
export function llamaBlockBackward(c: LlamaConfig, layer: number, opts: BlockBackwardOptions): BlockBackwardGraph {
  const { B, T, type } = opts;
  const N = B * T;
  const D = c.hiddenSize;
  const { numHeads: H, numKvHeads: KV } = c.layers[layer]!;
  const hd = c.headDim;
  const window = c.layerWindows[layer] ?? null;
  const inputs = noTrainInputs();
  inputs.rotary.set("rope", hd);
  inputs.windows.push(window);
  const o = new Ops("decoder_layer_backward", type);
  const g = o.g;
  const x = g.input("hidden", type, [N, D]);
  const cos = g.input("cos_rope", type, [T, 1, hd]);
  const sin = g.input("sin_rope", type, [T, 1, hd]);
  const mask = g.input(maskName(window), type, [T, T]);
  const dOut = g.input("grad_out", type, [N, D]);
  const inputNorm = g.input(LAYER_TENSORS.inputNorm, type, [D]);
  const postNorm = g.input(LAYER_TENSORS.postNorm, type, [D]);
  const qNorm = c.qkNorm ? g.input(LAYER_TENSORS.qNorm, type, [hd]) : null;
  const kNorm = c.qkNorm ? g.input(LAYER_TENSORS.kNorm, type, [hd]) : null;
  const specs = new Map(linearSpecs(c, layer).map((l) => [l.suffix, l]));
  const W = (suffix: string) => g.input(`${suffix}.weight`, type, [specs.get(suffix)!.outFeatures, specs.get(suffix)!.inFeatures]);
  const bias = (suffix: string) => (specs.get(suffix)!.hasBias ? g.input(`${suffix}.bias`, type, [specs.get(suffix)!.outFeatures]) : null);
  const lin = new Map([...specs.keys()].map((s) => [s, { W: W(s), b: bias(s) }]));
  const L = (suffix: string, input: string) => fLinear(o, input, lin.get(suffix)!.W, lin.get(suffix)!.b);
  const att = { B, T, H, KV, hd };
  // Qwen3: RMSNorm over each head's hd values, on [N·heads, hd] rows so the scale's gradient is a
  // sum over axis 0 as for the other norms
  const headNorm = (t: string, heads: number, w: string | null) => {
    if (!w) return { y: o.reshape(t, [B, T, heads, hd]), n: null };
    const n = fRmsNorm(o, o.reshape(t, [N * heads, hd]), w, c.rmsNormEps);
    return { y: o.reshape(n.y, [B, T, heads, hd]), n };
  };

  // ---- forward, recomputed from the block input (what models/llama.ts `block` computes)
  const n1 = fRmsNorm(o, x, inputNorm, c.rmsNormEps); //                                   (N, D)
  const q = L(LAYER_TENSORS.q, n1.y);
  const k = L(LAYER_TENSORS.k, n1.y);
  const v = L(LAYER_TENSORS.v, n1.y);
  const qn = headNorm(q.y, H, qNorm);
  const kn = headNorm(k.y, KV, kNorm);
  const qr = fRope(o, qn.y, cos, sin, hd); //                                               (B, T, H, hd)
  const kr = fRope(o, kn.y, cos, sin, hd); //                                               (B, T, KV, hd)
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
  const grads = new Map<string, { value: string; shape: number[] }>();
  const dLin = (suffix: string, saved: ReturnType<typeof fLinear>["saved"], dY: string) => {
    const l = specs.get(suffix)!;
    const r = dLinear(o, saved, dY, { weight: true, bias: lin.get(suffix)!.b !== null, input: true });
    grads.set(`${suffix}.weight`, { value: r.dW!, shape: [l.outFeatures, l.inFeatures] });
    if (r.db) grads.set(`${suffix}.bias`, { value: r.db, shape: [l.outFeatures] });
    return r.dX!;
  };
  const dHeadNorm = (d: string, heads: number, n: ReturnType<typeof fRmsNorm> | null, name: string) => {
    if (!n) return o.reshape(d, [N, heads * hd]);
    const r = dRmsNorm(o, n.saved, o.reshape(d, [N * heads, hd]), opts.normGrads);
    if (r.dw) grads.set(name, { value: r.dw, shape: [hd] });
    return o.reshape(r.dx, [N, heads * hd]);
  };
  const dAct = dLin(LAYER_TENSORS.down, down.saved, dOut);
  const { dGate, dUp } = dSwiglu(o, act.saved, dAct);
  const dn2 = o.add(dLin(LAYER_TENSORS.gate, gate.saved, dGate), dLin(LAYER_TENSORS.up, up.saved, dUp));
  const r2 = dRmsNorm(o, n2.saved, dn2, opts.normGrads);
  const dx2 = o.add(dOut, r2.dx); //                                                       residual
  const dA = dLin(LAYER_TENSORS.o, oProj.saved, dx2);
  const da = dAttention(o, a.saved, dA, att);
  const dq = dHeadNorm(dRope(o, da.dq, cos, sin, hd), H, qn.n, LAYER_TENSORS.qNorm);
  const dk = dHeadNorm(dRope(o, da.dk, cos, sin, hd), KV, kn.n, LAYER_TENSORS.kNorm);
  const dv = o.reshape(da.dv, [N, KV * hd]);
  const dn1 = o.add(o.add(dLin(LAYER_TENSORS.q, q.saved, dq), dLin(LAYER_TENSORS.k, k.saved, dk)), dLin(LAYER_TENSORS.v, v.saved, dv));
  const r1 = dRmsNorm(o, n1.saved, dn1, opts.normGrads);
  const dx = o.add(dx2, r1.dx); //                                                         residual

  g.output(out, "out", type, [N, D]);
  g.output(dx, "grad_hidden", type, [N, D]);
  if (opts.normGrads) {
    grads.set(LAYER_TENSORS.inputNorm, { value: r1.dw!, shape: [D] });
    grads.set(LAYER_TENSORS.postNorm, { value: r2.dw!, shape: [D] });
  }
  for (const [name, { value, shape }] of grads) g.output(value, gradName(name), type, shape);
  return { bytes: g.toBytes({ opset: OPSET, irVersion: 10 }), inputs };
}

/** Final RMSNorm + LM head (the embedding table when tied and no lm_head is stored). */
export function llamaHeadBackward(o: Ops, c: LlamaConfig, x: string, w: HeadTrainWeights): { logits: string; backward(dLogits: string): string } {
  const head = c.tieWordEmbeddings && !w.has(LM_HEAD) ? EMBED_TOKENS : LM_HEAD;
  const n = fRmsNorm(o, x, w.param(FINAL_NORM), c.rmsNormEps);
  const lin = fLinear(o, n.y, w.param(head), null);
  return {
    logits: lin.y,
    backward: (dLogits) => dRmsNorm(o, n.saved, dLinear(o, lin.saved, dLogits, { weight: false, bias: false, input: true }).dX!, false).dx,
  };
}
