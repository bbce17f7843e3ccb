// topiary's tokenization against transformers' own, on the nine reference checkpoints
// (../shared/reference/architectures, made by reference/tools/make_arch_golden.py): GPT-2-style
// ByteLevel (gpt2, opt, bloom, gpt_neox), Qwen's NFC + Split + ByteLevel (qwen3), Llama 3's
// Split + ByteLevel (llama3), and stories260K's sentencepiece-style BPE (phi3, gemma2, gemma3),
// each with its family's special-token convention.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { SafetensorsFile } from "../../src/formats/safetensors.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { DATA, REFERENCE } from "../helpers.js";

const ARCH = path.join(REFERENCE, "architectures");
const NAMES = ["opt", "bloom", "gpt2", "gpt_neox", "phi3", "gemma2", "gemma3", "qwen3", "llama3"] as const;
/** What each family puts in front of a text (make_arch_golden.py's TOKENIZERS, the real families' conventions). */
const BOS: Record<(typeof NAMES)[number], number | null> = {
  opt: 2, // </s>
  bloom: null,
  gpt2: null,
  gpt_neox: null,
  phi3: 1, // <s>
  gemma2: 1,
  gemma3: 1,
  qwen3: null,
  llama3: 0, // <|begin_of_text|>
};

interface Golden {
  first_ids: number[];
  greedy_prompt_ids: number[];
  greedy_prompt_text: string;
}

/** golden.safetensors' input_ids: the first 96 ids of the test text, as transformers encodes it. */
function goldenInputIds(dir: string): number[] {
  const f = SafetensorsFile.open(path.join(dir, "golden.safetensors"));
  try {
    const info = f.info("input_ids");
    assert.equal(info.dtype, "I64");
    const bytes = f.readBytes("input_ids");
    return Array.from(new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8), Number);
  } finally {
    f.close();
  }
}

describe("tokenizers of the nine reference architectures (transformers 5.18's tokenization)", () => {
  const text = fs.existsSync(DATA) ? fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8") : "";
  for (const name of NAMES) {
    test(name, () => {
      const dir = path.join(ARCH, name);
      const golden = JSON.parse(fs.readFileSync(path.join(dir, "golden.json"), "utf8")) as Golden;
      const tok = TextTokenizer.load(dir);
      assert.equal(tok.addBos, BOS[name] !== null, "adds BOS");
      if (BOS[name] !== null) assert.equal(tok.bosId, BOS[name]);
      // the whole test text, encoded once as eval does (BOS at the start only)
      const ids = tok.encode(text);
      assert.deepEqual(Array.from(ids.subarray(0, 16)), golden.first_ids);
      assert.deepEqual(Array.from(ids.subarray(0, 96)), goldenInputIds(dir));
      assert.equal(ids.filter((id) => id === BOS[name]).length, BOS[name] === null ? 0 : 1, "one BOS, at the start");
      assert.deepEqual(Array.from(tok.encode(golden.greedy_prompt_text)), golden.greedy_prompt_ids);
      // decoding is transformers' decode(skip_special_tokens=True), and loses nothing
      assert.equal(tok.decode(golden.greedy_prompt_ids), golden.greedy_prompt_text);
      assert.equal(tok.decode(ids), text);
    });
  }
});
