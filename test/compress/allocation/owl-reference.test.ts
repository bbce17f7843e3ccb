// Issue #15 acceptance for OWL on stories260K with the reference calibration (first 128 windows of
// 512 tokens of tinystories/calib.txt), TinyStories test perplexity at 512, OWL's defaults
// (M = 5, λ = 0.08): OWL at 70 % beats uniform 70 % for SparseGPT (reference 107.164, which
// pruning-reference.test.ts shows topiary matches) and for Wanda.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { oneLineError, topiary, topiaryInProcess } from "../../cli/run-cli.js";
import { DATA, STORIES, tempDir } from "../../helpers.js";
import { compressAndEvaluate, reference } from "../reference-helpers.js";

interface OwlRecord {
  layers: { layer: number; outlierRatio: number; sparsity: number }[];
}

function checkAllocation(allocation: unknown, reports: { sparsity: number; shape: [number, number] }[]): string {
  const a = allocation as OwlRecord;
  assert.equal(a.layers.length, 5);
  const mean = a.layers.reduce((s, l) => s + l.sparsity, 0) / a.layers.length;
  assert.ok(Math.abs(mean - 0.7) < 1e-9, `mean layer sparsity ${mean}`);
  // OWL maps the ratios onto a span of 2λ, then shifts it so the mean is the target (not ±λ around it)
  const span = Math.max(...a.layers.map((l) => l.sparsity)) - Math.min(...a.layers.map((l) => l.sparsity));
  assert.ok(Math.abs(span - 0.16) < 1e-9, `span ${span}`);
  // more outliers → lower sparsity
  const byRatio = [...a.layers].sort((x, y) => x.outlierRatio - y.outlierRatio);
  for (let k = 1; k < byRatio.length; k++) assert.ok(byRatio[k]!.sparsity <= byRatio[k - 1]!.sparsity);
  // the model's measured sparsity is the target (every layer has the same linears)
  const params = reports.reduce((s, r) => s + r.shape[0] * r.shape[1], 0);
  const zeros = reports.reduce((s, r) => s + r.sparsity * r.shape[0] * r.shape[1], 0);
  assert.ok(Math.abs(zeros / params - 0.7) < 0.01, `model sparsity ${zeros / params}`); // per-row / per-block counts round down
  return a.layers.map((l) => `L${l.layer} ${(100 * l.outlierRatio).toFixed(2)} % → ${(100 * l.sparsity).toFixed(1)} %`).join(", ");
}

describe("OWL on stories260K (issue #15 acceptance)", () => {
  it("OWL-SparseGPT 70 % has lower perplexity than uniform SparseGPT 70 % (reference 107.164)", async (t) => {
    const owl = await compressAndEvaluate({ method: "sparsegpt", sparsity: 0.7, allocation: "owl" });
    const uniform = reference("sparsegpt-70").ppl_exact.tinystories_test_512!;
    t.diagnostic(`OWL-SparseGPT 70 %: ppl ${owl.perplexity.toFixed(4)} vs uniform ${uniform.toFixed(4)}; ${checkAllocation(owl.allocation, owl.reports)}`);
    assert.ok(owl.perplexity < uniform, `OWL ${owl.perplexity} ≥ uniform ${uniform}`);
  });

  it("OWL-Wanda 70 % has lower perplexity than uniform Wanda 70 %", async (t) => {
    const owl = await compressAndEvaluate({ method: "wanda", sparsity: 0.7, allocation: "owl" });
    const uniform = await compressAndEvaluate({ method: "wanda", sparsity: 0.7 });
    t.diagnostic(`OWL-Wanda 70 %: ppl ${owl.perplexity.toFixed(4)} vs uniform ${uniform.perplexity.toFixed(4)}; ${checkAllocation(owl.allocation, owl.reports)}`);
    assert.ok(owl.perplexity < uniform.perplexity, `OWL ${owl.perplexity} ≥ uniform ${uniform.perplexity}`);
  });
});

describe("topiary prune --allocation owl", () => {
  const SMALL = ["--calib", path.join(DATA, "tinystories", "calib.txt"), "--nsamples", "16", "--calib-seqlen", "128", "--calib-sampling", "first"];

  it("records the outlier ratios and layer sparsities; each linear pruned at its layer's sparsity", async () => {
    const out = path.join(tempDir(), "owl");
    const r = await topiary(["prune", STORIES, "--method", "magnitude", "--sparsity", "0.5", "--allocation", "owl", "--owl-lambda", "0.1", ...SMALL, "--out", out], 300_000);
    assert.equal(r.code, 0, r.stderr);
    const record = JSON.parse(fs.readFileSync(path.join(out, "topiary.json"), "utf8"));
    assert.deepEqual(record.recipe[0], { method: "magnitude", targets: [".*"], ignore: [], true_sequential: false, allocation: "owl", owl_lambda: 0.1, sparsity: 0.5, pattern: "unstructured", scope: "layer" });
    const layers = record.allocation[0].layers as { layer: number; sparsity: number }[];
    assert.equal(record.allocation[0].m, 5);
    assert.equal(layers.length, 5);
    for (const [name, l] of Object.entries(record.linears) as [string, { sparsity: number; shape: [number, number] }][]) {
      const s = layers[Number(/layers\.(\d+)\./.exec(name)![1])]!.sparsity;
      // magnitude prunes every weight ≤ the ⌊n·s⌋-th smallest: ⌊n·s⌋ + 1 without ties
      const n = l.shape[0] * l.shape[1];
      assert.equal(Math.round(l.sparsity * n), Math.floor(n * s) + 1, name);
    }
  });

  // in this process (the CLI's parser; a spawn would cost more than the checks)
  it("refuses OWL for N:M patterns and for quantization, in one line", async () => {
    const a = await topiaryInProcess(["prune", STORIES, "--method", "wanda", "--pattern", "2:4", "--allocation", "owl", ...SMALL, "--out", path.join(tempDir(), "x")]);
    assert.match(oneLineError(a), /allocation owl allocates unstructured sparsity/);
    const b = await topiaryInProcess(["prune", STORIES, "--method", "wanda", "--allocation", "ow", ...SMALL, "--out", path.join(tempDir(), "x")]);
    assert.match(oneLineError(b), /--allocation must be uniform or owl/);
  });
});
