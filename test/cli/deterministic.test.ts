// The same command twice gives byte-identical model files: weights, config and tokenizer files.
// Only topiary.json records when it ran and how long it took (`created`, and `seconds` for the job
// and per linear); everything else in it must match too.
import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { DATA, STORIES, tempDir } from "../helpers.js";
import { inProcessCli } from "../fuzz/harness.js";

const sha256 = (file: string) => crypto.createHash("sha256").update(fs.readFileSync(file)).digest("hex");

/** file → sha256 of every file in `dir` except topiary.json, and topiary.json without its times. */
function fingerprint(dir: string): { files: Record<string, string>; report: unknown } {
  const files: Record<string, string> = {};
  for (const f of fs.readdirSync(dir).sort()) if (f !== "topiary.json") files[f] = sha256(path.join(dir, f));
  const report = JSON.parse(fs.readFileSync(path.join(dir, "topiary.json"), "utf8")) as Record<string, unknown>;
  assert.equal(typeof report.created, "string");
  const timeless = (v: unknown): unknown =>
    Array.isArray(v) ? v.map(timeless) : typeof v === "object" && v !== null ? Object.fromEntries(Object.entries(v).filter(([k]) => k !== "created" && k !== "seconds").map(([k, x]) => [k, timeless(x)])) : v;
  return { files, report: timeless(report) };
}

describe("deterministic outputs: the same command twice, byte-identical files (sha256)", () => {
  const calib = ["--calib", path.join(DATA, "tinystories", "calib.txt"), "--nsamples", "4", "--calib-seqlen", "128"];
  for (const [what, args] of [
    ["SparseGPT 50 %, dense safetensors", ["prune", STORIES, "--method", "sparsegpt", "--sparsity", "0.5", ...calib]],
    ["GPTQ 4-bit g32 act-order, compressed-tensors", ["quantize", STORIES, "--method", "gptq", "--bits", "4", "--group-size", "32", "--act-order", ...calib]],
  ] as const) {
    test(what, async () => {
      const outs = [path.join(tempDir(), "a"), path.join(tempDir(), "b")];
      for (const out of outs) {
        const r = await inProcessCli([...args, "--out", out], { CI: "1" });
        assert.equal(r.code, 0, r.stderr);
      }
      const [a, b] = outs.map(fingerprint);
      assert.ok(Object.keys(a!.files).includes("model.safetensors"));
      assert.deepEqual(b!.files, a!.files);
      assert.deepEqual(b!.report, a!.report);
    });
  }
});
