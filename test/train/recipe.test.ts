// A recover stage inside `compress --recipe`: prune → recover, the recovered weights keep the
// pruned zeros; a bad recover key is one line naming the stage.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { SafetensorsFile, bytesToFloat32 } from "../../src/formats/safetensors.js";
import { loadModel } from "../../src/models/load.js";
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

test("compress --recipe: magnitude 50 % → recover → gptq 4-bit keeps every pruned zero; the record lists every segment", async () => {
  const write = (name: string, text: string) => (fs.writeFileSync(path.join(work, name), text), path.join(work, name));
  const prune = "  - method: magnitude\n    sparsity: 0.5\n";
  const pruned = path.join(work, "pruned");
  const final = path.join(work, "prq");
  const a = await topiary(["compress", STORIES, "--recipe", write("p.yaml", `stages:\n${prune}`), "--out", pruned]);
  assert.equal(a.code, 0, a.stderr);
  const recipe = write("prq.yaml", `stages:\n${prune}  - method: recover\n    steps: 2\n    batch: 2\n    seqlen: 64\n  - method: gptq\n    bits: 4\n    group_size: 16\n`);
  const b = await topiary(["compress", STORIES, "--recipe", recipe, "--calib", calib, "--nsamples", "8", "--calib-seqlen", "128", "--out", final]);
  assert.equal(b.code, 0, b.stderr);
  const p = loadModel(pruned);
  const q = loadModel(final);
  let pruneZeros = 0;
  let kept = 0;
  let newZeros = 0;
  let changed = 0;
  for (let i = 0; i < p.numLayers; i++) {
    for (const l of p.linears(i)) {
      const wp = p.weights.read(`${l.name}.weight`);
      const wq = q.weights.read(`${l.name}.weight`);
      for (let k = 0; k < wp.length; k++) {
        if (wp[k] === 0) {
          pruneZeros++;
          if (wq[k] === 0) kept++;
        } else {
          if (wq[k] === 0) newZeros++;
          if (wq[k] !== wp[k]) changed++;
        }
      }
    }
  }
  p.close();
  q.close();
  assert.ok(pruneZeros > 100_000);
  assert.equal(kept, pruneZeros, "every zero of the prune stage is zero after recover and quantize");
  // a kept weight may round to 0 on the 4-bit grid; that is quantization, not a lost mask
  assert.ok(newZeros < 1e-3 * pruneZeros, `${newZeros} kept weights quantized to 0`);
  assert.ok(changed > 0.9 * pruneZeros, "the kept weights were trained and quantized");
  const rec = JSON.parse(fs.readFileSync(path.join(final, "topiary.json"), "utf8"));
  assert.equal(rec.source, path.resolve(STORIES));
  assert.deepEqual(
    rec.recipe_segments.map((s: { kind: string; recipe: { method: string }[] }) => [s.kind, s.recipe.map((r) => r.method)]),
    [
      ["compress", ["magnitude"]],
      ["recover", ["recover"]],
    ],
  );
  assert.equal(rec.recipe_segments[1].sparsity.same_zeros_every_linear, true);
  assert.deepEqual(rec.recipe.map((r: { method: string }) => r.method), ["gptq"]);
});

test("compress --recipe: an unknown recover key is one line naming the stage", async () => {
  const recipe = path.join(work, "bad.yaml");
  fs.writeFileSync(recipe, "stages:\n  - method: recover\n    stepz: 2\n");
  const line = oneLineError(await topiary(["compress", STORIES, "--recipe", recipe, "--calib", calib, "--out", path.join(work, "bad")]));
  assert.match(line, /bad\.yaml: stage 1 \(recover\): .*stepz/);
});
