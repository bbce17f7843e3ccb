import type { Command } from "commander";
import { runStructured, STRUCTURED_METHODS } from "../../compress/structured/job.js";
import type { StructuredMethod } from "../../compress/structured/plan.js";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { addCalibrationOptions, loadCalibration, type CalibrationFlags } from "../calibration.js";
import { num, int } from "../options.js";
import { addOutputOptions, writerFromFlags, type OutputFlags } from "../output-flags.js";
import { runJobWithProgress } from "../run-job.js";
import { checkOutputWriter } from "../../compress/job.js";
import { stageFromFlags } from "../stage-flags.js";
import { UsageError } from "../errors.js";
import { progress, type ProgressReporter } from "../progress.js";

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
  allocation: string;
  owlM?: number;
  owlLambda?: number;
  out: string;
  overwrite?: boolean;
  json?: boolean;
  reconstruct?: boolean;
  uniform?: boolean;
  dropLayers?: number;
  multipleOf?: number;
}

export function registerPrune(program: Command): void {
  const cmd = program
    .command("prune")
    .description("one-shot pruning (magnitude, Wanda, SparseGPT), layer by layer")
    .argument("<model>", "Hugging Face model folder (local path)")
    .requiredOption("--method <m>", "magnitude | wanda | sparsegpt (zeros); flap | wanda-sp | obs-sp (structured: a smaller dense model)")
    .option("--sparsity <s>", "fraction of weights to prune, in [0, 1) (default 0.5; structured: of the decoder-linear weights removed)", num("--sparsity"))
    .option("--pattern <N:M>", "N:M sparsity: N of every M consecutive inputs pruned (e.g. 2:4, 4:8)")
    .option("--magnitude-scope <scope>", "magnitude threshold per matrix (layer) or per output row (row)", "layer")
    .option("--blocksize <n>", "SparseGPT columns per block", int("--blocksize", 1), 128)
    .option("--dampening <f>", "SparseGPT: fraction of mean(diag H) added to the diagonal", num("--dampening", 0), 0.01)
    .option("--targets <regex...>", "compress only linears whose name matches (default: every decoder linear)")
    .option("--ignore <regex...>", "skip linears whose name matches")
    .option("--true-sequential", "compress q/k/v, then o, then gate/up, then down, each after its predecessors")
    .option("--bits <b>", "SparseGPT only: quantize while pruning (joint), 2 | 3 | 4 | 8, one asymmetric grid per output row", int("--bits", 1))
    .option("--sym", "with --bits: symmetric grid")
    .option("--reconstruct", "structured (flap, wanda-sp): refit o_proj/down_proj by least squares after choosing (obs-sp always does)")
    .option("--uniform", "structured (flap, obs-sp): the same widths in every layer (a standard config every runtime loads)")
    .option("--drop-layers <k>", "structured: also remove the k decoder blocks whose output is most similar to their input", int("--drop-layers", 0))
    .option("--multiple-of <m>", "structured: kept MLP channels (and KV groups, where o_proj's input would not be) per layer a multiple of m, e.g. 32 for llama.cpp q4_0 / ONNX MatMulNBits, 256 for k-quants", int("--multiple-of", 1))
    .option("--allocation <a>", "uniform (every layer --sparsity) | owl (per-layer sparsity from outlier ratios, mean = --sparsity)", "uniform")
    .option("--owl-m <m>", "OWL: a score is an outlier above M × its layer's mean (default 5)", num("--owl-m", 0))
    .option("--owl-lambda <l>", "OWL: layer sparsities span 2λ, their mean --sparsity (default 0.08)", num("--owl-lambda", 0))
    .requiredOption("--out <dir>", "output model folder")
    .option("--overwrite", "replace --out if it exists")
    .option("--json", "print a JSON summary");
  addOutputOptions(addCalibrationOptions(cmd), "dense").action(async (dir: string, opts: PruneFlags) => {
    if ((STRUCTURED_METHODS as readonly string[]).includes(opts.method)) return pruneStructured(dir, opts);
    for (const flag of ["reconstruct", "uniform", "dropLayers", "multipleOf"] as const) {
      if (opts[flag] !== undefined) throw new UsageError(`--${flag.replace(/[A-Z]/g, (c) => "-" + c.toLowerCase())} is for structured methods (${STRUCTURED_METHODS.join(", ")})`);
    }
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
    if (opts.allocation !== "uniform" && opts.allocation !== "owl") throw new UsageError(`--allocation must be uniform or owl, got "${opts.allocation}"`);
    if (opts.allocation === "owl") raw.allocation = "owl";
    if (opts.owlM !== undefined) raw.owl_m = opts.owlM;
    if (opts.owlLambda !== undefined) raw.owl_lambda = opts.owlLambda;
    const stage = stageFromFlags(raw, "prune");
    const writer = writerFromFlags(opts);
    const model = loadModel(dir);
    checkOutputWriter(model, dir, [stage], writer);
    const calibration = stage.compressor.needs === "none" && !stage.prepare ? null : loadCalibration(opts, model, TextTokenizer.load(dir));
    model.close();
    await runJobWithProgress({ modelDir: dir, outDir: opts.out, overwrite: opts.overwrite, restart: opts.restart, stages: [stage], calibration, writer }, [stage.method], Boolean(opts.json));
  });
}

