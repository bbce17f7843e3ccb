// Backward of the Phi-3 decoder block (models/phi3.ts): the Llama block with fused linears —
// qkv_proj's output split into q | k | v, gate_up_proj's into gate | up — and an optionally
// partial rotary embedding. The fused linears' gradients are the joined parts' gradients, so
// they have the layout the compressors and the checkpoint use.
import type { BlockBackwardGraph, BlockBackwardOptions, HeadTrainWeights } from "../../models/train-hooks.js";
import { phi3Family, type Phi3Config, PHI3_LAYER } from "../../models/phi3.js";
import { llamaHeadBackward } from "../llama-block.js";
import { type Ops, dAttention, dGated, dPartialRope, dRmsNorm, fAttention, fGated, fPartialRope, fRmsNorm, joinParts, splitParts } from "../graph-ops.js";
import { BlockGraph } from "./block-graph.js";

export function phi3BlockBackward(c: Phi3Config, layer: number, opts: BlockBackwardOptions): BlockBackwardGraph {
  const { B, T: seq } = opts;
  // the layer's own widths and biases (structured pruning; FLAP's compensation biases)
  const { numHeads: H, numKvHeads: KV, intermediateSize: F, oBias, downBias } = c.layers[layer]!;
  const hd = c.headDim;
  const b = new BlockGraph(opts, c.hiddenSize, phi3Family.layerTensors(c, layer));
  const { o, x, N } = b;
  const { cos, sin } = b.rope("rope", c.rotaryDim);
  const mask = b.mask(c.layerWindows[layer] ?? null);
  const att = { B, T: seq, H, KV, hd };

  // ---- forward, recomputed from the block input
  const n1 = fRmsNorm(o, x, b.param(PHI3_LAYER.inputNorm), c.rmsNormEps);
  const qkv = b.linear(PHI3_LAYER.qkv, n1.y, false);
  const [q, k, v] = splitParts(o, qkv.y, [H * hd, KV * hd, KV * hd]) as [string, string, string];
  const qr = fPartialRope(o, o.reshape(q, [B, seq, H, hd]), cos, sin, c.rotaryDim, hd);
  const kr = fPartialRope(o, o.reshape(k, [B, seq, KV, hd]), cos, sin, c.rotaryDim, hd);
  const a = fAttention(o, qr, kr, o.reshape(v, [B, seq, KV, hd]), mask, att);
  const oProj = b.linear(PHI3_LAYER.o, a.y, oBias);
  const x2 = o.add(x, oProj.y); //                                                         residual
  const n2 = fRmsNorm(o, x2, b.param(PHI3_LAYER.postNorm), c.rmsNormEps);
  const gu = b.linear(PHI3_LAYER.gateUp, n2.y, false);
  const [gate, up] = splitParts(o, gu.y, [F, F]) as [string, string];
  const act = fGated(o, c.hiddenAct, gate, up);
  const down = b.linear(PHI3_LAYER.down, act.y, downBias);
  const out = o.add(x2, down.y); //                                                        residual

  // ---- backward, in reverse
  const { dGate, dUp } = dGated(o, act.saved, b.backLinear(down, b.dOut));
  const r2 = dRmsNorm(o, n2.saved, b.backLinear(gu, joinParts(o, [dGate, dUp])), opts.normGrads);
  b.paramGrad(PHI3_LAYER.postNorm, r2.dw);
  const dx2 = o.add(b.dOut, r2.dx);
  const da = dAttention(o, a.saved, b.backLinear(oProj, dx2), att);
  const dq = o.reshape(dPartialRope(o, da.dq, cos, sin, c.rotaryDim, hd), [N, H * hd]);
  const dk = o.reshape(dPartialRope(o, da.dk, cos, sin, c.rotaryDim, hd), [N, KV * hd]);
  const dv = o.reshape(da.dv, [N, KV * hd]);
  const r1 = dRmsNorm(o, n1.saved, b.backLinear(qkv, joinParts(o, [dq, dk, dv])), opts.normGrads);
  b.paramGrad(PHI3_LAYER.inputNorm, r1.dw);
  return b.finish(out, o.add(dx2, r1.dx));
}

/** Final RMSNorm + LM head: Llama's (same tensor names). */
export function phi3HeadBackward(o: Ops, c: Phi3Config, x: string, w: HeadTrainWeights): { logits: string; backward(dLogits: string): string } {
  return llamaHeadBackward(o, c, x, w);
}
