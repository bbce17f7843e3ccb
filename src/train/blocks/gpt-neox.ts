// Backward of the GPT-NeoX decoder block (models/gpt-neox.ts; Pythia): LayerNorm, biases,
// partial rotary embeddings (the first rotary_ndims dims of each head), GELU, query_key_value
// interleaved per head ([heads, 3, hd]; its gradient joined back in that order), and the
// parallel residual x + attn(ln1(x)) + mlp(ln2(x)) (use_parallel_residual) or the sequential one.
import { gptNeoxFamily, type NeoxConfig, NEOX_LAYER } from "../../models/gpt-neox.js";
import { type Ops, dActivation, dAttention, dPartialRope, fActivation, fAttention, fPartialRope, joinInterleaved, splitInterleaved } from "../graph-ops.js";
import type { BlockBackwardGraph, BlockBackwardOptions, HeadTrainWeights } from "../../models/train-hooks.js";
import { BlockGraph } from "./block-graph.js";
import { chain, layerNormStep, linearStep } from "./heads.js";

export function gptNeoxBlockBackward(c: NeoxConfig, layer: number, opts: BlockBackwardOptions): BlockBackwardGraph {
  const { B, T: seq } = opts;
  const { headDim: hd, rotaryDim } = c;
  // the layer's own widths and biases (structured pruning; FLAP's dense compensation bias)
  const H = c.layers[layer]!.numHeads;
  const specs = new Map(gptNeoxFamily.linears(c, layer).map((s) => [s.suffix, s.hasBias]));
  const b = new BlockGraph(opts, c.hiddenSize, gptNeoxFamily.layerTensors(c, layer));
  const { o, x, N } = b;
  const att = { B, T: seq, H, KV: H, hd };
  const { cos, sin } = b.rope("rope", rotaryDim);
  const norm = (name: string, input: string) => b.layerNorm(name, input, c.layerNormEps);

  // ---- forward, recomputed from the block input
  const n1 = norm(NEOX_LAYER.attnNorm, x);
  const qkv = b.linear(NEOX_LAYER.qkv, n1.y, specs.get(NEOX_LAYER.qkv)!);
  const [q, k, v] = splitInterleaved(o, qkv.y, N, H, hd);
  const heads = (t: string) => o.reshape(t, [B, seq, H, hd]);
  const qr = fPartialRope(o, heads(q), cos, sin, rotaryDim, hd);
  const kr = fPartialRope(o, heads(k), cos, sin, rotaryDim, hd);
  const a = fAttention(o, qr, kr, heads(v), b.mask(null), att);
  const attn = b.linear(NEOX_LAYER.o, a.y, specs.get(NEOX_LAYER.o)!);
  // parallel: the MLP reads ln2(x), beside attention; sequential: ln2(x + attn)
  const x2 = c.parallelResidual ? x : o.add(x, attn.y);
  const n2 = norm(NEOX_LAYER.mlpNorm, x2);
  const up = b.linear(NEOX_LAYER.up, n2.y, true);
  const act = fActivation(o, c.hiddenAct, up.y);
  const mlp = b.linear(NEOX_LAYER.down, act.y, true);
  const out = c.parallelResidual ? o.add(o.add(mlp.y, attn.y), x) : o.add(x2, mlp.y);

  // ---- backward, in reverse
  const dn2 = b.backLinear(up, dActivation(o, act.saved, b.backLinear(mlp, b.dOut)));
  const dMlpIn = b.backLayerNorm(n2, dn2);
  // the gradient reaching attention's output, and x's gradient so far (through the residual and the MLP side)
  const dAttnOut = c.parallelResidual ? b.dOut : o.add(b.dOut, dMlpIn);
  const dxRes = c.parallelResidual ? o.add(b.dOut, dMlpIn) : dAttnOut;
  const da = dAttention(o, a.saved, b.backLinear(attn, dAttnOut), att);
  const flat = (t: string) => o.reshape(t, [N, H * hd]);
  const dq = flat(dPartialRope(o, da.dq, cos, sin, rotaryDim, hd));
  const dk = flat(dPartialRope(o, da.dk, cos, sin, rotaryDim, hd));
  const dn1 = b.backLinear(qkv, joinInterleaved(o, dq, dk, flat(da.dv), N, H, hd));
  return b.finish(out, o.add(dxRes, b.backLayerNorm(n1, dn1)));
}

/** Final LayerNorm and the LM head embed_out (untied unless the config ties it). */
export function gptNeoxHeadBackward(o: Ops, c: NeoxConfig, x: string, w: HeadTrainWeights): { logits: string; backward(dLogits: string): string } {
  return chain(x, [(h) => layerNormStep(o, h, w, "gpt_neox.final_layer_norm", c.layerNormEps), (h) => linearStep(o, h, w, gptNeoxFamily.headWeight(c, w))]);
}
