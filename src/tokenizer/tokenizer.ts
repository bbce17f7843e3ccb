// tokenizer.json through @huggingface/tokenizers, with the BOS policy the papers' protocol needs:
// a text is encoded whole, once, with BOS at the start only (when the model uses one).
// Whether the model uses one follows transformers: tokenizer_config.json's add_bos_token when it
// says, else what tokenizer.json's post-processor puts in front (OPT's </s>, Llama 3's
// <|begin_of_text|>, Gemma's <bos>; GPT-2 and Qwen add nothing). Byte-level BPE (GPT-2's
// ByteLevel, Llama 3 / Qwen's Split + ByteLevel, NFC) is the library's, except the pre-tokenizers
// it gets wrong, rewritten first (byte-level.ts).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { FormatError } from "../formats/errors.js";
import { readJsonFile } from "../formats/json.js";
import { correctPreTokenizers } from "./byte-level.js";
import { cachedTokens } from "./token-cache.js";

/** Names the pre-tokenizer corrections (byte-level.ts) in the token cache's key. */
const PRE_TOKENIZER_FIXES = "bytelevel-whitespace,digits-unicode";

export class TextTokenizer {
  private constructor(
    private readonly tok: Tokenizer,
    /** id of the beginning-of-sequence token, null when the model has none */
    readonly bosId: number | null,
    /** whether encode() prepends BOS (tokenizer_config add_bos_token, else the post-processor's behaviour) */
    readonly addBos: boolean,
    /** a digest of tokenizer.json + tokenizer_config.json, keying the token cache */
    readonly fingerprint: string,
    readonly vocabSize: number,
  ) {}

  static load(dir: string): TextTokenizer {
    const file = path.join(dir, "tokenizer.json");
    if (!fs.existsSync(file)) {
      throw new FormatError(file, "missing (topiary needs the model's Hugging Face tokenizer.json; slow sentencepiece-only tokenizers are not supported)");
    }
    const json = readJsonFile(file, "tokenizer");
    checkTokenizerJson(file, dir, json);
    const cfgFile = path.join(dir, "tokenizer_config.json");
    const config = fs.existsSync(cfgFile) ? tokenizerConfig(cfgFile) : {};
    // transformers ≥ 4.45 decodes without "clean-up" (" ," → ","), so decode(encode(t)) is t; the
    // library still defaults to cleaning up
    config.clean_up_tokenization_spaces ??= false;
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(correctPreTokenizers(json as { pre_tokenizer?: unknown }), config);
    } catch (e) {
      throw new FormatError(file, `cannot build the tokenizer (${(e as Error).message})`);
    }
    // special_tokens_map.json names the BOS token where an older tokenizer_config.json does not
    const bosName = tokenContent(config.bos_token) ?? tokenContent(readObject(path.join(dir, "special_tokens_map.json"), "special tokens").bos_token);
    let bosId = bosName ? (tok.token_to_id(bosName) ?? null) : null;
    if (bosName && bosId === null && config.add_bos_token === true) throw new FormatError(cfgFile, `bos_token ${JSON.stringify(bosName)} is not in tokenizer.json's vocabulary`);

    // What the post-processor does on its own: does it put a token in front?
    const plain = tok.encode("a", { add_special_tokens: false }).ids;
    const special = tok.encode("a", { add_special_tokens: true }).ids;
    const postProcessorBos = special.length > plain.length && special[0] !== plain[0] ? special[0]! : null;
    bosId ??= postProcessorBos;
    const addBos = typeof config.add_bos_token === "boolean" ? config.add_bos_token && bosId !== null : postProcessorBos !== null;
    const fingerprint = crypto
      .createHash("sha256")
      .update(fs.readFileSync(file))
      .update(JSON.stringify(config))
      .update(PRE_TOKENIZER_FIXES) // tokens cached before a fix are not reused
      .digest("hex")
      .slice(0, 16);
    return new TextTokenizer(tok, bosId, addBos, fingerprint, tok.get_vocab(true).size);
  }

  /** Encodes a whole text: BOS (if the model uses one) at the start only, no EOS. */
  encode(text: string): Int32Array {
    return cachedTokens(`${this.fingerprint}:${this.addBos}`, text, () => {
      const ids = this.tok.encode(text, { add_special_tokens: false }).ids;
      const out = new Int32Array(ids.length + (this.addBos ? 1 : 0));
      if (this.addBos) out[0] = this.bosId!;
      out.set(ids, this.addBos ? 1 : 0);
      return out;
    });
  }

  /** Text of `ids` (byte-level tokens joined as bytes, then UTF-8; an incomplete character at the end is U+FFFD). */
  decode(ids: ArrayLike<number>, opts: { skipSpecial?: boolean } = {}): string {
    if (ids.length === 0) return ""; // the library throws for an empty list
    return this.tok.decode(Array.from(ids), { skip_special_tokens: opts.skipSpecial ?? true });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }
}

