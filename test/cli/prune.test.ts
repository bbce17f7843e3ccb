// `topiary prune` end to end: the saved folder, topiary.json, and every bad input.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { before, describe, it } from "node:test";
import { SafetensorsModel } from "../../src/formats/safetensors.js";
import { SafetensorsWeights } from "../../src/formats/weights.js";
import { DATA, STORIES, tempDir } from "../helpers.js";
import { compressAndEvaluate } from "../compress/reference-helpers.js";
import { oneLineError, topiary, topiaryInProcess } from "./run-cli.js";

const TEST_TEXT = path.join(DATA, "tinystories", "test.txt");
const CALIB = path.join(DATA, "tinystories", "calib.txt");
const SMALL = ["--nsamples", "16", "--calib-seqlen", "128", "--calib-sampling", "first"];

/** A writable copy of stories260K whose tensors `edit` may change (float32 data, in place). */
function editedStories(edit: (name: string, data: Float32Array) => void): string {
  const dir = path.join(tempDir(), "model");
  fs.mkdirSync(dir);
  for (const f of fs.readdirSync(STORIES)) if (f.endsWith(".json")) fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
  const bytes = fs.readFileSync(path.join(STORIES, "model.safetensors"));
  const st = SafetensorsModel.open(STORIES);
  for (const name of st.names()) {
    const t = st.info(name);
    const view = new Float32Array(bytes.buffer, bytes.byteOffset + t.begin, (t.end - t.begin) / 4);
    edit(name, view);
  }
  st.close();
  fs.writeFileSync(path.join(dir, "model.safetensors"), bytes);
  return dir;
}

