// config.json of OPT, BLOOM, GPT-2 and GPT-NeoX → normalized configs, and the one-line errors of
// configs that miss or contradict what the family needs and of fused tensors of the wrong size.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { FormatError } from "../../src/formats/errors.js";
import type { BloomConfig } from "../../src/models/bloom.js";
import type { NeoxConfig } from "../../src/models/gpt-neox.js";
import type { Gpt2Config } from "../../src/models/gpt2.js";
import type { OptConfig } from "../../src/models/opt.js";
import { loadModel } from "../../src/models/load.js";
import { parseModelConfig } from "../../src/models/registry.js";
import { oneLineError, topiary } from "../cli/run-cli.js";
import { REFERENCE, tempDir } from "../helpers.js";
import { familyFixture } from "./family-fixtures.js";

const read = (name: string) => JSON.parse(fs.readFileSync(path.join(REFERENCE, "architectures", name, "config.json"), "utf8")) as Record<string, unknown>;
const parse = (json: Record<string, unknown>) => parseModelConfig("config.json", json);
const fails = (json: Record<string, unknown>, message: RegExp) =>
  assert.throws(
    () => parse(json),
    (e: unknown) => e instanceof FormatError && message.test(e.message),
  );

describe("family configs", () => {
  test("OPT: pre-norm, final norm, embed width = hidden; OPT-350m's switches", () => {
    const c = parse(read("opt")) as OptConfig;
    assert.deepEqual([c.hiddenSize, c.intermediateSize, c.numHeads, c.headDim, c.maxPositions], [64, 160, 4, 16, 256]);
    assert.deepEqual([c.preNorm, c.finalNorm, c.embedDim, c.linearBias, c.hiddenAct], [true, true, 64, true, "relu"]);
    const post = parse({ ...read("opt"), do_layer_norm_before: false, word_embed_proj_dim: 32 }) as OptConfig;
    assert.deepEqual([post.preNorm, post.finalNorm, post.embedDim], [false, false, 32]);
    assert.equal((parse({ ...read("opt"), _remove_final_layer_norm: true }) as OptConfig).finalNorm, false);
  });

  test("BLOOM: MLP of 4·hidden, ALiBi slopes of its heads, n_embed alias", () => {
    const c = parse(read("bloom")) as BloomConfig;
    assert.deepEqual([c.hiddenSize, c.intermediateSize, c.numHeads, c.headDim, c.layerNormEps], [64, 256, 4, 16, 1e-5]);
    assert.deepEqual(c.alibiSlopes, [0.25, 0.0625, 0.015625, 0.00390625]);
    const { hidden_size: _, ...rest } = read("bloom");
    assert.equal((parse({ ...rest, n_embed: 64 }) as BloomConfig).hiddenSize, 64);
  });

  test("GPT-2: n_inner null → 4·n_embd, attention scaling switches", () => {
    const c = parse(read("gpt2")) as Gpt2Config;
    assert.deepEqual([c.hiddenSize, c.intermediateSize, c.maxPositions, c.hiddenAct, c.scaleByHeadDim, c.scaleByLayer], [64, 256, 256, "gelu_new", true, false]);
    assert.equal((parse({ ...read("gpt2"), n_inner: 100 }) as Gpt2Config).intermediateSize, 100);
  });

  test("GPT-NeoX: rotary dims from rope_parameters (transformers 5), rotary_pct (4), rotary_emb_base", () => {
    const c = parse(read("gpt_neox")) as NeoxConfig;
    assert.deepEqual([c.rotaryDim, c.ropeTheta, c.parallelResidual, c.attentionBias, c.tieWordEmbeddings], [4, 10000, true, true, false]);
    const { rope_parameters: _, ...v4 } = read("gpt_neox");
    const old = parse({ ...v4, rotary_pct: 0.5, rotary_emb_base: 500, use_parallel_residual: false }) as NeoxConfig;
    assert.deepEqual([old.rotaryDim, old.ropeTheta, old.parallelResidual], [8, 500, false]);
  });

  test("a missing or contradictory field is a FormatError naming it", () => {
    const { ffn_dim: _, ...noFfn } = read("opt");
    fails(noFfn, /field "ffn_dim" is missing/);
    fails({ ...read("opt"), activation_function: "swiglu" }, /activation_function "swiglu" is not supported/);
    fails({ ...read("bloom"), n_head: 5 }, /hidden_size 64 is not a multiple of n_head 5/);
    fails({ ...read("gpt2"), add_cross_attention: true }, /add_cross_attention/);
    fails({ ...read("gpt_neox"), rope_parameters: { rope_type: "default", partial_rotary_factor: 0.1 } }, /rotary dims int\(16 · 0.1\) = 1 must be an even number ≥ 2/);
  });
});

describe("fused tensors of the wrong size", () => {
  test("a query_key_value with rows for 3 heads in a 4-head config: one line naming the file and tensor, nothing written", async () => {
    const qkv = "transformer.h.0.self_attention.query_key_value.weight";
    const dir = familyFixture({ ...read("bloom"), n_layer: 1 }, { reshape: { [qkv]: [144, 64] } });
    const out = path.join(tempDir(), "pruned");
    const r = await topiary(["prune", dir, "--method", "magnitude", "--sparsity", "0.5", "--out", out]);
    assert.equal(oneLineError(r), `topiary: ${path.join(dir, "model.safetensors")}: tensor "${qkv}" has shape [144, 64], config.json implies [192, 64]`);
    assert.ok(!fs.existsSync(out));
  });

  test("GPT-2's c_attn (Conv1D, stored [in, out]) of the wrong width is refused, its shape given as topiary's [out, in]", () => {
    const cAttn = "transformer.h.0.attn.c_attn.weight";
    const dir = familyFixture({ ...read("gpt2"), n_layer: 1 }, { reshape: { [cAttn]: [128, 64] } });
    assert.throws(() => loadModel(dir), (e: unknown) => e instanceof FormatError && /c_attn\.weight" has shape \[128, 64\], config\.json implies \[192, 64\]/.test(e.message));
  });
});
