import type { Command } from "commander";
import { checkTargets } from "../../compress/registry.js";
import { FormatError } from "../../formats/errors.js";
import { readRecipe } from "../../compress/recipe.js";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { addCalibrationOptions, loadCalibration, type CalibrationFlags } from "../calibration.js";
import { addOutputOptions, writerFromFlags, type OutputFlags } from "../output-flags.js";
import { runJobWithProgress } from "../run-job.js";

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
    const stages = readRecipe(o.recipe);
    const writer = writerFromFlags(o);
    const model = loadModel(dir);
    // a target that matches nothing is a mistake in the recipe: say so under its name, before any work
    const linearNames = Array.from({ length: model.numLayers }, (_, i) => model.linears(i).map((l) => l.name)).flat();
    stages.forEach((s, k) => {
      try {
        checkTargets(s, linearNames, `stage ${k + 1} (${s.method})`);
      } catch (e) {
        model.close();
        throw new FormatError(o.recipe, (e as Error).message);
      }
    });
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
