// A whole `topiary recover` run: check that student and teacher fit together, train, and write
// the student folder (weights + config + tokenizer + topiary.json with the loss curve) atomically.
import fs from "node:fs";
import path from "node:path";
import { sha256File, TOPIARY_VERSION } from "../compress/job.js";
import { loadEvalText } from "../data/text.js";
import { writeDirAtomic } from "../formats/atomic.js";
import { FormatError } from "../formats/errors.js";
import { copyModelFiles, storedFloatDtype, writeDenseSafetensors } from "../formats/hf-folder.js";
import { loadModel } from "../models/load.js";
import type { CausalLM } from "../models/model.js";
import { runtimeVersion } from "../runtime/ort.js";
import { TextTokenizer } from "../tokenizer/tokenizer.js";
import { usesTeacher } from "./head-loss.js";
import { trainHooks } from "./trainable.js";
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
  mode: RecoverJobMode;
  /** evalIds come from evalFile */
  options: Omit<RecoverOptions, "evalIds" | "mode"> & { calibrationWindows?: number };
  /** more to record in topiary.json (a recipe's earlier segments), under these keys */
  record?: Record<string, unknown>;
  onStep?: (s: StepInfo & { layer?: number }) => void;
  onEval?: (e: EvalPoint) => void;
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
    const t0 = performance.now();
    let result: RecoverResult | LayerwiseResult;
    if (job.mode === "layerwise") {
      result = await layerwiseDistill(student, teacher!, trainIds, { ...o, evalIds }, { onStep: job.onStep, onEval: job.onEval });
    } else {
      result = await recover(student, teacher, trainIds, { ...o, mode: job.mode, evalIds }, { onStep: job.onStep, onEval: job.onEval });
    }
    const final = result.evals.at(-1) ?? null;
    const record: Record<string, unknown> = {
      topiary: TOPIARY_VERSION,
      created: new Date().toISOString(),
      source: path.resolve(job.studentDir),
      teacher: job.teacherDir ? path.resolve(job.teacherDir) : null,
      recipe: [
        {
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
        },
      ],
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
    await writeDirAtomic(
      job.outDir,
      (tmp) => {
        writeDenseSafetensors(tmp, trained.weights, (n) => storedFloatDtype(trained.weights, n));
        copyModelFiles(job.studentDir, tmp, student.config.raw);
        fs.writeFileSync(path.join(tmp, "topiary.json"), JSON.stringify(record, null, 2) + "\n");
      },
      { overwrite: job.overwrite },
    );
    if (result.stopped) {
      const s = result.stopped;
      const kept = "kept" in s ? s.kept : s.keptStep <= 0 ? "the student's own weights" : `the weights of step ${s.keptStep + 1} (its loss was finite)`;
      throw new FormatError(job.outDir, `${s.reason} at step ${s.step} (lr ${o.lr}); training stopped, ${kept} were written here`);
    }
    return { outDir: job.outDir, record };
  } finally {
    student.close();
    teacher?.close();
  }
}
