// obs-sp's measured split (compress/structured/plan.ts splitObs) on a layer with more KV groups
// than one grid of splits (12 heads, MHA): the grid is refined around its best split, and the
// result keeps the layer's budget — half a channel from r of its weights, or at most half a
// head over when the best split removes more attention than the budget leaves for the MLP.
import assert from "node:assert/strict";
import { test } from "node:test";
import { keptFraction, planStructured } from "../../../src/compress/structured/plan.js";
import { Rng } from "../../../src/data/rng.js";
import { CausalLM } from "../../../src/models/model.js";
import { syntheticModel } from "../../../src/models/synthetic.js";

test("obs-sp at 0.5 with 12 KV groups: the refined split keeps the budget, every layer keeps both kinds", async () => {
  const shape = { hidden_size: 48, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 12, num_key_value_heads: 12, head_dim: 4, vocab_size: 64, max_position_embeddings: 64 };
  const { config, weights } = syntheticModel(shape, 3);
  const model = new CausalLM(config, weights, "<synthetic>");
  const rng = new Rng(5);
  const calib = { ids: Int32Array.from({ length: 4 * 32 }, () => rng.int(64)), nsamples: 4, seqlen: 32 };
  const sel = await planStructured(model, calib, { method: "obs-sp", ratio: 0.5 });
  const [attn, mlp] = model.family.structure!.units(config, 0).map((g) => g.weightsPerUnit) as [number, number];
  // 12 · 768 + 64 · 144: every kA of 0 … 11 fits the budget, more than one grid (8) of splits
  const total = 12 * attn + 64 * mlp;
  for (const s of sel) {
    assert.ok(s.kept.attention.length >= 1 && s.kept.mlp.length >= 1);
    const removed = (12 - s.kept.attention.length) * attn + (64 - s.kept.mlp.length) * mlp;
    assert.ok(Math.abs(removed - 0.5 * total) <= Math.max(mlp, attn) / 2, `removed ${removed} of ${total}`);
  }
  assert.ok(Math.abs(keptFraction(model, sel) - 0.5) < 0.05);
});
