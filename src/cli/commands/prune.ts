import type { Command } from "commander";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { addCalibrationOptions, loadCalibration, type CalibrationFlags } from "../calibration.js";
import { num, int } from "../options.js";
import { addOutputOptions, writerFromFlags, type OutputFlags } from "../output-flags.js";
import { runJobWithProgress } from "../run-job.js";
import { stageFromFlags } from "../stage-flags.js";
import { UsageError } from "../errors.js";

interface PruneFlags extends CalibrationFlags, OutputFlags {
  bits?: number;
  sym?: boolean;
  method: string;
  sparsity?: number;
  pattern?: string;
  magnitudeScope: string;
  blocksize: number;
  dampening: number;
  targets?: string[];
  ignore?: string[];
  trueSequential?: boolean;
  out: string;
  overwrite?: boolean;
  json?: boolean;
}

export function registerPrune(program: Command): void {
  const cmd = program
    .command("prune")
    .description("one-shot pruning (magnitude, Wanda, SparseGPT), layer by layer")
    .argument("<model>", "Hugging Face model folder (local path)")
    .requiredOption("--method <m>", "magnitude | wanda | sparsegpt")
    .option("--sparsity <s>", "fraction of weights to prune, in [0, 1) (default 0.5)", num("--sparsity"))
    .option("--pattern <N:M>", "N:M sparsity: N of every M consecutive inputs pruned (e.g. 2:4, 4:8)")
    .option("--magnitude-scope <scope>", "magnitude threshold per matrix (layer) or per output row (row)", "layer")
    .option("--blocksize <n>", "SparseGPT columns per block", int("--blocksize", 1), 128)
    .option("--dampening <f>", "SparseGPT: fraction of mean(diag H) added to the diagonal", num("--dampening", 0), 0.01)
    .option("--targets <regex...>", "compress only linears whose name matches (default: every decoder linear)")
    .option("--ignore <regex...>", "skip linears whose name matches")
    .option("--true-sequential", "compress q/k/v, then o, then gate/up, then down, each after its predecessors")
    .option("--bits <b>", "SparseGPT only: quantize while pruning (joint), 2 | 3 | 4 | 8, one asymmetric grid per output row", int("--bits", 1))
    .option("--sym", "with --bits: symmetric grid")
    .requiredOption("--out <dir>", "output model folder")
    .option("--overwrite", "replace --out if it exists")
    .option("--json", "print a JSON summary");
  addOutputOptions(addCalibrationOptions(cmd), "dense").action(async (dir: string, opts: PruneFlags) => {
    if (opts.sparsity !== undefined && opts.pattern !== undefined) throw new UsageError("give --sparsity or --pattern, not both");
    if (opts.bits !== undefined && opts.method !== "sparsegpt") throw new UsageError("--bits (joint quantization) needs --method sparsegpt");
    const raw: Record<string, unknown> = { method: opts.method };
    if (opts.sparsity !== undefined) raw.sparsity = opts.sparsity;
    if (opts.pattern !== undefined) raw.pattern = opts.pattern;
    if (opts.method === "magnitude") raw.scope = opts.magnitudeScope;
    if (opts.method === "sparsegpt") Object.assign(raw, { blocksize: opts.blocksize, dampening: opts.dampening });
    if (opts.bits !== undefined) Object.assign(raw, { bits: opts.bits, sym: Boolean(opts.sym) });
    if (opts.targets) raw.targets = opts.targets;
    if (opts.ignore) raw.ignore = opts.ignore;
    if (opts.trueSequential) raw.true_sequential = true;
    const stage = stageFromFlags(raw, "prune");
    const writer = writerFromFlags(opts);
    const model = loadModel(dir);
    const calibration = stage.compressor.needs === "none" ? null : loadCalibration(opts, model, TextTokenizer.load(dir));
    model.close();
    await runJobWithProgress({ modelDir: dir, outDir: opts.out, overwrite: opts.overwrite, stages: [stage], calibration, writer }, [stage.method], Boolean(opts.json));
  });
}
