// A recover stage inside `compress --recipe`: prune → recover, the recovered weights keep the
// pruned zeros; a bad recover key is one line naming the stage.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { SafetensorsFile, bytesToFloat32 } from "../../src/formats/safetensors.js";
import { oneLineError, topiary } from "../cli/run-cli.js";
import { DATA, STORIES, tempDir } from "../helpers.js";

const work = tempDir("topiary-recipe-");
const calib = path.join(work, "calib.txt");
fs.writeFileSync(calib, fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 40_000));

test("compress --recipe: magnitude 50 % → recover keeps the zeros and writes a model", async () => {
  const recipe = path.join(work, "recipe.yaml");
  fs.writeFileSync(recipe, "stages:\n  - method: magnitude\n    sparsity: 0.5\n  - method: recover\n    steps: 2\n    batch: 2\n    seqlen: 64\n");
  const out = path.join(work, "out");
  const r = await topiary(["compress", STORIES, "--recipe", recipe, "--calib", calib, "--out", out]);
  assert.equal(r.code, 0, r.stderr);
  const rec = JSON.parse(fs.readFileSync(path.join(out, "topiary.json"), "utf8"));
  assert.equal(rec.loss_curve.length, 2);
  assert.ok(rec.sparsity.same_zeros_every_linear);
  const st = SafetensorsFile.open(path.join(out, "model.safetensors"));
  const n = "model.layers.2.mlp.up_proj.weight";
  const w = bytesToFloat32(st.readBytes(n), st.info(n).dtype, st.file);
  st.close();
  assert.equal(w.filter((v) => v === 0).length, rec.sparsity.linears[n].student_zeros);
  assert.ok(rec.sparsity.linears[n].student_zeros >= w.length / 2);
});

test("compress --recipe: an unknown recover key is one line naming the stage", async () => {
  const recipe = path.join(work, "bad.yaml");
  fs.writeFileSync(recipe, "stages:\n  - method: recover\n    stepz: 2\n");
  const line = oneLineError(await topiary(["compress", STORIES, "--recipe", recipe, "--calib", calib, "--out", path.join(work, "bad")]));
  assert.match(line, /bad\.yaml: stage 1 \(recover\): .*stepz/);
});
