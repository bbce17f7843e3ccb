// A sweep: every setting compressed by the usual job (compress/job.ts), then measured the same way
// — perplexity and fidelity to the original on one text, bytes of the written weight files, and
// optionally greedy decode speed of its ONNX export in onnxruntime.
//
// Resumable at the granularity of runs. out/runs/<id>/ holds the model folder (written whole or
// not at all by runCompression) and run.json, which records the key of the inputs that made the
// model (recipe, calibration digest and windows, output format) and of those that measured it.
// Rerunning reuses a run whose model and metrics are complete and whose keys match; a run that
// crashed is redone; one made from other inputs is refused (or redone with `overwrite`).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { runCompression, sha256File, TOPIARY_VERSION, type CompressionJob, type OutputWriter } from "../compress/job.js";
import { loadEvalText, type DatasetKind } from "../data/text.js";
import { decode } from "../eval/decode.js";
import { fidelity } from "../eval/fidelity.js";
import { OnnxDecoder } from "../eval/onnx-decoder.js";
import { defaultSeqlen, perplexity } from "../eval/perplexity.js";
import { exportOnnx } from "../export/onnx.js";
import { loadModel } from "../models/load.js";
import type { CausalLM } from "../models/model.js";
import { TextTokenizer } from "../tokenizer/tokenizer.js";
import { readAllocation } from "./allocation.js";
import { paretoFront, writeTextAtomic, type RunMetrics, type RunResult, type SweepResults } from "./results.js";
import type { SweepSetting } from "./settings.js";

export interface SweepEval {
  file: string;
  dataset: DatasetKind;
  /** window length; default: the model's length, capped at 2048 */
  seqlen?: number;
  limitWindows?: number;
}

export interface SweepJob {
  modelDir: string;
  outDir: string;
  settings: SweepSetting[];
  /** what identifies the calibration (file digest, windows, sampling), part of each run's key */
  calibrationKey: Record<string, unknown> | null;
  /** loads the calibration windows; called once, and only when some run has to be compressed */
  loadCalibration: () => CompressionJob["calibration"];
  writer: OutputWriter;
  /** the output format flags, part of each run's key */
  outputKey: Record<string, unknown>;
  eval: SweepEval;
  /** measure greedy decode tokens/s of each run's ONNX export, generating this many tokens */
  decodeTokens?: number | null;
  sensitivity?: string | null;
  /** redo runs made from other inputs instead of refusing */
  overwrite?: boolean;
  log?: (line: string) => void;
}

/** What run.json (and original.json) record. */
interface RunState {
  modelKey: string;
  seconds: number | null;
  evalKey?: string;
  metrics?: Omit<RunMetrics, "bytes" | "tokensPerSecond">;
  decodeKey?: string;
  tokensPerSecond?: number;
}

const DECODE_PROMPT_TOKENS = 8;
/** decode speed is the best of this many rounds after a warm-up one (a neighbour on a shared CPU only slows a round down) */
const DECODE_ROUNDS = 3;

