// `topiary export --to onnx` and `topiary run` as a user runs them (node bin/topiary.js …).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { OnnxDecoder } from "../../src/eval/onnx-decoder.js";
import { exportOnnx } from "../../src/export/onnx.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { maxAbsDiff } from "../export/onnx-helpers.js";
import { REPO, STORIES, tempDir } from "../helpers.js";
import { topiaryInProcess } from "./run-cli.js";

function topiary(args: string[], timeoutMs = 60_000): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, CI: "1", TOPIARY_DEBUG: "" };
    execFile(process.execPath, [path.join(REPO, "bin", "topiary.js"), ...args], { cwd: REPO, env, timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err && (err as { killed?: boolean }).killed) reject(new Error(`topiary ${args.join(" ")}: no exit after ${timeoutMs} ms`));
      else resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** The greedy story from BOS recorded in the model's README (200 tokens). */
function recordedStory(): string {
  const readme = fs.readFileSync(path.join(STORIES, "README.md"), "utf8");
  return readme.split("**Greedy generation from BOS, 200 tokens**")[1]!.split("```")[1]!.replace(/^\n/, "").replace(/\n$/, "");
}

describe("export --to onnx, run", () => {
  const tmp = tempDir("topiary-cli-onnx-");

  test("run on the model folder and on its fp32 export print the README's greedy story, with tokens/s on stderr", async () => {
    const out = path.join(tmp, "fp32");
    const e = await topiary(["export", STORIES, "--to", "onnx", "--out", out]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /onnx\/model\.onnx {2}[\d,]+ bytes/);
    for (const dir of [STORIES, out]) {
      // the export's run is spawned; the model folder's runs in this process (a spawn costs ~1.7 s of CPU)
      const r = await (dir === out ? topiary : topiaryInProcess)(["run", dir, "--max-new-tokens", "200"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, recordedStory() + "\n", dir);
      assert.match(r.stderr, new RegExp(`^\\((${dir === out ? "onnx fp32" : "topiary"}): 200 tokens, prefill \\d+ ms, [\\d.]+ tokens/s\\)\\n$`));
    }
  });

  test("--type q4 writes model_q4.onnx; run --json reports the backend and tokens/s", async () => {
    const out = path.join(tmp, "q4");
    const e = await topiaryInProcess(["export", STORIES, "--to", "onnx", "--type", "q4", "--group-size", "32", "--out", out]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /model_q4\.onnx .*\n {2}q4: 35 linears as MatMulNBits\n/);
    const r = await topiary(["run", out, "--prompt", "Once upon a time", "--max-new-tokens", "20", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.backend, "onnx q4");
    assert.ok(j.text.startsWith("Once upon a time") && j.ids.length === 20 && j.tokensPerSecond > 0, r.stdout);
  });

  test("quantize (compressed-tensors, 4-bit g32) → export --to onnx keeps the codes; logits equal topiary's on the folder", async () => {
    const ct = path.join(tmp, "ct-q4");
    const q = await topiaryInProcess(["quantize", STORIES, "--method", "rtn", "--bits", "4", "--group-size", "32", "--out", ct]);
    assert.equal(q.code, 0, q.stderr);
    const e = await topiaryInProcess(["export", ct, "--to", "onnx", "--out", path.join(tmp, "ct-onnx")]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /model_q4\.onnx .*\n {2}q4: 35 linears as MatMulNBits\n/);
    // the same export with float32 activations (accuracy_level 0) against topiary reading the folder
    const model = loadModel(ct);
    const r = await exportOnnx(model.config, model.weights, path.join(tmp, "ct-onnx-acc0"), { dtype: "fp32", accuracyLevel: 0 });
    assert.equal(r.quantizedLinears, 35);
    const dec = await OnnxDecoder.open(r.dir);
    const ids = Int32Array.of(1, 403, 407, 261, 378, 30, 40);
    const diff = maxAbsDiff((await dec.step(ids, 1, ids.length, null)).logits, await model.forward(ids, 1, ids.length));
    assert.ok(diff < 1e-3, String(diff));
    await dec.close();
    model.close();
    await releaseSessions();
  });

  test("a bad --type or --group-size fails in one line and writes nothing", async () => {
    for (const [args, code, message] of [
      [["--type", "bf16"], 1, /^topiary: --type for --to onnx must be one of fp32, fp16, q4, q4f16, q8, q2, got "bf16"\n$/],
      [["--type", "q4", "--group-size", "24"], 1, /^topiary: --group-size 24: its group size 24 is not a multiple of a MatMulNBits block/],
    ] as const) {
      const out = path.join(tmp, "bad");
      const r = await topiaryInProcess(["export", STORIES, "--to", "onnx", ...args, "--out", out]);
      assert.equal(r.code, code, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.split("\n").length, 2, r.stderr);
      assert.ok(!fs.existsSync(out));
    }
  });
});
