// OPT, BLOOM, GPT-2 and GPT-NeoX against Hugging Face transformers itself: the tiny
// random-weight checkpoints of ../shared/reference/architectures and their golden outputs
// (logits of two 48-token windows, 24 greedy tokens with a KV cache, the model's own tokenization
// of the test text, and perplexity over its first 16 windows of 128 tokens through `topiary eval`).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { decode } from "../../src/eval/decode.js";
import { loadModel } from "../../src/models/load.js";
import { releaseSessions } from "../../src/runtime/ort.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { topiary } from "../cli/run-cli.js";
import { DATA, needsShared, REFERENCE } from "../helpers.js";

export const ARCHITECTURES = path.join(REFERENCE, "architectures");
const TEST_TEXT = path.join(DATA, "tinystories", "test.txt");

interface GoldenJson {
  architecture: string;
  first_ids: number[];
  greedy_prompt_ids: number[];
  greedy_new_ids: number[];
  ppl_128_first16: number;
}

/** golden.safetensors: input_ids int64 [2, 48] and logits float32 [2, 48, V]. */
export function readGolden(dir: string): { ids: Int32Array; logits: Float32Array; json: GoldenJson } {
  const b = fs.readFileSync(path.join(dir, "golden.safetensors"));
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString()) as Record<string, { data_offsets: [number, number] }>;
  const slice = (name: string) => {
    const [s, e] = header[name]!.data_offsets;
    return b.buffer.slice(b.byteOffset + 8 + n + s, b.byteOffset + 8 + n + e);
  };
  return {
    ids: Int32Array.from(new BigInt64Array(slice("input_ids")), Number),
    logits: new Float32Array(slice("logits")),
    json: JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as GoldenJson,
  };
}

after(() => releaseSessions());

for (const name of ["opt", "bloom", "gpt2", "gpt_neox"]) {
  describe(`${name} against transformers`, needsShared, () => {
    const dir = path.join(ARCHITECTURES, name);

    test("logits of two 48-token windows within 1e-4", async (t) => {
      const { ids, logits } = readGolden(dir);
      const model = loadModel(dir);
      const ours = await model.forward(ids, 2, 48);
      model.close();
      let worst = 0;
      for (let i = 0; i < ours.length; i++) worst = Math.max(worst, Math.abs(ours[i]! - logits[i]!));
      t.diagnostic(`max |Δ| ${worst.toExponential(2)}`);
      assert.ok(worst < 1e-4, `max |Δ| ${worst}`);
    });

    test("24 greedy tokens with the KV cache", async () => {
      const { json } = readGolden(dir);
      const model = loadModel(dir);
      // transformers generated with eos_token_id=None: no stop token
      const r = await decode(model, Int32Array.from(json.greedy_prompt_ids), { maxNewTokens: 24, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] });
      model.close();
      assert.deepEqual(r.ids, json.greedy_new_ids);
    });

    test("tokenization of the test text starts with first_ids; eval --seqlen 128 --limit-windows 16 = ppl_128_first16", async (t) => {
      const { json } = readGolden(dir);
      const ids = TextTokenizer.load(dir).encode(fs.readFileSync(TEST_TEXT, "utf8"));
      assert.deepEqual(Array.from(ids.subarray(0, json.first_ids.length)), json.first_ids);
      const r = await topiary(["eval", dir, "--data", TEST_TEXT, "--seqlen", "128", "--limit-windows", "16", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const ppl = JSON.parse(r.stdout).perplexity as number;
      t.diagnostic(`perplexity ${ppl}, transformers ${json.ppl_128_first16}`);
      assert.ok(Math.abs(ppl / json.ppl_128_first16 - 1) < 1e-4, `${ppl} vs ${json.ppl_128_first16}`);
    });
  });
}
