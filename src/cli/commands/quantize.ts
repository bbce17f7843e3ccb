import type { Command } from "commander";
import { loadModel } from "../../models/load.js";
import { TextTokenizer } from "../../tokenizer/tokenizer.js";
import { addCalibrationOptions, loadCalibration, type CalibrationFlags } from "../calibration.js";
import { int, num } from "../options.js";
import { addOutputOptions, writerFromFlags, type OutputFlags } from "../output-flags.js";
import { runJobWithProgress } from "../run-job.js";
import { checkOutputWriter } from "../../compress/job.js";
import { stageFromFlags } from "../stage-flags.js";
import { UsageError } from "../errors.js";

interface QuantizeFlags extends CalibrationFlags, OutputFlags {
  method: string;
  bits: number;
  groupSize: number;
  sym?: boolean;
  actOrder?: boolean;
  staticGroups?: boolean;
  trueSequential?: boolean;
  mse?: boolean;
  blocksize: number;
  dampening: number;
  targets?: string[];
  ignore?: string[];
  out: string;
  overwrite?: boolean;
  json?: boolean;
}

export function registerQuantize(program: Command): void {
  const cmd = program
    .command("quantize")
    .description("weight quantization: round-to-nearest or GPTQ, layer by layer")
    .argument("<model>", "Hugging Face model folder (local path)")
    .requiredOption("--method <m>", "rtn | gptq")
    .option("--bits <b>", "2 | 3 | 4 | 8", int("--bits", 1), 4)
    .option("--group-size <g>", "input columns per quantization group (-1: one grid per output row)", (v) => Number(v), -1)
    .option("--sym", "symmetric grid (zero point in the middle)")
    .option("--act-order", "GPTQ: quantize columns by decreasing Hessian diagonal (records g_idx)")
    .option("--static-groups", "GPTQ act-order: group parameters from the original weights, in column order")
    .option("--true-sequential", "GPTQ: q/k/v, then o, then gate/up, then down, each after its predecessors")
    .option("--mse", "search shrunk grids for the least |q − w|^2.4 error")
    .option("--blocksize <n>", "GPTQ columns per block", int("--blocksize", 1), 128)
    .option("--dampening <f>", "GPTQ: fraction of mean(diag H) added to the diagonal", num("--dampening", 0), 0.01)
    .option("--targets <regex...>", "quantize only linears whose name matches (default: every decoder linear)")
    .option("--ignore <regex...>", "skip linears whose name matches")
    .requiredOption("--out <dir>", "output model folder")
    .option("--overwrite", "replace --out if it exists")
    .option("--json", "print a JSON summary");
  addOutputOptions(addCalibrationOptions(cmd), "compressed-tensors").action(async (dir: string, o: QuantizeFlags) => {
    if (o.method !== "gptq" && (o.actOrder || o.staticGroups)) throw new UsageError("--act-order and --static-groups need --method gptq");
    const raw: Record<string, unknown> = { method: o.method, bits: o.bits, group_size: o.groupSize, sym: Boolean(o.sym), mse: Boolean(o.mse) };
    if (o.method === "gptq") {
      Object.assign(raw, { act_order: Boolean(o.actOrder), static_groups: Boolean(o.staticGroups), blocksize: o.blocksize, dampening: o.dampening });
    }
    if (o.targets) raw.targets = o.targets;
    if (o.ignore) raw.ignore = o.ignore;
    if (o.trueSequential) raw.true_sequential = true;
    const stage = stageFromFlags(raw, "quantize");
    const writer = writerFromFlags(o);
    const model = loadModel(dir);
    checkOutputWriter(model, dir, [stage], writer);
    const calibration = stage.compressor.needs === "none" ? null : loadCalibration(o, model, TextTokenizer.load(dir));
    model.close();
    await runJobWithProgress({ modelDir: dir, outDir: o.out, overwrite: o.overwrite, restart: o.restart, stages: [stage], calibration, writer }, [stage.method], Boolean(o.json));
  });
}
