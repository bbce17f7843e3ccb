// A tokenizer for synthetic checkpoints (bench/deploy.ts, bench/memory.ts, tests): no real
// vocabulary is needed, only one that GGUF export and the BPE tokenizer accept, of a given size.

/**
 * A sentencepiece-style BPE tokenizer.json with `vocabSize` tokens, which GGUF export accepts:
 * <unk>, <s>, </s>, the 256 byte-fallback tokens, "▁" and a–z, then every merge of a token with
 * one more letter, shortest first ("▁ a", …, "▁a b", …), until the vocabulary is full.
 */
export function syntheticTokenizer(vocabSize: number): { tokenizer: object; config: object } {
  const specials = ["<unk>", "<s>", "</s>"];
  const vocab: Record<string, number> = {};
  let size = 0;
  const add = (t: string) => (vocab[t] = size++);
  for (const s of specials) add(s);
  for (let b = 0; b < 256; b++) add(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  const letters = ["▁", ..."abcdefghijklmnopqrstuvwxyz"];
  for (const c of letters) add(c);
  const merges: [string, string][] = [];
  let level = letters;
  while (size < vocabSize) {
    const next: string[] = [];
    for (const a of level) {
      for (const c of letters) {
        if (size >= vocabSize) break;
        add(a + c);
        merges.push([a, c]);
        next.push(a + c);
      }
    }
    level = next;
  }
  const tokenizer = {
    version: "1.0",
    added_tokens: specials.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
    normalizer: { type: "Sequence", normalizers: [{ type: "Prepend", prepend: "▁" }, { type: "Replace", pattern: { String: " " }, content: "▁" }] },
    pre_tokenizer: null,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [{ SpecialToken: { id: "<s>", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "<s>", type_id: 1 } }, { Sequence: { id: "B", type_id: 1 } }],
      special_tokens: { "<s>": { id: "<s>", ids: [1], tokens: ["<s>"] } },
    },
    decoder: { type: "Sequence", decoders: [{ type: "Replace", pattern: { String: "▁" }, content: " " }, { type: "ByteFallback" }, { type: "Fuse" }] },
    model: { type: "BPE", unk_token: "<unk>", fuse_unk: true, byte_fallback: true, vocab, merges },
  };
  return { tokenizer, config: { add_bos_token: true, add_eos_token: false, bos_token: "<s>", eos_token: "</s>", unk_token: "<unk>" } };
}
