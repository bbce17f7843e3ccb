// The structure groups of a model (models/structure.ts) as the structured-pruning methods use them.
import type { CausalLM } from "../../models/model.js";
import type { UnitGroup } from "../../models/structure.js";

export type { KeptUnits, UnitGroup, UnitKind } from "../../models/structure.js";

/** The units of layer i, or a clear error when the family has no structure hooks. */
export function unitsOf(model: CausalLM, i: number): UnitGroup[] {
  const s = model.family.structure;
  if (!s) throw new Error(`structured pruning of ${model.config.architecture} is not supported yet (its adapter has no structure groups)`);
  return s.units(model.config, i);
}

/**
 * The consumer columns kept by `kept` units of `group`, ascending: the smaller matrix keeps the
 * original order (for a fused producer, GPT-2's q|k|v rows, that keeps q'|k'|v' blocks).
 */
export function keptColumns(group: UnitGroup, kept: readonly number[]): number[] {
  return kept.flatMap((u) => group.columns(u)).sort((a, b) => a - b);
}

/** The producer rows kept by `kept` units of `group`, ascending (see keptColumns). */
export function keptRows(group: UnitGroup, producer: string, kept: readonly number[]): number[] {
  return kept.flatMap((u) => group.rows(producer, u)).sort((a, b) => a - b);
}
