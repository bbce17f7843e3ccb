import type { Command } from "commander";
import { readRecipe } from "../../compress/recipe.js";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { addCalibrationOptions, loadCalibration, type CalibrationFlags } from "../calibration.js";
import { addOutputOptions, writerFromFlags, type OutputFlags } from "../output-flags.js";
import { runJobWithProgress } from "../run-job.js";
import { hasRecoverStage } from "../../train/recipe.js";
import { runRecipeWithRecovery } from "../recipe-recovery.js";

interface CompressFlags extends CalibrationFlags, OutputFlags {
  recipe: string;
  out: string;
  overwrite?: boolean;
  json?: boolean;
}

export function registerCompress(program: Command): void {
  const cmd = program
    .command("compress")
    .description("apply a recipe: compression stages in order (e.g. SparseGPT 50 % then GPTQ 4-bit)")
    .argument("<model>", "Hugging Face model folder (local path)")
    .requiredOption("--recipe <file>", "YAML or JSON recipe: `stages:` list of { method, targets, ignore, … }")
    .requiredOption("--out <dir>", "output model folder")
    .option("--overwrite", "replace --out if it exists")
    .option("--json", "print a JSON summary");
  addOutputOptions(addCalibrationOptions(cmd), "compressed-tensors").action(async (dir: string, o: CompressFlags) => {
    if (hasRecoverStage(o.recipe)) return runRecipeWithRecovery(dir, o);
    const stages = readRecipe(o.recipe);
    const writer = writerFromFlags(o);
    const model = loadModel(dir);
    const needsCalibration = stages.some((s) => s.compressor.needs !== "none");
    const calibration = needsCalibration ? loadCalibration(o, model, TextTokenizer.load(dir)) : null;
    model.close();
    await runJobWithProgress(
      { modelDir: dir, outDir: o.out, overwrite: o.overwrite, stages, calibration, writer },
      stages.map((s) => s.method),
      Boolean(o.json),
    );
  });
}
