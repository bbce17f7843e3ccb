// GGUF vocabularies of the reference architectures' tokenizers: what convert_hf_to_gguf.py would
// write (model, pre-tokenizer name, token types, merges, special ids, BOS policy), and one-line
// refusals for byte-level tokenizers llama.cpp cannot reproduce.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { bpeVocab, ggufVocab, vocabMetadata, type BpeVocab } from "../../src/export/gguf-vocab.js";
import { FormatError } from "../../src/formats/errors.js";
import { TokenType } from "../../src/formats/gguf/constants.js";
import { topiaryInProcess } from "../cli/run-cli.js";
import { copyStories } from "../formats/broken-models.js";
import { REFERENCE, tempDir } from "../helpers.js";

const arch = (name: string) => path.join(REFERENCE, "architectures", name);
const NONE = { bos: null, eos: null };

/** A copy of reference tokenizer `name` whose tokenizer.json went through `change`. */
function changedTokenizer(name: string, change: (tj: Record<string, unknown>) => void): string {
  const dir = tempDir("topiary-gguf-vocab-");
  const tj = JSON.parse(fs.readFileSync(path.join(arch(name), "tokenizer.json"), "utf8")) as Record<string, unknown>;
  change(tj);
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tj));
  fs.copyFileSync(path.join(arch(name), "tokenizer_config.json"), path.join(dir, "tokenizer_config.json"));
  return dir;
}

describe("GGUF vocabularies of the reference tokenizers", () => {
  test("gpt2: model gpt2, pre gpt-2, specials CONTROL, 253 merges as 'a b', no BOS added", () => {
    const v = ggufVocab(arch("gpt2"), 512, NONE) as BpeVocab;
    assert.equal(v.model, "gpt2");
    assert.equal(v.pre, "gpt-2");
    assert.deepEqual(v.tokens.slice(0, 3), ["<|endoftext|>", "<pad>", "</s>"]);
    assert.deepEqual(v.types.slice(0, 4), [TokenType.CONTROL, TokenType.CONTROL, TokenType.CONTROL, TokenType.NORMAL]);
    assert.equal(v.types.filter((t) => t === TokenType.NORMAL).length, 509);
    assert.equal(v.merges.length, 253);
    assert.ok(v.merges.every((m) => m.split(" ").length === 2));
    assert.ok(v.merges.includes("\u0120t he"), "Ġt + he");
    assert.deepEqual([v.bosId, v.eosId, v.unkId, v.padId, v.addBos, v.addEos, v.chatTemplate], [0, 0, 0, null, false, false, null]);
    const keys = vocabMetadata(v).map(([k]) => k);
    assert.ok(keys.includes("tokenizer.ggml.merges") && !keys.includes("tokenizer.ggml.scores") && !keys.includes("tokenizer.ggml.add_space_prefix"));
  });

  test("opt: GPT-2's vocabulary with </s> in front (post-processor + add_bos_token)", () => {
    const v = ggufVocab(arch("opt"), 512, NONE) as BpeVocab;
    assert.deepEqual([v.pre, v.bosId, v.eosId, v.padId, v.addBos], ["gpt-2", 2, 2, 1, true]);
  });

  test("qwen3: pre qwen2 (NFC accepted), no BOS, <|im_end|> ends, chat template from tokenizer_config.json", () => {
    const v = ggufVocab(arch("qwen3"), 512, NONE) as BpeVocab;
    assert.deepEqual([v.pre, v.bosId, v.eosId, v.padId, v.addBos], ["qwen2", null, 2, 0, false]);
    assert.match(v.chatTemplate as string, /^\{% for m in messages %\}<\|im_start\|>/);
  });

  test("llama3: pre smaug-bpe (ignore_merges off; llama-bpe with it on), <|begin_of_text|> in front", () => {
    const v = ggufVocab(arch("llama3"), 512, NONE) as BpeVocab;
    assert.deepEqual([v.pre, v.bosId, v.eosId, v.addBos], ["smaug-bpe", 0, 1, true]);
    const on = changedTokenizer("llama3", (tj) => ((tj.model as { ignore_merges: boolean }).ignore_merges = true));
    assert.equal((bpeVocab(on, 512, NONE) as BpeVocab).pre, "llama-bpe");
  });

  test("gemma2 (sentencepiece-style): model llama, BOS added, space prefix; rows beyond the tokenizer padded", () => {
    const v = ggufVocab(arch("gemma2"), 512, NONE);
    assert.equal(v.model, "llama");
    assert.deepEqual([v.bosId, v.eosId, v.addBos, v.model === "llama" && v.addSpacePrefix], [1, 2, true, true]);
    const wide = ggufVocab(arch("qwen3"), 514, NONE);
    assert.deepEqual(wide.tokens.slice(512), ["[PAD512]", "[PAD513]"]);
    assert.deepEqual(wide.types.slice(512), [TokenType.UNUSED, TokenType.UNUSED]);
  });

  test("byte-level tokenizers llama.cpp cannot reproduce: a FormatError naming tokenizer.json, saying why", () => {
    const cases: [string, (tj: Record<string, unknown>) => void, RegExp][] = [
      ["qwen3", (tj) => ((tj.pre_tokenizer as { pretokenizers: { pattern: { Regex: string } }[] }).pretokenizers[0]!.pattern.Regex = "\\p{L}+|\\s+"), /pre-tokenizer Split\("\\\\p\{L\}\+\|\\\\s\+"\) \+ ByteLevel: an unknown Split regex; GGUF export writes byte-level BPE only where one of llama\.cpp's pre-tokenizers reproduces it \(gpt-2, smollm, llama-bpe, smaug-bpe, qwen2, bloom\)$/],
      ["gpt2", (tj) => ((tj.pre_tokenizer as { add_prefix_space: boolean }).add_prefix_space = true), /pre-tokenizer ByteLevel adds a prefix space/],
      ["gpt2", (tj) => (tj.normalizer = { type: "Lowercase" }), /normalizer Lowercase has no counterpart in llama\.cpp/],
      ["gpt2", (tj) => ((tj.model as { ignore_merges: boolean }).ignore_merges = true), /model\.ignore_merges is set, which llama\.cpp's "gpt-2" does not do/],
    ];
    for (const [name, change, message] of cases) {
      const dir = changedTokenizer(name, change);
      assert.throws(
        () => ggufVocab(dir, 512, NONE),
        (e: unknown) => e instanceof FormatError && e.file === path.join(dir, "tokenizer.json") && message.test(e.problem),
        String(message),
      );
    }
  });

  test("topiary export --to gguf with such a tokenizer: one line on stderr, exit 1, no file", async () => {
    const model = copyStories(tempDir("topiary-gguf-vocab-cli-"));
    const tj = JSON.parse(fs.readFileSync(path.join(arch("gpt2"), "tokenizer.json"), "utf8")) as Record<string, unknown>;
    tj.pre_tokenizer = { type: "Metaspace", replacement: "▁", prepend_scheme: "always", split: false };
    fs.writeFileSync(path.join(model, "tokenizer.json"), JSON.stringify(tj));
    const outDir = tempDir("topiary-gguf-vocab-out-");
    // the CLI's parser in this process (the spawned export's refusals are checked in gguf-cli.test.ts)
    const r = await topiaryInProcess(["export", model, "--to", "gguf", "--type", "f32", "--out", path.join(outDir, "m.gguf")]);
    assert.equal(r.code, 1);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.match(r.stderr, /^topiary: .*tokenizer\.json: pre-tokenizer Metaspace does not end in ByteLevel; GGUF export writes byte-level BPE only where/);
    assert.deepEqual(fs.readdirSync(outDir), []);
  });
});
