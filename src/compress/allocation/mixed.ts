// One stage that compresses each linear with its own setting: what OWL (per-layer sparsity) and
// the budget solver (per-linear sparsity / bits / group size) hand to the pipeline.
//
//   stages:
//     - method: mixed
//       linears:
//         model.layers.0.self_attn.q_proj: { method: gptq, bits: 3, group_size: 128 }
//         model.layers.0.mlp.down_proj:    { method: gptq, bits: 4, group_size: 32 }
//
// Why one stage and not one stage per linear: every stage is a full sequential pass over the
// calibration data, so N per-linear stages would cost N passes, and each linear would be fitted to
// predecessors compressed by some stages but not by the later ones. One mixed stage is one pass in
// which every linear sees all its predecessors compressed, as in the plain sequential pipeline.
// Linears not listed are left as they are.
import { z } from "zod";
import type { Tensor } from "../../tensor/tensor.js";
import type { Compressor, LayerStats, StatsNeed } from "../compressor.js";
import type { CompressedLinear } from "../../formats/compressed-linear.js";

export const mixedSchema = z
  .object({
    /** linear name → its stage (a method and that method's keys; no targets/ignore) */
    linears: z.record(z.string(), z.record(z.string(), z.unknown())),
  })
  .strict();

const NEED_ORDER: StatsNeed[] = ["none", "diag", "hessian"];

export class MixedCompressor implements Compressor {
  readonly name = "mixed";
  readonly needs: StatsNeed;

  constructor(private readonly byLinear: ReadonlyMap<string, Compressor>) {
    // the statistics of the most demanding method: H also answers diag()
    let k = 0;
    for (const c of byLinear.values()) k = Math.max(k, NEED_ORDER.indexOf(c.needs));
    this.needs = NEED_ORDER[k]!;
  }

  /** The linears this stage compresses (its targets). */
  names(): string[] {
    return [...this.byLinear.keys()];
  }

  async compress(name: string, W: Tensor, stats: LayerStats | null): Promise<CompressedLinear> {
    const c = this.byLinear.get(name);
    if (!c) throw new Error(`mixed stage: no setting for linear ${name}`);
    return c.compress(name, W, c.needs === "none" ? null : stats);
  }
}

/** A regex that matches exactly `name` (searched with RegExp.test, as stage targets are). */
export function exactName(name: string): string {
  return `^${name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}$`;
}
