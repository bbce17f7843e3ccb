// A whole compression run, as `topiary prune | quantize | compress` perform it:
// model folder + stages (+ calibration) → a new model folder with topiary.json beside the weights.
// The output is built in a work folder beside it and renamed into place only on success; the
// work folder also keeps the job's progress after every decoder layer, so a killed job rerun
// with the same inputs resumes where it stopped (compress/resume.ts, compress/job-state.ts).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { CalibrationBatch } from "../data/calibration.js";
import { copyModelFiles, storedFloatDtype, writeDenseSafetensors, type FloatDtype } from "../formats/hf-folder.js";
import type { WeightSource } from "../formats/weights.js";
import { loadModel } from "../models/load.js";
import { CausalLM } from "../models/model.js";
import { runtimeVersion } from "../runtime/ort.js";
import { fillCompressedTensors } from "../formats/compressed-tensors/writer.js";
import type { CompressedTensorsFormat } from "../formats/compressed-tensors/constants.js";
import { compressModel, type LayerProgress, type LinearReport } from "./pipeline.js";
import type { CompressedLinear } from "../formats/compressed-linear.js";
import { checkTargets, stageTargets, type Stage } from "./registry.js";
import { FormatError } from "../formats/errors.js";
import { CompressedStore } from "./store.js";
import { compressionManifest, openStageStore, type CompressionProgress } from "./job-state.js";
import { readFloat32File, ResumableOutput, writeFloat32Atomic } from "./resume.js";
import { killPoint } from "../formats/kill-point.js";

export const TOPIARY_VERSION = "0.1.0";

export interface CalibrationInfo {
  file: string;
  sha256: string;
  /** tokens in the whole calibration text */
  tokens: number;
  nsamples: number;
  seqlen: number;
  sampling: string;
  seed: number;
}

/** Writes the compressed weights in some storage layout (dense safetensors, compressed-tensors, …). */
export type OutputWriter = WriteOutput & {
  /**
   * Why this layout cannot hold `model`'s linears `targets` once compressed, or null: asked before
   * any work (checkOutputWriter), so that a run is not refused only after hours of compression.
   */
  refuses?(model: CausalLM, targets: string[]): string | null;
};

type WriteOutput = (ctx: {
  outDir: string;
  sourceDir: string;
  config: Record<string, unknown>;
  /** the source checkpoint's tensors */
  source: WeightSource;
  /** the source with every compressed weight replaced */
  weights: WeightSource;
  /** the compressed results, per stage */
  stores: CompressedStore[];
  /** every linear of the model's decoder layers */
  linears: string[];
  warn: (message: string) => void;
}) => void | Promise<void>;

export interface CompressionJob {
  modelDir: string;
  outDir: string;
  overwrite?: boolean;
  stages: Stage[];
  calibration: { batch: CalibrationBatch; info: CalibrationInfo } | null;
  /** how to store the result; default: dense safetensors in the source dtype (float32 for quantized) */
  writer?: OutputWriter;
  onLayer?: (stage: number, p: LayerProgress) => void;
  warn?: (message: string) => void;
  /** more to record in topiary.json (e.g. the budget solver's plan), under these keys */
  record?: Record<string, unknown>;
  /** discard the saved progress of an interrupted run of this output instead of resuming it */
  restart?: boolean;
  /** called once when the job resumes: `layer` decoder layers of stage `stage` (0-based) were done */
  onResume?: (r: { stage: number; stages: number; layer: number; layers: number }) => void;
}

export interface CompressionSummary {
  outDir: string;
  linears: LinearReport[];
  warnings: string[];
  seconds: number;
}

