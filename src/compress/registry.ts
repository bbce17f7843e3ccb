// The one place that maps a method name to its option schema and Compressor, and turns one
// recipe stage (CLI flags or a YAML/JSON recipe entry) into a validated Stage.
import { z } from "zod";
import type { CalibrationBatch } from "../data/calibration.js";
import { describeZodError } from "../models/config.js";
import type { CausalLM } from "../models/model.js";
import { exactName, MixedCompressor, mixedSchema } from "./allocation/mixed.js";
import { OWL_DEFAULTS, owlAllocation } from "./allocation/owl.js";
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
  // per-linear settings in one pass (allocation/mixed.ts); its entries are built by buildStage
  mixed: { schema: mixedSchema, create: (o: z.infer<typeof mixedSchema>) => new MixedCompressor(mixedEntries(o)) },
};

/** Methods whose per-layer sparsity OWL can allocate. */
const OWL_METHODS = ["magnitude", "wanda", "sparsegpt"];

/** Keys every stage may have, whatever its method. */
const commonSchema = z
  .object({
    method: z.string(),
    /** regexes searched in full linear names ("model.layers.3.mlp.down_proj"); default: all decoder linears */
    targets: z.array(z.string()).default([".*"]),
    ignore: z.array(z.string()).default([]),
    /** compress q/k/v, then o, then gate/up, then down, each group seeing its compressed predecessors */
    true_sequential: z.boolean().default(false),
    /** uniform (default): every linear gets `sparsity`; owl: per-layer sparsity from outlier ratios */
    allocation: z.enum(["uniform", "owl"]).optional(),
    owl_m: z.number().positive().optional(),
    owl_lambda: z.number().min(0).max(0.5).optional(),
  })
  .strict();
const COMMON_KEYS = ["method", "targets", "ignore", "true_sequential", "allocation", "owl_m", "owl_lambda"];

export interface Stage {
  method: string;
  targets: RegExp[];
  ignore: RegExp[];
  trueSequential: boolean;
  compressor: Compressor;
  /** the validated options, as recorded in topiary.json */
  options: Record<string, unknown>;
  /**
   * Work before the stage's pass (OWL's first pass over the dense model): returns the stage to run
   * on `model` instead, and what to record about the allocation in topiary.json.
   */
  prepare?: (model: CausalLM, calibration: CalibrationBatch | null, warn: (m: string) => void) => Promise<{ stage: Stage; record: unknown }>;
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
  let compressor: Compressor;
  try {
    compressor = m.create(options as never);
  } catch (e) {
    throw new Error(`${where} (${method}): ${(e as Error).message}`);
  }
  // a mixed stage targets exactly the linears it lists
  const targets = compressor instanceof MixedCompressor ? compressor.names().map(exactName) : c.data.targets;
  const stage: Stage = {
    method,
    targets: targets.map((t) => compileRegex(t, where)),
    ignore: c.data.ignore.map((t) => compileRegex(t, where)),
    trueSequential: c.data.true_sequential,
    compressor,
    options: { ...stripUndefined(c.data), ...options },
  };
  if ((c.data.owl_m !== undefined || c.data.owl_lambda !== undefined) && c.data.allocation !== "owl") {
    throw new Error(`${where}: owl_m and owl_lambda need allocation: owl`);
  }
  if (c.data.allocation === "owl") {
    stage.prepare = owlPrepare(stage, options, { m: c.data.owl_m ?? OWL_DEFAULTS.m, lambda: c.data.owl_lambda ?? OWL_DEFAULTS.lambda }, where);
  }
  return stage;
}

function stripUndefined(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}

/** The entries of a mixed stage, each validated as a stage of its own method. */
function mixedEntries(o: z.infer<typeof mixedSchema>): Map<string, Compressor> {
  const entries = Object.entries(o.linears);
  if (entries.length === 0) throw new Error("lists no linear");
  return new Map(
    entries.map(([name, raw]) => {
      const extra = Object.keys(raw).filter((k) => COMMON_KEYS.includes(k) && k !== "method");
      if (extra.length > 0) throw new Error(`linear ${name}: key "${extra[0]}" belongs to a stage, not to one linear`);
      if (raw.method === "mixed") throw new Error(`linear ${name}: a mixed stage cannot nest another`);
      return [name, buildStage(raw, `linear ${name}`).compressor];
    }),
  );
}

/**
 * OWL: measure the layers' outlier ratios on the dense model (the model this stage starts from),
 * then run one mixed stage in which every linear of layer i has sparsity s_i.
 */
function owlPrepare(stage: Stage, options: Record<string, unknown>, owl: { m: number; lambda: number }, where: string): NonNullable<Stage["prepare"]> {
  if (!OWL_METHODS.includes(stage.method)) throw new Error(`${where}: allocation owl needs method ${OWL_METHODS.join(", ")}, not ${stage.method}`);
  if (options.pattern !== undefined && options.pattern !== "unstructured") {
    throw new Error(`${where}: allocation owl allocates unstructured sparsity, not pattern ${String(options.pattern)}`);
  }
  if (options.bits !== undefined) throw new Error(`${where}: allocation owl with joint quantization (bits) is not supported`);
  const target = options.sparsity as number;
  return async (model, calibration, warn) => {
    if (!calibration) throw new Error(`${where}: allocation owl measures outlier ratios on calibration data (--calib)`);
    const layers = await owlAllocation(model, calibration, stage, target, owl, warn);
    const linears: Record<string, Record<string, unknown>> = {};
    for (const l of layers) for (const name of l.linears) linears[name] = { ...options, method: stage.method, sparsity: l.sparsity };
    const mixed = buildStage({ method: "mixed", linears, true_sequential: stage.trueSequential }, where);
    return {
      stage: { ...mixed, options: stage.options },
      record: { method: "owl", m: owl.m, lambda: owl.lambda, target, layers: layers.map(({ layer, outlierRatio, sparsity }) => ({ layer, outlierRatio, sparsity })) },
    };
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
