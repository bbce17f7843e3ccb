// Resuming a killed compression job (compress/resume.ts, compress/job-state.ts): a SparseGPT job on
// a 4-layer synthetic model is SIGKILLed at several points (TOPIARY_TEST_KILL_AT, the test hook in
// formats/kill-point.ts) — mid-layer, between layers, while writing a layer's results, while
// committing progress, while writing the output — and each rerun of the same command resumes; the
// final files are byte-identical to an uninterrupted run's. A changed recipe refuses to resume.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { manifestChange, ResumableOutput, workFolderOf, type JobManifest } from "../../src/compress/resume.js";
import { syntheticTokenizer } from "../../src/tokenizer/synthetic.js";
import { syntheticFolder, tempDir } from "../helpers.js";
import { digests, topiary, topiaryToEnd } from "./kill-runs.js";

/** topiary.json's per-linear results without their timings. */
function results(dir: string): unknown {
  const record = JSON.parse(fs.readFileSync(path.join(dir, "topiary.json"), "utf8"));
  return Object.fromEntries(Object.entries(record.linears as Record<string, Record<string, unknown>>).map(([k, v]) => [k, { ...v, seconds: undefined }]));
}

describe("resuming a killed compression job", () => {
  it("resumes after SIGKILL at every kind of point with byte-identical files, and refuses a changed recipe", async () => {
    const { dir: model } = await syntheticFolder(128, 4, 512);
    const { tokenizer, config } = syntheticTokenizer(512);
    fs.writeFileSync(path.join(model, "tokenizer.json"), JSON.stringify(tokenizer));
    fs.writeFileSync(path.join(model, "tokenizer_config.json"), JSON.stringify(config));
    const calib = path.join(tempDir(), "calib.txt");
    const words = Array.from({ length: 1500 }, (_, i) => "abcdefghijklmnopqrstuvwxyz".slice(i % 23, (i % 23) + 1 + ((i * 7) % 4))).join(" ");
    fs.writeFileSync(calib, words);
    const work = tempDir();
    const job = (sparsity: string, out: string) =>
      ["prune", model, "--method", "sparsegpt", "--sparsity", sparsity, "--calib", calib, "--nsamples", "4", "--calib-seqlen", "64", "--calib-sampling", "first", "--out", out];
    const resumed = path.join(work, "resumed");
    const partial = path.join(work, ".resumed.partial");

    // mid-layer: the 9th linear is the 2nd of layer 2 (7 per layer): layer 1 is committed
    let r = await topiary(job("0.5", resumed), "linear-compressed#9");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.ok(fs.existsSync(partial) && !fs.existsSync(resumed));

    // another recipe refuses, in one line naming what changed, and leaves the saved state alone
    r = await topiaryToEnd(job("0.6", resumed));
    assert.equal(r.code, 1);
    const lines = r.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0]!, /^topiary: .*resumed: cannot resume the interrupted run saved in \.resumed\.partial: the recipe changed \(stages\[0\]\.sparsity: 0\.5 → 0\.6\); rerun with --restart/);
    assert.ok(fs.existsSync(path.join(partial, ".topiary-resume", "progress.json")));

    // between layers: killed right after the first commit of this run (layer 2)
    r = await topiary(job("0.5", resumed), "layer-committed#1");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /topiary: resumed at layer 1\/4: layer 1 restored/);

    // while committing: progress.json written in full but not renamed into place (layer 3)
    r = await topiary(job("0.5", resumed), "rename:progress.json#1");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /resumed at layer 2\/4: layers 1–2 restored/);

    // while writing a layer's results: the 2nd tensor of layer 3's store file (parts count from 0)
    r = await topiary(job("0.5", resumed), "write:part-00002.safetensors#2");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /resumed at layer 2\/4/);

    // while writing the output: the 5th tensor of model.safetensors, after all layers committed
    r = await topiary(job("0.5", resumed), "write:model.safetensors#5");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    assert.match(r.stderr, /resumed at layer 2\/4/);

    r = await topiaryToEnd(job("0.5", resumed));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resumed at layer 4\/4: layers 1–4 restored/);
    assert.ok(!fs.existsSync(partial), "the work folder is renamed into place");

    // the uninterrupted run: --restart discards a killed run's state and starts over
    const fresh = path.join(work, "fresh");
    r = await topiary(job("0.5", fresh), "linear-compressed#3");
    assert.equal(r.signal, "SIGKILL");
    r = await topiaryToEnd([...job("0.5", fresh), "--restart"]);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /resumed/);

    const want = digests(fresh);
    assert.deepEqual(Object.keys(want), ["config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"]);
    assert.deepEqual(digests(resumed), want);
    assert.deepEqual(results(resumed), results(fresh));
    assert.deepEqual(fs.readdirSync(work).sort(), ["fresh", "resumed"], "no work folder or temporary is left");
  });
});

