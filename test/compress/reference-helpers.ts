// Shared by the end-to-end compression tests: the reference setup of ../shared/reference
// (stories260K, calibration = first 128 windows of 512 tokens of tinystories/calib.txt,
// evaluation = tinystories/test.txt at seqlen 512), run in memory.
import fs from "node:fs";
import path from "node:path";
import { calibrationWindows, type CalibrationBatch } from "../../src/data/calibration.js";
import { compressModel, type LinearReport } from "../../src/compress/pipeline.js";
import { buildStage } from "../../src/compress/registry.js";
import { CompressedStore } from "../../src/compress/store.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { SafetensorsWeights } from "../../src/formats/weights.js";
import { loadModel } from "../../src/models/load.js";
import { CausalLM } from "../../src/models/model.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { DATA, REFERENCE, STORIES, tempDir } from "../helpers.js";

let calib: CalibrationBatch | null = null;
let testIds: Int32Array | null = null;

/** The first `nsamples` non-overlapping windows of `seqlen` tokens of tinystories/calib.txt. */
function firstWindows(nsamples: number, seqlen: number): CalibrationBatch {
  const tok = TextTokenizer.load(STORIES);
  const tokens = tok.encode(fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8"));
  return calibrationWindows(tokens, { nsamples, seqlen, sampling: "first", seed: 0 });
}

export function referenceCalibration(): CalibrationBatch {
  calib ??= firstWindows(128, 512);
  return calib;
}

export function tinystoriesTest(): Int32Array {
  testIds ??= TextTokenizer.load(STORIES).encode(fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8"));
  return testIds;
}

export interface CompressedRun {
  model: CausalLM;
  store: CompressedStore;
  reports: LinearReport[];
  perplexity: number;
  /** what a stage's prepare step recorded (OWL's per-layer ratios and sparsities), else null */
  allocation: unknown;
}

/** A smaller setup than the reference's, for tests that only compare topiary with itself. */
export interface SmallerSetup {
  /** the first `nsamples` windows of `seqlen` tokens of calib.txt */
  calibration?: { nsamples: number; seqlen: number };
  /** evaluate only the first windows of the test text */
  limitWindows?: number;
}

/**
 * Compresses stories260K with one stage, in memory, and evaluates tinystories test at seqlen 512;
 * by default with the reference's calibration and the whole test text.
 */
export async function compressAndEvaluate(stage: Record<string, unknown>, setup: SmallerSetup = {}): Promise<CompressedRun> {
  const base = loadModel(STORIES);
  const store = new CompressedStore(path.join(tempDir(), "store"));
  const needsCalib = (stage.method !== "magnitude" && stage.method !== "rtn") || stage.allocation === "owl";
  const calibration = !needsCalib ? null : setup.calibration ? firstWindows(setup.calibration.nsamples, setup.calibration.seqlen) : referenceCalibration();
  let built = buildStage(stage, "test");
  let allocation: unknown = null;
  if (built.prepare) ({ stage: built, record: allocation } = await built.prepare(base, calibration, () => {}));
  const reports = await compressModel(base, { stage: built, calibration, store });
  const model = new CausalLM(base.config, store.over(base.weights), STORIES);
  const r = await perplexity(model, tinystoriesTest(), { seqlen: 512, limitWindows: setup.limitWindows });
  return { model, store, reports, perplexity: r.perplexity, allocation };
}

/** reference.json results[key] */
export function reference(key: string): {
  ppl_exact: Record<string, number>;
  sparsity: { per_linear_zeros: Record<string, number> };
  [k: string]: unknown;
} {
  return JSON.parse(fs.readFileSync(path.join(REFERENCE, "reference.json"), "utf8")).results[key];
}

/** The reference's compressed model (../shared/reference/models/<name>), when it has one. */
export function referenceModel(name: string): SafetensorsWeights {
  return SafetensorsWeights.open(path.join(REFERENCE, "models", name));
}

export const LINEAR_SUFFIXES = [
  "self_attn.q_proj",
  "self_attn.k_proj",
  "self_attn.v_proj",
  "self_attn.o_proj",
  "mlp.gate_proj",
  "mlp.up_proj",
  "mlp.down_proj",
];

/** Fraction of positions where both weights are zero or both nonzero. */
export function maskAgreement(a: Float32Array, b: Float32Array): number {
  let same = 0;
  for (let i = 0; i < a.length; i++) if ((a[i] === 0) === (b[i] === 0)) same++;
  return same / a.length;
}
