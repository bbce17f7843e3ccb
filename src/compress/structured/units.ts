// Structure groups: the rows and columns that structured pruning removes together.
//
// A unit is the smallest piece of a decoder layer that can be cut out while leaving a smaller
// dense layer behind:
//   - an attention unit is one KV group: a KV head and the query heads that share it — its rows
//     of q/k/v (the "producers") and the matching input columns of o_proj (the "consumer");
//   - an MLP unit is one intermediate channel: its gate/up rows and its down_proj column.
// Scores (FLAP, Wanda-sp) are computed on the consumer's input columns, which every family has;
// the producers only lose rows. Families describe their units through `UnitGroup`, so the
// methods in this folder never ask which architecture they prune.
import type { ModelConfig } from "../../models/config.js";
import type { CaptureName } from "../../models/llama.js";

export type UnitKind = "attention" | "mlp";

export interface UnitGroup {
  kind: UnitKind;
  /** units in this layer (KV groups; MLP channels) */
  count: number;
  /** suffix of the linear that reads the units' outputs (o_proj, down_proj) */
  consumer: string;
  /** the captured activation that is the consumer's input */
  consumerInput: CaptureName;
  /** suffixes of the linears whose output rows belong to the units (q/k/v; gate/up) */
  producers: string[];
  /** consumer input columns of unit u, ascending */
  columns(u: number): number[];
  /** output rows of unit u in `producer`, ascending */
  rows(producer: string, u: number): number[];
  /** decoder-linear weights removed with one unit (biases not counted) */
  weightsPerUnit: number;
}

const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);

/** Llama-family units (Llama, Mistral, Qwen2): KV groups and SwiGLU channels. */
export function llamaUnits(c: ModelConfig): UnitGroup[] {
  const hd = c.headDim;
  const rep = c.numHeads / c.numKvHeads;
  const D = c.hiddenSize;
  const attention: UnitGroup = {
    kind: "attention",
    count: c.numKvHeads,
    consumer: "self_attn.o_proj",
    consumerInput: "attn_out",
    producers: ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"],
    columns: (u) => range(u * rep * hd, (u + 1) * rep * hd),
    rows: (p, u) => (p === "self_attn.q_proj" ? range(u * rep * hd, (u + 1) * rep * hd) : range(u * hd, (u + 1) * hd)),
    weightsPerUnit: (2 * rep * hd + 2 * hd) * D,
  };
  const mlp: UnitGroup = {
    kind: "mlp",
    count: c.intermediateSize,
    consumer: "mlp.down_proj",
    consumerInput: "mlp_act",
    producers: ["mlp.gate_proj", "mlp.up_proj"],
    columns: (u) => [u],
    rows: (_p, u) => [u],
    weightsPerUnit: 3 * D,
  };
  return [attention, mlp];
}

/** Which units of each group a layer keeps (ascending indices), by group kind. */
export type KeptUnits = Record<UnitKind, number[]>;

/** The consumer columns kept by `kept` units of `group`, ascending. */
export function keptColumns(group: UnitGroup, kept: readonly number[]): number[] {
  return kept.flatMap((u) => group.columns(u));
}

/** The producer rows kept by `kept` units of `group`, ascending. */
export function keptRows(group: UnitGroup, producer: string, kept: readonly number[]): number[] {
  return kept.flatMap((u) => group.rows(producer, u));
}
