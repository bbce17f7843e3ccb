// OPT, BLOOM, GPT-2 and GPT-NeoX with switches the golden checkpoints do not cover, each a tiny
// random model written in its family's own file layout: topiary's logits against a float64
// forward of transformers' math (test/models/reference-forward.ts), and KV-cache decoding
// against the full forward, and the ONNX export against topiary.
import assert from "node:assert/strict";
import path from "node:path";
import { after, describe, test } from "node:test";
import { OnnxDecoder } from "../../src/eval/onnx-decoder.js";
import { exportOnnx } from "../../src/export/onnx.js";
import { loadModel } from "../../src/models/load.js";
import type { CausalLM } from "../../src/models/model.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { tempDir } from "../helpers.js";
import { familyFixture } from "./family-fixtures.js";
import { referenceLogits } from "./reference-forward.js";

const V = 64;
const T = 12;
const IDS = Array.from({ length: T }, (_, t) => (t * 37 + 5) % V);

const opt = (over: Record<string, unknown>) => ({
  architectures: ["OPTForCausalLM"],
  vocab_size: V,
  hidden_size: 48,
  num_hidden_layers: 2,
  ffn_dim: 72,
  num_attention_heads: 3,
  max_position_embeddings: 32,
  ...over,
});
const bloom = (over: Record<string, unknown>) => ({ architectures: ["BloomForCausalLM"], vocab_size: V, hidden_size: 48, n_layer: 2, n_head: 4, ...over });
const gpt2 = (over: Record<string, unknown>) => ({ architectures: ["GPT2LMHeadModel"], vocab_size: V, n_embd: 48, n_layer: 2, n_head: 4, n_positions: 32, ...over });
const neox = (over: Record<string, unknown>) => ({
  architectures: ["GPTNeoXForCausalLM"],
  vocab_size: V,
  hidden_size: 48,
  num_hidden_layers: 2,
  num_attention_heads: 3,
  intermediate_size: 80,
  max_position_embeddings: 32,
  ...over,
});

type Family = "opt" | "bloom" | "gpt2" | "gpt_neox";
const CASES: { name: string; family: Family; config: Record<string, unknown>; strip?: string; omit?: string[] }[] = [
  { name: "OPT-350m style: post-norm, no final norm, project_in/out (32 ≠ 48)", family: "opt", config: opt({ do_layer_norm_before: false, word_embed_proj_dim: 32 }) },
  { name: "OPT pre-norm, untied head, no linear biases, GELU, base-model file", family: "opt", config: opt({ tie_word_embeddings: false, enable_bias: false, activation_function: "gelu" }), strip: "model." },
  { name: "OPT without LayerNorm weights (elementwise_affine false), project_in/out", family: "opt", config: opt({ layer_norm_elementwise_affine: false, word_embed_proj_dim: 24 }) },
  { name: "BLOOM with 6 heads (non-power-of-2 ALiBi slopes), bigscience file names", family: "bloom", config: bloom({ n_head: 6 }), strip: "transformer." },
  { name: "BLOOM with 3 heads and apply_residual_connection_post_layernorm", family: "bloom", config: bloom({ n_head: 3, apply_residual_connection_post_layernorm: true, tie_word_embeddings: false }) },
  { name: "GPT-2 without the transformer. prefix, n_inner 80, untied head", family: "gpt2", config: gpt2({ n_inner: 80, tie_word_embeddings: false }), strip: "transformer." },
  { name: "GPT-2 scale_attn_by_inverse_layer_idx, ReLU", family: "gpt2", config: gpt2({ scale_attn_by_inverse_layer_idx: true, activation_function: "relu" }) },
  { name: "GPT-NeoX sequential residual, rotary_pct 0.5, gelu_new, tied", family: "gpt_neox", config: neox({ use_parallel_residual: false, rotary_pct: 0.5, hidden_act: "gelu_new", tie_word_embeddings: true }) },
  { name: "GPT-NeoX full rotary (partial_rotary_factor 1), no attention biases, base-model file", family: "gpt_neox", config: neox({ rope_parameters: { rope_type: "default", rope_theta: 500, partial_rotary_factor: 1 }, attention_bias: false }), strip: "gpt_neox." },
];

const models: CausalLM[] = [];
after(async () => {
  for (const m of models) m.close();
  await releaseSessions();
});

describe("family switches: topiary vs a float64 forward of transformers' math", () => {
  for (const k of CASES) {
    test(k.name, async () => {
      const m = loadModel(familyFixture(k.config, { stripPrefix: k.strip, omit: k.omit }));
      models.push(m);
      const logits = await m.forward(Int32Array.from(IDS), 1, T);
      const ref = referenceLogits(k.family, m.config, (n) => m.weights.read(n), IDS);
      let worst = 0;
      for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(logits[i]! - ref[i]!));
      assert.ok(worst < 2e-5, `max |Δ| ${worst}`);

      // KV cache: a prefix of 5, then one token at a time, gives the same logits
      const step1 = await m.step(Int32Array.from(IDS.slice(0, 5)), 1, 5, null);
      const rows = [step1.logits];
      let cache = step1.cache;
      for (let t = 5; t < T; t++) {
        const s = await m.step(Int32Array.from([IDS[t]!]), 1, 1, cache);
        rows.push(s.logits);
        cache = s.cache;
      }
      const cached = new Float32Array(T * V);
      let at = 0;
      for (const r of rows) {
        cached.set(r, at);
        at += r.length;
      }
      let worstKv = 0;
      for (let i = 0; i < cached.length; i++) worstKv = Math.max(worstKv, Math.abs(cached[i]! - logits[i]!));
      assert.ok(worstKv < 1e-5, `KV cache vs full forward: max |Δ| ${worstKv}`);

      // the ONNX export (the same fragments in the exported graph) through onnxruntime
      const out = path.join(tempDir("topiary-variant-onnx-"), "onnx");
      await exportOnnx(m.config, m.weights, out, { dtype: "fp32", sourceDir: m.dir });
      const dec = await OnnxDecoder.open(out);
      const onnx = (await dec.step(Int32Array.from(IDS), 1, T, null)).logits;
      await dec.close();
      let worstOnnx = 0;
      for (let i = 0; i < onnx.length; i++) worstOnnx = Math.max(worstOnnx, Math.abs(onnx[i]! - logits[i]!));
      assert.ok(worstOnnx < 1e-5, `ONNX export vs topiary: max |Δ| ${worstOnnx}`);
    });
  }
});
