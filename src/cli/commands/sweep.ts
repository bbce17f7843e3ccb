// `topiary sweep` runs many compression settings and measures each; `topiary report` rebuilds the
// page from a finished sweep folder. The work is in sweep/ and report/.
import fs from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { sha256File } from "../../compress/job.js";
import { DATASETS, type DatasetKind } from "../../data/text.js";
import { loadModel } from "../../models/load.js";
import { readSensitivityDb } from "../../report/sensitivity-db.js";
import { resultsCsv, readResults, writeTextAtomic, type SweepResults } from "../../sweep/results.js";
import { runSweep } from "../../sweep/run-sweep.js";
import { gridSettings, recipeSettings, type SweepSetting } from "../../sweep/settings.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { addCalibrationOptions, loadCalibration, type CalibrationFlags } from "../calibration.js";
import { UsageError } from "../errors.js";
import { int } from "../options.js";
import { addOutputOptions, writerFromFlags, type OutputFlags } from "../output-flags.js";

interface SweepFlags extends CalibrationFlags, OutputFlags {
  recipes?: string[];
  grid?: string;
  eval: string;
  dataset: string;
  seqlen?: number;
  limitWindows?: number;
  out: string;
  sensitivity?: string;
  decodeSpeed?: boolean;
  decodeTokens: number;
  overwrite?: boolean;
}

export function registerSweep(program: Command): void {
  const cmd = program
    .command("sweep")
    .description("compress with many settings, measure each (perplexity, fidelity, bytes, decode speed) and write results and report.html")
    .argument("<model>", "Hugging Face model folder (local path)")
    .option("--recipes <files...>", "one run per recipe file (YAML or JSON, as for `compress`)")
    .option("--grid <spec>", 'one run per value: "sparsegpt:0.3,0.5,2:4 gptq:3,4 gptq[group_size=128]:4" (pruning methods: sparsity or N:M; quantizers: bits)')
    .requiredOption("--eval <file>", "text to measure perplexity and fidelity on (UTF-8; .jsonl: its \"text\" fields)")
    .option("--dataset <kind>", `how to read --eval: ${DATASETS.join(", ")}`, "plain")
    .option("--seqlen <n>", "evaluation window length (default: the model's length, capped at 2048)", int("--seqlen", 2))
    .option("--limit-windows <k>", "evaluate only the first k windows", int("--limit-windows", 1))
    .requiredOption("--out <dir>", "sweep folder: runs/, results.json, results.csv, report.html (rerunning resumes)")
    .option("--sensitivity <db.json>", "sensitivity database (`topiary sensitivity`) to show as a heatmap")
    .option("--decode-speed", "also measure greedy decode tokens/s of each run's ONNX export in onnxruntime")
    .option("--decode-tokens <n>", "tokens to generate per decode-speed round", int("--decode-tokens", 2), 64)
    .option("--overwrite", "redo runs whose folder was made from other settings (default: refuse)");
  addOutputOptions(addCalibrationOptions(cmd), "compressed-tensors").action(async (dir: string, o: SweepFlags) => {
    if (!o.recipes === !o.grid) throw new UsageError("give either --recipes or --grid (one of them)");
    if (!(DATASETS as readonly string[]).includes(o.dataset)) throw new UsageError(`--dataset must be one of ${DATASETS.join(", ")}, got "${o.dataset}"`);
    const settings: SweepSetting[] = o.recipes ? recipeSettings(o.recipes) : gridSettings(o.grid!);
    const writer = writerFromFlags(o);
    if (!fs.existsSync(o.eval)) throw new UsageError(`${o.eval}: no such file`);
    const db = o.sensitivity ? { data: readSensitivityDb(o.sensitivity), file: path.resolve(o.sensitivity) } : null;
    const needsCalibration = settings.some((s) => s.stages.some((st) => st.compressor.needs !== "none"));
    if (needsCalibration && !o.calib) throw new UsageError(`--calib is needed: ${settings.find((s) => s.stages.some((st) => st.compressor.needs !== "none"))!.id} uses calibration data`);
    const probe = loadModel(dir);
    const calibSeqlen = o.calibSeqlen ?? Math.min(probe.config.maxPositions, 2048);
    probe.close();
    const calibrationKey = o.calib
      ? { file: path.resolve(o.calib), sha256: sha256File(o.calib), nsamples: o.nsamples, seqlen: calibSeqlen, sampling: o.calibSampling, seed: o.seed }
      : null;
    const out = path.resolve(o.out);

    const results = await runSweep({
      modelDir: dir,
      outDir: out,
      settings,
      calibrationKey,
      loadCalibration: () => {
        const model = loadModel(dir);
        try {
          return loadCalibration(o, model, TextTokenizer.load(dir));
        } finally {
          model.close();
        }
      },
      writer,
      outputKey: { format: o.format, dtype: o.dtype ?? null },
      eval: { file: o.eval, dataset: o.dataset as DatasetKind, seqlen: o.seqlen, limitWindows: o.limitWindows },
      decodeTokens: o.decodeSpeed ? o.decodeTokens : null,
      sensitivity: db ? path.relative(out, db.file) : null,
      overwrite: o.overwrite,
      log: (line) => process.stderr.write(`${line}\n`),
    });
    writeTextAtomic(path.join(out, "results.json"), JSON.stringify(results, null, 2) + "\n");
    writeTextAtomic(path.join(out, "results.csv"), resultsCsv(results));
    const page = await (await reportWriter())(out, results, db);
    printSummary(results);
    console.log(`wrote ${path.join(out, "results.json")}, results.csv and ${page}`);
  });

  program
    .command("report")
    .description("rebuild report.html of a sweep folder from its results.json (and sensitivity database)")
    .argument("<dir>", "folder written by `topiary sweep`")
    .option("--sensitivity <db.json>", "sensitivity database to show (default: the one the sweep recorded)")
    .action(async (dir: string, o: { sensitivity?: string }) => {
      const results = readResults(path.join(dir, "results.json"));
      const dbFile = o.sensitivity ?? (results.sensitivity ? path.resolve(dir, results.sensitivity) : null);
      const db = dbFile ? { data: readSensitivityDb(dbFile), file: path.resolve(dbFile) } : null;
      const page = await (await reportWriter())(dir, { ...results, sensitivity: db ? path.relative(path.resolve(dir), db.file) : null }, db);
      console.log(`wrote ${page}`);
    });
}

/** The page writer, loaded only when needed: Vega takes a noticeable time to import, and every CLI command would pay it. */
async function reportWriter() {
  return (await import("../../report/page.js")).writeReport;
}

function printSummary(r: SweepResults): void {
  const rows = [{ id: "original", bytes: r.original.bytes, perplexity: r.original.perplexity, klMean: 0, pareto: false }, ...r.runs];
  const w = Math.max(...rows.map((x) => x.id.length));
  console.log(`${"run".padEnd(w)}  ${"bytes".padStart(11)}  ${"perplexity".padStart(10)}  ${"KL".padStart(8)}`);
  for (const x of rows) {
    console.log(`${x.id.padEnd(w)}  ${x.bytes.toLocaleString("en-US").padStart(11)}  ${x.perplexity.toPrecision(5).padStart(10)}  ${x.klMean.toPrecision(3).padStart(8)}${x.pareto ? "  (Pareto)" : ""}`);
  }
}
