// Backward of the OPT decoder block (models/opt.ts): LayerNorm, biases, multi-head attention, an
// activation MLP (ReLU); pre-norm (do_layer_norm_before) or OPT-350m's post-norm, where the
// LayerNorms follow each residual add; LayerNorms without parameters when not elementwise-affine.
import { optFamily, type OptConfig, OPT_LAYER } from "../../models/opt.js";
import { type Ops, dActivation, dAttention, fActivation, fAttention } from "../graph-ops.js";
import type { BlockBackwardGraph, BlockBackwardOptions, HeadTrainWeights } from "../../models/train-hooks.js";
import { BlockGraph } from "./block-graph.js";
import { chain, layerNormStep, linearStep } from "./heads.js";

/** torch.nn.LayerNorm's default eps (models/opt.ts). */
const LN_EPS = 1e-5;

export function optBlockBackward(c: OptConfig, layer: number, opts: BlockBackwardOptions): BlockBackwardGraph {
  const { B, T: seq } = opts;
  const H = c.layers[layer]!.numHeads;
  const hd = c.headDim;
  const specs = new Map(optFamily.linears(c, layer).map((s) => [s.suffix, s]));
  const b = new BlockGraph(opts, c.hiddenSize, optFamily.layerTensors(c, layer));
  const { o, x, N } = b;
  const att = { B, T: seq, H, KV: H, hd };
  const lin = (suffix: string, input: string) => b.linear(suffix, input, specs.get(suffix)!.hasBias);
  const norm = (name: string, input: string) => b.layerNorm(name, input, LN_EPS, c.normAffine);

  // ---- forward, recomputed from the block input
  const n1 = c.preNorm ? norm(OPT_LAYER.attnNorm, x) : null;
  const h = n1 ? n1.y : x;
  const q = lin(OPT_LAYER.q, h);
  const k = lin(OPT_LAYER.k, h);
  const v = lin(OPT_LAYER.v, h);
  const heads = (t: string) => o.reshape(t, [B, seq, H, hd]);
  const a = fAttention(o, heads(q.y), heads(k.y), heads(v.y), b.mask(null), att);
  const oProj = lin(OPT_LAYER.o, a.y);
  const sum1 = o.add(x, oProj.y); //                                                       residual
  const post1 = c.preNorm ? null : norm(OPT_LAYER.attnNorm, sum1);
  const x2 = post1 ? post1.y : sum1;
  const n2 = c.preNorm ? norm(OPT_LAYER.mlpNorm, x2) : null;
  const h2 = n2 ? n2.y : x2;
  const fc1 = lin(OPT_LAYER.fc1, h2);
  const act = fActivation(o, c.hiddenAct, fc1.y);
  const fc2 = lin(OPT_LAYER.fc2, act.y);
  const sum2 = o.add(x2, fc2.y); //                                                        residual
  const post2 = c.preNorm ? null : norm(OPT_LAYER.mlpNorm, sum2);
  const out = post2 ? post2.y : sum2;

  // ---- backward, in reverse
  const dSum2 = post2 ? b.backLayerNorm(post2, b.dOut) : b.dOut;
  const dh2 = b.backLinear(fc1, dActivation(o, act.saved, b.backLinear(fc2, dSum2)));
  const dx2 = o.add(dSum2, n2 ? b.backLayerNorm(n2, dh2) : dh2);
  const dSum1 = post1 ? b.backLayerNorm(post1, dx2) : dx2;
  const da = dAttention(o, a.saved, b.backLinear(oProj, dSum1), att);
  const flat = (t: string) => o.reshape(t, [N, H * hd]);
  const dh = o.add(o.add(b.backLinear(q, flat(da.dq)), b.backLinear(k, flat(da.dk))), b.backLinear(v, flat(da.dv)));
  return b.finish(out, o.add(dSum1, n1 ? b.backLayerNorm(n1, dh) : dh));
}

/** Final LayerNorm (pre-norm models unless removed), project_out when the embeddings are narrower, LM head. */
export function optHeadBackward(o: Ops, c: OptConfig, x: string, w: HeadTrainWeights): { logits: string; backward(dLogits: string): string } {
  const base = "model.decoder.";
  return chain(x, [
    ...(c.finalNorm ? [(h: string) => layerNormStep(o, h, w, `${base}final_layer_norm`, LN_EPS, c.normAffine)] : []),
    ...(c.embedDim !== c.hiddenSize ? [(h: string) => linearStep(o, h, w, `${base}project_out.weight`)] : []),
    (h) => linearStep(o, h, w, optFamily.headWeight(c, w)),
  ]);
}
