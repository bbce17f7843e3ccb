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
    if (!json || typeof json !== "object" || Array.isArray(json)) throw new FormatError(file, "is not a JSON object");
    const config = readObject(path.join(dir, "tokenizer_config.json"), "tokenizer config");
    // transformers ≥ 4.45 decodes without "clean-up" (" ," → ","), so decode(encode(t)) is t; the
    // library still defaults to cleaning up
    config.clean_up_tokenization_spaces ??= false;
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(correctPreTokenizers(json), config);
    } catch (e) {
      throw new FormatError(file, `cannot build the tokenizer (${(e as Error).message})`);
    }
    // special_tokens_map.json names the BOS token where an older tokenizer_config.json does not
    const bosName = tokenContent(config.bos_token) ?? tokenContent(readObject(path.join(dir, "special_tokens_map.json"), "special tokens").bos_token);
    let bosId = bosName ? (tok.token_to_id(bosName) ?? null) : null;
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
