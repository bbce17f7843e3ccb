// GPT-2 block backward (train/blocks/gpt2.ts): finite differences and the recomputed forward.
import { after, test } from "node:test";
import { releaseSessions } from "../../../src/runtime/ort.js";
import { checkBlock, checkHead, report, reportHead } from "./check-block.js";

after(releaseSessions);

const gpt2 = (extra: Record<string, unknown> = {}) => ({
  architectures: ["GPT2LMHeadModel"],
  hidden_size: 16,
  intermediate_size: 24,
  n_embd: 16,
  n_inner: 24,
  n_layer: 2,
  num_hidden_layers: 2,
  n_head: 4,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  vocab_size: 32,
  n_positions: 16,
  ...extra,
});

test("GPT-2 block: LayerNorm, fused c_attn (q | k | v), biases, GELU (tanh)", async () => {
  report("gpt2", await checkBlock(gpt2()));
});

test("GPT-2 block: scale_attn_by_inverse_layer_idx on layer 1, no 1/√hd, erf GELU", async () => {
  report("gpt2 layer scale", await checkBlock(gpt2({ scale_attn_by_inverse_layer_idx: true, scale_attn_weights: false, activation_function: "gelu" }), { layer: 1 }));
});

test("GPT-2 head: ln_f, tied head", async () => {
  reportHead("gpt2", await checkHead(gpt2()));
});

test("GPT-2 block after structured pruning: layer 0 with 3 of 4 heads (c_attn 3·12 rows) and 10 channels", async () => {
  const sp = { num_attention_heads: [3, 4], num_key_value_heads: [3, 4], intermediate_size: [10, 24] };
  report("gpt2 pruned layer", await checkBlock(gpt2({ structured_pruning: sp }), { layer: 0 }));
});
