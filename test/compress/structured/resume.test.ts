// Resuming a killed structured-pruning job (compress/structured/job-state.ts, with the mechanism
// of compress/resume.ts), as test/compress/resume.test.ts does for SparseGPT: stories260K pruned
// with flap (with --drop-layers: the block-similarity pass, then FLAP's statistics pass) and with
// obs-sp (the sequential selection pass, with its OBS refits), each SIGKILLed at several points
// (TOPIARY_TEST_KILL_AT, formats/kill-point.ts) — mid-layer during a calibration pass, while a
// layer's state is written, between the state and its commit, after a commit, while writing the
// output — and rerun; the final files are byte-identical to an uninterrupted run's. A changed
// ratio or method refuses to resume in one line, and --restart starts over.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { DATA, STORIES, tempDir } from "../../helpers.js";
import { digests, topiary, topiaryToEnd, type Run } from "../kill-runs.js";

/** topiary.json's record of the pruning (widths, dropped layers, block similarities, kept fraction). */
function structured(dir: string): unknown {
  return JSON.parse(fs.readFileSync(path.join(dir, "topiary.json"), "utf8")).structured;
}

// 4 windows of 128 tokens of the head of calib.txt: one forward run per layer and pass
const CALIB = path.join(tempDir(), "calib-head.txt");
fs.writeFileSync(CALIB, fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 30000));
const SMALL = ["--calib", CALIB, "--nsamples", "4", "--calib-seqlen", "128", "--calib-sampling", "first"];

const FILES = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"];

function oneLine(r: Run): string {
  assert.equal(r.code, 1, r.stderr);
  const lines = r.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  return lines[0]!;
}