describe("topiary prune", () => {
  const out = path.join(tempDir(), "sparsegpt-2-4");
  let inMemory = 0;

  before(async () => {
    // the same job in memory: 32 first windows of 128 tokens
    const run = await compressAndEvaluate({ method: "sparsegpt", pattern: "2:4" }, { calibration: { nsamples: 32, seqlen: 128 } });
    inMemory = run.perplexity;
    run.store.dispose();
  });

  it("writes a complete folder that `topiary eval` reads back with the in-memory perplexity", async () => {
    const r = await topiary(["prune", STORIES, "--method", "sparsegpt", "--pattern", "2:4", "--calib", CALIB, "--nsamples", "32", "--calib-seqlen", "128", "--calib-sampling", "first", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    for (const f of ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "topiary.json"]) {
      assert.ok(fs.existsSync(path.join(out, f)), `${f} missing`);
    }
    const e = await topiary(["eval", out, "--data", TEST_TEXT, "--seqlen", "512", "--json"]);
    assert.equal(e.code, 0, e.stderr);
    const ppl = JSON.parse(e.stdout).perplexity;
    assert.ok(Math.abs(ppl / inMemory - 1) < 1e-9, `saved ${ppl} vs in memory ${inMemory}`);
  });

  it("every saved 2:4 tensor has exactly 2 zeros in every group of 4 inputs", () => {
    const w = SafetensorsWeights.open(out);
    let checked = 0;
    for (const name of w.names().filter((n) => /layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(n))) {
      const [rows, cols] = w.shape(name) as [number, number];
      const data = w.read(name);
      for (let r = 0; r < rows; r++) {
        for (let g = 0; g + 4 <= cols; g += 4) {
          let zeros = 0;
          for (let j = g; j < g + 4; j++) if (data[r * cols + j] === 0) zeros++;
          assert.equal(zeros, 2, `${name} row ${r} group ${g / 4}`);
        }
      }
      checked++;
    }
    assert.equal(checked, 35);
    w.close();
  });

  it("topiary.json records the recipe, calibration, versions, per-linear sparsity and error", () => {
    const t = JSON.parse(fs.readFileSync(path.join(out, "topiary.json"), "utf8"));
    assert.equal(t.recipe[0].method, "sparsegpt");
    assert.equal(t.recipe[0].pattern, "2:4");
    assert.equal(t.calibration.nsamples, 32);
    assert.equal(t.calibration.seqlen, 128);
    assert.equal(t.calibration.sha256, crypto.createHash("sha256").update(fs.readFileSync(CALIB)).digest("hex"));
    assert.ok(t.versions.onnxruntime && t.versions.node);
    const q0 = t.linears["model.layers.0.self_attn.q_proj"];
    assert.equal(q0.sparsity, 0.5);
    assert.ok(q0.relativeError > 0 && q0.relativeError < 1, `relative error ${q0.relativeError}`);
    assert.equal(Object.keys(t.linears).length, 35);
    assert.equal(t.totals.sparsity, 0.5);
  });

  it("refuses to overwrite an existing output without --overwrite, and leaves it intact", async () => {
    const r = await topiary(["prune", STORIES, "--method", "magnitude", "--out", out]);
    assert.match(oneLineError(r), /already exists \(pass --overwrite to replace it\)/);
    assert.ok(fs.existsSync(path.join(out, "topiary.json")));
  });

  // The refusals run through the CLI's parser in this process (the spawned CLI's one-line errors
  // are checked above and in cli.test.ts): each spawn would cost more than the check.
  describe("bad input: one line, non-zero exit", () => {
    const cases: [string, string[], RegExp][] = [
      ["sparsity ≥ 1", ["--method", "magnitude", "--sparsity", "1.2"], /sparsity must be in \[0, 1\)/],
      ["negative sparsity", ["--method", "wanda", "--sparsity", "-0.1", "--calib", CALIB], /sparsity must be in \[0, 1\)/],
      ["N ≥ M", ["--method", "sparsegpt", "--pattern", "4:4", "--calib", CALIB], /0 < N < M/],
      ["a malformed pattern", ["--method", "sparsegpt", "--pattern", "2-4", "--calib", CALIB], /pattern must be "unstructured" or "N:M"/],
      ["a target regex matching nothing", ["--method", "magnitude", "--targets", "attn\\.qproj"], /target "attn\\\\.qproj" matches no linear layer/],
      ["an unknown method", ["--method", "obs"], /unknown method "obs"/],
      ["a calibrated method without --calib", ["--method", "sparsegpt"], /sparsegpt needs calibration data \(--calib\)/],
    ];
    for (const [what, args, message] of cases) {
      it(what, async () => {
        const r = await topiaryInProcess(["prune", STORIES, ...args, "--out", path.join(tempDir(), "x")]);
        assert.match(oneLineError(r), message);
      });
    }

    it("calibration text shorter than one window", async () => {
      const short = path.join(tempDir(), "short.txt");
      fs.writeFileSync(short, "Once upon a time there was a cat.");
      const r = await topiaryInProcess(["prune", STORIES, "--method", "wanda", "--calib", short, "--out", path.join(tempDir(), "x")]);
      assert.match(oneLineError(r), /short\.txt: \d+ tokens is shorter than one calibration window of 512/);
    });

    it("NaN in a weight names the tensor", async () => {
      const dir = editedStories((name, d) => {
        if (name === "model.layers.2.mlp.up_proj.weight") d[17] = NaN;
      });
      const r = await topiaryInProcess(["prune", dir, "--method", "magnitude", "--out", path.join(tempDir(), "x")]);
      assert.match(oneLineError(r), /model\.layers\.2\.mlp\.up_proj\.weight contains NaN at flat index 17/);
    });

    it("Inf in the activations names the layer and its input", async () => {
      // an infinite norm weight makes layer 1's attention input infinite
      const dir = editedStories((name, d) => {
        if (name === "model.layers.1.input_layernorm.weight") d[3] = Infinity;
      });
      const r = await topiaryInProcess(["prune", dir, "--method", "sparsegpt", "--calib", CALIB, ...SMALL, "--out", path.join(tempDir(), "x")]);
      assert.match(oneLineError(r), /calibration activations entering layer 1 attn_in \(q_proj, k_proj, v_proj\) contain NaN or Inf/);
    });
  });

  it("an all-zero input column gets the dead-input fix: the column's weights become zero", async () => {
    const dir = editedStories((name, d) => {
      if (name === "model.layers.0.input_layernorm.weight") d[5] = 0; // q/k/v input column 5 is always 0
    });
    const o = path.join(tempDir(), "dead");
    const r = await topiaryInProcess(["prune", dir, "--method", "sparsegpt", "--sparsity", "0.3", "--calib", CALIB, ...SMALL, "--out", o]);
    assert.equal(r.code, 0, r.stderr);
    const w = SafetensorsWeights.open(o);
    for (const p of ["q_proj", "k_proj", "v_proj"]) {
      const W = w.read(`model.layers.0.self_attn.${p}.weight`);
      const [rows, cols] = w.shape(`model.layers.0.self_attn.${p}.weight`) as [number, number];
      for (let i = 0; i < rows; i++) assert.equal(W[i * cols + 5], 0);
    }
    w.close();
  });
});
