// transformers.js (@huggingface/transformers v4, local folder) loads topiary's ONNX exports of OPT,
// BLOOM, GPT-2 and GPT-NeoX and continues the golden prompt with transformers' 24 greedy tokens.
import assert from "node:assert/strict";
import path from "node:path";
import { after, describe, test } from "node:test";
import { AutoModelForCausalLM, env, Tensor } from "@huggingface/transformers";
import { exportOnnx } from "../../src/export/onnx.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { tempDir } from "../helpers.js";
import { archDir, readGolden } from "../models/arch-helpers.js";

env.allowRemoteModels = false;
env.allowLocalModels = true;

after(() => releaseSessions());

for (const name of ["opt", "bloom", "gpt2", "gpt_neox"]) {
  describe(`transformers.js runs the ONNX export of ${name}`, () => {
    test("AutoModelForCausalLM.generate: 24 greedy tokens equal transformers'", async () => {
      const out = path.join(tempDir("topiary-tjs-family-"), name);
      const own = loadModel(archDir(name));
      await exportOnnx(own.config, own.weights, out, { sourceDir: archDir(name), dtype: "fp32" });
      own.close();
      const model = await AutoModelForCausalLM.from_pretrained(out, { local_files_only: true });
      const g = readGolden(name);
      const prompt = new Tensor("int64", BigInt64Array.from(g.greedyPromptIds, BigInt), [1, g.greedyPromptIds.length]);
      // no eos: transformers generated its 24 tokens without stopping
      const ids = (await model.generate({ inputs: prompt, max_new_tokens: 24, do_sample: false, eos_token_id: [] } as never)) as Tensor;
      assert.deepEqual(Array.from(ids.data as BigInt64Array, Number).slice(g.greedyPromptIds.length), g.greedyNewIds);
      await model.dispose();
    });
  });
}
