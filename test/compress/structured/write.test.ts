// A structurally pruned model on disk is really smaller and reloads with the in-memory perplexity.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { prunedStandIn } from "../../../src/compress/structured/biased-model.js";
import { keptFraction, planStructured, type StructuredOptions } from "../../../src/compress/structured/plan.js";
import { writeStructured } from "../../../src/compress/structured/write.js";
import { calibrationWindows } from "../../../src/data/calibration.js";
import { perplexity } from "../../../src/eval/perplexity.js";
import { SafetensorsModel } from "../../../src/formats/safetensors.js";
import { loadModel } from "../../../src/models/load.js";
import { TextTokenizer } from "../../../src/tokenizer/tokenizer.js";
import { DATA, STORIES, tempDir } from "../../helpers.js";
import { tinystoriesTest } from "../reference-helpers.js";

function smallCalibration() {
  const ids = TextTokenizer.load(STORIES).encode(fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 60000));
  return calibrationWindows(ids, { nsamples: 16, seqlen: 512, sampling: "first", seed: 0 });
}

function linearBytes(dir: string): number {
  const st = SafetensorsModel.open(dir);
  const n = st.names().filter((x) => /_proj\.weight$/.test(x)).reduce((s, x) => s + st.info(x).end - st.info(x).begin, 0);
  st.close();
  return n;
}

const CASES: StructuredOptions[] = [
  { method: "wanda-sp", ratio: 0.3 },
  { method: "flap", ratio: 0.3, uniform: true },
  { method: "obs-sp", ratio: 0.3, uniform: true },
];

for (const opts of CASES) {
  test(`${opts.method}${opts.uniform ? " --uniform" : ""} ${opts.ratio}: equal widths → a standard, smaller Llama folder with the in-memory perplexity`, async () => {
    const model = loadModel(STORIES);
    const sel = await planStructured(model, smallCalibration(), opts);
    const inMemory = (await perplexity(prunedStandIn(model, sel), tinystoriesTest(), { seqlen: 512, limitWindows: 24 })).perplexity;
    const out = path.join(tempDir(), "pruned");
    await writeStructured(model, sel, { outDir: out, record: { method: opts.method } });

    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    assert.equal(config.num_key_value_heads, 3);
    assert.equal(config.num_attention_heads, 6);
    assert.equal(config.intermediate_size, 121);
    assert.equal(config.head_dim, 8);
    assert.equal(config.structured_pruning, undefined);
    const reloaded = loadModel(out);
    const fromDisk = (await perplexity(reloaded, tinystoriesTest(), { seqlen: 512, limitWindows: 24 })).perplexity;
    assert.ok(Math.abs(fromDisk / inMemory - 1) < 1e-5, `reloaded ${fromDisk} vs in memory ${inMemory}`);

    const ratio = linearBytes(out) / linearBytes(STORIES);
    const kept = keptFraction(model, sel);
    assert.ok(Math.abs(ratio - kept) < 1e-9, `decoder-linear bytes ${ratio} = kept weights ${kept}`);
    console.log(`${opts.method} ${opts.ratio}: linear bytes ×${ratio.toFixed(4)}, ppl ${fromDisk.toFixed(4)} (24 windows)`);
  });
}

test("flap 0.3 (per-layer widths): structured_pruning in config.json, and the folder reloads with the in-memory perplexity", async () => {
  const model = loadModel(STORIES);
  const sel = await planStructured(model, smallCalibration(), { method: "flap", ratio: 0.3 });
  const inMemory = (await perplexity(prunedStandIn(model, sel), tinystoriesTest(), { seqlen: 512, limitWindows: 24 })).perplexity;
  const out = path.join(tempDir(), "flap");
  await writeStructured(model, sel, { outDir: out, record: { method: "flap" } });
  const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
  const sp = config.structured_pruning;
  assert.deepEqual(sp.num_key_value_heads, sel.map((s) => s.kept.attention.length));
  assert.deepEqual(sp.intermediate_size, sel.map((s) => s.kept.mlp.length));
  assert.deepEqual(sp.kept_mlp_channels, sel.map((s) => s.kept.mlp));
  assert.deepEqual(sp.o_proj_bias, [true, true, true, true, true]);
  assert.equal(config.num_key_value_heads, 4, "top-level widths stay the original ones");
  const reloaded = loadModel(out);
  assert.deepEqual(reloaded.config.layerWidths?.map((w) => w.intermediateSize), sp.intermediate_size);
  const fromDisk = (await perplexity(reloaded, tinystoriesTest(), { seqlen: 512, limitWindows: 24 })).perplexity;
  assert.ok(Math.abs(fromDisk / inMemory - 1) < 1e-5, `reloaded ${fromDisk} vs in memory ${inMemory}`);
  const ratio = linearBytes(out) / linearBytes(STORIES);
  assert.ok(Math.abs(ratio - keptFraction(model, sel)) < 1e-9);
});
