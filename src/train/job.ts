// A whole `topiary recover` run: check that student and teacher fit together, train, and write
// the student folder (weights + config + tokenizer + topiary.json with the loss curve) atomically.
import fs from "node:fs";
import path from "node:path";
import { sha256File, TOPIARY_VERSION } from "../compress/job.js";
import { loadEvalText } from "../data/text.js";
import { ResumableOutput, sha256OfFile, type JobManifest } from "../compress/resume.js";
import { FormatError } from "../formats/errors.js";
import { copyModelFiles, storedFloatDtype, writeDenseSafetensors } from "../formats/hf-folder.js";
import { loadModel } from "../models/load.js";
import type { CausalLM } from "../models/model.js";
import { runtimeVersion } from "../runtime/ort.js";
import { TextTokenizer } from "../tokenizer/tokenizer.js";
import { usesTeacher } from "./head-loss.js";
import { trainHooks } from "./trainable.js";
import { layerwiseCheckpointing, recoverCheckpointing, type RecoverProgress } from "./checkpoint.js";
import { layerwiseDistill, type LayerwiseResult } from "./layerwise.js";
import { recover, studentWith, type EvalPoint, type RecoverOptions, type RecoverResult, type StepInfo } from "./recover.js";

export type RecoverJobMode = RecoverOptions["mode"] | "layerwise";

export interface RecoverJob {
  studentDir: string;
  teacherDir: string | null;
  dataFile: string;
  evalFile: string | null;
  outDir: string;
  overwrite?: boolean;
  /** discard an interrupted run's checkpoint instead of resuming it */
  restart?: boolean;
  /** checkpoint the training state every this many steps (layer-wise: after every block if > 0; 0: never; default 50) */
  checkpointEvery?: number;
  mode: RecoverJobMode;
  /** evalIds come from evalFile */
  options: Omit<RecoverOptions, "evalIds" | "mode"> & { calibrationWindows?: number };
  /** more to record in topiary.json (a recipe's earlier segments), under these keys */
  record?: Record<string, unknown>;
  onStep?: (s: StepInfo & { layer?: number }) => void;
  onEval?: (e: EvalPoint) => void;
  /** called when the run resumes an interrupted one, with where ("step 4/6", "block 2/5") */
  onResume?: (where: string) => void;
}

const DEFAULT_CHECKPOINT_EVERY = 50;

/** What makes two recover runs the same job: the models' files, the texts, the recipe (not how often it checkpoints). */
function recoveryManifest(job: RecoverJob, recipe: Record<string, unknown>): JobManifest {
  const inputs: Record<string, string> = {};
  const modelFiles = (label: string, dir: string) => {
    for (const f of fs.readdirSync(dir).sort()) {
      const file = path.join(dir, f);
      if (/\.(safetensors|json)$|^tokenizer\.model$/.test(f) && fs.statSync(file).isFile()) inputs[`${label} file ${f}`] = sha256OfFile(file);
    }
  };
  modelFiles("student", job.studentDir);
  if (job.teacherDir) modelFiles("teacher", job.teacherDir);
  inputs["training text"] = sha256OfFile(job.dataFile);
  inputs["evaluation text"] = job.evalFile ? sha256OfFile(job.evalFile) : "none";
  return { job: "recovery", versions: { topiary: TOPIARY_VERSION, onnxruntime: runtimeVersion() }, inputs, recipe };
}

export interface RecoverSummary {
  outDir: string;
  record: Record<string, unknown>;
}

