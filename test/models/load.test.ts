import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { FormatError } from "../../src/formats/errors.js";
import { SafetensorsFile, writeSafetensors } from "../../src/formats/safetensors.js";
import { loadModel } from "../../src/models/load.js";
import { weightCacheBudget } from "../../src/models/model.js";
import { STORIES, tempDir } from "../helpers.js";
import { copyStories, withConfig, withSafetensors } from "../formats/broken-models.js";

function throwsFormat(fn: () => unknown, file: string, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.match(e.message, message);
    return true;
  });
}

describe("loadModel", () => {
  const root = tempDir();
  let n = 0;
  const fresh = () => path.join(root, `m${n++}`);

  test("stories260K loads with its seven linears per layer", async () => {
    const m = loadModel(STORIES);
    try {
      assert.equal(m.name, "stories260K");
      assert.equal(m.numLayers, 5);
      assert.deepEqual(
        m.linears(2).map((l) => [l.name, l.outFeatures, l.inFeatures]),
        [
          ["model.layers.2.self_attn.q_proj", 64, 64],
          ["model.layers.2.self_attn.k_proj", 32, 64],
          ["model.layers.2.self_attn.v_proj", 32, 64],
          ["model.layers.2.self_attn.o_proj", 64, 64],
          ["model.layers.2.mlp.gate_proj", 172, 64],
          ["model.layers.2.mlp.up_proj", 172, 64],
          ["model.layers.2.mlp.down_proj", 64, 172],
        ],
      );
      await assert.rejects(m.embed(Int32Array.of(1, 512)), /token id 512 is outside the vocabulary \(0\.\.511\)/);
    } finally {
      m.close();
    }
  });

  test("missing folder, a file instead of a folder, missing or broken config.json", () => {
    const missing = path.join(root, "does-not-exist");
    throwsFormat(() => loadModel(missing), missing, /no such model folder/);
    const file = path.join(STORIES, "config.json");
    throwsFormat(() => loadModel(file), file, /is not a folder/);
    const noConfig = copyStories(fresh());
    fs.rmSync(path.join(noConfig, "config.json"));
    throwsFormat(() => loadModel(noConfig), path.join(noConfig, "config.json"), /missing \(every Hugging Face model folder has a config\.json\)/);
    const badJson = copyStories(fresh());
    fs.writeFileSync(path.join(badJson, "config.json"), '{"architectures": [');
    throwsFormat(() => loadModel(badJson), path.join(badJson, "config.json"), /not valid JSON/);
    const dir = withConfig(fresh(), (c) => delete c.num_attention_heads);
    throwsFormat(() => loadModel(dir), path.join(dir, "config.json"), /field "num_attention_heads" is missing/);
  });

  test("weights that do not fit the config", () => {
    const noWeights = copyStories(fresh());
    fs.rmSync(path.join(noWeights, "model.safetensors"));
    throwsFormat(() => loadModel(noWeights), noWeights, /no model\.safetensors or model\.safetensors\.index\.json/);

    const wrongShape = withConfig(fresh(), (c) => (c.intermediate_size = 128));
    throwsFormat(
      () => loadModel(wrongShape),
      path.join(wrongShape, "model.safetensors"),
      /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[172, 64\], config\.json implies \[128, 64\]/,
    );

    const untied = withConfig(fresh(), (c) => (c.tie_word_embeddings = false));
    throwsFormat(() => loadModel(untied), path.join(untied, "model.safetensors"), /missing tensor "lm_head\.weight"/);

    const st = SafetensorsFile.open(path.join(STORIES, "model.safetensors"));
    const missingTensor = copyStories(fresh());
    writeSafetensors(
      path.join(missingTensor, "model.safetensors"),
      [...st.tensors.values()]
        .filter((t) => t.name !== "model.layers.3.self_attn.k_proj.weight")
        .map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: st.readBytes(t.name) })),
    );
    st.close();
    throwsFormat(() => loadModel(missingTensor), path.join(missingTensor, "model.safetensors"), /missing tensor "model\.layers\.3\.self_attn\.k_proj\.weight"/);

    const corrupt = withSafetensors(fresh(), (b) => b.subarray(0, 100));
    throwsFormat(() => loadModel(corrupt), path.join(corrupt, "model.safetensors"), /header length \d+ runs past the end of the file \(100 bytes\)/);
  });
});

describe("weightCacheBudget (TOPIARY_WEIGHT_CACHE_BYTES)", () => {
  test("0 is a budget of nothing; unset, empty, negative or not a number is the 1 GiB default", () => {
    assert.equal(weightCacheBudget("0"), 0);
    assert.equal(weightCacheBudget("12345"), 12345);
    for (const v of [undefined, "", " ", "lots", "-5"]) assert.equal(weightCacheBudget(v), 1024 ** 3, String(v));
  });
});
