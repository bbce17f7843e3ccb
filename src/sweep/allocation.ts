// Per-linear allocation of a compressed model folder: the sparsity and the weight bits each linear
// got, read from its topiary.json. Sparsity is measured there (`linears.<name>.sparsity`), and
// counts for linears that a stage prunes (all of them when the recipe cannot be read). Bits and
// group size are recorded per linear by plans that mix them (`linears.<name>.bits`/`groupSize`);
// otherwise they follow from the recipe: the last stage with `bits` whose targets match the linear,
// with the same matching the pipeline uses (compress/registry.ts stageTargets).
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { buildStage, stageTargets, type Stage } from "../compress/registry.js";
import { FormatError } from "../formats/errors.js";

export interface LinearAllocation {
  name: string;
  /** decoder layer index (-1 when the name has no `layers.N.`) */
  layer: number;
  /** the name inside its layer: "self_attn.q_proj", "mlp.down_proj" */
  kind: string;
  /**
   * fraction pruned: the measured zeros of a linear some stage prunes; 0 for one no stage prunes
   * (weights a quantizer rounds to zero are not pruned: its format stores them anyway)
   */
  sparsity: number;
  /** weight bits; null when the linear is not quantized */
  bits: number | null;
  /** input columns per quantization group (-1: one grid per row); null when not quantized */
  groupSize: number | null;
}

const linearRecord = z.object({
  sparsity: z.number(),
  bits: z.number().nullable().optional(),
  groupSize: z.number().nullable().optional(),
  group_size: z.number().nullable().optional(),
});
const topiaryJson = z.object({
  recipe: z.array(z.record(z.string(), z.unknown())),
  linears: z.record(z.string(), linearRecord.passthrough()),
});

/** "model.layers.3.mlp.down_proj" → layer 3, kind "mlp.down_proj". */
export function splitLinearName(name: string): { layer: number; kind: string } {
  const m = /(?:^|\.)layers\.(\d+)\.(.+)$/.exec(name);
  return m ? { layer: Number(m[1]), kind: m[2]! } : { layer: -1, kind: name };
}

/** Bits and group size the recipe gives `name`: the last quantizing stage that targets it. */
export function recipeBits(stages: Stage[], name: string): { bits: number; groupSize: number } | null {
  let found: { bits: number; groupSize: number } | null = null;
  for (const s of stages) {
    const bits = s.options.bits;
    if (typeof bits === "number" && stageTargets(s, name)) {
      const g = s.options.group_size;
      found = { bits, groupSize: typeof g === "number" ? g : -1 };
    }
  }
  return found;
}

/** Does some stage prune `name` (a stage whose options set a sparsity or an N:M pattern)? */
function recipePrunes(stages: Stage[], name: string): boolean {
  return stages.some((s) => ("sparsity" in s.options || "pattern" in s.options) && stageTargets(s, name));
}

/** The allocation of every compressed linear of a folder written by runCompression. */
export function readAllocation(modelDir: string): LinearAllocation[] {
  const file = path.join(modelDir, "topiary.json");
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new FormatError(file, `cannot read (${(e as Error).message.split("\n")[0]})`);
  }
  const parsed = topiaryJson.safeParse(raw);
  if (!parsed.success) throw new FormatError(file, `not a topiary.json (${parsed.error.issues[0]?.path.join(".")}: ${parsed.error.issues[0]?.message})`);
  // a plan that records bits per linear needs no recipe to read them; anything else does
  let stages: Stage[] = [];
  let recipeError: string | null = null;
  try {
    stages = parsed.data.recipe.map((r, i) => buildStage(r, `recipe stage ${i + 1}`));
  } catch (e) {
    recipeError = (e as Error).message;
  }
  const linears = Object.entries(parsed.data.linears);
  if (recipeError !== null && linears.some(([, r]) => r.bits === undefined)) throw new FormatError(file, recipeError);
  return linears.map(([name, r]) => {
    const fromRecipe = recipeBits(stages, name);
    const bits = r.bits ?? fromRecipe?.bits ?? null;
    const groupSize = bits === null ? null : (r.groupSize ?? r.group_size ?? fromRecipe?.groupSize ?? -1);
    return { name, ...splitLinearName(name), sparsity: recipeError !== null || recipePrunes(stages, name) ? r.sparsity : 0, bits, groupSize };
  });
}
