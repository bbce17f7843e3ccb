// A `topiary recover` killed after a checkpoint resumes from it on a rerun of the same command and
// writes the uninterrupted run's weights byte for byte. Only the killed runs are child processes
// (TOPIARY_TEST_KILL_AT kills one at a chosen point: after the step-4 checkpoint's commit, or after
// its state file but before the commit; a layer-wise run after block 2's checkpoint); the others
// run the same job in this process.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { releaseSessions } from "../../src/runtime/ort.js";
import { runRecovery, type RecoverJob, type RecoverJobMode } from "../../src/train/job.js";
import { topiary } from "../cli/run-cli.js";
import { DATA, REFERENCE, STORIES, tempDir } from "../helpers.js";

after(releaseSessions);

const SGPT50 = path.join(REFERENCE, "models", "sparsegpt-50");
const work = tempDir("topiary-recover-resume-");
const trainText = path.join(work, "train.txt");
fs.writeFileSync(trainText, fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 30_000));

const steps = (mode: RecoverJobMode) => (mode === "layerwise" ? 2 : 6);
const cli = (out: string, mode: RecoverJobMode, extra: string[] = []) => [
  ...["recover", SGPT50, "--teacher", STORIES, "--data", trainText, "--out", path.join(work, out), "--mode", mode],
  ...["--steps", String(steps(mode)), "--batch", "2", "--seqlen", "64", "--warmup", "2", "--checkpoint-every", "2", ...extra],
];
/** The job the CLI arguments above describe (the CLI's defaults elsewhere). */
const job = (out: string, mode: RecoverJobMode, over: Partial<RecoverJob> = {}, lr = 1e-3): RecoverJob => ({
  studentDir: SGPT50,
  teacherDir: STORIES,
  dataFile: trainText,
  evalFile: null,
  outDir: path.join(work, out),
  mode,
  checkpointEvery: 2,
  options: { steps: steps(mode), batch: 2, seqlen: 64, lr, warmup: 2, weightDecay: 0, clip: 0, seed: 0, loss: "kl", temperature: 1, rank: 8, alpha: 16, evalSeqlen: 0, evalEvery: 0 },
  ...over,
});
const weights = (out: string) => fs.readFileSync(path.join(work, out, "model.safetensors"));
const record = (out: string) => JSON.parse(fs.readFileSync(path.join(work, out, "topiary.json"), "utf8"));
const partial = (out: string) => path.join(work, `.${out}.partial`);

for (const [mode, killAt, resumedAfter] of [
  ["masked", "recover-checkpoint#2", "step 4/6"],
  ["lora", "rename:progress.json#2", "step 2/6"],
  ["layerwise", "recover-checkpoint#2", "block 2/5"],
] as const) {
  test(`recover ${mode}: killed at ${killAt}, the rerun resumes after ${resumedAfter} with the uninterrupted run's weights`, async () => {
    await runRecovery(job(`${mode}-whole`, mode));
    assert.equal(record(`${mode}-whole`).resumed, null);
    const killed = await topiary(cli(`${mode}-resumed`, mode), 120_000, { TOPIARY_TEST_KILL_AT: killAt });
    assert.notEqual(killed.code, 0);
    assert.ok(!fs.existsSync(path.join(work, `${mode}-resumed`)), "nothing at --out yet");
    assert.ok(fs.existsSync(partial(`${mode}-resumed`)), "the work folder holds the checkpoint");
    let where = "";
    await runRecovery(job(`${mode}-resumed`, mode, { onResume: (w) => (where = w) }));
    assert.equal(where, resumedAfter);
    assert.ok(weights(`${mode}-resumed`).equals(weights(`${mode}-whole`)), "byte-identical weights");
    assert.deepEqual(record(`${mode}-resumed`).loss_curve, record(`${mode}-whole`).loss_curve);
    assert.equal(record(`${mode}-resumed`).resumed, Number(resumedAfter.split(" ")[1]!.split("/")[0]));
    assert.ok(!fs.existsSync(partial(`${mode}-resumed`)), "the state is removed at the end");
  });
}

test("recover: a changed recipe does not resume an interrupted run (one line), --restart discards it", async () => {
  const killed = await topiary(cli("changed", "masked"), 120_000, { TOPIARY_TEST_KILL_AT: "recover-checkpoint#1" });
  assert.notEqual(killed.code, 0);
  await assert.rejects(
    runRecovery(job("changed", "masked", {}, 2e-3)),
    /changed: cannot resume the interrupted run saved in \.changed\.partial: the recipe changed \(lr: 0\.001 → 0\.002\); rerun with --restart to discard it$/,
  );
  await runRecovery(job("changed", "masked", { restart: true }, 2e-3));
  assert.equal(record("changed").resumed, null);
});
