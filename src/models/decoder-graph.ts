// The export host of the family fragments (models/family.ts): one ONNX graph for the whole model
// (embeddings → N decoder layers → head) with a KV cache, speaking transformers.js's I/O names
// (formats/onnx/names.ts). The fragments are the very ones topiary runs (models/runtime-graphs.ts);
// here weights are initializers (stored by `StoredWeights`, which decides float32/16 or
// MatMulNBits), positions come from `position_ids`, and masks from `attention_mask`.
//
//   input_ids [B, T] ─ embed ─▶ x (N = B·T, D)
//   position_ids ─▶ cos, sin [B, T, 1, dim]          attention_mask + causal (+ window) ─▶ [B, 1, T, S]
//   per layer: x = block(x), attention against past_key_values.i → present.i
//   last num_logits_to_keep positions ─ head ─▶ logits [B, T', V]
import { DIM, IO } from "../formats/onnx/names.js";
import type { GraphBuilder } from "../runtime/onnx-graph.js";
import { kvHeadsOf, type ModelConfig } from "./config.js";
import type { BlockContext, GraphWeights } from "./family.js";
import { adapterFor } from "./registry.js";
import { addAlibi, attentionAttrs } from "./runtime-graphs.js";

/** How the exporter stores weights; names are full checkpoint names. */
export interface StoredWeights {
  /** A float32 value holding tensor `name`. */
  float(name: string): string;
  /** Rows `index` (int64 [B, T]) of table `name`, float32 [B, T, width]. */
  gather(name: string, index: string): string;
  /** y = x·Wᵀ (+ b) for the linear whose weight is `${prefix}.weight`; x is [N, in]. */
  linear(x: string, prefix: string, hasBias: boolean): string;
  has(name: string): boolean;
  shape(name: string): readonly number[];
}

/** float32's lowest value: a finite "minus infinity" so fully padded rows give no NaN (as HF does). */
const MASKED = -3.4028234663852886e38;
/** An end index past any dimension, for Slice (int64 max does not fit a JS number). */
const TO_END = Number.MAX_SAFE_INTEGER;

/**
 * Additive mask [B, 1, T, S] (S = past + T): query t sits at position P + t and sees key s when
 * s ≤ P + t, attention_mask[b, s] = 1, and (sliding window W) s > P + t − W.
 */
function attentionMask(g: GraphBuilder, inputIds: string, attentionMask: string, window: number | null): string {
  const scalar = (shapeOf: string, axis: number) => g.op("Gather", [g.op("Shape", [shapeOf]), g.constInt64([axis])], { axis: 0 });
  const squeeze = (v: string) => g.op("Squeeze", [v, g.constInt64([0])]);
  const S = squeeze(scalar(attentionMask, 1));
  const T = squeeze(scalar(inputIds, 1));
  const zero = g.constInt64Scalar(0);
  const one = g.constInt64Scalar(1);
  const keys = g.op("Unsqueeze", [g.op("Range", [zero, S, one]), g.constInt64([0])]); //            (1, S)
  const queries = g.op("Unsqueeze", [g.op("Range", [g.op("Sub", [S, T]), S, one]), g.constInt64([1])]); // (T, 1)
  let allowed = g.op("LessOrEqual", [keys, queries]); //                                             (T, S)
  if (window !== null) allowed = g.op("And", [allowed, g.op("Greater", [keys, g.op("Sub", [queries, g.constInt64([window])])])]);
  const padding = g.op("Unsqueeze", [g.op("Cast", [attentionMask], { to: 9 }), g.constInt64([1, 2])]); // (B, 1, 1, S) bool
  allowed = g.op("And", [g.op("Unsqueeze", [allowed, g.constInt64([0, 1])]), padding]); //            (B, 1, T, S)
  return g.op("Where", [allowed, g.constFloat([0], []), g.constFloat([MASKED], [])]);
}

