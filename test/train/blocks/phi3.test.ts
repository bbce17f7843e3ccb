// Phi-3 block backward (train/blocks/phi3.ts): finite differences and the recomputed forward.
import { after, test } from "node:test";
import { releaseSessions } from "../../../src/runtime/ort.js";
import { checkBlock, checkHead, report, reportHead } from "./check-block.js";

after(releaseSessions);

const phi3 = (extra: Record<string, unknown> = {}) => ({
  architectures: ["Phi3ForCausalLM"],
  hidden_size: 16,
  intermediate_size: 12,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 2,
  vocab_size: 32,
  rms_norm_eps: 1e-5,
  ...extra,
});

test("Phi-3 block: fused qkv_proj / gate_up_proj, GQA, full rotary", async () => {
  report("phi3", await checkBlock(phi3()));
});

test("Phi-3 block: partial rotary (factor 0.5) and a sliding window shorter than the sequence", async () => {
  report("phi3 partial rotary + window", await checkBlock(phi3({ partial_rotary_factor: 0.5, sliding_window: 3 }), { T: 6 }));
});

test("Phi-3 head: final RMSNorm, untied LM head", async () => {
  reportHead("phi3", await checkHead(phi3()));
});

test("Phi-3 block after structured pruning: layer 1 with 2 of 4 heads (1 KV head), 5 channels, o_proj / down_proj compensation biases", async () => {
  const sp = { num_attention_heads: [4, 2], num_key_value_heads: [2, 1], intermediate_size: [12, 5], o_proj_bias: [false, true], down_proj_bias: [false, true] };
  report("phi3 pruned layer", await checkBlock(phi3({ num_hidden_layers: 2, partial_rotary_factor: 0.5, structured_pruning: sp }), { layer: 1 }));
});
