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
import { DATA, REFERENCE, tempDir } from "../helpers.js";

after(releaseSessions);

const ARCHITECTURES = path.join(REFERENCE, "architectures");
const present = fs.existsSync(ARCHITECTURES) ? {} : { skip: "../shared/reference/architectures is missing" };
const FAMILIES = ["llama3", "qwen3", "phi3", "gemma2", "gemma3", "opt", "gpt2", "bloom", "gpt_neox"];
const work = tempDir("topiary-structured-recover-");
const calibText = fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 20000);
const trainText = path.join(work, "train.txt");
fs.writeFileSync(trainText, calibText.slice(0, 240));
const STEPS = 4;

/** Each layer's [heads, KV heads, MLP channels] (every family's config holds `layers`). */
const widthsOf = (m: CausalLM) => (m.config as unknown as { layers: LayerStructure[] }).layers.map((l) => [l.numHeads, l.numKvHeads, l.intermediateSize]);

describe("recover (masked, KL) on a FLAP-30 % student of every family", present, () => {
  for (const name of FAMILIES) {
    test(name, async () => {
      const dir = path.join(ARCHITECTURES, name);
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
      const widths = widthsOf(pruned);
      // FLAP chose per-layer widths below the checkpoint's (the case the block backward must follow)
      const full = widthsOf(loadModel(dir))[0]!;
      assert.ok(widths.some((w) => w[0]! < full[0]! || w[2]! < full[2]!), `widths ${JSON.stringify(widths)}`);
      pruned.close();

      const T = tok.encode(fs.readFileSync(trainText, "utf8")).length;
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
