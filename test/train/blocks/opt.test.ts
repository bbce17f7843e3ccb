// OPT block backward (train/blocks/opt.ts): finite differences and the recomputed forward.
import { after, test } from "node:test";
import { releaseSessions } from "../../../src/runtime/ort.js";
import { checkBlock, checkHead, report, reportHead } from "./check-block.js";

after(releaseSessions);

const opt = (extra: Record<string, unknown> = {}) => ({
  architectures: ["OPTForCausalLM"],
  hidden_size: 16,
  intermediate_size: 24, // (SyntheticShape asks for it; OPT reads ffn_dim)
  ffn_dim: 24,
  num_hidden_layers: 1,
  num_attention_heads: 4,
  num_key_value_heads: 4,
  vocab_size: 32,
  max_position_embeddings: 16,
  ...extra,
});

test("OPT block, pre-norm: LayerNorm with bias, biases, ReLU", async () => {
  report("opt pre-norm", await checkBlock(opt()));
});

test("OPT block, post-norm (OPT-350m's do_layer_norm_before false)", async () => {
  report("opt post-norm", await checkBlock(opt({ do_layer_norm_before: false })));
});

test("OPT block, LayerNorms without parameters and linears without biases, GELU", async () => {
  report("opt no affine / no bias / gelu", await checkBlock(opt({ layer_norm_elementwise_affine: false, enable_bias: false, activation_function: "gelu" })));
});

test("OPT head: final LayerNorm and project_out (word_embed_proj_dim 8); post-norm: no final norm", async () => {
  reportHead("opt project_out", await checkHead(opt({ word_embed_proj_dim: 8 })));
  reportHead("opt post-norm", await checkHead(opt({ do_layer_norm_before: false })));
});

test("OPT block after structured pruning: layer 1 with 2 of 4 heads, 10 channels, compensation biases on linears without bias", async () => {
  const sp = { num_attention_heads: [4, 2], num_key_value_heads: [4, 2], intermediate_size: [24, 10], o_proj_bias: [false, true], down_proj_bias: [false, true] };
  report("opt pruned layer", await checkBlock(opt({ num_hidden_layers: 2, enable_bias: false, structured_pruning: sp }), { layer: 1 }));
});
