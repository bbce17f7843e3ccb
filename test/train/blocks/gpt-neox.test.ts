// GPT-NeoX block backward (train/blocks/gpt-neox.ts): finite differences and the recomputed forward.
import { after, test } from "node:test";
import { releaseSessions } from "../../../src/runtime/ort.js";
import { checkBlock, checkHead, report, reportHead } from "./check-block.js";

after(releaseSessions);

const neox = (extra: Record<string, unknown> = {}) => ({
  architectures: ["GPTNeoXForCausalLM"],
  hidden_size: 16,
  intermediate_size: 24,
  num_hidden_layers: 1,
  num_attention_heads: 2,
  num_key_value_heads: 2,
  vocab_size: 32,
  max_position_embeddings: 16,
  rotary_pct: 0.5,
  ...extra,
});

test("GPT-NeoX block: parallel residual, partial rotary (4 of 8 dims), interleaved query_key_value, erf GELU", async () => {
  report("gpt_neox parallel", await checkBlock(neox()));
});

test("GPT-NeoX block: sequential residual, no attention biases, full rotary", async () => {
  report("gpt_neox sequential", await checkBlock(neox({ use_parallel_residual: false, attention_bias: false, rotary_pct: 1 })));
});

test("GPT-NeoX head: final LayerNorm, embed_out", async () => {
  reportHead("gpt_neox", await checkHead(neox()));
});

test("GPT-NeoX block after structured pruning: 1 of 2 heads, 9 channels, dense compensation bias without attention biases", async () => {
  const sp = { num_attention_heads: [1, 2], num_key_value_heads: [1, 2], intermediate_size: [9, 24], o_proj_bias: [true, false], down_proj_bias: [true, false] };
  report("gpt_neox pruned layer (parallel)", await checkBlock(neox({ num_hidden_layers: 2, attention_bias: false, structured_pruning: sp }), { layer: 0 }));
  report("gpt_neox pruned layer (sequential)", await checkBlock(neox({ num_hidden_layers: 2, use_parallel_residual: false, structured_pruning: sp }), { layer: 0 }));
});
