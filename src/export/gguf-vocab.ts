// tokenizer.json → llama.cpp's vocabulary metadata, the way convert_hf_to_gguf.py writes it:
// "llama" (sentencepiece) for sentencepiece-style BPE with byte fallback (Llama 2, Mistral,
// Gemma, Phi-3), "gpt2" (byte-level BPE) with the merges and the `tokenizer.ggml.pre` naming the
// pre-tokenizer for GPT-2, GPT-NeoX, BLOOM, Llama 3, Qwen, SmolLM. Plus the chat template.
//
// The "llama" vocabulary:
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
//
// The "gpt2" vocabulary (convert_hf_to_gguf.py `_set_vocab_gpt2`): the byte-level tokens as
// tokenizer.json spells them ("Ġthe"), types NORMAL / CONTROL (special added tokens and ones that
// look special, "<|…|>") / USER_DEFINED (other added tokens), the merges as "a b" strings, no
// scores. llama.cpp does not read the pre-tokenizer from the file: `tokenizer.ggml.pre` names one
// of its built-in ones (llama-vocab.cpp), and convert_hf_to_gguf.py picks the name by hashing a
// test string's tokens (`get_vocab_base_pre`), which only works for vocabularies it has seen.
// Here the name comes from the tokenizer.json's pre-tokenizer itself (tokenizer/byte-level.ts),
// matched against the regexes llama.cpp implements (llama-vocab.cpp, llm_tokenizer_bpe):
//   ByteLevel (GPT-2's regex)               → "gpt-2"     (GPT-2, GPT-NeoX/Pythia, OPT, Phi-2)
//   Digits(individual) + ByteLevel          → "smollm"    (regexes "\p{N}" then GPT-2's)
//   Split(Llama 3 regex) + ByteLevel        → "llama-bpe" with ignore_merges (as Meta-Llama-3
//                                             writes it; llama.cpp then takes a whole piece found in
//                                             the vocabulary as one token), else "smaug-bpe" (the
//                                             same regex, merges always applied)
//   Split(Qwen regex) + ByteLevel           → "qwen2"
//   Split(BLOOM regex) + ByteLevel          → "bloom"
// Anything else is refused: llama.cpp would tokenize differently. llama.cpp applies no normalizer
// to BPE text; an NFC normalizer (Qwen, Pythia) is accepted as convert_hf_to_gguf.py accepts it —
// text already in NFC (nearly all text) tokenizes the same.
import fs from "node:fs";
import path from "node:path";
import { FormatError } from "../formats/errors.js";
import { Keys, TokenType, ValueType } from "../formats/gguf/constants.js";
import type { MetadataValue } from "../formats/gguf/writer.js";
import { readJsonFile } from "../formats/json.js";
import { byteLevelLayout } from "../tokenizer/byte-level.js";
import { TextTokenizer } from "../tokenizer/tokenizer.js";

/** A chat template: one, or several by name ("default" first), as tokenizer_config.json holds them. */
export type ChatTemplate = string | { name: string; template: string }[];

interface VocabCommon {
  tokens: string[];
  types: TokenType[];
  bosId: number | null;
  eosId: number | null;
  unkId: number | null;
  padId: number | null;
  addBos: boolean;
  addEos: boolean;
  /** tokenizer.chat_template (tokenizer_config.json, else chat_template.jinja / chat_template.json) */
  chatTemplate: ChatTemplate | null;
}

/** llama.cpp's "llama" (sentencepiece) vocabulary. */
export interface SpmVocab extends VocabCommon {
  /** tokenizer.ggml.model */
  model: "llama";
  scores: number[];
  /** llama.cpp prepends "▁" to the text (the tokenizer.json normalizer's Prepend("▁")) */
  addSpacePrefix: boolean;
}

/** llama.cpp's "gpt2" (byte-level BPE) vocabulary. */
export interface BpeVocab extends VocabCommon {
  model: "gpt2";
  /** tokenizer.ggml.pre: the llama.cpp pre-tokenizer */
  pre: string;
  /** tokenizer.ggml.merges, "a b" in rank order */
  merges: string[];
}

