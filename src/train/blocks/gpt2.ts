// Backward of the GPT-2 decoder block (models/gpt2.ts): pre-norm LayerNorm, biases, GELU (tanh),
// multi-head attention scaled by 1/√hd (scale_attn_weights) and 1/(layer + 1)
// (scale_attn_by_inverse_layer_idx). c_attn is one linear whose output is q | k | v side by
// side. Weights are in topiary's [out, in] layout (the checkpoint view transposes Conv1D's
// [in, out]), so the gradients are too: the layout the compressors and training see.
import { gpt2Family, type Gpt2Config, GPT2_LAYER } from "../../models/gpt2.js";
import { type Ops, dActivation, dAttention, fActivation, fAttention, joinParts, splitParts } from "../graph-ops.js";
import type { BlockBackwardGraph, BlockBackwardOptions, HeadTrainWeights } from "../../models/train-hooks.js";
import { BlockGraph } from "./block-graph.js";
import { chain, layerNormStep, linearStep } from "./heads.js";

export function gpt2BlockBackward(c: Gpt2Config, layer: number, opts: BlockBackwardOptions): BlockBackwardGraph {
  const { B, T: seq } = opts;
  const H = c.layers[layer]!.numHeads;
  const hd = c.headDim;
  const A = H * hd;
  const b = new BlockGraph(opts, c.hiddenSize, gpt2Family.layerTensors(c, layer));
  const { o, x, N } = b;
  const att = { B, T: seq, H, KV: H, hd };
  const scale = (c.scaleByHeadDim ? 1 / Math.sqrt(hd) : 1) / (c.scaleByLayer ? layer + 1 : 1);
  const norm = (name: string, input: string) => b.layerNorm(name, input, c.layerNormEps);

  // ---- forward, recomputed from the block input
  const n1 = norm(GPT2_LAYER.attnNorm, x);
  const qkv = b.linear(GPT2_LAYER.qkv, n1.y, true);
  const heads = (t: string) => o.reshape(t, [B, seq, H, hd]);
  const [q, k, v] = splitParts(o, qkv.y, [A, A, A]) as [string, string, string];
  const a = fAttention(o, heads(q), heads(k), heads(v), b.mask(null), att, { scale });
  const oProj = b.linear(GPT2_LAYER.o, a.y, true);
  const x2 = o.add(x, oProj.y); //                                                         residual
  const n2 = norm(GPT2_LAYER.mlpNorm, x2);
  const up = b.linear(GPT2_LAYER.up, n2.y, true);
  const act = fActivation(o, c.hiddenAct, up.y);
  const down = b.linear(GPT2_LAYER.down, act.y, true);
  const out = o.add(x2, down.y); //                                                        residual

  // ---- backward, in reverse
  const dn2 = b.backLinear(up, dActivation(o, act.saved, b.backLinear(down, b.dOut)));
  const dx2 = o.add(b.dOut, b.backLayerNorm(n2, dn2));
  const da = dAttention(o, a.saved, b.backLinear(oProj, dx2), att);
  const flat = (t: string) => o.reshape(t, [N, A]);
  const dn1 = b.backLinear(qkv, joinParts(o, [flat(da.dq), flat(da.dk), flat(da.dv)]));
  return b.finish(out, o.add(dx2, b.backLayerNorm(n1, dn1)));
}

/** Final LayerNorm ln_f and the LM head (tied: the token embeddings). */
export function gpt2HeadBackward(o: Ops, c: Gpt2Config, x: string, w: HeadTrainWeights): { logits: string; backward(dLogits: string): string } {
  return chain(x, [(h) => layerNormStep(o, h, w, "transformer.ln_f", c.layerNormEps), (h) => linearStep(o, h, w, gpt2Family.headWeight(c, w))]);
}
