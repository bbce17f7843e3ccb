// topiary recover end to end on stories260K: a short masked KL run recovers perplexity and keeps
// the student's zeros exactly; the same command and seed give the same weights; bad inputs are
// one line each.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { SafetensorsFile } from "../../src/formats/safetensors.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { runRecovery, type RecoverJob } from "../../src/train/job.js";
import { oneLineError, topiary } from "../cli/run-cli.js";
import { DATA, REFERENCE, STORIES, syntheticFolder, tempDir } from "../helpers.js";

after(releaseSessions);

const SGPT50 = path.join(REFERENCE, "models", "sparsegpt-50");
const work = tempDir("topiary-recover-");
// small texts keep tokenizing fast (the whole calib.txt takes ~20 s without the token cache)
const trainText = path.join(work, "train.txt");
const evalText = path.join(work, "eval.txt");
{
  fs.writeFileSync(trainText, fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 60_000));
  fs.writeFileSync(evalText, fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8").slice(0, 16_000));
}

const job = (out: string, over: Partial<RecoverJob["options"]> = {}, mode: RecoverJob["mode"] = "masked"): RecoverJob => ({
  studentDir: SGPT50,
  teacherDir: STORIES,
  dataFile: trainText,
  evalFile: evalText,
  outDir: path.join(work, out),
  mode,
  options: {
    steps: 8,
    batch: 4,
    seqlen: 128,
    lr: 3e-3,
    warmup: 2,
    weightDecay: 0,
    clip: 0,
    seed: 0,
    loss: "kl",
    temperature: 1,
    rank: 8,
    alpha: 16,
    evalSeqlen: 256,
    evalEvery: 4,
    ...over,
  },
});

type Record_ = {
  eval: { points: { step: number; perplexity: number }[]; perplexity: number; perplexity_before_remask: number | null };
  loss_curve: number[];
  sparsity: { zeros: number; student_zeros: number; same_zeros_every_linear: boolean };
};

describe("recover on stories260K / sparsegpt-50", () => {
  test("masked KL: perplexity falls, every pruned weight stays exactly zero", async () => {
    const student = loadModel(SGPT50);
    const ppl0 = (await perplexity(student, TextTokenizer.load(SGPT50).encode(fs.readFileSync(evalText, "utf8")), { seqlen: 256 })).perplexity;
    student.close();
    const r = (await runRecovery(job("masked"))).record as Record_;
    assert.equal(r.loss_curve.length, 8);
    assert.deepEqual(r.eval.points.map((p) => p.step), [4, 8]);
    assert.ok(r.eval.perplexity < 0.8 * ppl0, `perplexity ${r.eval.perplexity} vs ${ppl0} before`);
    assert.ok(r.loss_curve.at(-1)! < r.loss_curve[0]!, `loss ${r.loss_curve[0]} → ${r.loss_curve.at(-1)}`);
    assert.ok(r.sparsity.same_zeros_every_linear);
    assert.equal(r.sparsity.zeros, r.sparsity.student_zeros);
    assert.ok(r.sparsity.zeros > 0);
    // the written folder is a model whose perplexity is the one reported
    const after_ = await topiary(["eval", path.join(work, "masked"), "--data", evalText, "--seqlen", "256", "--json"]);
    assert.ok(Math.abs(JSON.parse(after_.stdout).perplexity - r.eval.perplexity) < 1e-6 * r.eval.perplexity);
  });

  test("same command and seed → the same weights, byte for byte; another seed → others", async () => {
    const bytes = (dir: string) => fs.readFileSync(path.join(work, dir, "model.safetensors"));
    const noEval = (out: string, seed: number) => ({ ...job(out, { steps: 2, evalEvery: 0, seed }), evalFile: null });
    await runRecovery(noEval("det-a", 0));
    await runRecovery(noEval("det-b", 0));
    await runRecovery(noEval("det-c", 1));
    assert.ok(bytes("det-a").equals(bytes("det-b")));
    assert.ok(!bytes("det-a").equals(bytes("det-c")));
  });

  test("LoRA: adapters merged, re-masked; both perplexities reported", async () => {
    const r = (await runRecovery(job("lora", { evalEvery: 0 }, "lora"))).record as Record_;
    assert.ok(r.sparsity.same_zeros_every_linear, "re-masked to the student's zeros");
    assert.ok(r.eval.perplexity_before_remask !== null && r.eval.perplexity_before_remask > 0);
    assert.ok(r.loss_curve.at(-1)! < r.loss_curve[0]!);
  });

  test("layer-wise: each block trained toward the teacher's block, zeros kept", async () => {
    const r = (await runRecovery(job("layerwise", { steps: 4, evalEvery: 0, calibrationWindows: 8 }, "layerwise"))).record as Record_;
    assert.equal(r.loss_curve.length, 4 * 5);
    // within each block the normalized MSE goes down
    for (let b = 0; b < 5; b++) assert.ok(r.loss_curve[4 * b + 3]! < r.loss_curve[4 * b]!, `block ${b}: ${r.loss_curve.slice(4 * b, 4 * b + 4)}`);
    assert.ok(r.sparsity.same_zeros_every_linear);
  });
});

describe("recover: bad input is one line", () => {
  const base = (out: string) => [SGPT50, "--teacher", STORIES, "--data", trainText, "--out", path.join(work, out), "--batch", "2", "--seqlen", "64"];

  test("a teacher with another vocabulary", async () => {
    const { dir } = await syntheticFolder(64, 1, 256);
    const line = oneLineError(await topiary(["recover", SGPT50, "--teacher", dir, "--data", trainText, "--out", path.join(work, "bad1")]));
    assert.match(line, /config\.json: vocabulary of 256 tokens differs from the student's \(512\)/);
    assert.ok(!fs.existsSync(path.join(work, "bad1")));
  });

  test("a student folder that is not a model", async () => {
    const notModel = tempDir();
    fs.writeFileSync(path.join(notModel, "notes.txt"), "hello");
    const line = oneLineError(await topiary(["recover", notModel, "--teacher", STORIES, "--data", trainText, "--out", path.join(work, "bad2")]));
    assert.match(line, /config\.json/);
  });

  test("--steps 0", async () => {
    const line = oneLineError(await topiary(["recover", ...base("bad3").slice(0), "--steps", "0"]));
    assert.match(line, /--steps must be an integer ≥ 1, got "0"/);
  });

  test("a learning rate that blows up: stops at the step, keeps the last good weights", async () => {
    const r = await topiary(["recover", ...base("nan"), "--steps", "5", "--lr", "1e30", "--warmup", "0"]);
    const line = oneLineError(r);
    assert.match(line, /loss is NaN at step 2 \(lr 1e\+30\); training stopped, the student's own weights were written here/);
    const st = SafetensorsFile.open(path.join(work, "nan", "model.safetensors"));
    const orig = SafetensorsFile.open(path.join(SGPT50, "model.safetensors"));
    const n = "model.layers.0.mlp.down_proj.weight";
    assert.ok(Buffer.from(st.readBytes(n)).equals(Buffer.from(orig.readBytes(n))));
    st.close();
    orig.close();
    const rec = JSON.parse(fs.readFileSync(path.join(work, "nan", "topiary.json"), "utf8"));
    assert.equal(rec.stopped.step, 2);
  });
});