export type GgufVocab = SpmVocab | BpeVocab;

interface TokenizerJson {
  model?: {
    type?: string;
    byte_fallback?: boolean;
    ignore_merges?: boolean;
    unk_token?: string | null;
    vocab?: Record<string, number>;
    merges?: (string | [string, string])[];
  };
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

/**
 * The vocabulary of `dir`'s tokenizer.json as llama.cpp reads it: "llama" for sentencepiece-style
 * BPE with byte fallback, "gpt2" for byte-level BPE with a pre-tokenizer llama.cpp implements.
 * `vocabSize` is config.json's (extra rows are padded with "[PADn]" UNUSED tokens, as
 * convert_hf_to_gguf.py does). Throws a FormatError naming tokenizer.json for anything else.
 */
export function ggufVocab(dir: string, vocabSize: number, fallbackIds: { bos: number | null; eos: number | null }): GgufVocab {
  const file = path.join(dir, "tokenizer.json");
  if (!fs.existsSync(file)) throw new FormatError(file, "missing (GGUF export reads the vocabulary from tokenizer.json)");
  const tj = readJsonFile(file, "tokenizer") as TokenizerJson;
  return tj.model?.type === "BPE" && tj.model.byte_fallback !== true && tj.pre_tokenizer ? bpeVocab(dir, vocabSize, fallbackIds) : llamaVocab(dir, vocabSize, fallbackIds);
}

/** tokenizer.json's tokens by id, `vocabSize` long (holes filled by the caller), and the id of each token. */
function tokensById(file: string, tj: TokenizerJson, vocabSize: number): { tokens: (string | undefined)[]; idOf: Map<string, number>; n: number } {
  const idOf = new Map<string, number>(Object.entries(tj.model?.vocab ?? {}));
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
  return { tokens, idOf, n };
}

/** Special token ids, BOS/EOS policy and chat template, shared by both vocabulary kinds. */
function specials(dir: string, idOf: Map<string, number>, unkId: number | null, fallbackIds: { bos: number | null; eos: number | null }) {
  const config = readTokenizerConfig(dir);
  const special = (key: string, fallback: number | null): number | null => {
    const name = tokenContent(config[key]);
    return name !== null ? (idOf.get(name) ?? fallback) : fallback;
  };
  const tok = TextTokenizer.load(dir);
  return {
    bosId: special("bos_token", tok.bosId ?? fallbackIds.bos),
    eosId: special("eos_token", fallbackIds.eos),
    unkId,
    padId: special("pad_token", null),
    addBos: tok.addBos,
    addEos: config.add_eos_token === true,
    chatTemplate: readChatTemplate(dir, config),
  };
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
export function llamaVocab(dir: string, vocabSize: number, fallbackIds: { bos: number | null; eos: number | null }): SpmVocab {
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
  const { tokens, idOf, n } = tokensById(file, tj, vocabSize);

  // scores: −(how many distinct tokens earlier merges produce), i.e. the merge order, densely
  const scores = new Array<number>(vocabSize).fill(NaN);
  let merged = 0;
  for (const mg of m.merges ?? []) {
    const [a, b] = Array.isArray(mg) ? mg : (mg.split(" ") as [string, string]);
    const id = idOf.get(a + b);
    if (id !== undefined && Number.isNaN(scores[id]!)) scores[id] = -merged++;
  }

  const added = new Map((tj.added_tokens ?? []).map((a) => [a.id, a.special === true]));
  const unkName = m.unk_token ?? tokenContent(readTokenizerConfig(dir).unk_token);
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

  return { model: "llama", tokens: padded, scores, types, ...specials(dir, idOf, unkId, fallbackIds), addSpacePrefix: prependsSpace(tj) };
}

function readTokenizerConfig(dir: string): Record<string, unknown> {
  const file = path.join(dir, "tokenizer_config.json");
  if (!fs.existsSync(file)) return {};
  const json = readJsonFile(file, "tokenizer config");
  return json && typeof json === "object" && !Array.isArray(json) ? (json as Record<string, unknown>) : {};
}

/**
 * Reads `dir/tokenizer.json` (+ tokenizer_config.json) as a llama.cpp "gpt2" vocabulary of
 * `vocabSize` tokens. Throws for byte-level tokenizers none of llama.cpp's pre-tokenizers reproduces.
 */
export function bpeVocab(dir: string, vocabSize: number, fallbackIds: { bos: number | null; eos: number | null }): BpeVocab {
  const file = path.join(dir, "tokenizer.json");
  const tj = readJsonFile(file, "tokenizer") as TokenizerJson;
  const m = tj.model;
  const refuse = (why: string) => new FormatError(file, `${why}; GGUF export writes byte-level BPE only where one of llama.cpp's pre-tokenizers reproduces it (gpt-2, smollm, llama-bpe, smaug-bpe, qwen2, bloom)`);
  if (m?.type !== "BPE" || m.byte_fallback === true) throw refuse(`tokenizer model ${m?.type ?? "?"}${m?.byte_fallback ? " with byte_fallback" : ""} is not byte-level BPE`);
  const norm = tj.normalizer;
  if (norm && norm.type !== "NFC") throw refuse(`normalizer ${norm.type ?? "?"} has no counterpart in llama.cpp`);
  const pre = llamaCppPre(tj);
  if (typeof pre !== "string") throw refuse(pre.refused);

  const { tokens, idOf } = tokensById(file, tj, vocabSize);
  const added = new Map((tj.added_tokens ?? []).map((a) => [a.id, a.special === true]));
  const types = Array.from(tokens, (t, id) =>
    t === undefined ? TokenType.UNUSED : added.has(id) ? (added.get(id) || looksSpecial(t) ? TokenType.CONTROL : TokenType.USER_DEFINED) : TokenType.NORMAL,
  );
  // gguf-py SpecialVocab: a merge's halves joined by " ", a space inside a half written as U+0120
  const merges = (m.merges ?? []).map((mg) => (Array.isArray(mg) ? mg.map((h) => h.replaceAll(" ", "\u0120")).join(" ") : mg));
  const unkName = m.unk_token ?? tokenContent(readTokenizerConfig(dir).unk_token);
  const unkId = unkName ? (idOf.get(unkName) ?? null) : null;
  return {
    model: "gpt2",
    pre,
    tokens: Array.from(tokens, (t, id) => t ?? `[PAD${id}]`), // convert_hf_to_gguf.py get_vocab_base
    types,
    merges,
    ...specials(dir, idOf, unkId, fallbackIds),
  };
}

/** The llama.cpp pre-tokenizer name for a byte-level tokenizer.json, or why there is none. */
function llamaCppPre(tj: TokenizerJson): string | { refused: string } {
  const layout = byteLevelLayout(tj);
  if (typeof layout === "string") return { refused: layout };
  const ignoreMerges = tj.model?.ignore_merges === true;
  // only llama.cpp's Llama 3 pre-tokenizers take a whole piece found in the vocabulary as one token
  const plain = (name: string) => (ignoreMerges ? { refused: `model.ignore_merges is set, which llama.cpp's "${name}" does not do` } : name);
  if (layout.kind === "gpt2") return plain("gpt-2");
  if (layout.kind === "digits+gpt2") return plain("smollm");
  if (layout.regex === "llama3") return ignoreMerges ? "llama-bpe" : "smaug-bpe";
  return plain(layout.regex === "qwen2" ? "qwen2" : "bloom");
}

/** convert_hf_to_gguf.py does_token_look_special: added tokens some models forget to mark special. */
function looksSpecial(t: string): boolean {
  return (
    ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].includes(t) ||
    (t.startsWith("<|") && t.endsWith("|>")) ||
    (t.startsWith("<｜") && t.endsWith("｜>")) ||
    (t.startsWith("<unused") && t.endsWith(">"))
  );
}

/**
 * The chat template as gguf-py's SpecialVocab finds it: tokenizer_config.json's chat_template,
 * else chat_template.jinja (with additional_chat_templates/*.jinja by name), else chat_template.json.
 */
function readChatTemplate(dir: string, config: Record<string, unknown>): ChatTemplate | null {
  const inConfig = config.chat_template;
  if (typeof inConfig === "string") return inConfig;
  if (Array.isArray(inConfig)) {
    return inConfig.filter((c): c is { name: string; template: string } => typeof c?.name === "string" && typeof c?.template === "string");
  }
  const jinja = path.join(dir, "chat_template.jinja");
  if (fs.existsSync(jinja)) {
    const main = fs.readFileSync(jinja, "utf8");
    const extraDir = path.join(dir, "additional_chat_templates");
    const extra = fs.existsSync(extraDir) ? fs.readdirSync(extraDir).filter((f) => f.endsWith(".jinja")).sort() : [];
    if (extra.length === 0) return main;
    return [{ name: "default", template: main }, ...extra.map((f) => ({ name: f.slice(0, -".jinja".length), template: fs.readFileSync(path.join(extraDir, f), "utf8") }))];
  }
  const json = path.join(dir, "chat_template.json");
  if (fs.existsSync(json)) {
    const t = (readJsonFile(json, "chat template") as { chat_template?: unknown } | null)?.chat_template;
    if (typeof t === "string") return t;
  }
  return null;
}

/**
 * The tokenizer.* metadata of a vocabulary, as gguf-py's writer names them. A list of chat
 * templates becomes tokenizer.chat_template (the "default" one), tokenizer.chat_template.NAME for
 * the others and tokenizer.chat_templates listing their names.
 */
export function vocabMetadata(v: GgufVocab): [string, MetadataValue][] {
  const kv: [string, MetadataValue][] = [];
  const str = (key: string, value: string) => kv.push([key, { type: ValueType.STRING, value }]);
  const u32 = (key: string, value: number | null) => value !== null && kv.push([key, { type: ValueType.UINT32, value }]);
  const bool = (key: string, value: boolean) => kv.push([key, { type: ValueType.BOOL, value }]);
  str(Keys.Tokenizer.MODEL, v.model);
  str(Keys.Tokenizer.PRE, v.model === "gpt2" ? v.pre : "default");
  kv.push([Keys.Tokenizer.LIST, { type: ValueType.ARRAY, itemType: ValueType.STRING, value: v.tokens }]);
  if (v.model === "llama") kv.push([Keys.Tokenizer.SCORES, { type: ValueType.ARRAY, itemType: ValueType.FLOAT32, value: v.scores }]);
  kv.push([Keys.Tokenizer.TOKEN_TYPE, { type: ValueType.ARRAY, itemType: ValueType.INT32, value: v.types }]);
  if (v.model === "gpt2") kv.push([Keys.Tokenizer.MERGES, { type: ValueType.ARRAY, itemType: ValueType.STRING, value: v.merges }]);
  u32(Keys.Tokenizer.BOS_ID, v.bosId);
  u32(Keys.Tokenizer.EOS_ID, v.eosId);
  u32(Keys.Tokenizer.UNK_ID, v.unkId);
  u32(Keys.Tokenizer.PAD_ID, v.padId);
  bool(Keys.Tokenizer.ADD_BOS, v.addBos);
  bool(Keys.Tokenizer.ADD_EOS, v.addEos);
  if (v.model === "llama") bool(Keys.Tokenizer.ADD_PREFIX, v.addSpacePrefix);
  const t = v.chatTemplate;
  if (typeof t === "string") str(Keys.Tokenizer.CHAT_TEMPLATE, t);
  else if (t) {
    // gguf-py keeps letters and digits of a name, the rest becomes "_"
    const named = t.map((c) => ({ ...c, name: c.name.replace(/[^A-Za-z0-9]/g, "_") })).filter((c) => c.name);
    const others = named.filter((c) => c.name !== "default");
    for (const c of others) str(`${Keys.Tokenizer.CHAT_TEMPLATE}.${c.name}`, c.template);
    if (others.length) kv.push([Keys.Tokenizer.CHAT_TEMPLATES, { type: ValueType.ARRAY, itemType: ValueType.STRING, value: others.map((c) => c.name) }]);
    const main = named.find((c) => c.name === "default");
    if (main) str(Keys.Tokenizer.CHAT_TEMPLATE, main.template);
  }
  return kv;
}
