// `topiary export --to gguf` and `topiary inspect file.gguf` as a user runs them (child processes);
// past the first export and inspect, the CLI's parser runs in this process (topiaryInProcess:
// the same commands and messages, without ~1.7 s of CPU of start-up per call).
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { SafetensorsWeights } from "../../src/formats/weights.js";
import { float32ToBytes, writeSafetensors, type TensorToWrite } from "../../src/formats/safetensors.js";
import { REPO, STORIES, tempDir } from "../helpers.js";
import { topiaryInProcess } from "../cli/run-cli.js";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function topiary(args: string[]): Promise<Run> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env, CI: "1", TOPIARY_DEBUG: "" };
    execFile(process.execPath, [path.join(REPO, "bin", "topiary.js"), ...args], { cwd: REPO, env, timeout: 120_000 }, (err, stdout, stderr) => {
      if (err && (err as { killed?: boolean }).killed) reject(new Error(`topiary ${args.join(" ")} did not exit`));
      else resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe("topiary export --to gguf / inspect file.gguf", () => {
  const dir = tempDir("topiary-gguf-cli-");
  const out = path.join(dir, "stories-q4_0.gguf");

  test("export writes the file and says what fell back; inspect lists every tensor's type", async () => {
    const r = await topiary(["export", STORIES, "--to", "gguf", "--type", "q4_0", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /stories-q4_0\.gguf {2}[\d,]+ bytes/);
    assert.match(r.stdout, /MOSTLY_Q4_0: 1 Q8_0, 11 F32, 30 Q4_0, 5 F16/);
    assert.match(r.stdout, /token_embd\.weight: output tensor \(LM head\) kept at Q8_0, as llama\.cpp keeps it at 6–8 bits/);
    assert.match(r.stdout, /5 tensors fell back \(blk\.0\.ffn_down\.weight: 172 columns are not a multiple of Q4_0's block of 32 → F16\)/);

    const text = await topiary(["inspect", out]);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /architecture llama "stories260K"/);
    assert.match(text.stdout, /file type {4}MOSTLY_Q4_0/);
    assert.match(text.stdout, /^blk\.3\.ffn_down\.weight +F16 +\[64, 172\] +22,016 {2}fell back: 172 columns are not a multiple of Q4_0's block of 32$/m);
    assert.match(text.stdout, /^blk\.3\.attn_q\.weight +Q4_0 +\[64, 64\] +2,304$/m);
    assert.match(text.stdout, /^token_embd\.weight +Q8_0 +\[512, 64\] +34,816 {2}output tensor \(LM head\): llama\.cpp keeps it at 6–8 bits$/m);
    assert.match(text.stdout, /5 of 47 tensors fell back from Q4_0/);

    const json = await topiaryInProcess(["inspect", out, "--json"]);
    const info = JSON.parse(json.stdout) as { tensors: { name: string; type: string; fallback: string | null }[]; vocabSize: number; fileType: string };
    assert.equal(info.tensors.length, 47);
    assert.equal(info.tensors.filter((t) => t.fallback).length, 5);
    assert.equal(info.vocabSize, 512);
    assert.equal(info.fileType, "MOSTLY_Q4_0");
  });

  test("an existing output needs --overwrite; unknown --to and --type are usage errors", async () => {
    const again = await topiaryInProcess(["export", STORIES, "--to", "gguf", "--type", "q4_0", "--out", out]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /output already exists \(pass --overwrite to replace it\)/);
    const over = await topiaryInProcess(["export", STORIES, "--to", "gguf", "--type", "q8_0", "--out", out, "--overwrite", "--json"]);
    assert.equal(over.code, 0, over.stderr);
    assert.equal((JSON.parse(over.stdout) as { fileType: string }).fileType, "MOSTLY_Q8_0");
    const badType = await topiaryInProcess(["export", STORIES, "--to", "gguf", "--type", "q5_1", "--out", path.join(dir, "x.gguf")]);
    assert.equal(badType.code, 1);
    assert.match(badType.stderr, /--type for --to gguf must be one of f16, f32, q8_0, q4_0, q4_k, got "q5_1"/);
    const badTarget = await topiaryInProcess(["export", STORIES, "--to", "tflite", "--out", path.join(dir, "x.tflite")]);
    assert.equal(badTarget.code, 1);
    assert.match(badTarget.stderr, /--to must be one of .*got "tflite"/);
  });

  test("a checkpoint GGUF cannot hold: one line on stderr, exit 1, no file left", async () => {
    const model = path.join(dir, "int8-model");
    fs.mkdirSync(model);
    for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"]) fs.copyFileSync(path.join(STORIES, f), path.join(model, f));
    const src = SafetensorsWeights.open(STORIES);
    const tensors: TensorToWrite[] = src.names().map((name) => {
      const data = src.read(name);
      if (name === "model.layers.2.mlp.up_proj.weight") return { name, dtype: "I8", shape: src.shape(name), data: new Uint8Array(data.length) };
      return { name, dtype: "F32", shape: src.shape(name), data: float32ToBytes(data, "F32") };
    });
    writeSafetensors(path.join(model, "model.safetensors"), tensors);
    src.close();
    const outDir = path.join(dir, "refused");
    fs.mkdirSync(outDir);
    const r = await topiaryInProcess(["export", model, "--to", "gguf", "--type", "q8_0", "--out", path.join(outDir, "m.gguf")]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^topiary: .*int8-model\/model\.safetensors: tensor "model\.layers\.2\.mlp\.up_proj\.weight" has dtype I8; expected a floating type \(F32, F16, BF16\)$/m);
    assert.deepEqual(fs.readdirSync(outDir), []);
  });

  test("inspect names a file that is not GGUF", async () => {
    const junk = path.join(dir, "junk.gguf");
    fs.writeFileSync(junk, Buffer.alloc(64, 7));
    const r = await topiaryInProcess(["inspect", junk]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /junk\.gguf: not a GGUF file \(magic 0x07070707, expected 0x46554747 "GGUF"\)/);
  });
});
