// Structure groups (DESIGN.md "Family adapters"): the rows and columns of a decoder layer that
// structured pruning removes together, as a family describes them to compress/structured/.
//
// A unit is the smallest piece of a layer that can be cut out while leaving a smaller dense layer:
//   - an attention unit is one KV group: a KV head and the query heads that share it — its rows
//     of q/k/v (the "producers") and the matching input columns of o_proj (the "consumer");
//   - an MLP unit is one intermediate channel: its gate/up (fc1) rows and its down (fc2) column.
// Scores (FLAP, Wanda-sp, OBS) are computed on the consumer's input columns; the producers only
// lose rows. Fused checkpoint linears (Phi-3 qkv_proj, BLOOM query_key_value) are producers whose
// `rows` of a unit are simply not contiguous.

export type UnitKind = "attention" | "mlp";

export interface UnitGroup {
  kind: UnitKind;
  /** units in this layer (KV groups; MLP channels) */
  count: number;
  /** suffix of the linear that reads the units' outputs (o_proj, down_proj) */
  consumer: string;
  /** the captured activation that is the consumer's input (its LinearSpec.input) */
  consumerInput: string;
  /** suffixes of the linears whose output rows belong to the units (q/k/v; gate/up) */
  producers: string[];
  /** consumer input columns of unit u, ascending */
  columns(u: number): number[];
  /** output rows of unit u in `producer`, ascending */
  rows(producer: string, u: number): number[];
  /** decoder-linear weights removed with one unit (biases not counted) */
  weightsPerUnit: number;
}

/** Which units of each group a layer keeps (ascending indices), by group kind. */
export type KeptUnits = Record<UnitKind, number[]>;

/** What a layer keeps after structured pruning. */
export interface PrunedLayer {
  kept: KeptUnits;
  /** the consumers (o_proj, down_proj) carry a bias (compensation or refit) */
  consumerBias: boolean;
}

