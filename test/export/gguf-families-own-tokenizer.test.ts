// Issue 11's GGUF acceptance, each reference checkpoint with its OWN tokenizer: the f16 export of
// llama3, qwen3, phi3, gemma2, gemma3, gpt2, gpt_neox and bloom loads in llama.cpp
// (node-llama-cpp), which tokenizes the test text exactly as topiary does and continues the golden
// prompt with topiary's 24 greedy tokens. GPT-NeoX is compared at f32: llama.cpp computes its GELU
// with the tanh approximation (the export warns) and the tiny random model's first greedy step is a
// near-tie (top-2 logits 0.0011 apart) that this flips at f16.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, test } from "node:test";
import { decode } from "../../src/eval/decode.js";
import { exportGguf } from "../../src/export/gguf.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { DATA, REFERENCE, tempDir } from "../helpers.js";
import { llamaCppGreedy, llamaCppTokenize, loadLlama } from "./llama-cpp.js";

const llama = await loadLlama();
if (typeof llama === "string") throw new Error(llama);
const ARCH = path.join(REFERENCE, "architectures");
const tmp = tempDir("topiary-gguf-own-tok-");
const text = fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8").slice(0, 4000);

after(() => releaseSessions());

for (const name of ["llama3", "qwen3", "phi3", "gemma2", "gemma3", "gpt2", "gpt_neox", "bloom"]) {
  test(`${name}: llama.cpp loads the GGUF, tokenizes like topiary and continues greedily like topiary`, async () => {
    const dir = path.join(ARCH, name);
    const model = loadModel(dir);
    const tok = TextTokenizer.load(dir);
    // llama.cpp refuses a Phi-3 whose name says phi3 without its chat tokens (the tiny vocabulary lacks them)
    const file = path.join(tmp, `${name}.gguf`);
    exportGguf(model, { type: name === "gpt_neox" ? "f32" : "f16", out: file, name: "tiny-random" });
    const ours = Array.from(tok.encode(text)).slice(tok.addBos ? 1 : 0);
    assert.deepEqual(await llamaCppTokenize(llama, file, text), ours, "tokenization of the test text");
    const golden = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8"));
    const prompt = Int32Array.from(tok.encode(golden.greedy_prompt_text));
    const own = await decode(model, prompt, { maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] });
    const theirs = await llamaCppGreedy(llama, file, Array.from(prompt), own.ids.length);
    assert.deepEqual(theirs, own.ids, "24 greedy tokens");
    model.close();
  });
}
