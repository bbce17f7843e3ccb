// A `topiary recover` killed after a checkpoint resumes from it on a rerun of the same command and
// writes the uninterrupted run's weights byte for byte (TOPIARY_TEST_KILL_AT kills it at a chosen
// point: after the step-4 checkpoint's commit, or after its state file but before the commit).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { topiary } from "../cli/run-cli.js";
import { DATA, REFERENCE, STORIES, tempDir } from "../helpers.js";

const SGPT50 = path.join(REFERENCE, "models", "sparsegpt-50");
const work = tempDir("topiary-recover-resume-");
const trainText = path.join(work, "train.txt");
fs.writeFileSync(trainText, fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 30_000));

const args = (out: string, mode = "masked") => [
  "recover", SGPT50, "--teacher", STORIES, "--data", trainText, "--out", path.join(work, out),
  "--mode", mode, "--steps", "6", "--batch", "2", "--seqlen", "64", "--warmup", "2", "--checkpoint-every", "2",
];
const weights = (out: string) => fs.readFileSync(path.join(work, out, "model.safetensors"));
const record = (out: string) => JSON.parse(fs.readFileSync(path.join(work, out, "topiary.json"), "utf8"));
const partial = (out: string) => path.join(work, `.${out}.partial`);

for (const [mode, killAt, resumedAfter] of [
  ["masked", "recover-checkpoint#2", 4],
  ["lora", "rename:progress.json#2", 2],
] as const) {
  test(`recover ${mode}: killed at ${killAt}, the rerun resumes after step ${resumedAfter} with the uninterrupted run's weights`, async () => {
    const whole = await topiary(args(`${mode}-whole`, mode));
    assert.equal(whole.code, 0, whole.stderr);
    assert.equal(record(`${mode}-whole`).resumed, null);
    const killed = await topiary(args(`${mode}-resumed`, mode), 120_000, { TOPIARY_TEST_KILL_AT: killAt });
    assert.notEqual(killed.code, 0);
    assert.ok(!fs.existsSync(path.join(work, `${mode}-resumed`)), "nothing at --out yet");
    assert.ok(fs.existsSync(partial(`${mode}-resumed`)), "the work folder holds the checkpoint");
    const rerun = await topiary(args(`${mode}-resumed`, mode));
    assert.equal(rerun.code, 0, rerun.stderr);
    assert.match(rerun.stderr, new RegExp(`resumed after step ${resumedAfter}/6`));
    assert.ok(weights(`${mode}-resumed`).equals(weights(`${mode}-whole`)), "byte-identical weights");
    assert.deepEqual(record(`${mode}-resumed`).loss_curve, record(`${mode}-whole`).loss_curve);
    assert.equal(record(`${mode}-resumed`).resumed, resumedAfter);
    assert.ok(!fs.existsSync(partial(`${mode}-resumed`)), "the state is removed at the end");
  });
}

test("recover: a changed recipe does not resume an interrupted run (one line), --restart discards it", async () => {
  const killed = await topiary(args("changed"), 120_000, { TOPIARY_TEST_KILL_AT: "recover-checkpoint#1" });
  assert.notEqual(killed.code, 0);
  const other = await topiary([...args("changed"), "--lr", "2e-3"]);
  assert.equal(other.code, 1);
  assert.match(other.stderr.trim(), /^topiary: .*changed: cannot resume the interrupted run saved in \.changed\.partial: the recipe changed \(lr: 0\.001 → 0\.002\); rerun with --restart to discard it$/);
  const restarted = await topiary([...args("changed"), "--lr", "2e-3", "--restart"]);
  assert.equal(restarted.code, 0, restarted.stderr);
  assert.equal(record("changed").resumed, null);
});
