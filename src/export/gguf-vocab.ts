// tokenizer.json → llama.cpp's "llama" (sentencepiece) vocabulary: tokens, scores, token types.
//
// llama.cpp's SPM tokenizer merges adjacent pieces greedily, highest score first (ties: leftmost).
// A Hugging Face BPE tokenizer.json merges by rank, lowest first. convert_hf_to_gguf.py's
// tokenizer.json-only path (`_set_vocab_llama_hf` → gguf-py `LlamaHfVocab`) writes the placeholder
// score −1000 for every token, so llama.cpp then merges leftmost-first and tokenizes differently
// from the tokenizer.json. Here the scores are derived from the merges instead:
//   - the k-th distinct token made by the merges (in merge order, k = 0, 1, …) gets −k, so a
//     higher score means an earlier merge and llama.cpp applies the merges in the tokenizer.json's
//     order (sentencepiece's BPE trainer scores its merged pieces the same way);
//   - other normal tokens (single characters) come after them, −(#merged + k) in id order: their
//     scores never decide a merge, since no merge produces them;
//   - control, unknown, byte and user-defined tokens get 0, as sentencepiece gives them.
// For a tokenizer.json converted from a sentencepiece model (transformers' LlamaConverter orders
// the merges by the pieces' scores) this restores the original score order (test/export).
// Token types as LlamaHfVocab assigns them: <0xXX> → BYTE, the model's unk → UNKNOWN, special
// added tokens → CONTROL, other added tokens → USER_DEFINED, the rest NORMAL.
import fs from "node:fs";
import path from "node:path";
import { FormatError } from "../formats/errors.js";
import { TokenType } from "../formats/gguf/constants.js";
import { readJsonFile } from "../formats/json.js";
import { TextTokenizer } from "../tokenizer/tokenizer.js";

export interface GgufVocab {
  /** tokenizer.ggml.model */
  model: "llama";
  tokens: string[];
  scores: number[];
  types: TokenType[];
  bosId: number | null;
  eosId: number | null;
  unkId: number | null;
  padId: number | null;
  addBos: boolean;
  addEos: boolean;
  /** llama.cpp prepends "▁" to the text (the tokenizer.json normalizer's Prepend("▁")) */
  addSpacePrefix: boolean;
}

interface TokenizerJson {
  model?: { type?: string; byte_fallback?: boolean; unk_token?: string | null; vocab?: Record<string, number>; merges?: (string | [string, string])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
  normalizer?: { type?: string; prepend?: string; normalizers?: unknown[] } | null;
  pre_tokenizer?: { type?: string; prepend_scheme?: string; add_prefix_space?: boolean; pretokenizers?: unknown[] } | null;
}

const BYTE_TOKEN = /^<0x[0-9A-Fa-f]{2}>$/;

function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (v && typeof v === "object" && typeof (v as { content?: unknown }).content === "string") return (v as { content: string }).content;
  return null;
}

/** Does the normalizer (or a Metaspace pre-tokenizer) put "▁" in front of the text? */
function prependsSpace(tj: TokenizerJson): boolean {
  const norms = tj.normalizer?.type === "Sequence" ? (tj.normalizer.normalizers ?? []) : tj.normalizer ? [tj.normalizer] : [];
  if (norms.some((n) => (n as { type?: string; prepend?: string }).type === "Prepend" && (n as { prepend?: string }).prepend === "▁")) return true;
  const pres = tj.pre_tokenizer?.type === "Sequence" ? (tj.pre_tokenizer.pretokenizers ?? []) : tj.pre_tokenizer ? [tj.pre_tokenizer] : [];
  return pres.some((p) => {
    const m = p as { type?: string; prepend_scheme?: string; add_prefix_space?: boolean };
    return m.type === "Metaspace" && (m.prepend_scheme ? m.prepend_scheme !== "never" : m.add_prefix_space !== false);
  });
}

/**
 * Reads `dir/tokenizer.json` (+ tokenizer_config.json) as a llama.cpp "llama" vocabulary of
 * `vocabSize` tokens (config.json's; extra rows are padded with "[PADn]" UNUSED tokens, as
 * convert_hf_to_gguf.py does). Throws for tokenizers llama.cpp's SPM model cannot reproduce.
 */
