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