/** Builds the whole decoder into `g`. */
export function buildDecoderGraph(g: GraphBuilder, c: ModelConfig, w: StoredWeights): void {
  const family = adapterFor(c);
  const D = c.hiddenSize;
  const hd = c.headDim;
  const inputIds = g.input(IO.inputIds, "int64", [DIM.batch, DIM.seq]);
  const attnMask = g.input(IO.attentionMask, "int64", [DIM.batch, DIM.total]);
  const positionIds = g.input(IO.positionIds, "int64", [DIM.batch, DIM.seq]);
  const past = Array.from({ length: c.numLayers }, (_, i) => ({
    key: g.input(IO.pastKey(i), "float32", [DIM.batch, kvHeadsOf(c, i), DIM.past, hd]),
    value: g.input(IO.pastValue(i), "float32", [DIM.batch, kvHeadsOf(c, i), DIM.past, hd]),
  }));
  const keep = g.input(IO.numLogitsToKeep, "int64", []);

  // shapes built from the runtime batch/seq: [B, T] ++ tail
  const bt = g.op("Shape", [inputIds]);
  const shape = (...tail: number[]) => g.op("Concat", [bt, g.constInt64(tail)], { axis: 0 });
  const rotary = family.rotary(c);
  const tables = new Map<string, { cos: string; sin: string }>();
  const masks = new Map<number | null, string>();
  const presents: { key: string; value: string }[] = [];
  const keyCount = g.op("Slice", [g.op("Shape", [attnMask]), g.constInt64([1]), g.constInt64([2])]);

  /** cos/sin [B, T, 1, dim] from position_ids: angle = pos · inv_freq (float32), cat(freqs, freqs). */
  const rope = (name: string) => {
    let t = tables.get(name);
    if (!t) {
      const table = rotary[name];
      if (!table) throw new Error(`no rotary table "${name}"`);
      const invFreq = g.constFloat(Array.from(table.invFreq), [table.invFreq.length], `rope_inv_freq_${name}`);
      const pos = g.op("Unsqueeze", [g.op("Cast", [positionIds], { to: 1 }), g.constInt64([2])]); //  (B, T, 1)
      const freqs = g.op("Mul", [pos, invFreq]); //                                                 (B, T, dim/2)
      const emb = g.op("Unsqueeze", [g.op("Concat", [freqs, freqs], { axis: -1 }), g.constInt64([2])]); // (B, T, 1, dim)
      let cos = g.op("Cos", [emb]);
      let sin = g.op("Sin", [emb]);
      if ((table.attentionScaling ?? 1) !== 1) {
        const s = g.constFloat([table.attentionScaling!], []);
        cos = g.op("Mul", [cos, s]);
        sin = g.op("Mul", [sin, s]);
      }
      t = { cos, sin };
      tables.set(name, t);
    }
    return t;
  };

  const scoped = (prefix: string): GraphWeights => ({
    param: (name) => w.float(prefix + name),
    linear: (x, p, hasBias) => w.linear(x, prefix + p, hasBias),
    gather: (name, index, offset = 0) => {
      let ids = index === "tokens" ? inputIds : positionIds;
      if (offset) ids = g.op("Add", [ids, g.constInt64Scalar(offset)]);
      return g.op("Reshape", [w.gather(prefix + name, ids), g.constInt64([-1, w.shape(prefix + name)[1]!])]);
    },
    has: (name) => w.has(prefix + name),
  });

  const context = (layer: number): BlockContext => ({
    layer,
    shape,
    rope: (name) => {
      if (layer < 0) throw new Error("rotary tables exist only inside decoder layers");
      return rope(name);
    },
    attention(q, k, v, o) {
      if (layer < 0) throw new Error("attention exists only inside decoder layers");
      const window = o.window ?? null;
      let mask = masks.get(window);
      if (!mask) {
        mask = attentionMask(g, inputIds, attnMask, window);
        masks.set(window, mask);
      }
      // ALiBi: [B, 1, T, S] + [H, 1, S] → [B, H, T, S]
      if (o.alibiSlopes) mask = g.op("Squeeze", [addAlibi(g, mask, o.alibiSlopes, keyCount), g.constInt64([-4])]);
      const [y, presentK, presentV] = g.opN("Attention", [q, k, v, mask, past[layer]!.key, past[layer]!.value], 3, attentionAttrs(o));
      presents[layer] = { key: presentK!, value: presentV! };
      return g.op("Reshape", [y!, g.constInt64([-1, o.numHeads * o.headDim])]);
    },
    capture: () => {},
  });

  let x = family.embed(g, context(-1), scoped(""), c); //                                      (N, D)
  for (let i = 0; i < c.numLayers; i++) x = family.block(g, context(i), scoped(family.layerPrefix(i)), c, i, x);

  // logits for the last `num_logits_to_keep` positions (0 = all): Slice from −n, so 0 keeps all
  const start = g.op("Neg", [g.op("Unsqueeze", [keep, g.constInt64([0])])]);
  const kept = g.op("Slice", [g.op("Reshape", [x, shape(D)]), start, g.constInt64([TO_END]), g.constInt64([1])]); // (B, T', D)
  const logits = family.head(g, context(-1), scoped(""), c, g.op("Reshape", [kept, g.constInt64([-1, D])])); // (B·T', V)
  const batch = g.op("Slice", [bt, g.constInt64([0]), g.constInt64([1])]);
  const logitsShape = g.op("Concat", [batch, g.constInt64([-1, c.vocabSize])], { axis: 0 });
  g.output(g.op("Reshape", [logits, logitsShape]), IO.logits, "float32", [DIM.batch, "kept_sequence_length", c.vocabSize]);
  for (let i = 0; i < c.numLayers; i++) {
    if (!presents[i]) throw new Error(`layer ${i} did not attend (no KV cache output)`);
    g.output(presents[i]!.key, IO.presentKey(i), "float32", [DIM.batch, kvHeadsOf(c, i), DIM.total, hd]);
    g.output(presents[i]!.value, IO.presentValue(i), "float32", [DIM.batch, kvHeadsOf(c, i), DIM.total, hd]);
  }
}