export function llamaVocab(dir: string, vocabSize: number, fallbackIds: { bos: number | null; eos: number | null }): GgufVocab {
  const file = path.join(dir, "tokenizer.json");
  if (!fs.existsSync(file)) throw new FormatError(file, "missing (GGUF export reads the vocabulary from tokenizer.json)");
  const tj = readJsonFile(file, "tokenizer") as TokenizerJson;
  const m = tj.model;
  if (m?.type !== "BPE" || m.byte_fallback !== true) {
    throw new FormatError(
      file,
      `tokenizer model ${m?.type ?? "?"}${m?.type === "BPE" ? " without byte_fallback" : ""} is not supported for GGUF export ` +
        `(supported: sentencepiece-style BPE with byte_fallback, llama.cpp's "llama" tokenizer)`,
    );
  }
  const idOf = new Map<string, number>(Object.entries(m.vocab ?? {}));
  for (const a of tj.added_tokens ?? []) idOf.set(a.content, a.id);
  let n = 0;
  for (const id of idOf.values()) n = Math.max(n, id + 1);
  if (n > vocabSize) throw new FormatError(file, `has ${n} tokens, more than config.json's vocab_size ${vocabSize}`);
  const tokens: (string | undefined)[] = new Array(vocabSize);
  for (const [t, id] of idOf) {
    if (!Number.isInteger(id) || id < 0) throw new FormatError(file, `token ${JSON.stringify(t)} has id ${id}`);
    if (tokens[id] !== undefined && tokens[id] !== t) throw new FormatError(file, `tokens ${JSON.stringify(tokens[id])} and ${JSON.stringify(t)} share id ${id}`);
    tokens[id] = t;
  }
  for (let id = 0; id < n; id++) if (tokens[id] === undefined) throw new FormatError(file, `no token has id ${id}`);

  // scores: −(how many distinct tokens earlier merges produce), i.e. the merge order, densely
  const scores = new Array<number>(vocabSize).fill(NaN);
  let merged = 0;
  for (const mg of m.merges ?? []) {
    const [a, b] = Array.isArray(mg) ? mg : (mg.split(" ") as [string, string]);
    const id = idOf.get(a + b);
    if (id !== undefined && Number.isNaN(scores[id]!)) scores[id] = -merged++;
  }

  const config = readTokenizerConfig(dir);
  const added = new Map((tj.added_tokens ?? []).map((a) => [a.id, a.special === true]));
  const unkName = m.unk_token ?? tokenContent(config.unk_token);
  const unkId = unkName ? (idOf.get(unkName) ?? null) : null;
  const types: TokenType[] = [];
  let nextCharScore = -merged;
  for (let id = 0; id < vocabSize; id++) {
    const t = tokens[id];
    let type: TokenType;
    if (t === undefined) type = TokenType.UNUSED;
    else if (BYTE_TOKEN.test(t)) type = TokenType.BYTE;
    else if (id === unkId) type = TokenType.UNKNOWN;
    else if (added.has(id)) type = added.get(id) ? TokenType.CONTROL : TokenType.USER_DEFINED;
    else type = TokenType.NORMAL;
    types.push(type);
    if (type === TokenType.UNUSED) scores[id] = -1000;
    else if (type !== TokenType.NORMAL) scores[id] = 0;
    else if (Number.isNaN(scores[id]!)) scores[id] = nextCharScore--;
  }
  const padded = Array.from(tokens, (t, id) => t ?? `[PAD${id - n + 1}]`); // map() would skip the holes

  const special = (key: string, fallback: number | null): number | null => {
    const name = tokenContent(config[key]);
    return name !== null ? (idOf.get(name) ?? fallback) : fallback;
  };
  const tok = TextTokenizer.load(dir);
  return {
    model: "llama",
    tokens: padded,
    scores,
    types,
    bosId: special("bos_token", tok.bosId ?? fallbackIds.bos),
    eosId: special("eos_token", fallbackIds.eos),
    unkId,
    padId: special("pad_token", null),
    addBos: tok.addBos,
    addEos: config.add_eos_token === true,
    addSpacePrefix: prependsSpace(tj),
  };
}

function readTokenizerConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, "tokenizer_config.json");
  if (!fs.existsSync(file)) return {};
  const json = readJsonFile(file, "tokenizer config");
  return json && typeof json === "object" && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
}