export async function runCompression(job: CompressionJob): Promise<CompressionSummary> {
  const t0 = performance.now();
  const warnings: string[] = [];
  const warn = (m: string) => {
    warnings.push(m);
    job.warn?.(m);
  };
  const base = loadModel(job.modelDir);
  let out: ResumableOutput<CompressionProgress>;
  const stores: CompressedStore[] = [];
  const reports: LinearReport[][] = [];
  try {
    const names = linearNames(base);
    job.stages.forEach((s, k) => checkTargets(s, names, job.stages.length > 1 ? `stage ${k + 1} (${s.method})` : s.method));
    checkOutputWriter(base, job.modelDir, job.stages, job.writer);
    out = ResumableOutput.open<CompressionProgress>(job.outDir, compressionManifest(job), { overwrite: job.overwrite, restart: job.restart });
  } catch (e) {
    base.close();
    throw e;
  }
  const saved = out.restored;
  if (saved) {
    warnings.push(...saved.warnings);
    job.onResume?.({ stage: saved.stage, stages: job.stages.length, layer: saved.layer, layers: base.numLayers });
  }
  if (job.calibration?.batch.warning && !warnings.includes(job.calibration.batch.warning)) warn(job.calibration.batch.warning);

  const allocations: unknown[] = [];
  try {
    let weights: WeightSource = base.weights;
    let inputsFile: string | null = null;
    for (const [k, stage] of job.stages.entries()) {
      if (saved && k === saved.stage) inputsFile = saved.inputs;
      const store = openStageStore(out, k, saved);
      stores.push(store);
      const done = saved && k <= saved.stage ? saved.reports[k] ?? [] : [];
      const startLayer = saved && k < saved.stage ? base.numLayers : saved && k === saved.stage ? saved.layer : 0;
      reports.push([...done]);
      const model = k === 0 ? base : new CausalLM(base.config, weights, job.modelDir);
      // a stage may first look at the model it starts from (OWL's outlier ratios); a resumed
      // stage recomputes it from the same weights, so it chooses the same
      const prepared = stage.prepare ? await stage.prepare(model, job.calibration?.batch ?? null, warn) : null;
      if (prepared) allocations.push({ stage: k + 1, ...(prepared.record as object) });
      if (startLayer < base.numLayers) {
        const batch = job.calibration?.batch ?? null;
        const startInputs = startLayer > 0 && inputsFile && batch ? readFloat32File(out.statePath(inputsFile), batch.ids.length * base.config.hiddenSize) : null;
        await compressModel(model, {
          stage: prepared?.stage ?? stage,
          calibration: batch,
          store,
          warn,
          onLayer: (p) => job.onLayer?.(k, p),
          startLayer,
          startInputs,
          // after each layer: its results are in the store; save the next layer's inputs, then commit
          afterLayer: (i, next, layerReports) => {
            killPoint("layer-stored");
            const previous = inputsFile;
            inputsFile = next ? `inputs-stage${k + 1}-layer${i + 1}.f32` : null;
            if (next) writeFloat32Atomic(out.statePath(inputsFile!), next);
            reports[k]!.push(...layerReports);
            out.commit({ stage: k, layer: i + 1, parts: stores.map((s) => s.parts()), reports, warnings, inputs: inputsFile });
            if (previous && previous !== inputsFile) fs.rmSync(out.statePath(previous), { force: true });
            killPoint("layer-committed");
          },
        });
      }
      inputsFile = null; // the next stage starts from the embeddings again
      weights = store.over(weights);
    }
    const writer = job.writer ?? denseWriter();
    // written in the checkpoint's own names and layouts (models/family.ts checkpointView)
    const view = base.family.checkpointView;
    const toCheckpoint = (w: WeightSource) => (view ? view.toCheckpoint(base.config, w) : w);
    await writer({ outDir: out.dir, sourceDir: job.modelDir, config: base.config.raw, source: toCheckpoint(base.weights), weights: toCheckpoint(weights), stores, linears: linearNames(base), warn });
    const linears = mergeReports(reports);
    const record = {
      topiary: TOPIARY_VERSION,
      created: new Date().toISOString(),
      source: path.resolve(job.modelDir),
      recipe: job.stages.map((s) => ({ method: s.method, ...s.options })),
      calibration: job.calibration?.info ?? null,
      versions: { node: process.versions.node, onnxruntime: runtimeVersion() },
      totals: totals(linears),
      ...(allocations.length > 0 ? { allocation: allocations } : {}),
      ...job.record,
      linears: Object.fromEntries(linears.map((r) => [r.name, { ...r, name: undefined }])),
      warnings,
      resumed: saved ? { stage: saved.stage + 1, layer: saved.layer } : null,
      seconds: (performance.now() - t0) / 1000,
    };
    fs.writeFileSync(path.join(out.dir, "topiary.json"), JSON.stringify(record, null, 2) + "\n");
    for (const s of stores) s.close();
    out.finish();
  } catch (e) {
    for (const s of stores) s.close();
    out.abandon();
    throw e;
  } finally {
    base.close();
  }
  return { outDir: job.outDir, linears: mergeReports(reports), warnings, seconds: (performance.now() - t0) / 1000 };
}

/**
 * Throws FormatError(model folder, why) when `writer` cannot store the linears that `stages`
 * compress (every linear when `stages` is null: the budget solver picks them later). The CLI calls
 * this right after reading the model, before calibration; runCompression calls it again.
 */
