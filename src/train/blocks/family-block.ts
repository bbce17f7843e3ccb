// Running a family's block backward graph (train/blocks/block-graph.ts): the feeds it needs
// besides the weights — the layer's mask (causal, with its sliding window) and rotary table —
// come from the family adapter the same way models/model.ts feeds the forward graph.
import type { ModelConfig } from "../../models/config.js";
import type { FamilyAdapter } from "../../models/family.js";
import { rotaryTables } from "../../models/rope.js";
import { causalMask } from "../../models/runtime-graphs.js";
import { cachedSession, type RtTensor } from "../../runtime/ort.js";
import type { BlockBackwardOptions } from "./block-graph.js";

type Floats = Float32Array | Float64Array;

/** A family's block backward: its graph and what layer i feeds it. */
export interface FamilyBlockBackward<C extends ModelConfig = ModelConfig> {
  graph(c: C, layer: number, opts: BlockBackwardOptions): Uint8Array;
  /** the FamilyAdapter.rotary table layer i rotates q/k with; null: no rotary */
  rotary(c: C, layer: number): string | null;
  /** layer i's attention window; null: full causal attention */
  window(c: C, layer: number): number | null;
}

export interface BlockBackwardResult<A extends Floats> {
  /** the block's output (recomputed) */
  out: A;
  gradHidden: A;
  /** by suffix, e.g. "self_attn.qkv_proj.weight" (the layout of FamilyAdapter.layerTensors) */
  grads: Map<string, A>;
}

const tensor = (data: Floats, dims: readonly number[]): RtTensor => ({ data, dims });

/**
 * Backward of decoder layer `layer` for input `hidden` [B·T, D], the layer's weights by suffix and
 * the gradient of its output `gradOut` [B·T, D]. Float64 arrays run the float64 graph (the
 * finite-difference checks).
 */
export async function runFamilyBlockBackward<C extends ModelConfig, A extends Floats>(
  family: FamilyAdapter<C>,
  backward: FamilyBlockBackward<C>,
  c: C,
  layer: number,
  B: number,
  T: number,
  hidden: A,
  weights: Map<string, A>,
  gradOut: A,
  opts: { normGrads?: boolean } = {},
): Promise<BlockBackwardResult<A>> {
  const type = hidden instanceof Float64Array ? "float64" : "float32";
  const normGrads = opts.normGrads ?? false;
  const cast = (a: Float32Array): Floats => (type === "float64" ? Float64Array.from(a) : a);
  const key = `train:block:${family.name}:${JSON.stringify(family.layerKey(c, layer))}:${type}:${B}:${T}:${normGrads}`;
  const session = await cachedSession(key, () => backward.graph(c, layer, { type, B, T, normGrads }));
  const D = c.hiddenSize;
  const feeds: Record<string, RtTensor> = {
    hidden: tensor(hidden, [B * T, D]),
    grad_out: tensor(gradOut, [B * T, D]),
    mask: tensor(cast(causalMask(0, T, backward.window(c, layer))), [T, T]),
  };
  const rope = backward.rotary(c, layer);
  if (rope !== null) {
    const table = family.rotary(c)[rope];
    if (!table) throw new Error(`${family.name}: no rotary table "${rope}"`);
    const { cos, sin } = rotaryTables(table.invFreq, 0, T, table.attentionScaling ?? 1);
    const dim = table.invFreq.length * 2;
    feeds.cos = tensor(cast(cos), [T, 1, dim]);
    feeds.sin = tensor(cast(sin), [T, 1, dim]);
  }
  const inputs = new Set(session.inputNames);
  for (const [suffix, shape] of family.layerTensors(c, layer)) {
    if (!inputs.has(suffix)) continue;
    const w = weights.get(suffix);
    if (!w) throw new Error(`block backward: weight "${suffix}" was not supplied`);
    feeds[suffix] = tensor(w, shape);
  }
  const gradNames = session.outputNames.filter((n) => n.startsWith("grad."));
  const out = await session.run(feeds, ["out", "grad_hidden", ...gradNames]);
  const grads = new Map<string, A>();
  for (const n of gradNames) grads.set(n.slice("grad.".length), out[n]!.data as A);
  return { out: out.out!.data as A, gradHidden: out.grad_hidden!.data as A, grads };
}
