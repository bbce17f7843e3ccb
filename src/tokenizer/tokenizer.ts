// tokenizer.json through @huggingface/tokenizers, with the BOS policy the papers' protocol needs:
// a text is encoded whole, once, with BOS at the start only (when the model uses one).
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Tokenizer } from "@huggingface/tokenizers";
import { FormatError } from "../formats/errors.js";
import { readJsonFile } from "../formats/json.js";
import { cachedTokens } from "./token-cache.js";

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
    const cfgFile = path.join(dir, "tokenizer_config.json");
    const config = fs.existsSync(cfgFile) ? (readJsonFile(cfgFile, "tokenizer config") as Record<string, unknown>) : {};
    let tok: Tokenizer;
    try {
      tok = new Tokenizer(json as object, config);
    } catch (e) {
      throw new FormatError(file, `cannot build the tokenizer (${(e as Error).message})`);
    }
    const bosName = typeof config.bos_token === "string" ? config.bos_token : (config.bos_token as { content?: string } | undefined)?.content;
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

  decode(ids: ArrayLike<number>, opts: { skipSpecial?: boolean } = {}): string {
    return this.tok.decode(Array.from(ids), { skip_special_tokens: opts.skipSpecial ?? true });
  }

  tokenToId(token: string): number | undefined {
    return this.tok.token_to_id(token);
  }
}