/** Checks that distilling `teacher` into `student` compares like with like: same vocabulary, same tokens. */
function checkTeacher(student: CausalLM, teacher: CausalLM, studentTok: TextTokenizer, teacherDir: string, sample: string): void {
  const sv = student.config.vocabSize;
  const tv = teacher.config.vocabSize;
  if (sv !== tv) throw new FormatError(path.join(teacherDir, "config.json"), `vocabulary of ${tv} tokens differs from the student's (${sv}); distillation compares next-token distributions token by token`);
  const teacherTok = TextTokenizer.load(teacherDir);
  const a = studentTok.encode(sample);
  const b = teacherTok.encode(sample);
  const same = a.length === b.length && a.every((x, i) => x === b[i]);
  if (!same) throw new FormatError(path.join(teacherDir, "tokenizer.json"), "tokenizes the training text differently from the student's tokenizer.json (a teacher must share the student's tokenizer)");
}

/** Zeros of each trained linear, and whether they sit exactly where the student's were. */
function zeroReport(student: CausalLM, weights: Map<string, Float32Array>) {
  const linears: Record<string, { zeros: number; student_zeros: number; same_pattern: boolean }> = {};
  for (const [name, w] of weights) {
    const s = student.weights.read(name);
    let zeros = 0;
    let studentZeros = 0;
    let same = true;
    for (let i = 0; i < w.length; i++) {
      const z = w[i] === 0;
      const zs = s[i] === 0;
      zeros += z ? 1 : 0;
      studentZeros += zs ? 1 : 0;
      if (z !== zs) same = false;
    }
    linears[name] = { zeros, student_zeros: studentZeros, same_pattern: same };
  }
  const all = Object.values(linears);
  return {
    zeros: all.reduce((a, l) => a + l.zeros, 0),
    student_zeros: all.reduce((a, l) => a + l.student_zeros, 0),
    same_zeros_every_linear: all.every((l) => l.same_pattern),
    linears,
  };
}

