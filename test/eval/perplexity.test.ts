// Perplexity against shared/reference (PyTorch float32, the papers' protocol). The tinystories
// seqlen-512 number is checked through the CLI in test/cli; the other three evals run here, in one
// process with one loaded model (the WikiText-2 one is the slowest test of the suite, ~10 s).
import assert from "node:assert/strict";
import path from "node:path";
import { after, before, describe, test } from "node:test";
import { loadEvalText, type DatasetKind } from "../../src/data/text.js";
import { perplexity, sumNll } from "../../src/eval/perplexity.js";
import { loadModel } from "../../src/models/load.js";
import type { CausalLM } from "../../src/models/model.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { DATA, referenceResults, STORIES } from "../helpers.js";

test("sumNll: logsumexp − target logit, in float64, rows with target −1 skipped", () => {
  // row 0: uniform over 2 → ln 2; row 1: logits [0, ln 3] target 1 → ln(4/3); row 2 skipped
  const logits = Float32Array.of(5, 5, 0, Math.log(3), 100, -100);
  const got = sumNll(logits, 2, Int32Array.of(0, 1, -1));
  assert.ok(Math.abs(got - (Math.LN2 + Math.log(4 / 3))) < 1e-6, String(got));
});

/** The reference protocol table (shared/reference/README.md). */
const PROTOCOL: Record<string, { file: string; dataset: DatasetKind; seqlen: number; tokens: number; windows: number; predicted: number }> = {
  tinystories_test_256: { file: "tinystories/test.txt", dataset: "plain", seqlen: 256, tokens: 244969, windows: 956, predicted: 243780 },
  wikitext2_test_512: { file: "wikitext2/test.raw", dataset: "wikitext2", seqlen: 512, tokens: 815070, windows: 1591, predicted: 813001 },
  ptb_test_512: { file: "ptb/ptb.test.txt", dataset: "plain", seqlen: 512, tokens: 260307, windows: 508, predicted: 259588 },
};

describe("stories260K perplexity vs shared/reference", () => {
  let model: CausalLM;
  let tok: TextTokenizer;
  const ref = referenceResults();

  before(() => {
    model = loadModel(STORIES);
    tok = TextTokenizer.load(STORIES);
  });
  after(async () => {
    model.close();
    await releaseSessions();
  });

  for (const [key, p] of Object.entries(PROTOCOL)) {
    test(`${key}: within 0.1 % of ppl_exact, same token and window counts`, async () => {
      const ids = tok.encode(loadEvalText(path.join(DATA, p.file), p.dataset));
      assert.equal(ids.length, (ref!.protocol.evals as Record<string, { n_tokens: number }>)[key]!.n_tokens);
      const r = await perplexity(model, ids, { seqlen: p.seqlen });
      assert.deepEqual([r.tokens, r.windows, r.predicted, r.seqlen], [p.tokens, p.windows, p.predicted, p.seqlen]);
      const want = ref!.results.dense!.ppl_exact[key]!;
      const rel = Math.abs(r.perplexity - want) / want;
      assert.ok(rel < 1e-3, `${key}: ppl ${r.perplexity} vs reference ${want} (relative ${rel.toExponential(2)})`);
      assert.ok(Math.abs(Math.exp(r.meanNll) - r.perplexity) < 1e-9);
    });
  }

  test("in-graph float32 log-softmax agrees with a float64 one over the logits (2 windows)", async () => {
    const ids = tok.encode(loadEvalText(path.join(DATA, "tinystories", "test.txt")));
    const seqlen = 512;
    const limited = await perplexity(model, ids, { seqlen, limitWindows: 2 });
    assert.deepEqual([limited.windows, limited.predicted, limited.tokens], [2, 1022, 244969]);
    const chunk = ids.subarray(0, 2 * seqlen);
    const logits = await model.forward(chunk, 2, seqlen);
    const targets = new Int32Array(2 * seqlen).fill(-1);
    for (let b = 0; b < 2; b++) for (let p = 0; p + 1 < seqlen; p++) targets[b * seqlen + p] = chunk[b * seqlen + p + 1]!;
    const mean64 = sumNll(logits, 512, targets) / limited.predicted;
    assert.ok(Math.abs(mean64 - limited.meanNll) / mean64 < 1e-6, `float64 ${mean64} vs in-graph ${limited.meanNll}`);
  });

  test("bad arguments are one-line errors", async () => {
    await assert.rejects(perplexity(model, Int32Array.of(1, 2, 3), { seqlen: 1 }), /seqlen must be an integer ≥ 2, got 1/);
    await assert.rejects(perplexity(model, Int32Array.of(1, 2, 3), { seqlen: 8 }), /the text has 3 tokens, fewer than one window of 8/);
  });
});