export function checkOutputWriter(model: CausalLM, modelDir: string, stages: Stage[] | null, writer: OutputWriter | undefined): void {
  if (!writer?.refuses) return;
  const targets = linearNames(model).filter((n) => stages === null || stages.some((s) => stageTargets(s, n)));
  const why = writer.refuses(model, targets);
  if (why) throw new FormatError(modelDir, why);
}

function linearNames(model: CausalLM): string[] {
  return Array.from({ length: model.numLayers }, (_, i) => model.linears(i).map((l) => l.name)).flat();
}

/**
 * Dense safetensors. Every tensor keeps the source dtype, except quantized weights, which are
 * float32 so that every value stays exactly on its grid; `dtype` forces one dtype for all.
 */
export function denseWriter(dtype?: FloatDtype): OutputWriter {
  return ({ outDir, sourceDir, config, weights, stores }) => {
    const quantized = new Set(stores.flatMap((s) => s.names().filter((n) => s.isQuantized(n)).map((n) => `${n}.weight`)));
    const outDtype = (name: string): FloatDtype => dtype ?? (quantized.has(name) ? "F32" : storedFloatDtype(weights, name));
    writeDenseSafetensors(outDir, weights, outDtype);
    const torchDtype = dtype ? { F32: "float32", F16: "float16", BF16: "bfloat16" }[dtype] : config.torch_dtype;
    copyModelFiles(sourceDir, outDir, { ...config, torch_dtype: torchDtype ?? "float32" });
  };
}

export type OutputFormat = "dense" | "compressed-tensors" | CompressedTensorsFormat;

/**
 * The compressed-tensors layout vLLM and llm-compressor read. "compressed-tensors" picks the
 * format from the results: pack-quantized when anything is quantized, sparse-24-bitmask when every
 * pruned linear is 2:4, sparse-bitmask for other sparsity.
 */
export function compressedTensorsWriter(format: Exclude<OutputFormat, "dense">, dtype?: FloatDtype): OutputWriter {
  const write: WriteOutput = ({ outDir, sourceDir, config, source, stores, linears, warn }) => {
    const latest = (name: string) => [...stores].reverse().find((s) => s.has(name));
    const compressed = {
      keys: () => new Set(stores.flatMap((s) => s.names())),
      get: (name: string) => latest(name)?.get(name),
    };
    let f: CompressedTensorsFormat;
    if (format !== "compressed-tensors") f = format;
    else if (stores.some((s) => s.names().some((n) => s.isQuantized(n)))) f = "pack-quantized";
    else f = [...compressed.keys()].every((n) => is24(compressed.get(n)!)) ? "sparse-24-bitmask" : "sparse-bitmask";
    const report = fillCompressedTensors(outDir, { format: f, sourceModelDir: sourceDir, compressed, weights: source, config, linears, dtype });
    for (const w of report.warnings) warn(w);
  };
  return Object.assign(write, { refuses: transposedLinears });
}

/** compressed-tensors stores [out, in] linears; GPT-2's Conv1D keeps [in, out] (models/family.ts checkpointView). */
function transposedLinears(model: CausalLM, targets: string[]): string | null {
  const t = targets.find((n) => model.weights.storedTransposed?.(`${n}.weight`));
  if (t === undefined) return null;
  return `${model.family.name} stores its linears [in, out] (Conv1D, e.g. ${t}.weight); compressed-tensors holds [out, in] linears only: use --format dense`;
}

/** Whether a pruned weight is 2:4 (exactly two zeros in every group of four inputs). */
function is24(c: CompressedLinear): boolean {
  const [rows, cols] = c.weight.shape as [number, number];
  if (!c.mask || cols % 4 !== 0) return false;
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += 4) {
      let kept = 0;
      for (let j = g; j < g + 4; j++) kept += c.mask[r * cols + j]!;
      if (kept !== 2) return false;
    }
  }
  return true;
}

/** The output writer for a --format value. */
export function writerFor(format: OutputFormat, dtype?: FloatDtype): OutputWriter {
  return format === "dense" ? denseWriter(dtype) : compressedTensorsWriter(format, dtype);
}

/** The last stage's report of each linear wins (it describes the final weight). */
function mergeReports(stages: LinearReport[][]): LinearReport[] {
  const byName = new Map<string, LinearReport>();
  for (const s of stages) for (const r of s) byName.set(r.name, r);
  return [...byName.values()];
}

function totals(linears: LinearReport[]) {
  const params = linears.reduce((a, r) => a + r.shape[0] * r.shape[1], 0);
  const zeros = linears.reduce((a, r) => a + r.zeros, 0);
  return { linears: linears.length, parameters: params, zeros, sparsity: params ? zeros / params : 0 };
}

export function sha256File(file: string): string {
  return crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}