function tokenContent(v: unknown): string | null {
  if (typeof v === "string") return v;
  const content = (v as { content?: unknown } | null | undefined)?.content;
  return typeof content === "string" ? content : null;
}

/** A JSON object from `file`, or {} when there is no such file. */
function readObject(file: string, what: string): Record<string, unknown> {
  if (!fs.existsSync(file)) return {};
  const json = readJsonFile(file, what);
  if (!json || typeof json !== "object" || Array.isArray(json)) throw new FormatError(file, "is not a JSON object");
  return json as Record<string, unknown>;
}

/** tokenizer_config.json, with the fields topiary reads checked for their types. */
function tokenizerConfig(file: string): Record<string, unknown> {
  const c = readJsonFile(file, "tokenizer config");
  if (typeof c !== "object" || c === null || Array.isArray(c)) throw new FormatError(file, "is not a JSON object");
  const config = c as Record<string, unknown>;
  if (config.add_bos_token != null && typeof config.add_bos_token !== "boolean") throw new FormatError(file, `add_bos_token must be true or false, got ${JSON.stringify(config.add_bos_token)}`);
  const bos = config.bos_token;
  const content = typeof bos === "object" && bos !== null ? (bos as { content?: unknown }).content : bos;
  if (bos != null && typeof content !== "string") throw new FormatError(file, `bos_token must be a token string (or {"content": string}), got ${JSON.stringify(bos)}`);
  return config;
}

/**
 * What @huggingface/tokenizers would accept silently or fail on with a TypeError: the model's
 * type and vocabulary, merges and added tokens. And token ids must index the model's embedding:
 * every id in [0, vocab_size of the folder's config.json), or the first out-of-range token fails
 * deep in the forward.
 */
function checkTokenizerJson(file: string, dir: string, json: unknown): void {
  if (typeof json !== "object" || json === null || Array.isArray(json)) throw new FormatError(file, "is not a JSON object");
  const t = json as Record<string, unknown>;
  const model = t.model as Record<string, unknown> | undefined;
  if (typeof model !== "object" || model === null || Array.isArray(model)) throw new FormatError(file, `field "model" is missing or not an object`);
  const types = ["BPE", "WordPiece", "WordLevel", "Unigram"];
  if (model.type !== undefined && !types.includes(model.type as string)) throw new FormatError(file, `model.type ${JSON.stringify(model.type)} is not one of ${types.join(", ")}`);
  const ids: number[] = [];
  if (model.type === "Unigram") {
    if (!Array.isArray(model.vocab)) throw new FormatError(file, "model.vocab of a Unigram model must be a list of [token, score]");
    ids.push(model.vocab.length - 1);
  } else {
    const vocab = model.vocab;
    if (typeof vocab !== "object" || vocab === null || Array.isArray(vocab)) throw new FormatError(file, "model.vocab must map tokens to ids");
    for (const [token, id] of Object.entries(vocab)) {
      if (!Number.isSafeInteger(id) || (id as number) < 0) throw new FormatError(file, `model.vocab[${JSON.stringify(token)}] is ${JSON.stringify(id)}, not a token id`);
      ids.push(id as number);
    }
    const merges = model.merges;
    if (merges !== undefined && !(Array.isArray(merges) && merges.every((m) => typeof m === "string" || (Array.isArray(m) && m.length === 2 && m.every((x) => typeof x === "string"))))) {
      throw new FormatError(file, "model.merges must be a list of \"a b\" strings or [a, b] pairs");
    }
  }
  if (t.added_tokens != null) {
    if (!Array.isArray(t.added_tokens)) throw new FormatError(file, "added_tokens is not a list");
    for (const a of t.added_tokens as { id?: unknown; content?: unknown }[]) {
      if (!Number.isSafeInteger(a?.id) || (a.id as number) < 0 || typeof a.content !== "string") throw new FormatError(file, `added_tokens entry ${JSON.stringify(a)} needs an id and a content`);
      ids.push(a.id as number);
    }
  }
  const max = ids.reduce((m, x) => Math.max(m, x), -1);
  let vocabSize: unknown;
  try {
    vocabSize = (JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8")) as { vocab_size?: unknown }).vocab_size;
  } catch {
    return; // config.json's own reader reports a missing or broken file
  }
  if (typeof vocabSize === "number" && max >= vocabSize) {
    throw new FormatError(file, `token ids go up to ${max}, past the model's vocabulary (vocab_size ${vocabSize} in config.json)`);
  }
}
