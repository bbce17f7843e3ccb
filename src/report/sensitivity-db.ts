// Reads a sensitivity database (`topiary sensitivity … --out db.json`) for the report's heatmap:
// per linear and candidate setting, the layer-wise loss ‖WX − ŴX‖² and its relative form.
//   { "settings": [{ "id", "method", "sparsity"?, "bits"?, "groupSize"? }],
//     "linears":  [{ "name", "layer", "shape": [out, in], "loss": {id: n}, "relLoss": {id: n}, "bytes": {id: n} }] }
// Only what the heatmap needs is checked; other keys are kept as they are.
import fs from "node:fs";
import { z } from "zod";
import { FormatError } from "../formats/errors.js";

const byId = z.record(z.string(), z.number());
const dbSchema = z.object({
  settings: z.array(z.object({ id: z.string(), method: z.string() }).passthrough()).min(1, "no settings"),
  linears: z
    .array(z.object({ name: z.string(), layer: z.number().int(), shape: z.tuple([z.number(), z.number()]), relLoss: byId, loss: byId.optional(), bytes: byId.optional() }).passthrough())
    .min(1, "no linears"),
});

export type SensitivityDb = z.infer<typeof dbSchema>;

export function readSensitivityDb(file: string): SensitivityDb {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(file, code === "ENOENT" ? "no such sensitivity database" : `not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
  const parsed = dbSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FormatError(file, `not a sensitivity database (${issue.path.join(".") || "top level"}: ${issue.message})`);
  }
  const ids = new Set(parsed.data.settings.map((s) => s.id));
  for (const l of parsed.data.linears) {
    const unknown = Object.keys(l.relLoss).find((k) => !ids.has(k));
    if (unknown !== undefined) throw new FormatError(file, `linear "${l.name}": relLoss names setting "${unknown}", which "settings" does not list`);
  }
  return parsed.data;
}
