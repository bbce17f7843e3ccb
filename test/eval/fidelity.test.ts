// Fidelity (KL and top-1 agreement to the original model) against ../shared/reference, which
// computed it with the papers' code for its own compressed models.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { fidelity } from "../../src/eval/fidelity.js";
import { loadModel } from "../../src/models/load.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { DATA, REFERENCE, referenceResults, STORIES } from "../helpers.js";
import { topiary } from "../cli/run-cli.js";

describe("fidelity", () => {
  const ids = () => TextTokenizer.load(STORIES).encode(fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8"));

  it("a model against itself: KL 0, top-1 agreement 1", async () => {
    const m = loadModel(STORIES);
    const r = await fidelity(m, m, ids(), { seqlen: 512, limitWindows: 4 });
    assert.equal(r.positions, 4 * 512);
    assert.ok(Math.abs(r.klMean) < 1e-12, `KL ${r.klMean}`);
    assert.equal(r.top1Agree, 1);
  });

  it("the reference's SparseGPT 50 % model: KL and top-1 agreement equal the reference's figures", async (t) => {
    const dense = loadModel(STORIES);
    const pruned = loadModel(path.join(REFERENCE, "models", "sparsegpt-50"));
    const r = await fidelity(dense, pruned, ids(), { seqlen: 512 });
    const want = referenceResults().results["sparsegpt-50"]!.fidelity_tinystories_test_512 as { kl_mean: number; top1_agree: number; positions: number };
    t.diagnostic(`KL ${r.klMean} vs ${want.kl_mean}; top-1 ${r.top1Agree} vs ${want.top1_agree}`);
    assert.equal(r.positions, want.positions);
    assert.ok(Math.abs(r.klMean / want.kl_mean - 1) < 1e-3, `KL ${r.klMean} vs ${want.kl_mean}`);
    assert.ok(Math.abs(r.top1Agree - want.top1_agree) < 1e-3, `top-1 ${r.top1Agree} vs ${want.top1_agree}`);
  });

  it("topiary eval --reference prints the fidelity in its JSON", async () => {
    const r = await topiary(["eval", path.join(REFERENCE, "models", "wanda-50"), "--data", path.join(DATA, "tinystories", "test.txt"), "--seqlen", "512", "--limit-windows", "8", "--reference", STORIES, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.ok(out.klMean > 0.5 && out.klMean < 5, `KL ${out.klMean}`);
    assert.ok(out.top1Agree > 0.1 && out.top1Agree < 0.9, `top-1 ${out.top1Agree}`);
  });
});
