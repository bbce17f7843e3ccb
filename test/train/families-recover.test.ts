// `topiary recover` on every family: a short masked KL run (5 steps) on a SparseGPT-50 % student of
// each tiny transformers checkpoint in ../shared/reference/architectures, the checkpoint itself as
// the teacher. The training loop is family-agnostic; this checks each family's `train` hook end to
// end: finite losses, a lower loss at the end, and every pruned weight still exactly zero.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { runCompression, writerFor } from "../../src/compress/job.js";
import { buildStage } from "../../src/compress/registry.js";
import { calibrationWindows } from "../../src/data/calibration.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { runRecovery, type RecoverJob } from "../../src/train/job.js";
import { DATA, tempDir } from "../helpers.js";
import { ALL_FAMILIES as FAMILIES, archDir } from "../models/arch-helpers.js";

after(releaseSessions);

const work = tempDir("topiary-families-recover-");
const calibText = fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 20000);
const trainText = path.join(work, "train.txt");
fs.writeFileSync(trainText, calibText.slice(0, 240));

/** A SparseGPT-50 % student of checkpoint `name` (made once). */
const students = new Map<string, Promise<string>>();
function studentOf(name: string): Promise<string> {
  let p = students.get(name);
  if (!p) {
    const dir = archDir(name);
    const tok = TextTokenizer.load(dir);
    const batch = calibrationWindows(tok.encode(calibText), { nsamples: 4, seqlen: 64, sampling: "first", seed: 0 });
    const student = path.join(work, `${name}-sparsegpt`);
    p = runCompression({
      modelDir: dir,
      outDir: student,
      stages: [buildStage({ method: "sparsegpt", sparsity: 0.5 }, "test")],
      calibration: { batch, info: { file: "train.txt", sha256: "", tokens: 0, nsamples: 4, seqlen: 64, sampling: "first", seed: 0 } },
      writer: writerFor("dense"),
    }).then(() => student);
    students.set(name, p);
  }
  return p;
}

type Record_ = { loss_curve: number[]; sparsity: { zeros: number; student_zeros: number; same_zeros_every_linear: boolean } };

async function recoverFamily(name: string, mode: RecoverJob["mode"], steps: number): Promise<Record_> {
  const dir = archDir(name);
  const T = TextTokenizer.load(dir).encode(fs.readFileSync(trainText, "utf8")).length;
  const { record } = await runRecovery({
    studentDir: await studentOf(name),
    teacherDir: dir,
    dataFile: trainText,
    evalFile: null,
    outDir: path.join(work, `${name}-${mode}`),
    mode,
    options: { steps, batch: 2, seqlen: T, lr: 1e-3, warmup: 1, weightDecay: 0, clip: 0, seed: 0, loss: "kl", temperature: 1, rank: 4, alpha: 8, evalSeqlen: T, evalEvery: 0, calibrationWindows: 4 },
  });
  const r = record as Record_;
  assert.ok(r.loss_curve.length > 0 && r.loss_curve.every(Number.isFinite), `finite losses: ${r.loss_curve}`);
  assert.ok(r.sparsity.zeros > 0);
  assert.equal(r.sparsity.zeros, r.sparsity.student_zeros);
  assert.ok(r.sparsity.same_zeros_every_linear);
  return r;
}

describe("recover (masked, KL) on a SparseGPT-50 % student of every family", () => {
  for (const name of FAMILIES) {
    test(name, async () => {
      const r = await recoverFamily(name, "masked", 5);
      console.log(`# ${name}: loss ${r.loss_curve.map((l) => l.toFixed(4)).join(" → ")}`);
      assert.equal(r.loss_curve.length, 5);
      // the same batch every step, a small learning rate: each step lowers the loss
      for (let i = 1; i < r.loss_curve.length; i++) assert.ok(r.loss_curve[i]! < r.loss_curve[i - 1]!, `step ${i + 1}: loss ${r.loss_curve[i - 1]} → ${r.loss_curve[i]}`);
    });
  }
});

// LoRA (re-masked after the merge) and layer-wise on the fused-linear families: Phi-3's q | k | v
// side by side, GPT-NeoX's interleaved per head
describe("recover (LoRA, layer-wise) on fused-linear families", () => {
  for (const name of ["phi3", "gpt_neox"]) {
    for (const mode of ["lora", "layerwise"] as const) {
      test(`${name} ${mode}`, async () => {
        const r = await recoverFamily(name, mode, 2);
        console.log(`# ${name} ${mode}: loss ${r.loss_curve.map((l) => l.toFixed(4)).join(" ")}`);
      });
    }
  }
});
