// Every family exported: ONNX (onnxruntime greedy = topiary's greedy; transformers.js logits) and GGUF f16 (llama.cpp's
// architecture name and tensor names; the file read back computes what topiary computes up to
// f16 rounding; node-llama-cpp's greedy continuation equals topiary's on the same weights).
import assert from "node:assert/strict";
import path from "node:path";
import { after, describe, test } from "node:test";
import { AutoModelForCausalLM, env, Tensor } from "@huggingface/transformers";
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
import { archDir, FAMILIES, goldenPrompt, greedy, maxAbsDiff, readGolden } from "./arch-helpers.js";

env.allowRemoteModels = false;
env.allowLocalModels = true;

after(releaseSessions);

/** llama.cpp architecture of each family's GGUF */
const GGUF_ARCH: Record<string, string> = { llama3: "llama", qwen3: "qwen3", phi3: "phi3", gemma2: "gemma2", gemma3: "gemma3" };

describe("GGUF tensor plans and metadata (independent of the vocabulary)", () => {
  const plan = (name: string) => {
    const m = loadModel(archDir(name));
    try {
      const gguf = m.family.gguf!;
      const arch = gguf.arch(m.config);
      return { arch, tensors: gguf.tensors(m.config, m.weights), meta: new Map(gguf.metadata(m.config, arch).map(([k, v]) => [k, (v as { value: unknown }).value])) };
    } finally {
      m.close();
    }
  };
  test("llama3: llama, q/k permuted, llama3 rope scaling as rope_freqs, untied output", () => {
    const p = plan("llama3");
    assert.equal(p.arch, "llama");
    assert.equal(p.tensors[0]!.name, "rope_freqs.weight");
    assert.equal(p.tensors.find((t) => t.name === "blk.0.attn_q.weight")!.permuteHeads, 4);
    assert.ok(p.tensors.some((t) => t.name === "output.weight"));
    assert.equal(p.meta.get("llama.rope.freq_base"), 500000);
  });
  test("qwen3: qwen3, q/k norms, no permutation (NEOX rope)", () => {
    const p = plan("qwen3");
    assert.equal(p.arch, "qwen3");
    assert.ok(p.tensors.some((t) => t.name === "blk.1.attn_q_norm.weight"));
    assert.ok(p.tensors.some((t) => t.name === "blk.1.attn_k_norm.weight"));
    assert.ok(p.tensors.every((t) => t.permuteHeads === null));
    assert.equal(p.meta.get("qwen3.rope.freq_base"), 1000000);
    assert.equal(p.meta.get("qwen3.attention.key_length"), 16);
  });
  test("phi3: fused attn_qkv and ffn_up", () => {
    const p = plan("phi3");
    assert.deepEqual(p.tensors.find((t) => t.name === "blk.0.attn_qkv.weight")!.shape, [192, 64]);
    assert.deepEqual(p.tensors.find((t) => t.name === "blk.0.ffn_up.weight")!.shape, [320, 64]);
    assert.equal(p.meta.get("phi3.rope.dimension_count"), 16);
  });
  test("gemma2: norms stored as 1 + w, softcaps and window in the metadata", () => {
    const p = plan("gemma2");
    const norm = p.tensors.find((t) => t.name === "blk.0.post_ffw_norm.weight")!;
    assert.deepEqual(Array.from(norm.transform!(Float32Array.of(0, 0.5))), [1, 1.5]);
    assert.equal(p.meta.get("gemma2.attn_logit_softcapping"), 50);
    assert.equal(p.meta.get("gemma2.final_logit_softcapping"), 30);
    assert.equal(p.meta.get("gemma2.attention.sliding_window"), 24);
  });
});

for (const { name } of FAMILIES) {
  describe(`${name} exports`, () => {
    const dir = archDir(name);
    const g = readGolden(name);
    const prompt = goldenPrompt(g.greedyPromptIds);

    test("ONNX fp32: logits and 24 greedy tokens with the KV cache equal topiary's; transformers.js logits too", async () => {
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
          // transformers.js (v4) loads the same folder by its model_type and computes the same logits
          const tjs = await AutoModelForCausalLM.from_pretrained(out);
          const res = (await tjs({ input_ids: new Tensor("int64", BigInt64Array.from(ids, BigInt), [1, T]), attention_mask: new Tensor("int64", new BigInt64Array(T).fill(1n), [1, T]) })) as { logits: Tensor };
          assert.ok(maxAbsDiff(res.logits.data as Float32Array, own) < 1e-4, `transformers.js logits differ by ${maxAbsDiff(res.logits.data as Float32Array, own)}`);
          await tjs.dispose();
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
