// --multiple-of m: kept widths rounded to multiples so quantized runtimes keep their block
// formats (compress/structured/multiple.ts). Unit rules on known numbers (TinyLlama's MLP), then
// every method on two reference checkpoints: every layer's kept MLP channels (and, where a KV
// group is narrower than m, o_proj's input width) are multiples, and the weights removed stay
// within half a rounding step per layer of the unrounded plan's.
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { prunedStandIn } from "../../../src/compress/structured/biased-model.js";
import { nearestKept, roundedKeptCounts, topUnits, unitGranularity } from "../../../src/compress/structured/multiple.js";
import { keptFraction, planStructured, type StructuredOptions } from "../../../src/compress/structured/plan.js";
import { writeStructured } from "../../../src/compress/structured/write.js";
import { Rng } from "../../../src/data/rng.js";
import { loadModel } from "../../../src/models/load.js";
import { standardUnits } from "../../../src/models/structure.js";
import { REFERENCE, tempDir } from "../../helpers.js";

/** TinyLlama-1.1B's layer: 32 query heads in 4 KV groups of head_dim 64, MLP 5632, hidden 2048. */
const tinyLlama = standardUnits({
  numHeads: 32,
  numKvHeads: 4,
  headDim: 64,
  hidden: 2048,
  intermediate: 5632,
  q: "q",
  k: "k",
  v: "v",
  o: "o",
  attnInput: "attn_out",
  mlpProducers: ["gate", "up"],
  down: "down",
  mlpInput: "mlp_act",
});

test("granularity: MLP channels step by m; a KV group already m wide (8 heads × 64) needs none; narrow groups step by m / gcd", () => {
  const [attn, mlp] = tinyLlama as [(typeof tinyLlama)[0], (typeof tinyLlama)[0]];
  assert.equal(unitGranularity(mlp, 32), 32);
  assert.equal(unitGranularity(mlp, 256), 256);
  assert.equal(unitGranularity(attn, 32), 1);
  assert.equal(unitGranularity(attn, 256), 1); // 512 columns per group
  assert.equal(unitGranularity(attn, 1024), 2);
  assert.equal(unitGranularity(attn, 4096), 1); // a step of 8 groups ≥ the 4 there are: left alone
  assert.equal(unitGranularity(mlp, 1), 1);
});

test("TinyLlama at 30 %: 3943 kept channels round to 3936 (q4_0, 32) and 3840 (k-quants, 256)", () => {
  assert.equal(5632 - Math.floor(0.3 * 5632), 3943);
  assert.equal(nearestKept(5632, 3943, 32), 3936);
  assert.equal(nearestKept(5632, 3943, 256), 3840); // 103 below, 153 above
  assert.equal(nearestKept(5632, 3990, 256), 4096);
  assert.equal(nearestKept(5632, 5632, 256), 5632); // nothing removed: kept whole
  assert.equal(nearestKept(5632, 10, 32), 32); // at least one step
  assert.deepEqual(roundedKeptCounts(tinyLlama, { attention: 3, mlp: 3943 }, 32), { attention: 3, mlp: 3936 });
});

test("joint rounding: the attention and MLP roundings cancel when that lands closer to the same weights removed", () => {
  // units of 32 columns (heads of 32, MHA) and channels; m = 64: heads step by 2, channels by 64
  const groups = standardUnits({ numHeads: 8, numKvHeads: 8, headDim: 32, hidden: 256, intermediate: 1024, q: "q", k: "k", v: "v", o: "o", attnInput: "a", mlpProducers: ["g", "u"], down: "d", mlpInput: "m" });
  // attention 5 → 4 or 6 (a head is (2·32 + 2·32)·256 = 32768 weights, 42.7 channels of 3·256);
  // MLP 700 → 640 or 704. Nearest each alone (4, 704) removes 32768 − 4·768 = 29696 weights too
  // many; 6 heads and 640 channels remove 60·768 − 32768 = 13312 too many: closest, although the
  // MLP goes to its farther multiple
  const kept = roundedKeptCounts(groups, { attention: 5, mlp: 700 }, 64);
  assert.deepEqual(kept, { attention: 6, mlp: 640 });
  const target = (8 - 5) * groups[0]!.weightsPerUnit + (1024 - 700) * groups[1]!.weightsPerUnit;
  const removed = (8 - kept.attention) * groups[0]!.weightsPerUnit + (1024 - kept.mlp) * groups[1]!.weightsPerUnit;
  for (const a of [4, 6]) {
    for (const f of [640, 704]) {
      const r = (8 - a) * groups[0]!.weightsPerUnit + (1024 - f) * groups[1]!.weightsPerUnit;
      assert.ok(Math.abs(removed - target) <= Math.abs(r - target));
    }
  }
});

