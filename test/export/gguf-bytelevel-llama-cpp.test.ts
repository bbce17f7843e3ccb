// The reference architectures' vocabularies in GGUF — byte-level BPE ("gpt2") and, for phi3 /
// gemma2 / gemma3, stories260K's sentencepiece-style BPE ("llama") — tokenized by llama.cpp
// (node-llama-cpp's prebuilt CPU binary) and by topiary: equal ids for the whole TinyStories test
// text and for edge cases.
// The model is stories260K (vocab 512) with a 512-token byte-level tokenizer put in its folder —
// the reference architectures' GPT-2, OPT, Qwen and Llama 3 tokenizers, and variants of them with
// BLOOM's and SmolLM's pre-tokenizers, Llama 3's ignore_merges, and changed merges that make every
// wrong tokenizer.ggml.pre visible — so the GGUF loads as a "llama" model with a "gpt2"
// vocabulary and tests the tokenizer end to end.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { after, describe, test } from "node:test";
import { exportGguf } from "../../src/export/gguf.js";
import { GgufFile } from "../../src/formats/gguf/reader.js";
import { loadModel } from "../../src/models/load.js";
import { BLOOM_REGEX } from "../../src/tokenizer/byte-level.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { copyStories } from "../formats/broken-models.js";
import { DATA, REFERENCE, tempDir } from "../helpers.js";
import { llamaCppTokenizeAll, loadLlama } from "./llama-cpp.js";

const llama = await loadLlama();
// node-llama-cpp is a dev dependency (npm ci installs it): a binary that does not load is a failure, not a skip
if (typeof llama === "string") throw new Error(llama);
const root = tempDir("topiary-gguf-bytelevel-");

const EDGE_CASES = [
  "Once upon a time, Lily's dog ran 3 miles. IT'S 12345 o'clock!",
  "héllo ✓ 日本 ok 🦙🦙",
  "\n\n  \t x  \n   y\r\n",
  "a \uFEFF! x \u0085y", // whitespace per Unicode White_Space (U+FEFF is not, U+0085 is)
  "\u0663\u0663 ٣ 4½ 12 123 1234 12345 x12y",
  " leading space, trailing spaces   ",
  "I've been 'told he's there, 'RE you sure? 'M not sure I'll make it, 'D you like some tea? We'Ve a'lL",
];

type Json = Record<string, unknown>;
type Variant = { name: string; from: string; pre: string; model?: "llama"; changes?: ((tj: Json) => void)[] };
const model = (tj: Json) => tj.model as { vocab: Record<string, number>; merges: [string, string][]; ignore_merges?: boolean };

// Changes that make the pre-tokenizers' differences show in the ids: the reference vocabularies
// (trained on TinyStories) have no merge of digits, and every whole word their merges reach.
/** The last merge whose token no merge uses (and not made here) becomes `pair`, its token keeping the id. */
function replaceMerge(tj: Json, pair: [string, string]): void {
  const m = model(tj);
  const halves = new Set(m.merges.flat());
  let i = m.merges.length - 1;
  while (halves.has(m.merges[i]!.join("")) || MADE_HERE.has(m.merges[i]!.join(""))) i--;
  const [a, b] = m.merges[i]!;
  m.vocab[pair.join("")] = m.vocab[a + b]!;
  delete m.vocab[a + b];
  m.merges[i] = pair;
}
const MADE_HERE = new Set(["12", '"T']);
/** "1" + "2": pre-tokenizers that split digits apart (Qwen, SmolLM) never apply it. */
const mergeDigits = (tj: Json) => replaceMerge(tj, ["1", "2"]);
/** '"' + "T": Llama 3's and Qwen's "[^\r\n\p{L}\p{N}]?\p{L}+" applies it, GPT-2's regex never. */
const mergeQuoteT = (tj: Json) => replaceMerge(tj, ['"', "T"]);
/** " the" stays in the vocabulary but no merge makes it: only ignore_merges reaches it. */
function dropTheMerge(tj: Json): void {
  const m = model(tj);
  m.merges = m.merges.filter(([a, b]) => a + b !== "\u0120the");
}
const ignoreMerges = (tj: Json) => void (model(tj).ignore_merges = true);
const bloomSplit = (tj: Json) =>
  void (tj.pre_tokenizer = {
    type: "Sequence",
    pretokenizers: [
      { type: "Split", pattern: { Regex: BLOOM_REGEX }, behavior: "Isolated", invert: false },
      { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false },
    ],
  });
