// Byte-level BPE as real checkpoints write it in tokenizer.json, in the layouts topiary knows:
//   GPT-2 (also GPT-NeoX, OPT, Phi-2): pre_tokenizer ByteLevel with its built-in regex;
//   Llama 3, Qwen 2/3, BLOOM:          Sequence[Split(Regex, "Isolated"), ByteLevel(use_regex: false)];
//   SmolLM, StarCoder:                 Sequence[Digits(individual_digits), ByteLevel(use_regex: true)].
// `byteLevelLayout` says which one a tokenizer.json is (GGUF export maps it to llama.cpp's
// pre-tokenizer names); `correctPreTokenizers` is the one place topiary corrects @huggingface/tokenizers.

/** The regex of GPT-2's ByteLevel pre-tokenizer (tokenizers' byte_level.rs). */
export const GPT2_REGEX = String.raw`'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
/** Meta-Llama-3's Split regex (numbers in groups of up to three). */
export const LLAMA3_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/** Qwen 1.5/2/2.5/3's Split regex (Llama 3's with single digits). */
export const QWEN2_REGEX = String.raw`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`;
/** bigscience/bloom's Split regex: runs of anything but whitespace and a few punctuation marks. */
export const BLOOM_REGEX = " ?[^(\\s|[.,!?…。，、।۔،])]+";

export type ByteLevelLayout =
  /** ByteLevel with GPT-2's regex, no prefix space */
  | { kind: "gpt2" }
  /** Digits(individual_digits) then GPT-2's ByteLevel */
  | { kind: "digits+gpt2" }
  /** Split by one of the known regexes, then ByteLevel without regex */
  | { kind: "split"; regex: "llama3" | "qwen2" | "bloom" };

interface Node {
  type?: string;
  [key: string]: unknown;
}

function steps(node: Node | null | undefined, list: "pretokenizers" | "normalizers"): Node[] {
  if (!node) return [];
  return node.type === "Sequence" ? ((node[list] as Node[] | undefined) ?? []) : [node];
}

/** ByteLevel with its own regex on (tokenizers' default is use_regex: true). */
const usesRegex = (n: Node) => n.use_regex !== false;
const noPrefixSpace = (n: Node) => n.add_prefix_space !== true;

/**
 * The byte-level layout of a tokenizer.json, or a sentence saying why it is none of those topiary
 * knows (another pre-tokenizer, a prefix space, an unknown regex).
 */
export function byteLevelLayout(tj: { pre_tokenizer?: unknown }): ByteLevelLayout | string {
  const pre = steps(tj.pre_tokenizer as Node | null | undefined, "pretokenizers");
  const names = pre.map((p) => (p.type === "Split" ? `Split(${JSON.stringify(splitRegex(p) ?? p.pattern)})` : String(p.type)));
  const described = `pre-tokenizer ${names.length ? names.join(" + ") : "none"}`;
  const last = pre[pre.length - 1];
  if (last?.type !== "ByteLevel") return `${described} does not end in ByteLevel`;
  if (!noPrefixSpace(last)) return `${described} adds a prefix space (ByteLevel add_prefix_space)`;
  if (pre.length === 1) return usesRegex(last) ? { kind: "gpt2" } : `${described}: ByteLevel without its regex splits nothing`;
  if (pre.length !== 2) return `${described} is not a known byte-level layout`;
  const first = pre[0]!;
  if (first.type === "Digits" && first.individual_digits === true && usesRegex(last)) return { kind: "digits+gpt2" };
  if (first.type === "Split" && !usesRegex(last) && first.invert !== true && String(first.behavior).toLowerCase() === "isolated") {
    const regex = splitRegex(first);
    if (regex === LLAMA3_REGEX) return { kind: "split", regex: "llama3" };
    if (regex === QWEN2_REGEX) return { kind: "split", regex: "qwen2" };
    if (regex === BLOOM_REGEX) return { kind: "split", regex: "bloom" };
    return `${described}: an unknown Split regex`;
  }
  return `${described} is not a known byte-level layout`;
}

function splitRegex(split: Node): string | null {
  const p = split.pattern as { Regex?: unknown } | undefined;
  return typeof p?.Regex === "string" ? p.Regex : null;
}

/**
 * tokenizer.json with the pre-tokenizers @huggingface/tokenizers 0.2 gets wrong rewritten as
 * equivalent ones it gets right (a Split's regex goes through its Oniguruma → JS translation,
 * which maps \s to \p{White_Space} and keeps \p{N} Unicode):
 *   - ByteLevel that applies GPT-2's regex itself → Split(GPT-2's regex, Isolated) +
 *     ByteLevel(use_regex: false). The library runs that regex as a JS literal, where \s is JS
 *     whitespace (with U+FEFF, without U+0085), while tokenizers (Rust, Oniguruma) and llama.cpp
 *     use Unicode White_Space: "\uFEFF!" (a byte-order mark) or "x \u0085y" split differently.
 *     A ByteLevel with add_prefix_space is left as it is: its prefix goes in front of each text
 *     section before the regex, which Split + ByteLevel cannot express.
 *   - Digits → Split(\p{N}, Isolated) (\p{N}+ without individual_digits). The library splits at
 *     JS \d, ASCII only; tokenizers splits at char::is_numeric (Unicode N), so "٣" or "½" differ.
 */
export function correctPreTokenizers<T extends { pre_tokenizer?: unknown }>(tj: T): T {
  const split = (regex: string): Node => ({ type: "Split", pattern: { Regex: regex }, behavior: "Isolated", invert: false });
  const rewrite = (n: Node): Node[] => {
    if (n.type === "ByteLevel" && usesRegex(n) && noPrefixSpace(n)) return [split(GPT2_REGEX), { ...n, use_regex: false }];
    if (n.type === "Digits") return [split(n.individual_digits === true ? String.raw`\p{N}` : String.raw`\p{N}+`)];
    return [n];
  };
  const pre = tj.pre_tokenizer as Node | null | undefined;
  if (!pre) return tj;
  const list = steps(pre, "pretokenizers");
  const rewritten = list.flatMap(rewrite);
  if (rewritten.every((n, i) => n === list[i]) && rewritten.length === list.length) return tj;
  return { ...tj, pre_tokenizer: { type: "Sequence", pretokenizers: rewritten } };
}
