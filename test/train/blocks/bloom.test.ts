// BLOOM block backward (train/blocks/bloom.ts): finite differences and the recomputed forward.
import { after, test } from "node:test";
import { releaseSessions } from "../../../src/runtime/ort.js";
import { checkBlock, checkHead, report, reportHead } from "./check-block.js";
import { alibiSlopes } from "../../../src/models/fused-layout.js";

after(releaseSessions);

const bloom = (extra: Record<string, unknown> = {}) => ({
  architectures: ["BloomForCausalLM"],
  hidden_size: 16,
  intermediate_size: 64,
  n_layer: 1,
  num_hidden_layers: 1,
  n_head: 4,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  vocab_size: 32,
  ...extra,
});

test("BLOOM block: ALiBi, per-head interleaved query_key_value, LayerNorm, GELU (tanh)", async () => {
  report("bloom", await checkBlock(bloom()));
});

test("BLOOM block: residuals from the LayerNorm outputs (apply_residual_connection_post_layernorm), 6 heads", async () => {
  report("bloom post-norm residual", await checkBlock(bloom({ apply_residual_connection_post_layernorm: true, hidden_size: 24, n_head: 6, num_attention_heads: 6 })));
});

test("BLOOM head: ln_f, tied head", async () => {
  reportHead("bloom", await checkHead(bloom()));
});

test("BLOOM block after structured pruning: layer 1 with heads 1 and 3 of 4 kept (their ALiBi slopes), 20 channels", async () => {
  const all = alibiSlopes(4);
  const sp = { num_attention_heads: [4, 2], num_key_value_heads: [4, 2], intermediate_size: [64, 20], alibi_slopes: [all, [all[1]!, all[3]!]] };
  report("bloom pruned layer", await checkBlock(bloom({ n_layer: 2, num_hidden_layers: 2, structured_pruning: sp }), { layer: 1 }));
});