/** A family's structured-pruning hooks (FamilyAdapter.structure). */
export interface StructureHooks<C> {
  /** the units of layer i */
  units(c: C, i: number): UnitGroup[];
  /**
   * The config of the model whose layer i keeps `layers[i]` (original unit indices), and the
   * config.json that describes it: equal widths → the family's standard keys; per-layer widths →
   * whatever the family's loader reads back (see the adapter). `raw` is also the returned
   * config's `raw`.
   */
  prune(c: C, layers: PrunedLayer[]): C;
  /** The config of the model that keeps only layers `keep` (ascending), renumbered 0..k−1. */
  keepLayers(c: C, keep: readonly number[]): C;
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** Units of a grouped-query attention block with separate q/k/v/o and a gated (or plain) MLP. */
export function standardUnits(o: {
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  hidden: number;
  intermediate: number;
  q: string;
  k: string;
  v: string;
  o: string;
  attnInput: string;
  mlpProducers: string[];
  down: string;
  mlpInput: string;
}): UnitGroup[] {
  const hd = o.headDim;
  const rep = o.numHeads / o.numKvHeads;
  return [
    {
      kind: "attention",
      count: o.numKvHeads,
      consumer: o.o,
      consumerInput: o.attnInput,
      producers: [o.q, o.k, o.v],
      columns: (u) => range(u * rep * hd, (u + 1) * rep * hd),
      rows: (p, u) => (p === o.q ? range(u * rep * hd, (u + 1) * rep * hd) : range(u * hd, (u + 1) * hd)),
      weightsPerUnit: (2 * rep * hd + 2 * hd) * o.hidden,
    },
    {
      kind: "mlp",
      count: o.intermediate,
      consumer: o.down,
      consumerInput: o.mlpInput,
      producers: o.mlpProducers,
      columns: (u) => [u],
      rows: (_p, u) => [u],
      weightsPerUnit: (o.mlpProducers.length + 1) * o.hidden,
    },
  ];
}

// ---------------------------------------------------------------------------------------------
// Per-layer widths for families whose own config keys cannot describe a pruned model (OPT and
// GPT-2 derive head_dim from hidden_size / heads, so even equal widths need this): config.json's
// `structured_pruning` object, with per-layer lists num_attention_heads, num_key_value_heads,
// intermediate_size, kept_kv_groups, kept_mlp_channels, o_proj_bias, down_proj_bias (the
// consumers' biases, whatever the family calls them) — the layout Llama's adapter also reads.

export interface LayerStructure {
  numHeads: number;
  numKvHeads: number;
  intermediateSize: number;
  /** the attention output linear carries a bias */
  oBias: boolean;
  /** the MLP output linear carries a bias */
  downBias: boolean;
}

type Raw = Record<string, unknown>;

/**
 * Each layer's widths: from `structured_pruning` when present (validated; errors name `file`),
 * else the defaults for every layer. `fail(message)` throws the family's one-line error.
 */
export function layerStructures(raw: Raw, layers: number, defaults: LayerStructure, fail: (message: string) => never): LayerStructure[] {
  const sp = raw.structured_pruning as Record<string, unknown> | undefined | null;
  if (sp == null) return Array.from({ length: layers }, () => ({ ...defaults }));
  if (typeof sp !== "object") fail(`structured_pruning must be an object`);
  const list = <T>(key: string, ok: (v: unknown) => v is T, fallback: T): T[] => {
    const v = sp[key];
    if (v === undefined) return Array.from({ length: layers }, () => fallback);
    if (!Array.isArray(v) || v.length !== layers || !v.every(ok)) fail(`structured_pruning.${key} must list one value per layer (${layers})`);
    return v as T[];
  };
  const positive = (v: unknown): v is number => Number.isInteger(v) && (v as number) > 0;
  const bool = (v: unknown): v is boolean => typeof v === "boolean";
  const heads = list("num_attention_heads", positive, defaults.numHeads);
  const kv = list("num_key_value_heads", positive, defaults.numKvHeads);
  const ff = list("intermediate_size", positive, defaults.intermediateSize);
  const ob = list("o_proj_bias", bool, defaults.oBias);
  const db = list("down_proj_bias", bool, defaults.downBias);
  return heads.map((h, i) => {
    if (h % kv[i]! !== 0) fail(`structured_pruning: layer ${i} has ${h} query heads, not a multiple of its ${kv[i]} KV heads`);
    return { numHeads: h, numKvHeads: kv[i]!, intermediateSize: ff[i]!, oBias: ob[i]! || defaults.oBias, downBias: db[i]! || defaults.downBias };
  });
}

/** config.json of the pruned model, always with `structured_pruning` (see above). */
export function structuredPruningRaw(raw: Raw, current: LayerStructure[], layers: PrunedLayer[]): Raw {
  const out: Raw = { ...raw };
  out.structured_pruning = {
    num_attention_heads: layers.map((p, i) => p.kept.attention.length * (current[i]!.numHeads / current[i]!.numKvHeads)),
    num_key_value_heads: layers.map((p) => p.kept.attention.length),
    intermediate_size: layers.map((p) => p.kept.mlp.length),
    kept_kv_groups: layers.map((p) => p.kept.attention),
    kept_mlp_channels: layers.map((p) => p.kept.mlp),
    o_proj_bias: layers.map((p, i) => p.consumerBias || current[i]!.oBias),
    down_proj_bias: layers.map((p, i) => p.consumerBias || current[i]!.downBias),
  };
  return out;
}

/** `raw` for the model keeping only layers `keep`: per-layer lists cut, num_hidden_layers set under `layersKey`. */
export function keepLayersRaw(raw: Raw, keep: readonly number[], layersKey: string): Raw {
  const out: Raw = { ...raw, [layersKey]: keep.length };
  if (Array.isArray(raw.layer_types)) out.layer_types = keep.map((i) => (raw.layer_types as unknown[])[i]);
  const sp = raw.structured_pruning as Record<string, unknown> | undefined;
  if (sp) out.structured_pruning = Object.fromEntries(Object.entries(sp).map(([k, v]) => [k, Array.isArray(v) ? keep.map((i) => v[i]) : v]));
  return out;
}

/**
 * Units of a multi-head attention block whose q/k/v are one linear with rows interleaved per
 * head ([heads, 3, headDim]: BLOOM's and GPT-NeoX's query_key_value — a head's rows are one
 * contiguous block of 3·headDim), and a plain MLP (up rows, down columns).
 */
export function interleavedQkvUnits(o: { heads: number; headDim: number; hidden: number; intermediate: number; qkv: string; o: string; up: string; down: string }): UnitGroup[] {
  const hd = o.headDim;
  return [
    {
      kind: "attention",
      count: o.heads,
      consumer: o.o,
      consumerInput: "attn_out",
      producers: [o.qkv],
      columns: (u) => range(u * hd, (u + 1) * hd),
      rows: (_p, u) => range(3 * u * hd, 3 * (u + 1) * hd),
      weightsPerUnit: 4 * hd * o.hidden,
    },
    {
      kind: "mlp",
      count: o.intermediate,
      consumer: o.down,
      consumerInput: "mlp_act",
      producers: [o.up],
      columns: (u) => [u],
      rows: (_p, u) => [u],
      weightsPerUnit: 2 * o.hidden,
    },
  ];
}
