// The families beyond the nine golden checkpoints: other head counts, GQA ratios, tied/untied
// heads, partial rotary, windows shorter than the sequence. Random-weight models
// (models/synthetic.ts) are checked for self-consistency — the full-sequence forward equals
// token-by-token KV-cache decoding (windows applied the same on both paths), and the ONNX export
// computes the same logits — and bad configs / fused tensors fail in one line naming the file.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { OnnxDecoder } from "../../src/eval/onnx-decoder.js";
import { exportOnnx } from "../../src/export/onnx.js";
import { FormatError } from "../../src/formats/errors.js";
import { loadModel } from "../../src/models/load.js";
import { CausalLM } from "../../src/models/model.js";
import { syntheticModel, type SyntheticShape } from "../../src/models/synthetic.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { tempDir } from "../helpers.js";
import { archDir, maxAbsDiff } from "./arch-helpers.js";

after(releaseSessions);

const base = { hidden_size: 48, intermediate_size: 80, num_hidden_layers: 3, vocab_size: 97, max_position_embeddings: 128, bos_token_id: 1, eos_token_id: 2 };
const SHAPES: Record<string, SyntheticShape> = {
  "Mistral, window 7, GQA 3:1": { ...base, architectures: ["MistralForCausalLM"], num_attention_heads: 6, num_key_value_heads: 2, sliding_window: 7 },
  "Qwen2, biases, window 5 on the last layer only": {
    ...base,
    architectures: ["Qwen2ForCausalLM"],
    num_attention_heads: 4,
    num_key_value_heads: 4,
    sliding_window: 5,
    use_sliding_window: true,
    layer_types: ["full_attention", "full_attention", "sliding_attention"],
  },
  "Qwen3, head_dim 16 ≠ hidden/heads, GQA 4:1, untied": { ...base, architectures: ["Qwen3ForCausalLM"], num_attention_heads: 4, num_key_value_heads: 1, head_dim: 16, tie_word_embeddings: false },
  "Phi-3, partial rotary ½, GQA 2:1, window 9": {
    ...base,
    architectures: ["Phi3ForCausalLM"],
    num_attention_heads: 4,
    num_key_value_heads: 2,
    partial_rotary_factor: 0.5,
    sliding_window: 9,
    tie_word_embeddings: true,
  },
  "Gemma 2, window 6, untied, softcaps": {
    ...base,
    architectures: ["Gemma2ForCausalLM"],
    num_attention_heads: 2,
    num_key_value_heads: 1,
    head_dim: 32,
    query_pre_attn_scalar: 24,
    attn_logit_softcapping: 5,
    final_logit_softcapping: 3,
    sliding_window: 6,
    tie_word_embeddings: false,
  },
  "Gemma 3, pattern 3, local base 100, linear rope scaling": {
    ...base,
    architectures: ["Gemma3ForCausalLM"],
    num_attention_heads: 4,
    num_key_value_heads: 2,
    head_dim: 12,
    query_pre_attn_scalar: 12,
    sliding_window: 4,
    sliding_window_pattern: 3,
    rope_theta: 50000,
    rope_local_base_freq: 100,
    rope_scaling: { rope_type: "linear", factor: 2 },
  },
};

const T = 20;
const ids = Int32Array.from({ length: 2 * T }, (_, i) => (i * 37 + 5) % 97);

for (const [label, shape] of Object.entries(SHAPES)) {
  test(`${label}: forward = KV-cache decoding = ONNX export`, async () => {
    const { config, weights } = syntheticModel(shape, 7);
    const model = new CausalLM(config, weights, "<synthetic>");
    const full = await model.forward(ids, 2, T);
    // one sequence, a 3-token prefill then one token at a time
    const V = config.vocabSize;
    const seq = ids.subarray(0, T);
    let step = await model.step(seq.subarray(0, 3), 1, 3, null);
    const stepped = [step.logits];
    for (let t = 3; t < T; t++) {
      step = await model.step(seq.subarray(t, t + 1), 1, 1, step.cache);
      stepped.push(step.logits);
    }
    const cat = new Float32Array(T * V);
    let o = 0;
    for (const s of stepped) {
      cat.set(s, o);
      o += s.length;
    }
    assert.ok(maxAbsDiff(cat, full.subarray(0, T * V)) < 1e-4, `KV cache vs forward: ${maxAbsDiff(cat, full.subarray(0, T * V))}`);

    const out = path.join(tempDir(), "onnx");
    await exportOnnx(config, weights, out, { dtype: "fp32" });
    const dec = await OnnxDecoder.open(out);
    try {
      const theirs = (await dec.step(ids, 2, T, null)).logits;
      assert.ok(maxAbsDiff(theirs, full) < 1e-4, `ONNX vs topiary: ${maxAbsDiff(theirs, full)}`);
    } finally {
      await dec.close();
    }
  });
}

describe("bad family configs and fused tensors: one line naming the file", () => {
  /** A copy of a golden folder with config.json changed. */
  const variant = (name: string, change: (c: Record<string, unknown>) => void): string => {
    const src = archDir(name);
    const dir = path.join(tempDir(), name);
    fs.mkdirSync(dir);
    for (const f of fs.readdirSync(src)) fs.symlinkSync(path.join(src, f), path.join(dir, f));
    const cfg = JSON.parse(fs.readFileSync(path.join(src, "config.json"), "utf8"));
    change(cfg);
    fs.rmSync(path.join(dir, "config.json"));
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(cfg));
    return dir;
  };
  const fails = (dir: string, file: string, message: RegExp) =>
    assert.throws(
      () => loadModel(dir),
      (e: unknown) => e instanceof FormatError && e.message.startsWith(`${file ? path.join(dir, file) : dir}: `) && message.test(e.message) && !e.message.includes("\n"),
    );

  test("Phi-3 qkv_proj whose rows contradict the head counts", () => {
    // the error names the weights file (model.safetensors, or the index of a sharded checkpoint)
    fails(variant("phi3", (c) => (c.num_key_value_heads = 2)), "model.safetensors", /tensor "model\.layers\.0\.self_attn\.qkv_proj\.weight" has shape \[192, 64\], config\.json implies \[128, 64\]/);
  });
  test("Gemma 2 without query_pre_attn_scalar", () => {
    fails(variant("gemma2", (c) => delete c.query_pre_attn_scalar), "config.json", /field "query_pre_attn_scalar" is missing/);
  });
  test("Gemma 3 layer_types of the wrong length", () => {
    fails(variant("gemma3", (c) => (c.layer_types = ["full_attention"])), "config.json", /layer_types has 1 entries for 3 layers/);
  });
  test("Qwen3 without head counts", () => {
    fails(variant("qwen3", (c) => delete c.num_attention_heads), "config.json", /field "num_attention_heads" is missing/);
  });
});
