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
import { decode } from "../../../src/eval/decode.js";
import { OnnxDecoder } from "../../../src/eval/onnx-decoder.js";
import { exportOnnx } from "../../../src/export/onnx.js";
import fs from "node:fs";
import { SafetensorsModel } from "../../../src/formats/safetensors.js";
import { loadModel } from "../../../src/models/load.js";
import { tempDir } from "../../helpers.js";
import { ALL_FAMILIES, archDir, maxAbsDiff } from "../../models/arch-helpers.js";

function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(vocab));
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
const OBS_SP = new Set(["llama3", "gpt2", "phi3", "bloom"]);
/** families whose own config keys describe equal widths (GPT-2, OPT, BLOOM, GPT-NeoX tie head_dim to hidden / heads) */
const STANDARD_WHEN_UNIFORM = new Set(["llama3", "qwen3", "phi3", "gemma2", "gemma3"]);

for (const arch of ALL_FAMILIES) {
  const methods: StructuredMethod[] = ["flap", "wanda-sp", ...(OBS_SP.has(arch) ? (["obs-sp"] as const) : [])];
  for (const method of methods) {
    test(`${arch}: ${method} 30 % writes a smaller folder that reloads with the in-memory logits`, async () => {
      const dir = archDir(arch);
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
      const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")) as Record<string, unknown>;
      if (method === "wanda-sp" && STANDARD_WHEN_UNIFORM.has(arch)) {
        // equal widths, no compensation: the family's own keys, so GGUF exports as usual
        assert.equal(config.structured_pruning, undefined);
        const c = reloaded.config;
        if (arch === "phi3" && c.numHeads * c.headDim !== c.hiddenSize) {
          // llama.cpp's phi3 sizes the query rows by hidden_size: heads pruned → refused in one line
          assert.throws(() => reloaded.family.gguf!.arch(c), /GGUF export of this Phi3ForCausalLM: .*attention heads were pruned/);
        } else {
          assert.equal(reloaded.family.gguf!.arch(c), reloaded.family.gguf!.archName);
        }
      }
      if (config.structured_pruning !== undefined && arch !== "llama3" && reloaded.family.gguf) {
        // per-layer widths: llama.cpp has them only for Llama (deci); the others refuse in one line
        assert.throws(() => reloaded.family.gguf!.arch(reloaded.config), (e: Error) => !e.message.includes("\n") && /GGUF export of/.test(e.message));
      }
      if (method === "flap") {
        // per-layer widths (and per-layer ALiBi slopes, KV caches) through ONNX: logits and a cached greedy decode
        const onnx = path.join(out, "onnx-export");
        await exportOnnx(reloaded.config, reloaded.weights, onnx, { dtype: "fp32", sourceDir: out });
        const dec = await OnnxDecoder.open(onnx);
        const { logits } = await dec.step(ids, 1, ids.length, null);
        const d = maxAbsDiff(logits, got);
        assert.ok(d < 1e-3, `ONNX logits differ by ${d}`);
        const greedy = { maxNewTokens: 8, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] };
        const prompt = ids.subarray(0, 8);
        assert.deepEqual((await decode(dec, prompt, greedy)).ids, (await decode(reloaded, prompt, greedy)).ids);
        await dec.close();
      }
      model.close();
      reloaded.close();
    });
  }
}