export async function runRecovery(job: RecoverJob): Promise<RecoverSummary> {
  const student = loadModel(job.studentDir);
  const o = { ...job.options, evalSeqlen: job.options.evalSeqlen || Math.min(student.config.maxPositions, 2048) };
  let teacher: CausalLM | null = null;
  let out: ResumableOutput<RecoverProgress> | null = null;
  let finished = false;
  try {
    teacher = job.teacherDir ? loadModel(job.teacherDir) : null;
    try {
      trainHooks(student.config);
    } catch (e) {
      throw new FormatError(path.join(job.studentDir, "config.json"), (e as Error).message);
    }
    if (o.steps < 1) throw new FormatError(job.studentDir, "--steps must be at least 1");
    if (o.seqlen > student.config.maxPositions) throw new FormatError(job.studentDir, `--seqlen ${o.seqlen} exceeds the model's maximum length (${student.config.maxPositions})`);
    const tok = TextTokenizer.load(job.studentDir);
    const text = loadEvalText(job.dataFile);
    if (teacher) checkTeacher(student, teacher, tok, job.teacherDir!, text.slice(0, 20000));
    else if (job.mode !== "layerwise" && usesTeacher(o.loss)) throw new FormatError(job.studentDir, `--loss ${o.loss} needs --teacher (or use --loss ce)`);
    if (job.mode === "layerwise" && !teacher) throw new FormatError(job.studentDir, "--mode layerwise needs --teacher");
    const trainIds = tok.encode(text);
    if (trainIds.length < o.seqlen) throw new FormatError(job.dataFile, `has ${trainIds.length} tokens, fewer than one window of ${o.seqlen} (--seqlen)`);
    const evalIds = job.evalFile ? tok.encode(loadEvalText(job.evalFile)) : null;
    if (evalIds && evalIds.length < o.evalSeqlen) throw new FormatError(job.evalFile!, `has ${evalIds.length} tokens, fewer than one window of ${o.evalSeqlen}`);
    const recipe = {
      method: "recover",
      mode: job.mode,
      loss: o.loss,
      temperature: o.temperature,
      steps: o.steps,
      batch: o.batch,
      seqlen: o.seqlen,
      lr: o.lr,
      warmup: o.warmup,
      weight_decay: o.weightDecay,
      clip: o.clip,
      seed: o.seed,
      ...(job.mode === "lora" ? { rank: o.rank, alpha: o.alpha } : {}),
    };
    out = ResumableOutput.open<RecoverProgress>(job.outDir, recoveryManifest(job, { ...recipe, eval_every: o.evalEvery, eval_seqlen: o.evalSeqlen }), { overwrite: job.overwrite, restart: job.restart });
    const resumedAt = out.restored?.step ?? null;
    if (resumedAt !== null) job.onResume?.(job.mode === "layerwise" ? `block ${resumedAt}/${student.numLayers}` : `step ${resumedAt}/${o.steps}`);
    const t0 = performance.now();
    let result: RecoverResult | LayerwiseResult;
    if (job.mode === "layerwise") {
      const checkpoint = layerwiseCheckpointing(out, job.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY);
      result = await layerwiseDistill(student, teacher!, trainIds, { ...o, evalIds }, { onStep: job.onStep, onEval: job.onEval, checkpoint });
    } else {
      const checkpoint = recoverCheckpointing(out, job.checkpointEvery ?? DEFAULT_CHECKPOINT_EVERY);
      // the rollback values beside the checkpoints, on the output's disk (the system's temporary
      // folder may be memory, and they are as large as the trained weights)
      const rollbackFile = out.statePath("rollback.f32");
      result = await recover(student, teacher, trainIds, { ...o, mode: job.mode, evalIds }, { onStep: job.onStep, onEval: job.onEval, checkpoint, rollbackFile });
    }
    const final = result.evals.at(-1) ?? null;
    const record: Record<string, unknown> = {
      topiary: TOPIARY_VERSION,
      created: new Date().toISOString(),
      source: path.resolve(job.studentDir),
      teacher: job.teacherDir ? path.resolve(job.teacherDir) : null,
      recipe: [recipe],
      resumed: resumedAt,
      data: { file: path.resolve(job.dataFile), sha256: sha256File(job.dataFile), tokens: trainIds.length },
      eval: job.evalFile
        ? {
            file: path.resolve(job.evalFile),
            seqlen: o.evalSeqlen,
            perplexity: final?.perplexity ?? null,
            perplexity_before_remask: "beforeRemask" in result ? (result.beforeRemask?.perplexity ?? null) : null,
            points: result.evals,
          }
        : null,
      loss_curve: result.losses,
      trainable_parameters: result.trainable,
      train_seconds: result.trainSeconds,
      tokens_per_second: result.tokensPerSecond,
      stopped: result.stopped,
      sparsity: zeroReport(student, result.weights),
      versions: { node: process.versions.node, onnxruntime: runtimeVersion() },
      seconds: (performance.now() - t0) / 1000,
      ...job.record,
    };
    const trained = studentWith(student, result.weights);
    // written in the checkpoint's own names and layouts (models/family.ts checkpointView: GPT-2's
    // Conv1D weights back to [in, out]), as the compressors write
    const view = trained.family.checkpointView;
    const saved = view ? view.toCheckpoint(trained.config, trained.weights) : trained.weights;
    writeDenseSafetensors(out.dir, saved, (n) => storedFloatDtype(saved, n));
    copyModelFiles(job.studentDir, out.dir, student.config.raw);
    fs.writeFileSync(path.join(out.dir, "topiary.json"), JSON.stringify(record, null, 2) + "\n");
    out.finish();
    finished = true;
    if (result.stopped) {
      const s = result.stopped;
      const kept = "kept" in s ? s.kept : s.keptStep <= 0 ? "the student's own weights" : `the weights of step ${s.keptStep + 1} (its loss was finite)`;
      throw new FormatError(job.outDir, `${s.reason} at step ${s.step} (lr ${o.lr}); training stopped, ${kept} were written here`);
    }
    return { outDir: job.outDir, record };
  } catch (e) {
    // an error (bad input, a failed step) leaves nothing half-written; only a killed run leaves its state
    if (out && !finished) out.abandon();
    throw e;
  } finally {
    student.close();
    teacher?.close();
  }
}
