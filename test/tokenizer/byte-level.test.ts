// Byte-level BPE details on small synthetic tokenizer.json files with known answers: the
// pre-tokenizers @huggingface/tokenizers gets wrong (whitespace, Unicode digits), the layouts
// topiary recognizes, decoding (lossless, no clean-up, incomplete UTF-8).
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { BLOOM_REGEX, byteLevelLayout, correctPreTokenizers, GPT2_REGEX, LLAMA3_REGEX, QWEN2_REGEX } from "../../src/tokenizer/byte-level.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { tempDir } from "../helpers.js";

/** GPT-2's byte → printable character table (bytes_to_unicode). */
function byteChars(): string[] {
  const direct = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  let n = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(direct(b) ? b : 256 + n++));
}
const BYTE = byteChars();

/** A tokenizer folder: the 256 byte tokens (id = byte), then one token per merge, then added tokens. */
function writeTokenizer(preTokenizer: unknown, merges: [string, string][], opts: { normalizer?: unknown; added?: string[] } = {}): string {
  const vocab: Record<string, number> = {};
  BYTE.forEach((c, b) => (vocab[c] = b));
  for (const [a, b] of merges) vocab[a + b] ??= Object.keys(vocab).length;
  const added = (opts.added ?? []).map((content, i) => ({ id: Object.keys(vocab).length + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const dir = tempDir("topiary-bytelevel-");
  const tj = {
    version: "1.0",
    added_tokens: added,
    normalizer: opts.normalizer ?? null,
    pre_tokenizer: preTokenizer,
    post_processor: null,
    decoder: { type: "ByteLevel", add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges },
  };
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tj));
  return dir;
}

const GPT2_PRE = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
const split = (regex: string) => ({ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false });
const BYTELEVEL_NO_REGEX = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false };

describe("byte-level pre-tokenizers as tokenizers (Rust) runs them", () => {
  test("GPT-2's regex: \\s is Unicode White_Space (U+0085 is, U+FEFF is not), not JS \\s", () => {
    // a merge across the boundaries only Oniguruma's \s gives: " " + first byte of U+FEFF, and
    // " " + first byte of U+0085 (which must NOT merge: NEL is whitespace, " " stays alone)
    const dir = writeTokenizer(GPT2_PRE, [
      [BYTE[0x20]!, BYTE[0xef]!],
      [BYTE[0x20]!, BYTE[0xc2]!],
    ]);
    const tok = TextTokenizer.load(dir);
    const id = (t: string) => tok.tokenToId(t)!;
    // "a \uFEFF!": pieces "a", " \uFEFF!" (U+FEFF is not whitespace, so " ?[^\s\p{L}\p{N}]+" takes it)
    assert.deepEqual(Array.from(tok.encode("a \uFEFF!")), [0x61, id(BYTE[0x20]! + BYTE[0xef]!), 0xbb, 0xbf, 0x21]);
    // "x \u0085y": pieces "x", " ", "\u0085", "y" (NEL is whitespace: no " \u0085" piece, no merge)
    assert.deepEqual(Array.from(tok.encode("x \u0085y")), [0x78, 0x20, 0xc2, 0x85, 0x79]);
    // the library on its own splits the other way round (why byte-level.ts rewrites ByteLevel)
    assert.equal(/\s/.test("\uFEFF"), true);
  });

  test("Digits splits at Unicode numbers (char::is_numeric), not at ASCII \\d", () => {
    const dir = writeTokenizer({ type: "Sequence", pretokenizers: [{ type: "Digits", individual_digits: true }, GPT2_PRE] }, [
      [BYTE[0xa3]!, BYTE[0xd9]!],
      ["1", "2"],
    ]);
    const tok = TextTokenizer.load(dir);
    // "٣٣" (U+0663 ARABIC-INDIC DIGIT THREE, D9 A3, twice): one piece per digit, so the merge A3 + D9
    // across them never applies (GPT-2's regex alone would keep " ?\p{N}+" together)
    assert.deepEqual(Array.from(tok.encode("\u0663\u0663")), [0xd9, 0xa3, 0xd9, 0xa3]);
    assert.deepEqual(Array.from(tok.encode("x12")), [0x78, 0x31, 0x32]);
  });

  test("Split + ByteLevel as Llama 3 writes it: (?i:'s) contractions, numbers in threes, a leading non-letter joins the word", () => {
    const dir = writeTokenizer({ type: "Sequence", pretokenizers: [split(LLAMA3_REGEX), BYTELEVEL_NO_REGEX] }, [
      ["1", "2"],
      ["12", "3"],
      ["'", "S"],
      [BYTE[0x20]!, "a"],
      [",", "a"],
    ]);
    const tok = TextTokenizer.load(dir);
    const id = (t: string) => tok.tokenToId(t)!;
    // "12345": pieces "123", "45"
    assert.deepEqual(Array.from(tok.encode("12345")), [id("123"), 0x34, 0x35]);
    // "IT'S": "IT", "'S" (case-insensitive contraction)
    assert.deepEqual(Array.from(tok.encode("IT'S")), [0x49, 0x54, id("'S")]);
    // ",a": "[^\r\n\p{L}\p{N}]?\p{L}+" takes the comma with the word; " a" likewise
    assert.deepEqual(Array.from(tok.encode(",a a")), [id(",a"), id(BYTE[0x20]! + "a")]);
  });

  test("Qwen's NFC normalizer: a decomposed é encodes as the composed one", () => {
    const dir = writeTokenizer({ type: "Sequence", pretokenizers: [split(QWEN2_REGEX), BYTELEVEL_NO_REGEX] }, [["1", "2"]], { normalizer: { type: "NFC" } });
    const tok = TextTokenizer.load(dir);
    assert.deepEqual(Array.from(tok.encode("e\u0301")), [0xc3, 0xa9]);
    assert.deepEqual(Array.from(tok.encode("12")), [0x31, 0x32], "single digits");
  });
});