/** flap | wanda-sp | obs-sp: whole heads and channels (and blocks) removed, a smaller dense model written. */
async function pruneStructured(dir: string, opts: PruneFlags): Promise<void> {
  for (const [flag, set] of [["--pattern", opts.pattern], ["--bits", opts.bits], ["--targets", opts.targets], ["--ignore", opts.ignore], ["--true-sequential", opts.trueSequential], ["--owl-m", opts.owlM], ["--owl-lambda", opts.owlLambda]] as const) {
    if (set !== undefined) throw new UsageError(`${flag} is not supported with structured pruning (--method ${opts.method}): every layer is pruned`);
  }
  if (opts.allocation !== "uniform") throw new UsageError(`--allocation ${opts.allocation} is for unstructured pruning; structured methods allocate per layer themselves (flap, obs-sp)`);
  if (opts.format !== "dense") throw new UsageError(`--format ${opts.format}: structured pruning writes a smaller dense model (--format dense)`);
  if (!opts.calib) throw new UsageError(`--method ${opts.method} needs calibration text (--calib)`);
  const ratio = opts.sparsity ?? 0.5;
  if (!(ratio >= 0 && ratio < 1)) throw new UsageError(`--sparsity ${ratio} must be in [0, 1)`);
  const dtype = opts.dtype === undefined ? undefined : ({ fp32: "F32", fp16: "F16", bf16: "BF16" } as const)[opts.dtype as "fp32"];
  if (opts.dtype !== undefined && !dtype) throw new UsageError(`--dtype must be fp32, fp16 or bf16, got "${opts.dtype}"`);
  const model = loadModel(dir);
  const calibration = loadCalibration(opts, model, TextTokenizer.load(dir))!;
  model.close();
  let bar: ProgressReporter | null = null;
  const summary = await runStructured({
    modelDir: dir,
    outDir: opts.out,
    overwrite: opts.overwrite,
    method: opts.method as StructuredMethod,
    ratio,
    reconstruct: opts.reconstruct,
    uniform: opts.uniform,
    dropLayers: opts.dropLayers,
    multipleOf: opts.multipleOf,
    dampening: opts.dampening,
    dtype,
    calibration,
    restart: opts.restart,
    // said on every terminal or log, not only in the progress bar: work was skipped
    onResume: (r) => {
      const names = { similarity: "block similarity (--drop-layers)", statistics: "flap statistics", selection: `${opts.method} selection` } as const;
      const restored = [...r.before.map((p) => names[p]), r.layer > 0 ? `layer${r.layer > 1 ? `s 1–${r.layer}` : " 1"}` : ""].filter(Boolean).join(" and ");
      process.stderr.write(`topiary: resumed at layer ${r.layer}/${r.layers} of the ${names[r.pass]} pass: ${restored || "nothing"} restored from the interrupted run (--restart discards it)\n`);
    },
    onLayer: (phase, i, n) => {
      bar ??= progress(n, `${phase} {bar} layer {value}/{total} | ETA {eta_formatted}`);
      bar.update(i);
    },
  });
  (bar as ProgressReporter | null)?.stop();
  if (opts.json) {
    console.log(JSON.stringify(summary));
  } else {
    const w = summary.widths;
    console.log(
      `${opts.method} ${ratio}: kept ${(100 * summary.keptFraction).toFixed(2)} % of the decoder-linear weights` +
        `${summary.droppedLayers.length ? `, dropped layers ${summary.droppedLayers.join(", ")}` : ""}; ` +
        `KV groups per layer ${w.kvGroups.join(",")}, MLP channels ${w.mlpChannels.join(",")}` +
        `${summary.uniform ? "" : " (per-layer widths: config.json structured_pruning)"}; wrote ${summary.outDir} in ${summary.seconds.toFixed(1)} s`,
    );
  }
}