const digitsFirst = (tj: Json) => void (tj.pre_tokenizer = { type: "Sequence", pretokenizers: [{ type: "Digits", individual_digits: true }, tj.pre_tokenizer] });

const VARIANTS: Variant[] = [
  { name: "gpt2", from: "gpt2", pre: "gpt-2" },
  { name: "opt", from: "opt", pre: "gpt-2" }, // GPT-2's tokenizer, </s> in front
  { name: "qwen3", from: "qwen3", pre: "qwen2" },
  { name: "llama3", from: "llama3", pre: "smaug-bpe" }, // the reference file has ignore_merges: false
  // phi3, gemma2, gemma3: stories260K's sentencepiece-style BPE, a "llama" vocabulary (bloom and gpt_neox have gpt2's files)
  { name: "gemma2", from: "gemma2", pre: "default", model: "llama" },
  // with the changes, a wrong name (any other in this list) gives other ids
  { name: "gpt2-merges", from: "gpt2", pre: "gpt-2", changes: [mergeDigits, mergeQuoteT] },
  { name: "smollm-digits", from: "gpt2", pre: "smollm", changes: [digitsFirst, mergeDigits, mergeQuoteT] },
  { name: "qwen3-merges", from: "qwen3", pre: "qwen2", changes: [mergeDigits, mergeQuoteT] },
  { name: "llama3-merges", from: "llama3", pre: "smaug-bpe", changes: [mergeDigits, mergeQuoteT, dropTheMerge] },
  { name: "llama3-ignore-merges", from: "llama3", pre: "llama-bpe", changes: [mergeDigits, mergeQuoteT, dropTheMerge, ignoreMerges] },
  { name: "bloom-split", from: "gpt2", pre: "bloom", changes: [bloomSplit, mergeDigits, mergeQuoteT] },
];

/** stories260K with the tokenizer of reference architecture `from`, changed by `changes`. */
function storiesWithTokenizer(v: Variant): string {
  const dir = copyStories(path.join(root, v.name));
  const src = path.join(REFERENCE, "architectures", v.from);
  if (v.changes) {
    const tj = JSON.parse(fs.readFileSync(path.join(src, "tokenizer.json"), "utf8")) as Json;
    for (const change of v.changes) change(tj);
    fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tj));
  } else {
    fs.copyFileSync(path.join(src, "tokenizer.json"), path.join(dir, "tokenizer.json")); // same bytes: topiary's token cache applies
  }
  fs.copyFileSync(path.join(src, "tokenizer_config.json"), path.join(dir, "tokenizer_config.json"));
  return dir;
}

describe("GGUF vocabularies of the reference tokenizers in llama.cpp (node-llama-cpp)", () => {
  const text = fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8");
  after(() => fs.rmSync(root, { recursive: true, force: true }));

  for (const v of VARIANTS) {
    // the reference tokenizers on the whole text; the changed ones (encoded afresh) on its first 20 000 characters
    const sample = v.changes ? text.slice(0, 20_000) : text;
    test(`${v.name}: tokenizer.ggml.pre "${v.pre}"; llama.cpp's ids equal topiary's (${v.changes ? "20 000 characters of" : "whole"} test text, ${EDGE_CASES.length} edge cases)`, async () => {
      const dir = storiesWithTokenizer(v);
      const lm = loadModel(dir);
      const file = path.join(dir, "model.gguf");
      try {
        exportGguf(lm, { type: "f32", out: file });
      } finally {
        lm.close();
      }
      const g = GgufFile.open(file);
      const tok = TextTokenizer.load(dir);
      try {
        assert.equal(g.get("tokenizer.ggml.model"), v.model ?? "gpt2");
        assert.equal(g.get("tokenizer.ggml.pre"), v.pre);
        assert.equal(g.get("tokenizer.ggml.add_bos_token"), tok.addBos);
      } finally {
        g.close();
      }
      const texts = [sample, ...EDGE_CASES];
      const theirs = await llamaCppTokenizeAll(llama as Exclude<typeof llama, string>, file, texts);
      assert.equal(theirs.addsBos, tok.addBos, "llama.cpp prepends BOS when topiary does");
      if (tok.addBos) assert.equal(theirs.bos, tok.bosId);
      texts.forEach((t, i) => {
        const ours = Array.from(tok.encode(t)).slice(tok.addBos ? 1 : 0);
        if (i === 0) assert.ok(ours.length > (v.changes ? 8_000 : 200_000));
        assert.deepEqual(theirs.ids[i], ours, JSON.stringify(t.slice(0, 40)));
      });
    });
  }
});
