// Every family against transformers itself: the tiny checkpoints of
// ../shared/reference/architectures/<name> (transformers 5.18), their golden logits (max |Δ| ≤ 1e-4
// on the golden input_ids), 24 greedy tokens with the KV cache, and perplexity over the first 16
// windows of 128 tokens of TinyStories test (`topiary eval --seqlen 128 --limit-windows 16`).
import assert from "node:assert/strict";
import path from "node:path";
import { after, describe, test } from "node:test";
import { loadEvalText } from "../../src/data/text.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { DATA, STORIES } from "../helpers.js";
import { archDir, FAMILIES, goldenPrompt, greedy, maxAbsDiff, readGolden } from "./arch-helpers.js";


after(releaseSessions);

test("two models of one family and width but a tied and an untied head share no session by mistake", async () => {
  const stories = loadModel(STORIES); // llama, hidden 64, vocab 512, tied head
  const llama3 = loadModel(archDir("llama3")); // llama, hidden 64, vocab 512, untied head
  try {
    await stories.forward(Int32Array.of(1, 2, 3), 1, 3);
    const g = readGolden("llama3");
    assert.ok(maxAbsDiff(await llama3.forward(g.inputIds, g.B, g.T), g.logits) <= 1e-4);
  } finally {
    stories.close();
    llama3.close();
  }
});

for (const { name } of FAMILIES) {
  describe(`${name} against transformers`, () => {
    test("logits on the golden input_ids within 1e-4; 24 greedy tokens with the KV cache", async (t) => {
      const g = readGolden(name);
      const model = loadModel(archDir(name));
      try {
        const logits = await model.forward(g.inputIds, g.B, g.T);
        const diff = maxAbsDiff(logits, g.logits);
        t.diagnostic(`${name}: logits max |Δ| ${diff.toExponential(2)}`);
        assert.ok(diff <= 1e-4, `max |Δ| ${diff}`);
        assert.deepEqual(await greedy(model, goldenPrompt(g.greedyPromptIds), g.greedyNewIds.length), g.greedyNewIds);
      } finally {
        model.close();
      }
    });

    test("perplexity, 16 windows of 128 tokens of TinyStories test", async (t) => {
      const g = readGolden(name);
      const model = loadModel(archDir(name));
      try {
        const ids = TextTokenizer.load(archDir(name)).encode(loadEvalText(path.join(DATA, "tinystories", "test.txt")));
        assert.deepEqual(Array.from(ids.subarray(0, g.firstIds.length)), g.firstIds);
        const r = await perplexity(model, ids, { seqlen: 128, limitWindows: 16 });
        const rel = Math.abs(r.perplexity - g.ppl128First16) / g.ppl128First16;
        t.diagnostic(`${name}: ppl ${r.perplexity.toFixed(6)} vs transformers ${g.ppl128First16.toFixed(6)} (rel ${rel.toExponential(2)})`);
        assert.ok(rel <= 1e-4, `ppl ${r.perplexity} vs ${g.ppl128First16}`);
      } finally {
        model.close();
      }
    });
  });
}
