// A recipe is data: a YAML or JSON file listing compression stages, applied in order (as
// llm-compressor recipes are). Each stage is validated by its method's strict schema, so a typo
// is an error naming the file, the stage and the key.
//
//   stages:
//     - method: sparsegpt
//       sparsity: 0.5
//     - method: gptq
//       bits: 4
//       group_size: 128
//
// A bare list of stages is accepted too.
import fs from "node:fs";
import YAML from "yaml";
import { z } from "zod";
import { FormatError } from "../formats/errors.js";
import { describeZodError } from "../models/config.js";
import { buildStage, type Stage } from "./registry.js";

const recipeSchema = z.object({ stages: z.array(z.record(z.string(), z.unknown())).min(1, "a recipe needs at least one stage") }).strict();

export function parseRecipe(text: string, file: string): Stage[] {
  let data: unknown;
  try {
    data = file.endsWith(".json") ? JSON.parse(text) : YAML.parse(text);
  } catch (e) {
    throw new FormatError(file, `not valid ${file.endsWith(".json") ? "JSON" : "YAML"} (${(e as Error).message.split("\n")[0]})`);
  }
  if (Array.isArray(data)) data = { stages: data };
  if (typeof data === "object" && data !== null) {
    const unknown = Object.keys(data).filter((k) => k !== "stages");
    if (unknown.length > 0) throw new FormatError(file, `unknown key "${unknown[0]}" (a recipe is \`stages:\` followed by a list of stages)`);
  }
  const parsed = recipeSchema.safeParse(data);
  if (!parsed.success) throw new FormatError(file, describeZodError(parsed.error));
  return parsed.data.stages.map((raw, i) => {
    if (raw.sparsity !== undefined && raw.pattern !== undefined) throw new FormatError(file, `stage ${i + 1}: give sparsity or pattern, not both`);
    try {
      return buildStage(raw, `stage ${i + 1}`);
    } catch (e) {
      throw new FormatError(file, (e as Error).message);
    }
  });
}

export function readRecipe(file: string): Stage[] {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(file, code === "ENOENT" ? "no such recipe file" : `cannot read (${code})`);
  }
  return parseRecipe(text, file);
}
