import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { FormatError } from "../../src/formats/errors.js";
import type { LlamaConfig } from "../../src/models/llama.js";
import { parseModelConfig as parseAny } from "../../src/models/registry.js";

const parseModelConfig = (file: string, json: Record<string, unknown>) => parseAny(file, json) as LlamaConfig;
import { STORIES } from "../helpers.js";

const FILE = "/models/x/config.json";
const stories = (): Record<string, unknown> => JSON.parse(fs.readFileSync(path.join(STORIES, "config.json"), "utf8"));

/** parseModelConfig on stories260K's config.json after `change`; expects a FormatError matching `message`. */
function rejects(change: (c: Record<string, unknown>) => void, message: RegExp): void {
  const c = stories();
  change(c);
  assert.throws(
    () => parseModelConfig(FILE, c),
    (e: unknown) => e instanceof FormatError && e.file === FILE && e.message.startsWith(`${FILE}: `) && message.test(e.message),
  );
}

describe("config.json → ModelConfig", () => {
  test("stories260K", () => {
    const c = parseModelConfig(path.join(STORIES, "config.json"), stories());
    assert.equal(c.architecture, "LlamaForCausalLM");
    assert.deepEqual(
      [c.hiddenSize, c.intermediateSize, c.numLayers, c.numHeads, c.numKvHeads, c.headDim, c.vocabSize, c.maxPositions],
      [64, 172, 5, 8, 4, 8, 512, 512],
    );
    assert.equal(c.rmsNormEps, 1e-5);
    assert.equal(c.ropeTheta, 10000);
    assert.deepEqual(c.ropeScaling, { type: "none" });
    assert.equal(c.tieWordEmbeddings, true);
    assert.deepEqual([c.qkvBias, c.oBias, c.mlpBias, c.slidingWindow], [false, false, false, null]);
    assert.equal(c.bosTokenId, 1);
    assert.deepEqual(c.eosTokenIds, [2]);
  });

  test("defaults: head_dim from hidden/heads, kv heads = heads, family fields", () => {
    const base = stories();
    delete base.head_dim;
    delete base.num_key_value_heads;
    const c = parseModelConfig(FILE, base);
    assert.equal(c.headDim, 8);
    assert.equal(c.numKvHeads, 8);
    const qwen = parseModelConfig(FILE, { ...stories(), architectures: ["Qwen2ForCausalLM"], sliding_window: 4096, use_sliding_window: false });
    assert.equal(qwen.qkvBias, true);
    assert.equal(qwen.slidingWindow, null);
    const mistral = parseModelConfig(FILE, { ...stories(), architectures: ["MistralForCausalLM"], sliding_window: 4096 });
    assert.equal(mistral.slidingWindow, 4096);
    const llama3 = parseModelConfig(FILE, {
      ...stories(),
      rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 },
    });
    assert.deepEqual(llama3.ropeScaling, { type: "llama3", factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
  });

  test("bad configs name the file and the field", () => {
    rejects((c) => delete c.hidden_size, /field "hidden_size" is missing/);
    rejects((c) => (c.num_hidden_layers = "5"), /field "num_hidden_layers": .*expected number, received string/);
    rejects((c) => (c.vocab_size = -3), /field "vocab_size"/);
    rejects((c) => (c.architectures = ["UnknownForCausalLM"]), /unknown architecture "UnknownForCausalLM" \(supported: LlamaForCausalLM, /);
    rejects((c) => delete c.architectures, /field "architectures" is missing or not a list of names/);
    rejects((c) => (c.hidden_act = "gelu"), /hidden_act "gelu" is not supported/);
    rejects((c) => (c.num_key_value_heads = 3), /num_attention_heads \(8\) is not a multiple of num_key_value_heads \(3\)/);
    rejects((c) => (c.head_dim = 7), /head_dim 7 must be an even integer/);
    rejects((c) => (c.rope_scaling = { rope_type: "yarn", factor: 4 }), /rope_scaling .*yarn.* is not supported/);
  });
});
