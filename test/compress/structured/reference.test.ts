// FLAP and Wanda-sp on stories260K against ../shared/reference/structured (the authors' code,
// GQA unit = KV group): the kept units of every layer equal the reference's, and perplexity of
// the pruned model (here its exact masked-dense stand-in: zeroed rows/columns + FLAP's biases)
// is within 1 % of the reference's.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { prunedStandIn } from "../../../src/compress/structured/biased-model.js";
import { planStructured, type StructuredMethod } from "../../../src/compress/structured/plan.js";
import { perplexity } from "../../../src/eval/perplexity.js";
import { loadModel } from "../../../src/models/load.js";
import { REFERENCE, STORIES } from "../../helpers.js";
import { referenceCalibration, tinystoriesTest } from "../reference-helpers.js";

interface RefRun {
  kept_kv_groups: number[][];
  kept_mlp_channels: number[][];
  o_proj_bias?: number[][];
  down_proj_bias?: number[][];
  ppl: { A_tinystories_test: { ppl: number } };
}

const runs = JSON.parse(fs.readFileSync(path.join(REFERENCE, "structured", "results.json"), "utf8")).runs as Record<string, RefRun>;

const CASES: [StructuredMethod, string, number][] = [
  ["flap", "flap", 0.2],
  ["flap", "flap", 0.3],
  ["flap", "flap", 0.5],
  ["wanda-sp", "wanda_sp", 0.2],
  ["wanda-sp", "wanda_sp", 0.3],
  ["wanda-sp", "wanda_sp", 0.5],
];

describe("structured pruning matches the FLAP reference on stories260K", () => {
  for (const [method, refName, ratio] of CASES) {
    test(`${method} ${ratio}: kept units per layer and perplexity`, async () => {
      const ref = runs[`${refName}-${ratio}`]!;
      const model = loadModel(STORIES);
      const sel = await planStructured(model, referenceCalibration(), { method, ratio });
      assert.deepEqual(sel.map((s) => s.kept.attention), ref.kept_kv_groups, "kept KV groups");
      assert.deepEqual(sel.map((s) => s.kept.mlp), ref.kept_mlp_channels, "kept MLP channels");
      if (ref.down_proj_bias) {
        sel.forEach((s, i) => {
          const ours = s.biases.get("mlp.down_proj")!;
          const theirs = ref.down_proj_bias![i]!;
          const scale = Math.max(...theirs.map(Math.abs));
          const err = Math.max(...theirs.map((v, r) => Math.abs(v - ours[r]!)));
          assert.ok(err <= 1e-4 * scale, `layer ${i} down_proj bias: max |Δ| ${err} (scale ${scale})`);
        });
      }
      const ppl = (await perplexity(prunedStandIn(model, sel), tinystoriesTest(), { seqlen: 512 })).perplexity;
      const refPpl = ref.ppl.A_tinystories_test.ppl;
      console.log(`${method} ${ratio}: ppl ${ppl.toFixed(5)} (reference ${refPpl.toFixed(5)})`);
      assert.ok(Math.abs(ppl / refPpl - 1) < 0.01, `perplexity ${ppl} vs reference ${refPpl}`);
    });
  }
});

describe("obs-sp (structured OBS with reconstruction) beats FLAP and Wanda-sp", () => {
  for (const ratio of [0.3, 0.5]) {
    test(`ratio ${ratio}`, async () => {
      const model = loadModel(STORIES);
      const sel = await planStructured(model, referenceCalibration(), { method: "obs-sp", ratio });
      const ppl = (await perplexity(prunedStandIn(model, sel), tinystoriesTest(), { seqlen: 512 })).perplexity;
      const flap = runs[`flap-${ratio}`]!.ppl.A_tinystories_test.ppl;
      const wandaSp = runs[`wanda_sp-${ratio}`]!.ppl.A_tinystories_test.ppl;
      console.log(`obs-sp ${ratio}: ppl ${ppl.toFixed(4)} (FLAP ${flap.toFixed(4)}, Wanda-sp ${wandaSp.toFixed(4)})`);
      assert.ok(ppl < flap && ppl < wandaSp);
    });
  }
});
