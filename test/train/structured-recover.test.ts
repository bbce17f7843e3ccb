// Recovery of a structurally pruned student on every family: FLAP at 30 % (per-layer widths, the
// compensation biases, BLOOM's kept-head ALiBi slopes) through the structured job API, then a few
// masked KL steps with the dense checkpoint as the teacher. The loss is finite and falls every step
// (same batch, small learning rate), and the written student reloads with the pruned widths and
// the trained weights' logits.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { runStructured } from "../../src/compress/structured/job.js";
import { calibrationWindows } from "../../src/data/calibration.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { runRecovery } from "../../src/train/job.js";
import type { CausalLM } from "../../src/models/model.js";
import type { LayerStructure } from "../../src/models/structure.js";
import { DATA, tempDir } from "../helpers.js";
import { ALL_FAMILIES as FAMILIES, archDir } from "../models/arch-helpers.js";

after(releaseSessions);

const work = tempDir("topiary-structured-recover-");
const calibText = fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 20000);
const trainText = path.join(work, "train.txt");
fs.writeFileSync(trainText, calibText.slice(0, 240));
const STEPS = 4;

/** mean over positions of KL(p_teacher ‖ p_student), float64 (the `kl` loss at τ = 1: train/head-loss.ts) */
function meanKl(teacher: Float32Array, student: Float32Array, V: number): number {
  const logSoftmax = (x: Float32Array, r: number) => {
    let m = -Infinity;
    for (let j = 0; j < V; j++) m = Math.max(m, x[r * V + j]!);
    let z = 0;
    for (let j = 0; j < V; j++) z += Math.exp(x[r * V + j]! - m);
    return Array.from({ length: V }, (_, j) => x[r * V + j]! - m - Math.log(z));
  };
  const N = teacher.length / V;
  let sum = 0;
  for (let r = 0; r < N; r++) {
    const lt = logSoftmax(teacher, r);
    const ls = logSoftmax(student, r);
    for (let j = 0; j < V; j++) sum += Math.exp(lt[j]!) * (lt[j]! - ls[j]!);
  }
  return sum / N;
}

/** Each layer's [heads, KV heads, MLP channels] (every family's config holds `layers`). */
const widthsOf = (m: CausalLM) => (m.config as unknown as { layers: LayerStructure[] }).layers.map((l) => [l.numHeads, l.numKvHeads, l.intermediateSize]);

describe("recover (masked, KL) on a FLAP-30 % student of every family", () => {
  for (const name of FAMILIES) {
    test(name, async () => {
      const dir = archDir(name);
      const tok = TextTokenizer.load(dir);
      const batch = calibrationWindows(tok.encode(calibText), { nsamples: 4, seqlen: 64, sampling: "first", seed: 0 });
      const student = path.join(work, `${name}-flap`);
      await runStructured({
        modelDir: dir,
        outDir: student,
        method: "flap",
        ratio: 0.3,
        calibration: { batch, info: { file: "calib.txt", sha256: "", tokens: 0, nsamples: 4, seqlen: 64, sampling: "first", seed: 0 } },
      });
      const pruned = loadModel(student);
      const teacher = loadModel(dir);
      const widths = widthsOf(pruned);
      // FLAP chose per-layer widths below the checkpoint's (the case the block backward must follow)
      const full = widthsOf(teacher)[0]!;
      assert.ok(widths.some((w) => w[0]! < full[0]! || w[2]! < full[2]!), `widths ${JSON.stringify(widths)}`);
      // the training text is one window (seqlen = its length), so every batch row is the whole text:
      // the first loss is the KL of the models' own forward graphs on it — the training graphs
      // (block backwards with the pruned widths, biases, slopes) compute the same model
      const trainIds = Int32Array.from(tok.encode(fs.readFileSync(trainText, "utf8")));
      const T = trainIds.length;
      const kl0 = meanKl(await teacher.forward(trainIds, 1, T), await pruned.forward(trainIds, 1, T), teacher.config.vocabSize);
      teacher.close();
      pruned.close();
      const outDir = path.join(work, `${name}-recovered`);
      const { record } = await runRecovery({
        studentDir: student,
        teacherDir: dir,
        dataFile: trainText,
        evalFile: null,
        outDir,
        mode: "masked",
        options: { steps: STEPS, batch: 2, seqlen: T, lr: 3e-4, warmup: 1, weightDecay: 0, clip: 0, seed: 0, loss: "kl", temperature: 1, rank: 4, alpha: 8, evalSeqlen: T, evalEvery: 0, calibrationWindows: 4 },
      });
      const curve = (record as { loss_curve: number[] }).loss_curve;
      console.log(`# ${name} FLAP-30 %: widths ${JSON.stringify(widths)}, loss ${curve.map((l) => l.toFixed(4)).join(" → ")}`);
      assert.equal(curve.length, STEPS);
      assert.ok(curve.every(Number.isFinite), `finite losses: ${curve}`);
      assert.ok(Math.abs(curve[0]! - kl0) <= 1e-3 * kl0, `first loss ${curve[0]}, KL of the forward graphs ${kl0}`);
      for (let i = 1; i < curve.length; i++) assert.ok(curve[i]! < curve[i - 1]!, `step ${i + 1}: loss ${curve[i - 1]} → ${curve[i]}`);

      // the written student reloads: the pruned widths, finite logits that differ from the untrained student's
      const trained = loadModel(outDir);
      const before = loadModel(student);
      assert.deepEqual(widthsOf(trained), widths);
      if (name === "bloom") assert.deepEqual((trained.config as unknown as { layerSlopes: number[][] }).layerSlopes, (before.config as unknown as { layerSlopes: number[][] }).layerSlopes);
      const ids = Int32Array.from(tok.encode("Once upon a time there was a little girl").slice(0, 12));
      const got = await trained.forward(ids, 1, ids.length);
      const was = await before.forward(ids, 1, ids.length);
      assert.ok(got.every(Number.isFinite), "finite logits");
      let moved = 0;
      for (let i = 0; i < got.length; i++) moved = Math.max(moved, Math.abs(got[i]! - was[i]!));
      assert.ok(moved > 1e-4, `training changed the logits (max |Δ| ${moved})`);
      trained.close();
      before.close();
    });
  }
});