export async function runSweep(job: SweepJob): Promise<SweepResults> {
  const log = job.log ?? (() => {});
  const out = path.resolve(job.outDir);
  fs.mkdirSync(path.join(out, "runs"), { recursive: true });
  const original = loadModel(job.modelDir);
  try {
    const seqlen = job.eval.seqlen ?? defaultSeqlen(original);
    const evalKey = digest({ data: sha256File(job.eval.file), dataset: job.eval.dataset, seqlen, limit: job.eval.limitWindows ?? null });
    const decodeKey = job.decodeTokens ? digest({ tokens: job.decodeTokens, evalKey }) : null;
    let ids: Int32Array | null = null;
    const evalIds = () => (ids ??= TextTokenizer.load(job.modelDir).encode(loadEvalText(job.eval.file, job.eval.dataset)));
    let calibration: CompressionJob["calibration"] | undefined;
    const measure = new Measure(original, evalIds, { seqlen, limitWindows: job.eval.limitWindows }, job.decodeTokens ?? 0, out);

    // the original, measured like every run (its KL is 0 and its agreement 1 by definition)
    const originalFile = path.join(out, "original.json");
    const originalKey = digest({ source: path.resolve(job.modelDir) });
    const stored = readState(originalFile);
    const originalState: RunState = stored?.modelKey === originalKey ? stored : { modelKey: originalKey, seconds: null };
    if (originalState.evalKey !== evalKey || !originalState.metrics) {
      log("original: evaluating");
      const p = await measure.perplexity(original);
      Object.assign(originalState, { evalKey, metrics: { perplexity: p.perplexity, klMean: 0, top1Agree: 1 } });
      writeState(originalFile, originalState);
    }
    if (decodeKey && originalState.decodeKey !== decodeKey) {
      log("original: measuring decode speed");
      Object.assign(originalState, { decodeKey, tokensPerSecond: await measure.decodeSpeed(original) });
      writeState(originalFile, originalState);
    }
    const originalMetrics: RunMetrics = {
      ...originalState.metrics!,
      bytes: weightBytes(job.modelDir),
      tokensPerSecond: decodeKey ? originalState.tokensPerSecond! : null,
    };

    // topiary.json lists linears in the order the stages compressed them; the report wants the model's
    const modelOrder = new Map(
      Array.from({ length: original.numLayers }, (_, i) => original.linears(i).map((l) => l.name))
        .flat()
        .map((name, i) => [name, i]),
    );
    const runs: Omit<RunResult, "pareto">[] = [];
    for (const [k, setting] of job.settings.entries()) {
      const tag = `[${k + 1}/${job.settings.length}] ${setting.id}`;
      const runDir = path.join(out, "runs", setting.id);
      const modelDir = path.join(runDir, "model");
      const stateFile = path.join(runDir, "run.json");
      const needsCalibration = setting.stages.some((s) => s.compressor.needs !== "none");
      const modelKey = digest({
        source: path.resolve(job.modelDir),
        recipe: setting.stages.map((s) => ({ method: s.method, ...s.options })),
        calibration: needsCalibration ? job.calibrationKey : null,
        output: job.outputKey,
      });
      let state = readState(stateFile);
      if (state && state.modelKey !== modelKey && !job.overwrite) {
        throw new Error(`${runDir}: made from other settings (recipe, calibration or format differ); use another --out, remove it, or pass --overwrite`);
      }
      if (!state || state.modelKey !== modelKey || !fs.existsSync(path.join(modelDir, "topiary.json"))) {
        log(`${tag}: compressing (${setting.stages.map((s) => s.method).join(" → ")})`);
        removeStaleTemporaries(runDir);
        if (needsCalibration && calibration === undefined) calibration = job.loadCalibration();
        const summary = await runCompression({
          modelDir: job.modelDir,
          outDir: modelDir,
          overwrite: true,
          stages: setting.stages,
          calibration: needsCalibration ? calibration! : null,
          writer: job.writer,
        });
        state = { modelKey, seconds: summary.seconds };
        writeState(stateFile, state);
      } else {
        log(`${tag}: reusing the compressed model`);
      }
      let model: CausalLM | null = null;
      try {
        if (state.evalKey !== evalKey || !state.metrics) {
          log(`${tag}: evaluating`);
          model = loadModel(modelDir);
          const p = await measure.perplexity(model);
          const f = await measure.fidelity(model);
          Object.assign(state, { evalKey, metrics: { perplexity: p.perplexity, klMean: f.klMean, top1Agree: f.top1Agree } });
          writeState(stateFile, state);
        }
        if (decodeKey && state.decodeKey !== decodeKey) {
          log(`${tag}: measuring decode speed`);
          model ??= loadModel(modelDir);
          Object.assign(state, { decodeKey, tokensPerSecond: await measure.decodeSpeed(model) });
          writeState(stateFile, state);
        }
      } finally {
        model?.close();
      }
      const record = JSON.parse(fs.readFileSync(path.join(modelDir, "topiary.json"), "utf8")) as { recipe: Record<string, unknown>[]; totals: { sparsity: number } };
      const bytes = weightBytes(modelDir);
      runs.push({
        id: setting.id,
        source: setting.source,
        recipe: record.recipe,
        dir: path.relative(out, modelDir),
        ...state.metrics!,
        bytes,
        bytesRatio: bytes / originalMetrics.bytes,
        tokensPerSecond: decodeKey ? state.tokensPerSecond! : null,
        zeros: record.totals.sparsity,
        seconds: state.seconds,
        allocation: readAllocation(modelDir).sort((a, b) => (modelOrder.get(a.name) ?? Infinity) - (modelOrder.get(b.name) ?? Infinity)),
      });
      const m = state.metrics!;
      log(`${tag}: perplexity ${m.perplexity.toPrecision(5)}, KL ${m.klMean.toPrecision(3)}, top-1 ${(100 * m.top1Agree).toFixed(1)} %, ${bytes.toLocaleString("en-US")} bytes`);
    }

    const front = paretoFront([originalMetrics, ...runs]).slice(1);
    const windows = Math.min(Math.floor(evalIds().length / seqlen), job.eval.limitWindows ?? Infinity);
    return {
      topiary: TOPIARY_VERSION,
      created: new Date().toISOString(),
      model: path.resolve(job.modelDir),
      eval: { data: path.resolve(job.eval.file), dataset: job.eval.dataset, seqlen, windows, limitWindows: job.eval.limitWindows ?? null },
      calibration: job.calibrationKey,
      original: originalMetrics,
      runs: runs.map((r, i) => ({ ...r, pareto: front[i]! })),
      sensitivity: job.sensitivity ?? null,
    };
  } finally {
    original.close();
  }
}

