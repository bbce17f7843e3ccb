// Every family through the compression pipeline and back: SparseGPT 50 % (dense) and GPTQ 4-bit
// g32 (compressed-tensors) on the tiny transformers checkpoints of
// ../shared/reference/architectures, calibrated on 4 windows of 64 tokens. Each output has the
// exact sparsity / every weight on its grid, keeps the checkpoint's tensor names (fused linears
// stay fused), and reloads with the perplexity the in-memory result had.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { calibrationWindows } from "../../src/data/calibration.js";
import { runCompression, writerFor } from "../../src/compress/job.js";
import { compressModel } from "../../src/compress/pipeline.js";
import { dequantize } from "../../src/formats/compressed-linear.js";
import { buildStage } from "../../src/compress/registry.js";
import { CompressedStore } from "../../src/compress/store.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { SafetensorsModel } from "../../src/formats/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { CausalLM } from "../../src/models/model.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { DATA, tempDir } from "../helpers.js";
import { archDir, FAMILIES } from "./arch-helpers.js";

after(releaseSessions);

const SEQLEN = 64;
const STAGES = {
  sparsegpt: { stage: { method: "sparsegpt", sparsity: 0.5 }, format: "dense" },
  gptq: { stage: { method: "gptq", bits: 4, group_size: 32 }, format: "compressed-tensors" },
} as const;

for (const { name } of FAMILIES) {
  describe(`${name}: prune and quantize, save, reload`, () => {
    const dir = archDir(name);
    const tok = TextTokenizer.load(dir);
    const calibText = fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 20000);
    const batch = calibrationWindows(tok.encode(calibText), { nsamples: 4, seqlen: SEQLEN, sampling: "first", seed: 0 });
    const evalIds = tok.encode(fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8").slice(0, 20000));

    for (const [method, { stage, format }] of Object.entries(STAGES)) {
      test(method, async () => {
        // in memory
        const base = loadModel(dir);
        const store = new CompressedStore(path.join(tempDir(), "store"));
        await compressModel(base, { stage: buildStage({ ...stage }, "test"), calibration: batch, store });
        const inMemory = await perplexity(new CausalLM(base.config, store.over(base.weights), dir), evalIds, { seqlen: SEQLEN, limitWindows: 2 });
        const linears = Array.from({ length: base.numLayers }, (_, i) => base.linears(i)).flat();
        base.close();

        // saved and reloaded
        const out = path.join(tempDir(), method);
        await runCompression({
          modelDir: dir,
          outDir: out,
          stages: [buildStage({ ...stage }, "test")],
          calibration: { batch, info: { file: "calib.txt", sha256: "", tokens: 0, nsamples: 4, seqlen: SEQLEN, sampling: "first", seed: 0 } },
          writer: writerFor(format),
        });
        const saved = SafetensorsModel.open(out);
        const source = SafetensorsModel.open(dir);
        const names = (m: SafetensorsModel) => m.names().filter((n) => !n.includes("weight_")).sort();
        if (format === "dense") assert.deepEqual(names(saved), names(source), "the checkpoint's own tensor names");
        saved.close();
        source.close();
        const back = loadModel(out);
        try {
          for (const l of linears) {
            const w = back.weights.read(`${l.name}.weight`);
            if (method === "sparsegpt") {
              const zeros = w.reduce((n, v) => n + (v === 0 ? 1 : 0), 0);
              // half pruned; an OBS-updated survivor may land on exactly 0 by chance (llama3: one)
              assert.ok(zeros >= w.length / 2 && zeros <= w.length / 2 + 2, `${l.name}: ${zeros} zeros of ${w.length}`);
            } else {
              const q = back.weights.quantized!(`${l.name}.weight`);
              assert.ok(q, `${l.name} is not stored quantized`);
              assert.deepEqual(q.shape, [l.outFeatures, l.inFeatures], `${l.name} stays one (fused) matrix`);
              assert.equal(q.grid.bits, 4);
              assert.deepEqual(dequantize(q.codes, q.grid, q.shape[1]!), w, `${l.name} on its grid`);
            }
          }
          const reloaded = await perplexity(back, evalIds, { seqlen: SEQLEN, limitWindows: 2 });
          assert.equal(reloaded.perplexity, inMemory.perplexity);
        } finally {
          back.close();
        }
      });
    }
  });
}