test("topUnits keeps exactly k of the highest scores, ties to the lower index", () => {
  assert.deepEqual(topUnits([0.5, 0.9, 0.1, 0.9, 0.3], 3), [0, 1, 3]);
  assert.deepEqual(topUnits([1, 1, 1, 1], 2), [0, 1]);
});

const ARCH = path.join(REFERENCE, "architectures");

function randomIds(n: number, vocab: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(vocab));
}

const VARIANTS: (Omit<StructuredOptions, "ratio" | "multipleOf"> & { name: string })[] = [
  { name: "flap", method: "flap" },
  { name: "flap --uniform", method: "flap", uniform: true },
  { name: "wanda-sp", method: "wanda-sp" },
  { name: "obs-sp", method: "obs-sp" },
  { name: "obs-sp --uniform", method: "obs-sp", uniform: true },
];

// llama3: MLP 160, KV groups 32 columns wide (no attention rounding at 32); gpt_neox: MLP 256,
// heads 16 columns wide (kept heads step by 2 at m = 32)
for (const arch of ["llama3", "gpt_neox"]) {
  test(`${arch}: every method with --multiple-of 32 keeps multiples, within half a step per layer of the unrounded plan`, async () => {
    const m = 32;
    const model = loadModel(path.join(ARCH, arch));
    const calib = { ids: randomIds(4 * 64, model.config.vocabSize, 1), nsamples: 4, seqlen: 64 };
    const groups = Array.from({ length: model.numLayers }, (_, i) => model.family.structure!.units(model.config, i));
    const total = groups.flat().reduce((s, g) => s + g.count * g.weightsPerUnit, 0);
    // the most one layer's rounding can move: half of its largest step
    const slack = groups.reduce((s, gs) => s + Math.max(...gs.map((g) => (unitGranularity(g, m) * g.weightsPerUnit) / 2)), 0) / total;
    for (const v of VARIANTS) {
      const plain = await planStructured(model, calib, { ...v, ratio: 0.3 });
      const rounded = await planStructured(model, calib, { ...v, ratio: 0.3, multipleOf: m });
      rounded.forEach((sel, i) => {
        for (const g of groups[i]!) {
          const a = unitGranularity(g, m);
          const k = sel.kept[g.kind].length;
          assert.ok(k === g.count || (k % a === 0 && k >= a), `${v.name} layer ${i} ${g.kind}: ${k} kept, step ${a}`);
          if (g.kind === "mlp") assert.equal(k % m, 0, `${v.name} layer ${i}: ${k} MLP channels`);
          if (g.kind === "attention") assert.equal((k * g.columns(0).length) % m, 0, `${v.name} layer ${i}: o_proj input ${k * g.columns(0).length}`);
        }
      });
      const d = Math.abs(keptFraction(model, rounded) - keptFraction(model, plain));
      // obs-sp meets its budget within half a step either way: up to one step apart
      const bound = v.method === "obs-sp" && !v.uniform ? 2 * slack : slack;
      assert.ok(d <= bound + 1e-12, `${v.name}: kept ${keptFraction(model, rounded)} vs ${keptFraction(model, plain)} unrounded (bound ${bound})`);
      if (v.uniform || v.method === "wanda-sp") {
        const w = rounded.map((s) => `${s.kept.attention.length}/${s.kept.mlp.length}`);
        assert.ok(w.every((x) => x === w[0]), `${v.name}: equal widths ${w}`);
      }
    }
    model.close();
  });
}

test("gpt_neox: a FLAP --multiple-of 32 model writes and reloads with the in-memory logits", async () => {
  const dir = path.join(ARCH, "gpt_neox");
  const model = loadModel(dir);
  const calib = { ids: randomIds(4 * 64, model.config.vocabSize, 1), nsamples: 4, seqlen: 64 };
  const sel = await planStructured(model, calib, { method: "flap", ratio: 0.3, multipleOf: 32 });
  const out = path.join(tempDir(), "neox-m32");
  await writeStructured(model, sel, { outDir: out, record: {} });
  const reloaded = loadModel(out);
  for (let i = 0; i < model.numLayers; i++) assert.equal(reloaded.linears(i).find((l) => l.suffix === "mlp.dense_4h_to_h")!.inFeatures % 32, 0);
  const ids = randomIds(32, model.config.vocabSize, 2);
  const want = await prunedStandIn(model, sel).forward(ids, 1, ids.length);
  const got = await reloaded.forward(ids, 1, ids.length);
  let diff = 0;
  for (let i = 0; i < got.length; i++) diff = Math.max(diff, Math.abs(got[i]! - want[i]!));
  assert.ok(diff < 1e-4, `reloaded logits differ by ${diff}`);
  model.close();
  reloaded.close();
});
