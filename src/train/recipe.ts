// `recover` as a recipe stage: a recipe is cut at its recover stages into segments, compression
// segments (run by compress/job.ts as before) and recovery segments (train/job.ts), each reading the
// previous segment's output. The teacher of a recover stage is the model the recipe started from.
//
//   stages:
//     - method: sparsegpt
//       sparsity: 0.5
//     - method: recover        # keys as the `topiary recover` flags, snake_case
//       steps: 300
//       loss: kl
//     - method: gptq
//       bits: 4
import fs from "node:fs";
import YAML from "yaml";
import { z } from "zod";
import { buildStage, type Stage } from "../compress/registry.js";
import { FormatError } from "../formats/errors.js";
import { describeZodError } from "../models/config.js";
import { LOSS_KINDS } from "./head-loss.js";

const recoverStageSchema = z
  .object({
    method: z.literal("recover"),
    mode: z.enum(["masked", "lora", "layerwise"]).default("masked"),
    /** training text; default: the --calib file */
    data: z.string().optional(),
    loss: z.enum(LOSS_KINDS as [string, ...string[]]).default("kl"),
    temperature: z.number().positive().default(1),
    steps: z.number().int().min(1).default(300),
    batch: z.number().int().min(1).default(8),
    seqlen: z.number().int().min(2).default(256),
    lr: z.number().min(0).default(1e-3),
    warmup: z.number().int().min(0).default(10),
    weight_decay: z.number().min(0).default(0),
    clip: z.number().min(0).default(0),
    seed: z.number().int().min(0).default(0),
    rank: z.number().int().min(1).default(8),
    alpha: z.number().min(0).default(16),
  })
  .strict();

export type RecoverStage = z.infer<typeof recoverStageSchema>;

export type RecipeSegment = { kind: "compress"; stages: Stage[] } | { kind: "recover"; stage: RecoverStage };

/** Reads a recipe and cuts it at its recover stages (a recipe without one is one compress segment). */
export function readRecipeSegments(file: string): RecipeSegment[] {
  let data: unknown;
  try {
    const text = fs.readFileSync(file, "utf8");
    data = file.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(file, code === "ENOENT" ? "no such recipe file" : `cannot read (${(e as Error).message.split("\n")[0]})`);
  }
  const raw = Array.isArray(data) ? data : (data as { stages?: unknown } | null)?.stages;
  if (!Array.isArray(raw) || raw.length === 0) throw new FormatError(file, "a recipe needs a non-empty `stages:` list");
  const segments: RecipeSegment[] = [];
  raw.forEach((stage: Record<string, unknown>, i) => {
    const where = `stage ${i + 1}`;
    if (stage?.method === "recover") {
      const r = recoverStageSchema.safeParse(stage);
      if (!r.success) throw new FormatError(file, `${where} (recover): ${describeZodError(r.error)}`);
      segments.push({ kind: "recover", stage: r.data });
      return;
    }
    let built: Stage;
    try {
      built = buildStage(stage, where);
    } catch (e) {
      throw new FormatError(file, (e as Error).message);
    }
    const last = segments.at(-1);
    if (last?.kind === "compress") last.stages.push(built);
    else segments.push({ kind: "compress", stages: [built] });
  });
  return segments;
}

/** Whether a recipe file has a recover stage (cheap: no validation). */
export function hasRecoverStage(file: string): boolean {
  try {
    const text = fs.readFileSync(file, "utf8");
    const data = file.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
    const raw = Array.isArray(data) ? data : data?.stages;
    return Array.isArray(raw) && raw.some((s: { method?: unknown }) => s?.method === "recover");
  } catch {
    return false;
  }
}
