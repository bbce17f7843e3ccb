// Structured pruning through the family seam, on all nine reference architectures' tiny
// checkpoints (fused c_attn / qkv_proj / gate_up_proj / interleaved query_key_value, Conv1D,
// ALiBi, sandwich norms, per-layer widths in config.json): FLAP, Wanda-sp and obs-sp at 30 % run,
// write a smaller folder in the checkpoint's own layout, and the folder reloads with exactly the
// in-memory pruned model's logits.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { prunedStandIn } from "../../../src/compress/structured/biased-model.js";
import { keptFraction, planStructured, type StructuredMethod } from "../../../src/compress/structured/plan.js";
import { writeStructured } from "../../../src/compress/structured/write.js";
import { Rng } from "../../../src/data/rng.js";
import { SafetensorsModel } from "../../../src/formats/safetensors.js";
import { loadModel } from "../../../src/models/load.js";
import { REFERENCE, tempDir } from "../../helpers.js";

const ARCH = path.join(REFERENCE, "architectures");

function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(vocab));
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Bytes of every decoder linear's weight in a folder (names ending in the family's linear suffixes). */
function linearWeightBytes(dir: string, suffixes: string[]): number {
  const st = SafetensorsModel.open(dir);
  const n = st.names().filter((x) => suffixes.some((s) => x.endsWith(`${s}.weight`))).reduce((s, x) => s + st.info(x).end - st.info(x).begin, 0);
  st.close();
  return n;
}

// every family: FLAP and Wanda-sp; obs-sp (the slowest: a refit per removal) on a few, among
// them the fused layouts (Phi-3 qkv/gate_up, BLOOM's interleaved heads with ALiBi)
const ARCHS = ["llama3", "qwen3", "gpt2", "opt", "phi3", "gemma2", "gemma3", "bloom", "gpt_neox"];
const OBS_SP = new Set(["llama3", "gpt2", "phi3", "bloom"]);

for (const arch of ARCHS) {
  const methods: StructuredMethod[] = ["flap", "wanda-sp", ...(OBS_SP.has(arch) ? (["obs-sp"] as const) : [])];
  for (const method of methods) {
    test(`${arch}: ${method} 30 % writes a smaller folder that reloads with the in-memory logits`, async () => {
      const dir = path.join(ARCH, arch);
      const model = loadModel(dir);
      const V = model.config.vocabSize;
      const calib = { ids: randomIds(4 * 64, V, 1), nsamples: 4, seqlen: 64 };
      const sel = await planStructured(model, calib, { method, ratio: 0.3 });
      const out = path.join(tempDir(), `${arch}-${method}`);
      await writeStructured(model, sel, { outDir: out, record: {} });
      const reloaded = loadModel(out);
      const ids = randomIds(48, V, 2);
      const want = await prunedStandIn(model, sel).forward(ids, 1, ids.length);
      const got = await reloaded.forward(ids, 1, ids.length);
      const diff = maxAbsDiff(got, want);
      assert.ok(diff < 1e-4, `reloaded logits differ by ${diff}`);
      const suffixes = model.linears(0).map((l) => l.suffix);
      const ratio = linearWeightBytes(out, suffixes) / linearWeightBytes(dir, suffixes);
      const kept = keptFraction(model, sel);
      assert.ok(Math.abs(ratio - kept) < 1e-9, `decoder-linear bytes ×${ratio} vs kept weights ${kept}`);
      if (method === "wanda-sp") {
        // floor(0.3·count) units of every group in every layer (2 KV groups: none)
        let k = 0;
        let n = 0;
        for (let i = 0; i < model.numLayers; i++) {
          for (const g of model.family.structure!.units(model.config, i)) {
            k += (g.count - Math.floor(0.3 * g.count)) * g.weightsPerUnit;
            n += g.count * g.weightsPerUnit;
          }
        }
        assert.ok(Math.abs(kept - k / n) < 1e-12, `kept ${kept}, wanda-sp's floor rule ${k / n}`);
      } else {
        assert.ok(kept < 0.75 && kept > 0.6, `kept ${kept}`);
      }
      // the reloaded layers have the widths the plan chose
      for (let i = 0; i < model.numLayers; i++) {
        const [attn, mlp] = reloaded.family.structure!.units(reloaded.config, i);
        assert.equal(attn!.count, sel[i]!.kept.attention.length, `layer ${i} attention units`);
        assert.equal(mlp!.count, sel[i]!.kept.mlp.length, `layer ${i} MLP units`);
      }
      model.close();
      reloaded.close();
    });
  }
}
