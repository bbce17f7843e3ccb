import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { planRecipe, planRecord, planStage, solveBudget, type BudgetPlan, type BudgetTarget, type Objective } from "../../compress/allocation/budget.js";
import { DEFAULT_GRID, buildSensitivityDatabase, readDatabase, settingsOf, writeDatabase, type SensitivityDatabase } from "../../compress/allocation/sensitivity.js";
import { checkOutputWriter, TOPIARY_VERSION, type OutputWriter } from "../../compress/job.js";
import { checkTargets } from "../../compress/registry.js";
import { readRecipe } from "../../compress/recipe.js";
import { buildStage, type Stage } from "../../compress/registry.js";
import { FormatError } from "../../formats/errors.js";
import { loadModel } from "../../models/load.js";
import type { CausalLM } from "../../models/model.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { addCalibrationOptions, loadCalibration, type CalibrationFlags } from "../calibration.js";
import { UsageError } from "../errors.js";
import { num, int } from "../options.js";
import { addOutputOptions, writerFromFlags, type OutputFlags } from "../output-flags.js";
import { progress } from "../progress.js";
import { runJobWithProgress } from "../run-job.js";
import { hasRecoverStage } from "../../train/recipe.js";
import { runRecipeWithRecovery } from "../recipe-recovery.js";

interface CompressFlags extends CalibrationFlags, OutputFlags {
  recipe?: string;
  targetBytes?: number;
  targetBpw?: number;
  targetSparsity?: number;
  sensitivity?: string;
  buckets: number;
  objective?: string;
  endToEnd?: number;
  out: string;
  overwrite?: boolean;
  json?: boolean;
}

export function registerCompress(program: Command): void {
  const cmd = program
    .command("compress")
    .description("apply a recipe (stages in order), or choose every linear's setting under a size budget (--target-*)")
    .argument("<model>", "Hugging Face model folder (local path)")
    .option("--recipe <file>", "YAML or JSON recipe: `stages:` list of { method, targets, ignore, … }")
    .option("--target-bytes <b>", "budget solver: stored bytes of the decoder linears (≤ 1: fraction of their dense bytes)", num("--target-bytes", 0))
    .option("--target-bpw <b>", "budget solver: stored bits per weight of the decoder linears", num("--target-bpw", 0))
    .option("--target-sparsity <s>", "budget solver: fraction of the decoder linears' weights pruned, each linear its own sparsity", num("--target-sparsity", 0, 1))
    .option("--sensitivity <db.json>", "budget solver: the database of `topiary sensitivity` (default: measured now, saved in --out)")
    .option("--objective <o>", "budget solver: summed absolute | relative layer loss, or kl (end-to-end; default when the database has it, else absolute)")
    .option("--end-to-end <windows>", "budget solver without --sensitivity: calibration windows for the end-to-end KL (default 4)", int("--end-to-end", 1))
    .option("--buckets <n>", "budget solver: the budget's discretisation for the dynamic programme", int("--buckets", 10), 10000)
    .requiredOption("--out <dir>", "output model folder")
    .option("--overwrite", "replace --out if it exists")
    .option("--json", "print a JSON summary");
  addOutputOptions(addCalibrationOptions(cmd), "compressed-tensors").action(async (dir: string, o: CompressFlags) => {
    const targets: BudgetTarget[] = [];
    if (o.targetBytes !== undefined) targets.push({ kind: "bytes", value: o.targetBytes });
    if (o.targetBpw !== undefined) targets.push({ kind: "bpw", value: o.targetBpw });
    if (o.targetSparsity !== undefined) targets.push({ kind: "sparsity", value: o.targetSparsity });
    if (targets.length + (o.recipe ? 1 : 0) !== 1) throw new UsageError("give exactly one of --recipe, --target-bytes, --target-bpw, --target-sparsity");
    if ((o.sensitivity || o.objective || o.endToEnd) && !targets.length) {
      throw new UsageError("--sensitivity, --objective and --end-to-end go with --target-bytes, --target-bpw or --target-sparsity");
    }
    if (o.objective !== undefined && !["absolute", "relative", "kl"].includes(o.objective)) {
      throw new UsageError(`--objective must be absolute, relative or kl, got "${o.objective}"`);
    }
    if (o.recipe && hasRecoverStage(o.recipe)) return runRecipeWithRecovery(dir, o as CompressFlags & { recipe: string });
    let writer = writerFromFlags(o);
    const model = loadModel(dir);
    let stages: Stage[];
    let calibration;
    let record: Record<string, unknown> | undefined;
    try {
      if (o.recipe) {
        stages = readRecipe(o.recipe);
        // a target that matches nothing is a mistake in the recipe: say so under its name, before any work
        const linearNames = Array.from({ length: model.numLayers }, (_, i) => model.linears(i).map((l) => l.name)).flat();
        stages.forEach((s, k) => {
          try {
            checkTargets(s, linearNames, `stage ${k + 1} (${s.method})`);
          } catch (e) {
            throw new FormatError(o.recipe!, (e as Error).message);
          }
        });
        checkOutputWriter(model, dir, stages, writer);
        const needsCalibration = stages.some((s) => s.compressor.needs !== "none" || s.prepare);
        calibration = needsCalibration ? loadCalibration(o, model, TextTokenizer.load(dir)) : null;
      } else {
        if (!o.calib) throw new UsageError("the budget solver needs calibration data (--calib): GPTQ and SparseGPT run on it");
        checkOutputWriter(model, dir, null, writer);
        calibration = loadCalibration(o, model, TextTokenizer.load(dir))!;
        let db: SensitivityDatabase;
        let dbName: string;
        if (o.sensitivity) {
          db = readDatabase(o.sensitivity);
          dbName = o.sensitivity;
          checkDatabase(db, o.sensitivity, model);
        } else {
          const bar = progress(model.numLayers, `sensitivity {bar} layer {value}/{total} | {secs} s/layer | ETA {eta_formatted}`);
          db = await buildSensitivityDatabase({
            model,
            modelDir: path.resolve(dir),
            calibration,
            select: buildStage({ method: "magnitude" }, "sensitivity"),
            settings: settingsOf(DEFAULT_GRID),
            version: TOPIARY_VERSION,
            endToEnd: typeof o.endToEnd === "number" ? o.endToEnd : 4, // the kl objective needs it
            onLayer: (p) => bar.update(p.layer, { secs: p.seconds.toFixed(2) }),
          });
          bar.stop();
          dbName = "sensitivity.json";
        }
        const plan = solveBudget(db, targets[0]!, { buckets: o.buckets, objective: o.objective as Objective | undefined });
        stages = [buildStage(planStage(plan), "budget plan")];
        record = { plan: planRecord(plan, dbName) };
        const recipe = planRecipe(plan, { model: dir, database: dbName });
        writer = withPlanFiles(writer, recipe, o.sensitivity ? null : db);
        if (!o.json) process.stderr.write(planSummary(plan) + "\n");
      }
    } finally {
      model.close();
    }
    await runJobWithProgress(
      { modelDir: dir, outDir: o.out, overwrite: o.overwrite, restart: o.restart, stages, calibration, writer, record },
      stages.map((s) => s.method),
      Boolean(o.json),
    );
  });
}

