// `topiary prune --method flap|wanda-sp|obs-sp` end to end: a smaller folder that `topiary eval`
// reads, per-layer widths recorded, drop-layers, and every bad input as one line.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { DATA, STORIES, tempDir } from "../helpers.js";
import { oneLineError, topiary, topiaryInProcess } from "./run-cli.js";

// the first 60 000 characters of calib.txt: 8 windows of 256 tokens, tokenized in well under a second
const CALIB = path.join(tempDir(), "calib-head.txt");
fs.writeFileSync(CALIB, fs.readFileSync(path.join(DATA, "tinystories", "calib.txt"), "utf8").slice(0, 60000));
const TEST_TEXT = path.join(DATA, "tinystories", "test.txt");
const SMALL = ["--calib", CALIB, "--nsamples", "8", "--calib-seqlen", "256", "--calib-sampling", "first"];
// One spawned run per command (prune obs-sp, inspect as text); the rest, refusals included, run the
// CLI's parser in this process, where a spawn would cost more than the check.

describe("topiary prune (structured)", () => {
  it("obs-sp --uniform 0.3 with one dropped block: fewer, narrower layers, and topiary eval reads it", async () => {
    const out = path.join(tempDir(), "obs-sp");
    const r = await topiary(["prune", STORIES, "--method", "obs-sp", "--sparsity", "0.3", "--uniform", "--drop-layers", "1", ...SMALL, "--out", out, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const summary = JSON.parse(r.stdout);
    assert.equal(summary.droppedLayers.length, 1);
    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    assert.equal(config.num_hidden_layers, 4);
    const rec = JSON.parse(fs.readFileSync(path.join(out, "topiary.json"), "utf8"));
    assert.equal(rec.structured.method, "obs-sp");
    assert.equal(rec.structured.blockSimilarity.length, 5);
    assert.equal(config.intermediate_size, 121);
    assert.equal(config.num_key_value_heads, 3);
    const e = await topiaryInProcess(["eval", out, "--data", TEST_TEXT, "--seqlen", "512", "--limit-windows", "8", "--json"]);
    assert.equal(e.code, 0, e.stderr);
    assert.ok(JSON.parse(e.stdout).perplexity > 1);
  });

  it("wanda-sp --multiple-of 32: the kept MLP width is a multiple of 32, recorded in topiary.json", async () => {
    const out = path.join(tempDir(), "wanda-sp-m32");
    const r = await topiary(["prune", STORIES, "--method", "wanda-sp", "--sparsity", "0.3", "--multiple-of", "32", ...SMALL, "--out", out, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const config = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8"));
    // 172 − floor(0.3·172) = 121 channels → 128, and 3 of 4 KV groups (16 columns each) → 2
    // (o_proj's input 32): the pair that removes closest to the unrounded rule's weights
    assert.equal(config.intermediate_size, 128);
    assert.equal(config.num_key_value_heads, 2);
    assert.equal(JSON.parse(fs.readFileSync(path.join(out, "topiary.json"), "utf8")).structured.multipleOf, 32);
  });

  it("bad input is one line each, and nothing is written", async () => {
    const out = path.join(tempDir(), "never");
    const cases: [string[], RegExp][] = [
      [["--method", "flap", "--sparsity", "1.2", ...SMALL], /--sparsity 1.2 must be in \[0, 1\)/],
      [["--method", "flap", "--sparsity", "0.95", ...SMALL], /would remove every (attention|mlp) unit of layer \d/],
      [["--method", "flap", "--drop-layers", "5", ...SMALL], /--drop-layers 5 must be an integer below the number of layers \(5\)/],
      [["--method", "wanda-sp", "--uniform", ...SMALL], /wanda-sp already removes the same units/],
      [["--method", "flap", "--targets", "mlp", ...SMALL], /--targets is not supported with structured pruning/],
      [["--method", "obs-sp"], /needs calibration text \(--calib\)/],
      [["--method", "sparsegpt", "--drop-layers", "1", ...SMALL], /--drop-layers is for structured methods/],
      [["--method", "wanda", "--multiple-of", "32", ...SMALL], /--multiple-of is for structured methods/],
      [["--method", "flap", "--multiple-of", "0", ...SMALL], /--multiple-of must be an integer ≥ 1/],
    ];
    for (const [args, re] of cases) {
      const line = oneLineError(await topiaryInProcess(["prune", STORIES, ...args, "--out", out]));
      assert.match(line, re);
      assert.ok(!fs.existsSync(out), `${args.join(" ")} wrote ${out}`);
    }
  });
});

describe("topiary inspect (structured)", () => {
  it("shows the widths of every layer of a per-layer pruned model", async () => {
    const out = path.join(tempDir(), "flap");
    const r = await topiaryInProcess(["prune", STORIES, "--method", "flap", "--sparsity", "0.3", ...SMALL, "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    const i = await topiaryInProcess(["inspect", out, "--json"]);
    const info = JSON.parse(i.stdout);
    const sp = JSON.parse(fs.readFileSync(path.join(out, "config.json"), "utf8")).structured_pruning;
    assert.deepEqual(info.layerWidths.map((l: { intermediateSize: number }) => l.intermediateSize), sp.intermediate_size);
    const text = await topiary(["inspect", out]);
    assert.match(text.stdout, /widths\s+0: heads \d+\/\d+ kv, mlp \d+; 1: /);
  });
});
