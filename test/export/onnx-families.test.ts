// ONNX export of OPT, BLOOM, GPT-2 and GPT-NeoX (the same block graphs topiary runs), run by
// onnxruntime through eval/onnx-decoder.ts: transformers' golden logits and 24 greedy tokens.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { decode } from "../../src/eval/decode.js";
import { OnnxDecoder } from "../../src/eval/onnx-decoder.js";
import { exportOnnx } from "../../src/export/onnx.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { tempDir } from "../helpers.js";
import { archDir, maxAbsDiff, readGolden } from "../models/arch-helpers.js";

after(() => releaseSessions());

for (const name of ["opt", "bloom", "gpt2", "gpt_neox"]) {
  describe(`ONNX export of ${name}`, () => {
    test("fp32: golden logits within 1e-4 and transformers' 24 greedy tokens through onnxruntime", async (t) => {
      const src = archDir(name);
      const out = path.join(tempDir("topiary-onnx-family-"), name);
      const model = loadModel(src);
      await exportOnnx(model.config, model.weights, out, { sourceDir: src, dtype: "fp32" });
      model.close();
      assert.ok(fs.existsSync(path.join(out, "onnx", "model.onnx")));
      const dec = await OnnxDecoder.open(out);
      const g = readGolden(name);
      // the export's batch is one sequence: the golden windows one at a time
      const rows = new Float32Array(g.logits.length);
      for (let b = 0; b < g.B; b++) {
        const r = await dec.step(g.inputIds.subarray(b * g.T, (b + 1) * g.T), 1, g.T, null);
        rows.set(r.logits, (b * g.logits.length) / g.B);
      }
      const diff = maxAbsDiff(rows, g.logits);
      t.diagnostic(`max |Δ| ${diff.toExponential(2)}`);
      assert.ok(diff < 1e-4, `max |Δ| ${diff}`);
      const r = await decode(dec, Int32Array.from(g.greedyPromptIds), { maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] });
      assert.deepEqual(r.ids, g.greedyNewIds);
    });
  });
}
