import path from "node:path";
import type { Command } from "commander";
import { DEFAULT_GRID, GPTQ_VARIANTS, buildSensitivityDatabase, settingsOf, type SensitivityDatabase, type Setting, type SettingGrid } from "../../compress/allocation/sensitivity.js";
import { TOPIARY_VERSION } from "../../compress/job.js";
import { buildStage } from "../../compress/registry.js";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { addCalibrationOptions, loadCalibration, type CalibrationFlags } from "../calibration.js";
import { UsageError } from "../errors.js";
import { int } from "../options.js";
import { progress } from "../progress.js";

interface SensitivityFlags extends CalibrationFlags {
  out: string;
  sparsities: string;
  patterns: string;
  bits: string;
  groupSizes: string;
  gptqVariants: string;
  targets?: string[];
  ignore?: string[];
  endToEnd?: number | true;
  json?: boolean;
}

const list = (flag: string, v: string, ok: (x: string) => boolean): string[] => {
  const items = v.split(",").map((s) => s.trim()).filter((s) => s !== "" && s !== "none");
  for (const x of items) if (!ok(x)) throw new UsageError(`${flag}: invalid entry "${x}" in "${v}"`);
  return items;
};

export function registerSensitivity(program: Command): void {
  const cmd = program
    .command("sensitivity")
    .description("per-linear loss and stored bytes of every candidate setting, in one pass over the dense model (for --target-* of compress)")
    .argument("<model>", "Hugging Face model folder (local path)")
    .requiredOption("--out <file>", "the database (JSON); rewritten after every layer, resumed when a partial one of the same run exists")
    .option("--sparsities <list>", "SparseGPT sparsities", DEFAULT_GRID.sparsities.join(","))
    .option("--patterns <list>", "SparseGPT N:M patterns (none: no pattern)", DEFAULT_GRID.patterns.join(","))
    .option("--bits <list>", "GPTQ bit widths", DEFAULT_GRID.bits.join(","))
    .option("--group-sizes <list>", "GPTQ group sizes (-1: one grid per output row)", DEFAULT_GRID.groupSizes.join(","))
    .option("--gptq-variants <list>", `GPTQ variants of every bits × group size: ${GPTQ_VARIANTS.join(", ")}`, DEFAULT_GRID.gptqVariants.join(","))
    .option("--targets <regex...>", "only linears whose name matches (default: every decoder linear)")
    .option("--ignore <regex...>", "skip linears whose name matches")
    .option("--end-to-end [windows]", "also the KL to the original when only that linear is compressed, on the first calibration windows (default 4)", int("--end-to-end", 1))
    .option("--json", "print a JSON summary");
  addCalibrationOptions(cmd).action(async (dir: string, o: SensitivityFlags) => {
    const fraction = (x: string) => Number.isFinite(Number(x)) && Number(x) > 0 && Number(x) < 1;
    const grid = {
      sparsities: list("--sparsities", o.sparsities, fraction).map(Number),
      patterns: list("--patterns", o.patterns, (x) => /^\d+:\d+$/.test(x)),
      bits: list("--bits", o.bits, (x) => ["2", "3", "4", "8"].includes(x)).map(Number),
      groupSizes: list("--group-sizes", o.groupSizes, (x) => x === "-1" || (Number.isInteger(Number(x)) && Number(x) > 0)).map(Number),
      gptqVariants: list("--gptq-variants", o.gptqVariants, (x) => (GPTQ_VARIANTS as readonly string[]).includes(x)) as SettingGrid["gptqVariants"],
    };
    const settings: Setting[] = settingsOf(grid);
    // validates every setting (e.g. an N:M pattern with N ≥ M) before the pass starts
    for (const s of settings) if (s.method) buildStage({ method: s.method, ...(s.pattern ? { pattern: s.pattern } : {}) }, `setting ${s.id}`);
    const select = buildStage({ method: "magnitude", ...(o.targets ? { targets: o.targets } : {}), ...(o.ignore ? { ignore: o.ignore } : {}) }, "sensitivity");
    if (!o.calib) throw new UsageError("topiary sensitivity needs calibration data (--calib)");
    const model = loadModel(dir);
    try {
      const calibration = loadCalibration(o, model, TextTokenizer.load(dir))!;
      const bar = progress(model.numLayers, `sensitivity {bar} layer {value}/{total} | {secs} s/layer | ETA {eta_formatted}`);
      const t0 = performance.now();
      const db: SensitivityDatabase = await buildSensitivityDatabase({
        model,
        modelDir: path.resolve(dir),
        calibration,
        select,
        settings,
        out: o.out,
        version: TOPIARY_VERSION,
        endToEnd: o.endToEnd === true ? 4 : o.endToEnd,
        warn: (m) => process.stderr.write(`topiary: warning: ${m}\n`),
        onLayer: (p) => bar.update(p.layer, { secs: p.seconds.toFixed(2) }),
      });
      bar.stop();
      const seconds = (performance.now() - t0) / 1000;
      if (o.json) console.log(JSON.stringify({ out: o.out, linears: db.linears.length, settings: settings.length, seconds }));
      else console.log(`sensitivity: ${db.linears.length} linears × ${settings.length} settings; wrote ${o.out} in ${seconds.toFixed(1)} s`);
    } finally {
      model.close();
    }
  });
}
