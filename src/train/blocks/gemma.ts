// Backward of the Gemma 2 / Gemma 3 decoder block (models/gemma.ts): four (1 + w) RMSNorms
// (input → attention → post-attention, residual; pre-feedforward → MLP → post-feedforward,
// residual), GELU-tanh gated MLP, scores scaled by query_pre_attn_scalar^(-1/2), Gemma 2's
// attention-logit softcapping, per-layer sliding window and rotary table, and Gemma 3's per-head
// q/k norms. (The √hidden embedding scale is in `embed`, outside the block.)
import { FINAL_NORM } from "../../models/llama.js";
import { gemma2Family, type GemmaConfig, GEMMA_LAYER } from "../../models/gemma.js";
import type { BlockBackwardGraph, BlockBackwardOptions, HeadTrainWeights } from "../../models/train-hooks.js";
import { dAttention, dGated, dRmsNorm, dRope, fAttention, fGated, fRmsNorm, fRope, type Ops, type RmsSaved } from "../graph-ops.js";
import { BlockGraph } from "./block-graph.js";
import { chain, linearStep, rmsNormStep, softcapStep } from "./heads.js";

/** Gemma's RMSNorm scales by (1 + w): the RMSNorm piece with weight 1 + w (d/dw is the same). */
const gemmaNorm = (o: Ops, x: string, w: string, eps: number) => fRmsNorm(o, x, o.add(w, o.scalar(1)), eps);

export function gemmaBlockBackward(c: GemmaConfig, layer: number, opts: BlockBackwardOptions): BlockBackwardGraph {
  const { B, T: seq } = opts;
  // the layer's own widths and biases (structured pruning; FLAP's compensation biases)
  const { numHeads: H, numKvHeads: KV, oBias, downBias } = c.layers[layer]!;
  const hd = c.headDim;
  // the two Gemma adapters list the same layer tensors for the same config
  const b = new BlockGraph(opts, c.hiddenSize, gemma2Family.layerTensors(c, layer));
  const { o, x, N } = b;
  const eps = c.rmsNormEps;
  const window = c.layerWindows[layer] ?? null;
  // as models/gemma.ts `block`: sliding layers rotate with the local table
  const { cos, sin } = b.rope(window !== null ? "local" : "global", hd);
  const mask = b.mask(window);
  const att = { B, T: seq, H, KV, hd };
  const qk = c.version === 3;
  // Gemma 3: (1 + w) RMSNorm over each head's hd values, before the rotation
  const headNorm = (t: string, heads: number, weight: string): { y: string; saved: RmsSaved | null } => {
    if (!qk) return { y: o.reshape(t, [B, seq, heads, hd]), saved: null };
    const n = gemmaNorm(o, o.reshape(t, [N * heads, hd]), b.param(weight), eps);
    return { y: o.reshape(n.y, [B, seq, heads, hd]), saved: n.saved };
  };
  const dHeadNorm = (d: string, heads: number, saved: RmsSaved | null, weight: string): string => {
    if (!saved) return o.reshape(d, [N, heads * hd]);
    const r = dRmsNorm(o, saved, o.reshape(d, [N * heads, hd]), opts.normGrads);
    b.paramGrad(weight, r.dw);
    return o.reshape(r.dx, [N, heads * hd]);
  };

  // ---- forward, recomputed from the block input
  const n1 = gemmaNorm(o, x, b.param(GEMMA_LAYER.inputNorm), eps);
  const q = b.linear(GEMMA_LAYER.q, n1.y, false);
  const k = b.linear(GEMMA_LAYER.k, n1.y, false);
  const v = b.linear(GEMMA_LAYER.v, n1.y, false);
  const qn = headNorm(q.y, H, GEMMA_LAYER.qNorm);
  const kn = headNorm(k.y, KV, GEMMA_LAYER.kNorm);
  const qr = fRope(o, qn.y, cos, sin, hd);
  const kr = fRope(o, kn.y, cos, sin, hd);
  const a = fAttention(o, qr, kr, o.reshape(v.y, [B, seq, KV, hd]), mask, att, { scale: c.attnScale, softcap: c.attnSoftcap });
  const oProj = b.linear(GEMMA_LAYER.o, a.y, oBias);
  const n2 = gemmaNorm(o, oProj.y, b.param(GEMMA_LAYER.postAttnNorm), eps);
  const x2 = o.add(x, n2.y); //                                                            residual
  const n3 = gemmaNorm(o, x2, b.param(GEMMA_LAYER.preFfnNorm), eps);
  const gate = b.linear(GEMMA_LAYER.gate, n3.y, false);
  const up = b.linear(GEMMA_LAYER.up, n3.y, false);
  const act = fGated(o, c.hiddenAct, gate.y, up.y);
  const down = b.linear(GEMMA_LAYER.down, act.y, downBias);
  const n4 = gemmaNorm(o, down.y, b.param(GEMMA_LAYER.postFfnNorm), eps);
  const out = o.add(x2, n4.y); //                                                          residual

  // ---- backward, in reverse
  const r4 = dRmsNorm(o, n4.saved, b.dOut, opts.normGrads);
  b.paramGrad(GEMMA_LAYER.postFfnNorm, r4.dw);
  const { dGate, dUp } = dGated(o, act.saved, b.backLinear(down, r4.dx));
  const r3 = dRmsNorm(o, n3.saved, o.add(b.backLinear(gate, dGate), b.backLinear(up, dUp)), opts.normGrads);
  b.paramGrad(GEMMA_LAYER.preFfnNorm, r3.dw);
  const dx2 = o.add(b.dOut, r3.dx);
  const r2 = dRmsNorm(o, n2.saved, dx2, opts.normGrads);
  b.paramGrad(GEMMA_LAYER.postAttnNorm, r2.dw);
  const da = dAttention(o, a.saved, b.backLinear(oProj, r2.dx), att);
  const dq = dHeadNorm(dRope(o, da.dq, cos, sin, hd), H, qn.saved, GEMMA_LAYER.qNorm);
  const dk = dHeadNorm(dRope(o, da.dk, cos, sin, hd), KV, kn.saved, GEMMA_LAYER.kNorm);
  const dv = o.reshape(da.dv, [N, KV * hd]);
  const dn1 = o.add(o.add(b.backLinear(q, dq), b.backLinear(k, dk)), b.backLinear(v, dv));
  const r1 = dRmsNorm(o, n1.saved, dn1, opts.normGrads);
  b.paramGrad(GEMMA_LAYER.inputNorm, r1.dw);
  return b.finish(out, o.add(dx2, r1.dx));
}

/** Final (1 + w) RMSNorm, LM head (tied unless stored), Gemma 2's final-logit softcap. */
export function gemmaHeadBackward(o: Ops, c: GemmaConfig, x: string, w: HeadTrainWeights): { logits: string; backward(dLogits: string): string } {
  const head = gemma2Family.headWeight(c, w);
  return chain(x, [
    (h) => rmsNormStep(o, h, w, FINAL_NORM, c.rmsNormEps, 1),
    (h) => linearStep(o, h, w, head),
    ...(c.finalSoftcap ? [(h: string) => softcapStep(o, h, c.finalSoftcap!)] : []),
  ]);
}
