// Layer-wise distillation stops at the first non-finite loss, names the step and block, and keeps
// the last good weights: blocks before the failing one as trained, the failing one rolled back to
// the weights that gave its last finite loss.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { layerwiseDistill } from "../../src/train/layerwise.js";
import { studentWith, type RecoverOptions } from "../../src/train/recover.js";
import { DATA, REFERENCE, STORIES } from "../helpers.js";

after(releaseSessions);

const SGPT50 = path.join(REFERENCE, "models", "sparsegpt-50");
const ids = TextTokenizer.load(STORIES).encode(fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 20_000));

const options = (over: Partial<RecoverOptions> = {}): Omit<RecoverOptions, "mode"> & { calibrationWindows: number } => ({
  steps: 3,
  batch: 2,
  seqlen: 32,
  lr: 1e-3,
  warmup: 0,
  weightDecay: 0,
  clip: 0,
  seed: 0,
  loss: "kl",
  temperature: 1,
  rank: 8,
  alpha: 16,
  evalIds: null,
  evalSeqlen: 32,
  evalEvery: 0,
  calibrationWindows: 4,
  ...over,
});

const linearNames = (m: ReturnType<typeof loadModel>, layer: number) => m.linears(layer).map((l) => `${l.name}.weight`);

test("layer-wise: a learning rate that blows up stops at block 0 step 2 and keeps the student's own weights", async () => {
  const student = loadModel(SGPT50);
  const teacher = loadModel(STORIES);
  const r = await layerwiseDistill(student, teacher, ids, options({ lr: 1e30 }));
  assert.equal(r.stopped?.step, 2);
  assert.match(r.stopped!.reason, /^block 0: loss is (NaN|Infinity)$/);
  assert.equal(r.stopped!.kept, "the student's own weights");
  assert.equal(r.losses.length, 1);
  // step 1's update (weights ~1e30) is rolled back: block 0 is byte-identical to the student's
  for (const n of linearNames(student, 0)) assert.deepEqual(r.weights.get(n), student.weights.read(n), n);
  assert.deepEqual([...r.weights.keys()], linearNames(student, 0));
  student.close();
  teacher.close();
});

test("layer-wise: a NaN in block 1 stops at its first step; block 0 keeps its training", async () => {
  const base = loadModel(SGPT50);
  const teacher = loadModel(STORIES);
  const bad = "model.layers.1.mlp.up_proj.weight";
  const w = base.weights.read(bad).slice();
  w[7] = NaN;
  const student = studentWith(base, new Map([[bad, w]]));
  const steps = 3;
  const r = await layerwiseDistill(student, teacher, ids, options({ steps }));
  assert.equal(r.stopped?.step, steps + 1, "block 1's first step");
  assert.equal(r.stopped!.reason, "block 1: loss is NaN");
  assert.equal(r.stopped!.kept, "the weights with block 0 trained, block 1 as the student's, the rest the student's own,");
  assert.equal(r.losses.length, steps);
  let changed = 0;
  for (const n of linearNames(base, 0)) {
    const t = r.weights.get(n)!;
    assert.ok(t.every(Number.isFinite), n);
    if (!t.every((v, k) => v === base.weights.read(n)[k])) changed++;
  }
  assert.equal(changed, 7, "every linear of block 0 trained");
  assert.ok(Object.is(r.weights.get(bad)![7], NaN), "block 1 as the student had it");
  base.close();
  teacher.close();
});