describe("resuming a two-stage recipe", () => {
  it("resumes inside the second stage (SparseGPT → GPTQ) with byte-identical files", async () => {
    const { dir: model } = await syntheticFolder(128, 2, 512);
    const { tokenizer, config } = syntheticTokenizer(512);
    fs.writeFileSync(path.join(model, "tokenizer.json"), JSON.stringify(tokenizer));
    fs.writeFileSync(path.join(model, "tokenizer_config.json"), JSON.stringify(config));
    const work = tempDir();
    const calib = path.join(work, "calib.txt");
    fs.writeFileSync(calib, Array.from({ length: 1500 }, (_, i) => "etaoinshrdlu".slice(i % 9, (i % 9) + 1 + (i % 3))).join(" "));
    const recipe = path.join(work, "recipe.yaml");
    fs.writeFileSync(recipe, "stages:\n  - method: sparsegpt\n    sparsity: 0.5\n  - method: gptq\n    bits: 4\n    group_size: 32\n");
    const job = (out: string) => ["compress", model, "--recipe", recipe, "--calib", calib, "--nsamples", "4", "--calib-seqlen", "64", "--calib-sampling", "first", "--out", path.join(work, out)];

    // the 3rd commit is stage 2's first layer
    let r = await topiary(job("resumed"), "layer-committed#3");
    assert.equal(r.signal, "SIGKILL", r.stderr);
    r = await topiaryToEnd(job("resumed"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /topiary: resumed at layer 1\/2 of stage 2\/2 \(gptq\): stage 1 and layer 1 restored/);
    r = await topiaryToEnd(job("fresh"));
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(digests(path.join(work, "resumed")), digests(path.join(work, "fresh")));
    assert.deepEqual(results(path.join(work, "resumed")), results(path.join(work, "fresh")));
  });
});

describe("manifestChange", () => {
  const base: JobManifest = {
    job: "compression",
    versions: { topiary: "0.1.0", onnxruntime: "1.30.0" },
    inputs: { "model file model.safetensors": "aa", calibration: "4x64:bb" },
    recipe: { stages: [{ method: "sparsegpt", sparsity: 0.5 }] },
  };
  const edit = (f: (m: JobManifest) => void) => {
    const m = structuredClone(base);
    f(m);
    return manifestChange(base, m);
  };

  it("is null for the same job and names the first thing that changed otherwise", () => {
    assert.equal(manifestChange(base, structuredClone(base)), null);
    assert.equal(edit((m) => (m.versions.topiary = "0.2.0")), "topiary version changed (0.1.0 → 0.2.0)");
    assert.equal(edit((m) => (m.inputs["model file model.safetensors"] = "cc")), "model file model.safetensors changed");
    assert.equal(edit((m) => (m.inputs.calibration = "8x64:bb")), "calibration changed");
    assert.equal(edit((m) => delete m.inputs.calibration), "calibration is gone");
    assert.equal(edit((m) => (m.inputs["model file extra.json"] = "dd")), "model file extra.json is new");
    assert.equal(edit((m) => ((m.recipe as { stages: object[] }).stages[0] = { method: "wanda", sparsity: 0.5 })), 'the recipe changed (stages[0].method: "sparsegpt" → "wanda")');
    assert.equal(edit((m) => (m.recipe as { stages: object[] }).stages.push({ method: "gptq" })), 'the recipe changed (stages[1].method: unset → "gptq")');
    assert.equal(edit((m) => (m.job = "recovery")), "it was a compression job, this is a recovery job");
  });
});

describe("ResumableOutput", () => {
  const manifest: JobManifest = { job: "test", versions: { topiary: "0.1.0" }, inputs: {}, recipe: { steps: 3 } };

  it("restores the last commit, starts over with restart, and refuses a folder a live process holds", () => {
    const out = path.join(tempDir(), "out");
    const first = ResumableOutput.open<{ step: number }>(out, manifest);
    assert.equal(first.restored, null);
    first.commit({ step: 1 });
    first.commit({ step: 2 });
    fs.writeFileSync(path.join(first.dir, "half-written.bin"), "x"); // an output file of the killed run

    // the process "died": a rerun of the same job resumes at the last commit and drops other files
    fs.writeFileSync(path.join(first.dir, ".topiary-resume", "lock"), "999999999");
    const second = ResumableOutput.open<{ step: number }>(out, manifest);
    assert.deepEqual(second.restored, { step: 2 });
    assert.deepEqual(fs.readdirSync(second.dir), [".topiary-resume"]);

    // held by a live process (the test runner's parent stands in for another topiary)
    fs.writeFileSync(path.join(second.dir, ".topiary-resume", "lock"), String(process.ppid));
    assert.throws(() => ResumableOutput.open(out, manifest), /another topiary process \(pid \d+\) is writing this output/);
    fs.writeFileSync(path.join(second.dir, ".topiary-resume", "lock"), "999999999");

    assert.equal(ResumableOutput.open(out, manifest, { restart: true }).restored, null);
    const last = ResumableOutput.open<{ step: number }>(out, manifest);
    assert.equal(last.restored, null, "restart discarded the saved progress");
    fs.writeFileSync(path.join(last.dir, "model.bin"), "done");
    last.finish();
    assert.deepEqual(fs.readdirSync(out), ["model.bin"]);
    assert.ok(!fs.existsSync(workFolderOf(out)));
  });
});