/** The measurements, on the same windows for every model. */
class Measure {
  constructor(
    private readonly original: CausalLM,
    private readonly ids: () => Int32Array,
    private readonly windows: { seqlen: number; limitWindows?: number },
    private readonly decodeTokens: number,
    private readonly outDir: string,
  ) {}

  perplexity(model: CausalLM) {
    return perplexity(model, this.ids(), this.windows);
  }

  fidelity(model: CausalLM) {
    return fidelity(this.original, model, this.ids(), this.windows);
  }

  /**
   * Exports `model` to ONNX (float32 activations; stored integer codes stay MatMulNBits) in a
   * scratch folder, and decodes greedily from the first tokens of the eval text, never stopping
   * early, so every model generates the same number of tokens.
   */
  async decodeSpeed(model: CausalLM): Promise<number> {
    const scratch = fs.mkdtempSync(path.join(this.outDir, ".decode-"));
    try {
      const dir = path.join(scratch, "onnx");
      await exportOnnx(model.config, model.weights, dir, { dtype: "fp32", sourceDir: model.dir });
      const decoder = await OnnxDecoder.open(dir);
      try {
        const prompt = this.ids().subarray(0, DECODE_PROMPT_TOKENS);
        const opts = { maxNewTokens: this.decodeTokens, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] };
        await decode(decoder, prompt, opts); // warm-up: the session's first runs allocate and plan
        let best = 0;
        for (let r = 0; r < DECODE_ROUNDS; r++) best = Math.max(best, (await decode(decoder, prompt, opts)).tokensPerSecond);
        return best;
      } finally {
        await decoder.close();
      }
    } finally {
      fs.rmSync(scratch, { recursive: true, force: true });
    }
  }
}

/** Bytes of a model folder's weight files (every *.safetensors). */
function weightBytes(dir: string): number {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith(".safetensors"))
    .reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0);
}

function digest(value: unknown): string {
  return crypto.createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}

function readState(file: string): RunState | null {
  try {
    const s = JSON.parse(fs.readFileSync(file, "utf8")) as RunState;
    return typeof s.modelKey === "string" ? s : null;
  } catch {
    return null; // missing or cut short: the run is redone
  }
}

function writeState(file: string, state: RunState): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  writeTextAtomic(file, JSON.stringify(state, null, 2) + "\n");
}

/** Temporary folders a killed run left behind (atomic.ts names them `.<name>.tmp-…`). */
function removeStaleTemporaries(runDir: string): void {
  if (!fs.existsSync(runDir)) return;
  for (const f of fs.readdirSync(runDir)) if (/^\..*\.tmp-/.test(f)) fs.rmSync(path.join(runDir, f), { recursive: true, force: true });
}
