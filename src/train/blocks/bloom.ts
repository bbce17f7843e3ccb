// Backward of the BLOOM decoder block (models/bloom.ts): LayerNorm, biases, GELU (tanh), ALiBi
// (an additive score bias without gradient), and query_key_value as one linear whose output rows
// are interleaved per head ([heads, 3, hd]): the parts' gradients are interleaved back, so the
// fused weight's gradient has the checkpoint's (and the compressors') row order.
// apply_residual_connection_post_layernorm: the residuals start from the LayerNorm outputs.
import { bloomFamily, type BloomConfig, BLOOM_LAYER } from "../../models/bloom.js";
import { type Ops, dActivation, dAttention, fActivation, fAttention, joinInterleaved, splitInterleaved } from "../graph-ops.js";
import type { BlockBackwardGraph, BlockBackwardOptions, HeadTrainWeights } from "../../models/train-hooks.js";
import { BlockGraph } from "./block-graph.js";
import { chain, layerNormStep, linearStep } from "./heads.js";

export function bloomBlockBackward(c: BloomConfig, layer: number, opts: BlockBackwardOptions): BlockBackwardGraph {
  const { B, T: seq } = opts;
  // the layer's own head count and ALiBi slopes (a structurally pruned layer keeps some heads)
  const H = c.layers[layer]!.numHeads;
  const hd = c.headDim;
  const b = new BlockGraph(opts, c.hiddenSize, bloomFamily.layerTensors(c, layer));
  const { o, x, N } = b;
  const att = { B, T: seq, H, KV: H, hd };
  const post = c.residualPostNorm;
  const norm = (name: string, input: string) => b.layerNorm(name, input, c.layerNormEps);

  // ---- forward, recomputed from the block input
  const n1 = norm(BLOOM_LAYER.attnNorm, x);
  const qkv = b.linear(BLOOM_LAYER.qkv, n1.y, true);
  const [q, k, v] = splitInterleaved(o, qkv.y, N, H, hd);
  const heads = (t: string) => o.reshape(t, [B, seq, H, hd]);
  const a = fAttention(o, heads(q), heads(k), heads(v), b.mask(null), att, { bias: b.alibi(c.layerSlopes[layer]!) });
  const oProj = b.linear(BLOOM_LAYER.o, a.y, true);
  const x2 = o.add(post ? n1.y : x, oProj.y); //                                           residual
  const n2 = norm(BLOOM_LAYER.mlpNorm, x2);
  const up = b.linear(BLOOM_LAYER.up, n2.y, true);
  const act = fActivation(o, "gelu_pytorch_tanh", up.y);
  const down = b.linear(BLOOM_LAYER.down, act.y, true);
  const out = o.add(post ? n2.y : x2, down.y); //                                          residual

  // ---- backward, in reverse (with post-norm residuals the residual's gradient enters the norm's output)
  const dn2 = b.backLinear(up, dActivation(o, act.saved, b.backLinear(down, b.dOut)));
  const dNorm2In = post ? o.add(dn2, b.dOut) : dn2;
  const dx2 = post ? b.backLayerNorm(n2, dNorm2In) : o.add(b.dOut, b.backLayerNorm(n2, dNorm2In));
  const da = dAttention(o, a.saved, b.backLinear(oProj, dx2), att);
  const flat = (t: string) => o.reshape(t, [N, H * hd]);
  const dn1 = b.backLinear(qkv, joinInterleaved(o, flat(da.dq), flat(da.dk), flat(da.dv), N, H, hd));
  const dx = post ? b.backLayerNorm(n1, o.add(dn1, dx2)) : o.add(dx2, b.backLayerNorm(n1, dn1));
  return b.finish(out, dx);
}

/** Final LayerNorm ln_f and the LM head (tied: the token embeddings). */
export function bloomHeadBackward(o: Ops, c: BloomConfig, x: string, w: HeadTrainWeights): { logits: string; backward(dLogits: string): string } {
  return chain(x, [(h) => layerNormStep(o, h, w, "transformer.ln_f", c.layerNormEps), (h) => linearStep(o, h, w, bloomFamily.headWeight(c, w))]);
}