describe("decoding byte-level tokens", () => {
  const dir = writeTokenizer(GPT2_PRE, [[BYTE[0x20]!, ","]], { added: ["<|endoftext|>"] });
  const tok = TextTokenizer.load(dir);
  test("bytes joined, then UTF-8; an incomplete character at the end is U+FFFD until its last byte comes", () => {
    const ids = Array.from(tok.encode("é✓"));
    assert.deepEqual(ids, [0xc3, 0xa9, 0xe2, 0x9c, 0x93]);
    assert.equal(tok.decode(ids.slice(0, 1)), "\uFFFD");
    assert.equal(tok.decode(ids.slice(0, 2)), "é");
    assert.equal(tok.decode(ids.slice(0, 4)), "é\uFFFD");
    assert.equal(tok.decode(ids), "é✓");
  });
  test("no clean-up of spaces (transformers ≥ 4.45): decode(encode(t)) is t", () => {
    const t = "x , y n't . '  z";
    assert.equal(tok.decode(tok.encode(t)), t);
  });
  test("special tokens dropped unless asked for; an empty list is the empty text", () => {
    const eot = tok.tokenToId("<|endoftext|>")!;
    assert.equal(tok.decode([0x61, eot, 0x62]), "ab");
    assert.equal(tok.decode([0x61, eot, 0x62], { skipSpecial: false }), "a<|endoftext|>b");
    assert.equal(tok.decode([]), "");
  });
});

describe("byteLevelLayout: which byte-level pre-tokenizer a tokenizer.json has", () => {
  test("the known layouts", () => {
    assert.deepEqual(byteLevelLayout({ pre_tokenizer: GPT2_PRE }), { kind: "gpt2" });
    assert.deepEqual(byteLevelLayout({ pre_tokenizer: { type: "ByteLevel", add_prefix_space: false } }), { kind: "gpt2" });
    for (const [regex, name] of [
      [LLAMA3_REGEX, "llama3"],
      [QWEN2_REGEX, "qwen2"],
      [BLOOM_REGEX, "bloom"],
    ] as const) {
      assert.deepEqual(byteLevelLayout({ pre_tokenizer: { type: "Sequence", pretokenizers: [split(regex), BYTELEVEL_NO_REGEX] } }), { kind: "split", regex: name });
    }
    assert.deepEqual(byteLevelLayout({ pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Digits", individual_digits: true }, GPT2_PRE] } }), { kind: "digits+gpt2" });
  });
  test("anything else is a sentence saying what it is", () => {
    assert.match(byteLevelLayout({ pre_tokenizer: { ...GPT2_PRE, add_prefix_space: true } }) as string, /adds a prefix space/);
    assert.match(byteLevelLayout({ pre_tokenizer: { type: "Metaspace" } }) as string, /pre-tokenizer Metaspace does not end in ByteLevel/);
    assert.match(byteLevelLayout({ pre_tokenizer: null }) as string, /pre-tokenizer none/);
    const other = byteLevelLayout({ pre_tokenizer: { type: "Sequence", pretokenizers: [split("\\p{N}+"), BYTELEVEL_NO_REGEX] } });
    assert.equal(other, 'pre-tokenizer Split("\\\\p{N}+") + ByteLevel: an unknown Split regex');
  });
  test("correctPreTokenizers rewrites GPT-2's ByteLevel as Split + ByteLevel, leaves the rest", () => {
    assert.deepEqual(correctPreTokenizers({ pre_tokenizer: GPT2_PRE }).pre_tokenizer, { type: "Sequence", pretokenizers: [split(GPT2_REGEX), { ...GPT2_PRE, use_regex: false }] });
    const llama3 = { pre_tokenizer: { type: "Sequence", pretokenizers: [split(LLAMA3_REGEX), BYTELEVEL_NO_REGEX] } };
    assert.equal(correctPreTokenizers(llama3), llama3);
    const prefixed = { pre_tokenizer: { ...GPT2_PRE, add_prefix_space: true } };
    assert.equal(correctPreTokenizers(prefixed), prefixed);
  });
});
