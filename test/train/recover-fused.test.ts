// Without clipping, recover() updates each layer's params as soon as the backward has produced
// their gradients (train/recover.ts): the weights must be the ones the unfused order gives (every
// gradient first, then AdamW over all params — what a clip bound that never binds runs), bit for
// bit. And the rollback values, kept on disk (train/rollback.ts), must give back exactly the
// weights of two steps before the step whose loss is not finite.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { recover, type RecoverOptions } from "../../src/train/recover.js";
import { DATA, REFERENCE, STORIES } from "../helpers.js";

after(releaseSessions);

const SGPT50 = path.join(REFERENCE, "models", "sparsegpt-50");
const trainIds = TextTokenizer.load(SGPT50).encode(fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 20_000));

const options = (over: Partial<RecoverOptions>): RecoverOptions => ({
  mode: "masked",
  steps: 4,
  batch: 2,
  seqlen: 64,
  lr: 3e-3,
  warmup: 2,
  weightDecay: 0.01,
  clip: 0,
  seed: 3,
  loss: "kl",
  temperature: 1,
  rank: 4,
  alpha: 8,
  evalIds: null,
  evalSeqlen: 64,
  evalEvery: 0,
  ...over,
});

async function run(over: Partial<RecoverOptions>) {
  const student = loadModel(SGPT50);
  const teacher = loadModel(STORIES);
  const norms: number[] = [];
  try {
    const r = await recover(student, teacher, trainIds, options(over), { onStep: (s) => norms.push(s.gradNorm) });
    return { ...r, norms };
  } finally {
    student.close();
    teacher.close();
  }
}

function assertSameWeights(a: Map<string, Float32Array>, b: Map<string, Float32Array>): void {
  assert.deepEqual([...a.keys()], [...b.keys()]);
  for (const [name, w] of a) {
    const v = b.get(name)!;
    assert.ok(Buffer.from(w.buffer, w.byteOffset, w.byteLength).equals(Buffer.from(v.buffer, v.byteOffset, v.byteLength)), `${name} differs`);
  }
}

describe("fused AdamW updates during the backward", () => {
  for (const mode of ["masked", "lora"] as const) {
    test(`${mode}: bit-identical weights and losses to the unfused order`, async () => {
      const fused = await run({ mode, clip: 0 });
      const unfused = await run({ mode, clip: 1e30 }); // a bound that never binds: the unfused path, unscaled
      assert.equal(fused.stopped, null);
      assert.deepEqual(fused.losses, unfused.losses);
      assertSameWeights(fused.weights, unfused.weights);
      // the weights did move
      const student = loadModel(SGPT50);
      const name = [...fused.weights.keys()][0]!;
      assert.ok(!Buffer.from(fused.weights.get(name)!.buffer).equals(Buffer.from(student.weights.read(name).buffer)));
      student.close();
      // the norm is summed per param in the fused order: equal to within rounding
      fused.norms.forEach((n, i) => assert.ok(Math.abs(n - unfused.norms[i]!) <= 1e-12 * unfused.norms[i]!, `step ${i + 1}: ${n} vs ${unfused.norms[i]}`));
    });
  }

  test("a loss that is not finite at step s keeps exactly the weights after step s − 2 (rolled back from disk)", async () => {
    // during the warm-up the learning rate of step s (lr·s/warmup) does not depend on --steps, so a
    // run of s − 2 steps is the stopped run's history; lr 1e16 makes step 3's loss NaN
    const blowUp = { lr: 1e16, warmup: 20, steps: 10 };
    const r = await run(blowUp);
    assert.ok(r.stopped, "the run stops");
    assert.match(r.stopped.reason, /^loss is (NaN|-?Infinity)$/);
    const s = r.stopped.step;
    assert.ok(s >= 3, `stopped at step ${s}: the test needs a rollback past the student's own weights`);
    assert.equal(r.stopped.keptStep, s - 2);
    const short = await run({ ...blowUp, steps: s - 2 });
    assert.equal(short.stopped, null);
    assertSameWeights(r.weights, short.weights);
  });

  test("a gradient that is not finite mid-backward: the layers already updated go back, the weights after step s − 1 are kept", async () => {
    // lr 1e19: step 2's loss is finite, layer 0's gradients are not; the fused step has updated
    // layers 4…1 (28 of the 35 params, checked by hand) before they arrive
    const blowUp = { lr: 1e19, warmup: 20, steps: 8 };
    const r = await run(blowUp);
    assert.ok(r.stopped, "the run stops");
    assert.match(r.stopped.reason, /^gradient norm is /);
    const s = r.stopped.step;
    assert.equal(r.stopped.keptStep, s - 1);
    assert.ok(s >= 2);
    const short = await run({ ...blowUp, steps: s - 1 });
    assertSameWeights(r.weights, short.weights);
  });
});
