// The one place that maps a method name to its option schema and Compressor, and turns one
// recipe stage (CLI flags or a YAML/JSON recipe entry) into a validated Stage.
import { z } from "zod";
import { describeZodError } from "../models/config.js";
import type { Compressor } from "./compressor.js";
import { MagnitudeCompressor, magnitudeSchema, WandaCompressor, wandaSchema } from "./prune/compressors.js";
import { createSparseGPT, GPTQCompressor, gptqSchema, jointSchema } from "./quant/compressors.js";
import { rtnMethod } from "./quant/rtn.js";

interface Method {
  schema: z.ZodType;
  create(options: never): Compressor;
}

const METHODS: Record<string, Method> = {
  magnitude: { schema: magnitudeSchema, create: (o: z.infer<typeof magnitudeSchema>) => new MagnitudeCompressor(o) },
  wanda: { schema: wandaSchema, create: (o: z.infer<typeof wandaSchema>) => new WandaCompressor(o) },
  sparsegpt: { schema: jointSchema, create: (o: z.infer<typeof jointSchema>) => createSparseGPT(o) },
  rtn: rtnMethod,
  gptq: { schema: gptqSchema, create: (o: z.infer<typeof gptqSchema>) => new GPTQCompressor(o) },
};

/** Keys every stage may have, whatever its method. */
const commonSchema = z
  .object({
    method: z.string(),
    /** regexes searched in full linear names ("model.layers.3.mlp.down_proj"); default: all decoder linears */
    targets: z.array(z.string()).default([".*"]),
    ignore: z.array(z.string()).default([]),
    /** compress q/k/v, then o, then gate/up, then down, each group seeing its compressed predecessors */
    true_sequential: z.boolean().default(false),
  })
  .strict();
const COMMON_KEYS = ["method", "targets", "ignore", "true_sequential"];

export interface Stage {
  method: string;
  targets: RegExp[];
  ignore: RegExp[];
  trueSequential: boolean;
  compressor: Compressor;
  /** the validated options, as recorded in topiary.json */
  options: Record<string, unknown>;
}

function compileRegex(src: string, where: string): RegExp {
  try {
    return new RegExp(src);
  } catch (e) {
    throw new Error(`${where}: invalid regex ${JSON.stringify(src)} (${(e as Error).message})`);
  }
}

/** Validates one stage; `where` names it in errors ("recipe.yaml stage 2", "command line"). */
export function buildStage(raw: Record<string, unknown>, where: string): Stage {
  const method = raw.method;
  if (typeof method !== "string" || !METHODS[method]) {
    throw new Error(`${where}: unknown method ${JSON.stringify(method)} (known: ${Object.keys(METHODS).join(", ")})`);
  }
  const common: Record<string, unknown> = {};
  const specific: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) (COMMON_KEYS.includes(k) ? common : specific)[k] = v;
  const c = commonSchema.safeParse(common);
  if (!c.success) throw new Error(`${where}: ${describeZodError(c.error)}`);
  const m = METHODS[method]!;
  const o = m.schema.safeParse(specific);
  if (!o.success) throw new Error(`${where} (${method}): ${describeZodError(o.error)}`);
  const options = o.data as Record<string, unknown>;
  return {
    method,
    targets: c.data.targets.map((t) => compileRegex(t, where)),
    ignore: c.data.ignore.map((t) => compileRegex(t, where)),
    trueSequential: c.data.true_sequential,
    compressor: m.create(options as never),
    options: { ...c.data, ...options },
  };
}

/** Does `stage` compress the linear called `name`? */
export function stageTargets(stage: Stage, name: string): boolean {
  return stage.targets.some((r) => r.test(name)) && !stage.ignore.some((r) => r.test(name));
}

/** Throws when a target regex matches none of the model's linears (almost always a typo). */
export function checkTargets(stage: Stage, linearNames: string[], where: string): void {
  for (const r of stage.targets) {
    if (!linearNames.some((n) => r.test(n))) {
      throw new Error(`${where}: target ${JSON.stringify(r.source)} matches no linear layer (e.g. ${linearNames[0]})`);
    }
  }
  if (!linearNames.some((n) => stageTargets(stage, n))) throw new Error(`${where}: targets and ignore leave no linear layer to compress`);
}
