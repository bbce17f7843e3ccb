// What a compression job saves to resume (compress/resume.ts holds the general mechanism): its
// manifest — the model files' and calibration ids' checksums, the recipe, the versions — and,
// after every decoder layer, its progress: the stage and layer reached, the store parts holding
// every compressed layer so far, the reports and warnings, and the file with the next layer's
// calibration inputs (the compressed layer's outputs). Nothing else carries over between layers
// (no RNG: calibration windows are drawn before the job, from the seed), so a resumed job
// computes exactly what an uninterrupted one computes.
import fs from "node:fs";
import path from "node:path";
import type { CalibrationBatch } from "../data/calibration.js";
import { runtimeVersion } from "../runtime/ort.js";
import type { CompressionJob } from "./job.js";
import { TOPIARY_VERSION } from "./job.js";
import type { LinearReport } from "./pipeline.js";
import { sha256OfBytes, sha256OfFile, type JobManifest, type ResumableOutput } from "./resume.js";
import { CompressedStore } from "./store.js";

export interface CompressionProgress {
  /** the stage in progress, 0-based */
  stage: number;
  /** decoder layers of that stage completed (= the model's layer count: the stage is done) */
  layer: number;
  /** per stage started: its store's part files */
  parts: string[][];
  /** per stage started: the reports of its completed layers */
  reports: LinearReport[][];
  warnings: string[];
  /** state file with the calibration inputs of layer `layer`, or null (no calibration, or last layer) */
  inputs: string | null;
}

export function compressionManifest(job: CompressionJob): JobManifest {
  return {
    job: "compression",
    versions: jobVersions(),
    inputs: jobInputs(job.modelDir, job.calibration?.batch ?? null),
    recipe: { stages: job.stages.map((s) => ({ method: s.method, ...s.options })) },
  };
}

/** The versions that change a job's numbers. */
export function jobVersions(): Record<string, string> {
  return { topiary: TOPIARY_VERSION, onnxruntime: runtimeVersion() };
}

/** A checksum per input of a job on the model in `modelDir` with calibration `batch`. */
export function jobInputs(modelDir: string, batch: CalibrationBatch | null): Record<string, string> {
  const inputs: Record<string, string> = {};
  // every file of the model folder topiary reads: weights, configs, tokenizer (the calibration ids
  // came from it); not other formats lying beside them (pytorch_model.bin, *.gguf, onnx/)
  for (const f of fs.readdirSync(modelDir).sort()) {
    const file = path.join(modelDir, f);
    if (/\.(safetensors|json)$|^tokenizer\.model$/.test(f) && fs.statSync(file).isFile()) inputs[`model file ${f}`] = sha256OfFile(file);
  }
  inputs["calibration"] = batch ? `${batch.nsamples}x${batch.seqlen}:${sha256OfBytes(batch.ids)}` : "none";
  return inputs;
}

/** Stage k's store: restored from the saved parts when the stage had started, else empty. */
export function openStageStore(out: ResumableOutput<CompressionProgress>, k: number, saved: CompressionProgress | null): CompressedStore {
  const dir = out.statePath(`stage-${k + 1}`);
  if (saved && k <= saved.stage) return CompressedStore.reopen(dir, saved.parts[k] ?? []);
  fs.rmSync(dir, { recursive: true, force: true });
  return new CompressedStore(dir);
}
