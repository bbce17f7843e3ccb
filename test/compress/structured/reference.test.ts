// FLAP and Wanda-sp on stories260K against ../shared/reference/structured (the authors' code,
// GQA unit = KV group): the kept units of every layer equal the reference's, and perplexity of
// the pruned model (here its exact masked-dense stand-in: zeroed rows/columns + FLAP's biases)
// is within 1 % of the reference's.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { maskedLayerWeights } from "../../../src/compress/structured/apply.js";
import { planStructured, shapeOf, type StructuredMethod } from "../../../src/compress/structured/plan.js";
import type { LayerSelection } from "../../../src/compress/structured/select.js";
import { llamaUnits } from "../../../src/compress/structured/units.js";
import { perplexity } from "../../../src/eval/perplexity.js";
import type { WeightSource } from "../../../src/formats/weights.js";
import { loadModel } from "../../../src/models/load.js";
import { CausalLM } from "../../../src/models/model.js";
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

/**
 * The pruned model with its original shapes: removed rows/columns zeroed, o_proj/down_proj
 * carrying FLAP's compensation biases (other linears get zero biases) — the reference's `ppl`.
 */
function maskedDense(base: CausalLM, selections: LayerSelection[]): CausalLM {
  const groups = llamaUnits(base.config);
  const tensors = new Map<string, { data: Float32Array; shape: number[] }>();
  selections.forEach((sel, i) => {
    const w = maskedLayerWeights(base.layerWeights(i), groups, sel, shapeOf(base));
    for (const [suffix, data] of w) tensors.set(`model.layers.${i}.${suffix}`, { data, shape: [...base.weights.shape(`model.layers.${i}.${suffix}`)] });
    for (const l of base.linears(i)) {
      const rows = base.weights.shape(`${l.name}.weight`)[0]!;
      const bias = sel.biases.get(l.suffix) ?? new Float32Array(rows);
      tensors.set(`${l.name}.bias`, { data: bias, shape: [rows] });
    }
  });
  const src = base.weights;
  const weights: WeightSource = {
    location: src.location,
    names: () => [...new Set([...src.names(), ...tensors.keys()])],
    has: (n) => tensors.has(n) || src.has(n),
    shape: (n) => tensors.get(n)?.shape ?? src.shape(n),
    read: (n) => tensors.get(n)?.data.slice() ?? src.read(n),
    storedBytes: (n) => (tensors.has(n) ? 4 : src.storedBytes(n)),
    dtype: (n) => (tensors.has(n) ? "F32" : src.dtype(n)),
    close: () => src.close(),
  };
  return new CausalLM({ ...base.config, qkvBias: true, oBias: true, mlpBias: true }, weights, base.dir);
}

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
      const ppl = (await perplexity(maskedDense(model, sel), tinystoriesTest(), { seqlen: 512 })).perplexity;
      const refPpl = ref.ppl.A_tinystories_test.ppl;
      console.log(`${method} ${ratio}: ppl ${ppl.toFixed(5)} (reference ${refPpl.toFixed(5)})`);
      assert.ok(Math.abs(ppl / refPpl - 1) < 0.01, `perplexity ${ppl} vs reference ${refPpl}`);
    });
  }
});
