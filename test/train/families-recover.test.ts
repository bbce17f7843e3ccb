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
import { runRecovery } from "../../src/train/job.js";
import { DATA, REFERENCE, tempDir } from "../helpers.js";

after(releaseSessions);

const ARCHITECTURES = path.join(REFERENCE, "architectures");
const present = fs.existsSync(ARCHITECTURES) ? {} : { skip: "../shared/reference/architectures is missing" };
const FAMILIES = ["llama3", "qwen3", "phi3", "gemma2", "gemma3", "opt", "gpt2", "bloom", "gpt_neox"];
const work = tempDir("topiary-families-recover-");
const calibText = fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 20000);
const trainText = path.join(work, "train.txt");
fs.writeFileSync(trainText, calibText.slice(0, 240));

describe("recover (masked, KL) on a SparseGPT-50 % student of every family", present, () => {
  for (const name of FAMILIES) {
    test(name, async () => {
      const dir = path.join(ARCHITECTURES, name);
      const tok = TextTokenizer.load(dir);
      const batch = calibrationWindows(tok.encode(calibText), { nsamples: 4, seqlen: 64, sampling: "first", seed: 0 });
      const student = path.join(work, `${name}-sparsegpt`);
      await runCompression({
        modelDir: dir,
        outDir: student,
        stages: [buildStage({ method: "sparsegpt", sparsity: 0.5 }, "test")],
        calibration: { batch, info: { file: "train.txt", sha256: "", tokens: 0, nsamples: 4, seqlen: 64, sampling: "first", seed: 0 } },
        writer: writerFor("dense"),
      });
      const T = tok.encode(fs.readFileSync(trainText, "utf8")).length;
      const { record } = await runRecovery({
        studentDir: student,
        teacherDir: dir,
        dataFile: trainText,
        evalFile: null,
        outDir: path.join(work, `${name}-recovered`),
        mode: "masked",
        options: { steps: 5, batch: 2, seqlen: T, lr: 1e-3, warmup: 1, weightDecay: 0, clip: 0, seed: 0, loss: "kl", temperature: 1, rank: 8, alpha: 16, evalSeqlen: T, evalEvery: 0 },
      });
      const r = record as { loss_curve: number[]; sparsity: { zeros: number; student_zeros: number; same_zeros_every_linear: boolean } };
      console.log(`# ${name}: loss ${r.loss_curve.map((l) => l.toFixed(4)).join(" → ")}`);
      assert.equal(r.loss_curve.length, 5);
      assert.ok(r.loss_curve.every(Number.isFinite), `finite losses: ${r.loss_curve}`);
      // the same batch every step, a small learning rate: each step lowers the loss
      for (let i = 1; i < r.loss_curve.length; i++) assert.ok(r.loss_curve[i]! < r.loss_curve[i - 1]!, `step ${i + 1}: loss ${r.loss_curve[i - 1]} → ${r.loss_curve[i]}`);
      assert.ok(r.sparsity.zeros > 0);
      assert.equal(r.sparsity.zeros, r.sparsity.student_zeros);
      assert.ok(r.sparsity.same_zeros_every_linear);
    });
  }
});
