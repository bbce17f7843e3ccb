// OPT, BLOOM, GPT-2 and GPT-NeoX against Hugging Face transformers itself: the tiny
// random-weight checkpoints of ../shared/reference/architectures and their golden outputs
// (logits of two 48-token windows, 24 greedy tokens with a KV cache, the model's own tokenization
// of the test text, and perplexity over its first 16 windows of 128 tokens through `topiary eval`).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { topiary } from "../cli/run-cli.js";
import { DATA } from "../helpers.js";
import { archDir, greedy, maxAbsDiff, readGolden } from "./arch-helpers.js";

const TEST_TEXT = path.join(DATA, "tinystories", "test.txt");

after(() => releaseSessions());

for (const name of ["opt", "bloom", "gpt2", "gpt_neox"]) {
  describe(`${name} against transformers`, () => {
    test("logits of two 48-token windows within 1e-4; 24 greedy tokens with the KV cache", async (t) => {
      const g = readGolden(name);
      const model = loadModel(archDir(name));
      try {
        const diff = maxAbsDiff(await model.forward(g.inputIds, g.B, g.T), g.logits);
        t.diagnostic(`max |Δ| ${diff.toExponential(2)}`);
        assert.ok(diff < 1e-4, `max |Δ| ${diff}`);
        assert.deepEqual(await greedy(model, g.greedyPromptIds, 24), g.greedyNewIds);
      } finally {
        model.close();
      }
    });

    test("tokenization of the test text starts with first_ids; eval --seqlen 128 --limit-windows 16 = ppl_128_first16", async (t) => {
      const g = readGolden(name);
      const ids = TextTokenizer.load(archDir(name)).encode(fs.readFileSync(TEST_TEXT, "utf8"));
      assert.deepEqual(Array.from(ids.subarray(0, g.firstIds.length)), g.firstIds);
      const r = await topiary(["eval", archDir(name), "--data", TEST_TEXT, "--seqlen", "128", "--limit-windows", "16", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const ppl = JSON.parse(r.stdout).perplexity as number;
      t.diagnostic(`perplexity ${ppl}, transformers ${g.ppl128First16}`);
      assert.ok(Math.abs(ppl / g.ppl128First16 - 1) < 1e-4, `${ppl} vs ${g.ppl128First16}`);
    });
  });
}