describe("resuming a killed structured-pruning job", () => {
  it("flap --drop-layers 1: resumes in the block-similarity pass, the statistics pass and the writing, byte-identical; a changed ratio refuses; --restart starts over", async () => {
    const work = tempDir();
    const job = (out: string, ratio = "0.3") => ["prune", STORIES, "--method", "flap", "--sparsity", ratio, "--drop-layers", "1", ...SMALL, "--out", path.join(work, out)];
    const partial = path.join(work, ".resumed.partial");

    // mid-layer in the block-similarity pass (5 layers): its 3rd layer's run; layers 1–2 committed
    let r = await topiary(job("resumed"), "calibration-run#3");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.ok(fs.existsSync(partial) && !fs.existsSync(path.join(work, "resumed")));

    // another ratio refuses in one line naming what changed, and leaves the saved state alone
    const line = oneLine(await topiaryToEnd(job("resumed", "0.4")));
    assert.match(line, /^topiary: .*resumed: cannot resume the interrupted run saved in \.resumed\.partial: the recipe changed \(ratio: 0\.3 → 0\.4\); rerun with --restart/);
    assert.ok(fs.existsSync(path.join(partial, ".topiary-resume", "progress.json")));

    // similarity layers 3–5, then mid-layer in FLAP's statistics pass (4 layers once one is dropped)
    r = await topiary(job("resumed"), "calibration-run#4");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /topiary: resumed at layer 2\/5 of the block similarity \(--drop-layers\) pass: layers 1–2 restored/);

    // right after the commit of statistics layer 2
    r = await topiary(job("resumed"), "layer-committed#2");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /resumed at layer 0\/4 of the flap statistics pass: block similarity \(--drop-layers\) restored/);

    // layer 3's statistics written, not committed: it is redone
    r = await topiary(job("resumed"), "layer-stored#1");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /resumed at layer 2\/4 of the flap statistics pass: block similarity \(--drop-layers\) and layers 1–2 restored/);

    // while writing the output: the 3rd tensor of model.safetensors, after every layer committed
    r = await topiary(job("resumed"), "write:model.safetensors#3");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /resumed at layer 2\/4 of the flap statistics pass/);

    r = await topiaryToEnd(job("resumed"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resumed at layer 4\/4 of the flap statistics pass: block similarity \(--drop-layers\) and layers 1–4 restored/);
    assert.ok(!fs.existsSync(partial), "the work folder is renamed into place");

    // the uninterrupted run: --restart discards a killed run's state and starts over
    r = await topiary(job("fresh"), "layer-committed#6");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    r = await topiaryToEnd([...job("fresh"), "--restart"]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /resumed/);

    const want = digests(path.join(work, "fresh"));
    assert.deepEqual(Object.keys(want), FILES);
    assert.deepEqual(digests(path.join(work, "resumed")), want);
    assert.deepEqual(structured(path.join(work, "resumed")), structured(path.join(work, "fresh")));
    assert.equal((structured(path.join(work, "fresh")) as { droppedLayers: number[] }).droppedLayers.length, 1);
    assert.deepEqual(fs.readdirSync(work).sort(), ["fresh", "resumed"], "no work folder or temporary is left");
  });

  it("obs-sp: resumes in the selection pass (mid-layer, mid-state-file, between layers) and the writing, byte-identical; a changed method refuses", async () => {
    const work = tempDir();
    const job = (out: string, method = "obs-sp") => ["prune", STORIES, "--method", method, "--sparsity", "0.3", ...SMALL, "--out", path.join(work, out)];

    // mid-layer: obs-sp runs the batch ~5 times per layer (statistics, the splits it measures, the
    // outputs); the 8th run is in layer 2, layer 1 committed
    let r = await topiary(job("resumed"), "calibration-run#8");
    assert.equal(r.signal, "SIGKILL", r.stderr);

    assert.match(oneLine(await topiaryToEnd(job("resumed", "flap"))), /cannot resume the interrupted run saved in \.resumed\.partial: the recipe changed \(method: "obs-sp" → "flap"\); rerun with --restart/);

    // while writing layer 3's selection (its 2nd tensor: the kept MLP channels)
    r = await topiary(job("resumed"), "write:selection-layer2.safetensors#2");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /topiary: resumed at layer 1\/5 of the obs-sp selection pass: layer 1 restored/);

    // between layers: after this run's first commit (layer 3)
    r = await topiary(job("resumed"), "layer-committed#1");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /resumed at layer 2\/5 of the obs-sp selection pass: layers 1–2 restored/);

    // while writing the output
    r = await topiary(job("resumed"), "write:model.safetensors#4");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /resumed at layer 3\/5/);

    r = await topiaryToEnd(job("resumed"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resumed at layer 5\/5 of the obs-sp selection pass: layers 1–5 restored/);

    r = await topiaryToEnd(job("fresh"));
    assert.equal(r.code, 0, r.stderr);
    const want = digests(path.join(work, "fresh"));
    assert.deepEqual(Object.keys(want), FILES);
    assert.deepEqual(digests(path.join(work, "resumed")), want);
    assert.deepEqual(structured(path.join(work, "resumed")), structured(path.join(work, "fresh")));
    assert.deepEqual(fs.readdirSync(work).sort(), ["fresh", "resumed"]);
  });

  it("flap --reconstruct: resumes in the refit pass after the statistics pass, byte-identical", async () => {
    const work = tempDir();
    const job = (out: string) => ["prune", STORIES, "--method", "flap", "--sparsity", "0.3", "--reconstruct", ...SMALL, "--out", path.join(work, out)];
    // commits 1–5: the statistics of layers 1–5; 6–7: the selections of layers 1–2
    let r = await topiary(job("resumed"), "layer-committed#7");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    r = await topiaryToEnd(job("resumed"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resumed at layer 2\/5 of the flap selection pass: flap statistics and layers 1–2 restored/);
    r = await topiaryToEnd(job("fresh"));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(digests(path.join(work, "resumed")), digests(path.join(work, "fresh")));
    assert.deepEqual(structured(path.join(work, "resumed")), structured(path.join(work, "fresh")));
  });
});
