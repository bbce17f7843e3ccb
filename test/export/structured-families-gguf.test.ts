// Structurally pruned Phi-3 and Gemma 2/3 with equal widths keep their standard config, so they
// export to GGUF as usual: llama.cpp (node-llama-cpp) continues a prompt greedily exactly as
// topiary does. Gemma loses a KV group of 2 and half its MLP (head_dim is its own key); Phi-3
// only MLP channels (llama.cpp's phi3 sizes qkv_proj's query rows by hidden_size, so a Phi-3 with
// fewer heads is refused: test/compress/structured/families.test.ts). The tiny checkpoints get
// stories260K's tokenizer files (comparison by token ids), as test/export/gguf-families.test.ts.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { planStructured } from "../../src/compress/structured/plan.js";
import { writeStructured } from "../../src/compress/structured/write.js";
import { Rng } from "../../src/data/rng.js";
import { decode } from "../../src/eval/decode.js";
import { exportGguf } from "../../src/export/gguf.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { REFERENCE, STORIES, tempDir } from "../helpers.js";
import { llamaCppGreedy, loadLlama } from "./llama-cpp.js";

const llama = await loadLlama();
if (typeof llama === "string") throw new Error(llama);
after(() => releaseSessions());

for (const [name, ratio, widths] of [
  ["phi3", 0.2, "4/128"],
  ["gemma2", 0.5, "1/80"],
  ["gemma3", 0.5, "1/80"],
] as const) {
  test(`${name}: wanda-sp ${ratio} (${widths} per layer) → GGUF f32 → llama.cpp greedy equals topiary's`, async () => {
    const dir = path.join(tempDir(), name);
    fs.mkdirSync(dir);
    for (const f of ["config.json", "model.safetensors", "generation_config.json"]) fs.copyFileSync(path.join(REFERENCE, "architectures", name, f), path.join(dir, f));
    for (const f of ["tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
    const model = loadModel(dir);
    const rng = new Rng(1);
    const ids = Int32Array.from({ length: 256 }, () => 3 + rng.int(model.config.vocabSize - 3));
    const sel = await planStructured(model, { ids, nsamples: 4, seqlen: 64 }, { method: "wanda-sp", ratio });
    assert.ok(sel.every((s) => `${s.kept.attention.length}/${s.kept.mlp.length}` === widths));
    const out = path.join(tempDir(), `${name}-pruned`);
    await writeStructured(model, sel, { outDir: out, record: {} });
    model.close();
    const pruned = loadModel(out);
    const file = path.join(tempDir(), `${name}.gguf`);
    // not named after the family: llama.cpp refuses a "phi3" without its chat tokens
    exportGguf(pruned, { type: "f32", out: file, name: "tiny-random" });
    const prompt = [1, 34, 56, 78, 90, 12];
    const ours = await decode(pruned, Int32Array.from(prompt), { maxNewTokens: 16, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] });
    assert.deepEqual(await llamaCppGreedy(llama, file, prompt, ours.ids.length), ours.ids);
    pruned.close();
  });
}
