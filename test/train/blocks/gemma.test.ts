// Gemma 2 / Gemma 3 block backward (train/blocks/gemma.ts): finite differences and the recomputed forward.
import { after, test } from "node:test";
import { releaseSessions } from "../../../src/runtime/ort.js";
import { checkBlock, checkHead, report, reportHead } from "./check-block.js";

after(releaseSessions);

const gemma = (version: 2 | 3, extra: Record<string, unknown> = {}) => ({
  architectures: [version === 2 ? "Gemma2ForCausalLM" : "Gemma3ForCausalLM"],
  hidden_size: 16,
  intermediate_size: 12,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  head_dim: 4,
  vocab_size: 32,
  query_pre_attn_scalar: 8,
  sliding_window: 3,
  layer_types: ["sliding_attention", "full_attention"],
  rope_local_base_freq: 10000,
  rope_theta: 1000000,
  ...extra,
});

test("Gemma 2 block, sliding layer: (1 + w) norms, GELU-tanh, softcapped logits, window", async () => {
  report("gemma2 sliding", await checkBlock(gemma(2, { attn_logit_softcapping: 2.0 }), { layer: 0, T: 6 }));
});

test("Gemma 2 block, full-attention layer", async () => {
  report("gemma2 full", await checkBlock(gemma(2, { attn_logit_softcapping: 2.0 }), { layer: 1 }));
});

test("Gemma 3 block: per-head q/k norms, local / global rotary base per layer", async () => {
  report("gemma3 sliding", await checkBlock(gemma(3), { layer: 0, T: 6 }));
  report("gemma3 full", await checkBlock(gemma(3), { layer: 1, T: 6 }));
});

test("Gemma 2 head: (1 + w) final norm, tied head, final-logit softcap", async () => {
  reportHead("gemma2", await checkHead(gemma(2, { final_logit_softcapping: 3.0 })));
});

test("Gemma block after structured pruning: 2 of 4 heads (1 KV head), 5 channels, o_proj / down_proj compensation biases", async () => {
  const sp = { num_attention_heads: [2, 4], num_key_value_heads: [1, 2], intermediate_size: [5, 12], o_proj_bias: [true, false], down_proj_bias: [true, false] };
  report("gemma2 pruned sliding layer", await checkBlock(gemma(2, { attn_logit_softcapping: 2.0, structured_pruning: sp }), { layer: 0, T: 6 }));
  report("gemma3 pruned sliding layer", await checkBlock(gemma(3, { structured_pruning: sp }), { layer: 0, T: 6 }));
});
