import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { blockSimilarity, layersToDrop, withoutLayers } from "../../../src/compress/structured/drop-layers.js";
import { calibrationWindows } from "../../../src/data/calibration.js";
import { loadModel } from "../../../src/models/load.js";
import { TextTokenizer } from "../../../src/tokenizer/tokenizer.js";
import { DATA, REFERENCE, STORIES } from "../../helpers.js";

test("layersToDrop takes the k most similar blocks; k out of range is one clear error", () => {
  assert.deepEqual(layersToDrop([0.5, 0.9, 0.7, 0.95], 2), [1, 3]);
  assert.deepEqual(layersToDrop([0.5, 0.9], 0), []);
  assert.throws(() => layersToDrop([0.5, 0.9], 2), /--drop-layers 2 must be an integer in \[0, 1\] \(the model has 2 layers\)/);
  assert.throws(() => layersToDrop([0.5, 0.9], -1), /--drop-layers -1/);
});

test("dropping layers: the view runs the kept layers, renumbered, and similarity is a cosine", async () => {
  const model = loadModel(STORIES);
  const tok = TextTokenizer.load(STORIES);
  const ids = tok.encode(fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 20000));
  const calib = calibrationWindows(ids, { nsamples: 2, seqlen: 128, sampling: "first", seed: 0 });
  const sim = await blockSimilarity(model, calib);
  assert.equal(sim.length, model.numLayers);
  for (const s of sim) assert.ok(s > -1 && s <= 1 + 1e-6, `cosine ${s}`);

  const drop = [1, 3];
  const small = withoutLayers(model, drop);
  assert.equal(small.numLayers, model.numLayers - 2);
  assert.equal(small.config.raw.num_hidden_layers, model.numLayers - 2);
  // layer 2 of the view is layer 4 of the original
  const x = await model.embed(calib.ids.subarray(0, 128));
  const a = (await small.runLayer(2, x, 1, 128)).hidden;
  const b = (await model.runLayer(4, x, 1, 128)).hidden;
  assert.deepEqual(a, b);
  assert.ok(!small.weights.has(`model.layers.${small.numLayers}.mlp.down_proj.weight`));
});

test("learned positions restart in every calibration window (GPT-2): two copies of a window score as the window", async () => {
  const dir = path.join(REFERENCE, "architectures", "gpt2");
  const model = loadModel(dir);
  const ids = TextTokenizer.load(dir).encode(fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 2000));
  const one = calibrationWindows(ids, { nsamples: 1, seqlen: 32, sampling: "first", seed: 0 });
  const twice = { ...one, ids: Int32Array.from([...one.ids, ...one.ids]), nsamples: 2 };
  const a = await blockSimilarity(model, one);
  const b = await blockSimilarity(model, twice);
  for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) < 1e-6, `layer ${i}: one window ${a[i]}, two copies ${b[i]}`);
  model.close();
});