/** The database must describe this model's linears (names and shapes). */
function checkDatabase(db: SensitivityDatabase, file: string, model: CausalLM): void {
  const shapes = new Map<string, string>();
  for (let i = 0; i < model.numLayers; i++) for (const l of model.linears(i)) shapes.set(l.name, `${l.outFeatures},${l.inFeatures}`);
  for (const l of db.linears) {
    const want = shapes.get(l.name);
    if (!want) throw new FormatError(file, `linear ${l.name} is not in the model (a database of another model?)`);
    if (want !== l.shape.join()) throw new FormatError(file, `linear ${l.name} is [${l.shape.join(", ")}] in the database, [${want.replace(",", ", ")}] in the model`);
  }
}

/** Adds the plan's recipe.yaml (and the database measured for it) to the output folder. */
function withPlanFiles(inner: OutputWriter, recipe: string, db: SensitivityDatabase | null): OutputWriter {
  const write: OutputWriter = async (ctx) => {
    await inner(ctx);
    fs.writeFileSync(path.join(ctx.outDir, "recipe.yaml"), recipe);
    if (db) writeDatabase(path.join(ctx.outDir, "sensitivity.json"), db);
  };
  if (inner.refuses) write.refuses = inner.refuses;
  return write;
}

function planSummary(plan: BudgetPlan): string {
  const counts = new Map<string, number>();
  for (const l of plan.linears) counts.set(l.setting.id, (counts.get(l.setting.id) ?? 0) + 1);
  const mix = [...counts].sort((a, b) => b[1] - a[1]).map(([id, n]) => `${n}× ${id}`).join(", ");
  return (
    `plan: ${plan.cost} of ${plan.budget} ${plan.unit}; linears ${plan.bytes} bytes (${((8 * plan.bytes) / plan.weights).toFixed(3)} bits/weight, ` +
    `dense ${plan.denseBytes}); summed ${plan.objective} loss ${plan.loss.toPrecision(4)}; ${mix}`
  );
}
