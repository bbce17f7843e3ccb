// A whole compression run, as `topiary prune | quantize | compress` perform it:
// model folder + stages (+ calibration) → a new model folder with topiary.json beside the weights.
// The output is built in a temporary sibling folder and renamed into place only on success.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { CalibrationBatch } from "../data/calibration.js";
import { writeDirAtomic } from "../formats/atomic.js";
import { copyModelFiles, storedFloatDtype, writeDenseSafetensors, type FloatDtype } from "../formats/hf-folder.js";
import type { WeightSource } from "../formats/weights.js";
import { loadModel } from "../models/load.js";
import { CausalLM } from "../models/model.js";
import { runtimeVersion } from "../runtime/ort.js";
import { fillCompressedTensors } from "../formats/compressed-tensors/writer.js";
import type { CompressedTensorsFormat } from "../formats/compressed-tensors/constants.js";
import { compressModel, type LayerProgress, type LinearReport } from "./pipeline.js";
import type { CompressedLinear } from "../formats/compressed-linear.js";
import { checkTargets, type Stage } from "./registry.js";
import { CompressedStore } from "./store.js";

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
export type OutputWriter = (ctx: {
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
  if (job.calibration?.batch.warning) warn(job.calibration.batch.warning);
  const base = loadModel(job.modelDir);
  const linearNames = Array.from({ length: base.numLayers }, (_, i) => base.linears(i).map((l) => l.name)).flat();
  job.stages.forEach((s, k) => checkTargets(s, linearNames, job.stages.length > 1 ? `stage ${k + 1} (${s.method})` : s.method));

  const reports: LinearReport[][] = [];
  await writeDirAtomic(
    job.outDir,
    async (tmp) => {
      const stores: CompressedStore[] = [];
      let weights: WeightSource = base.weights;
      try {
        for (const [k, stage] of job.stages.entries()) {
          const store = new CompressedStore(path.join(tmp, `.work-stage-${k + 1}`));
          stores.push(store);
          const model = k === 0 ? base : new CausalLM(base.config, weights, job.modelDir);
          reports.push(
            await compressModel(model, {
              stage,
              calibration: job.calibration?.batch ?? null,
              store,
              warn,
              onLayer: (p) => job.onLayer?.(k, p),
            }),
          );
          weights = store.over(weights);
        }
        const writer = job.writer ?? denseWriter();
        await writer({ outDir: tmp, sourceDir: job.modelDir, config: base.config.raw, source: base.weights, weights, stores, linears: linearNames, warn });
        const linears = mergeReports(reports);
        const record = {
          topiary: TOPIARY_VERSION,
          created: new Date().toISOString(),
          source: path.resolve(job.modelDir),
          recipe: job.stages.map((s) => ({ method: s.method, ...s.options })),
          calibration: job.calibration?.info ?? null,
          versions: { node: process.versions.node, onnxruntime: runtimeVersion() },
          totals: totals(linears),
          linears: Object.fromEntries(linears.map((r) => [r.name, { ...r, name: undefined }])),
          warnings,
          seconds: (performance.now() - t0) / 1000,
        };
        fs.writeFileSync(path.join(tmp, "topiary.json"), JSON.stringify(record, null, 2) + "\n");
      } finally {
        for (const s of stores) s.dispose();
        base.close();
      }
    },
    { overwrite: job.overwrite },
  );
  return { outDir: job.outDir, linears: mergeReports(reports), warnings, seconds: (performance.now() - t0) / 1000 };
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
  return ({ outDir, sourceDir, config, source, stores, linears, warn }) => {
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
