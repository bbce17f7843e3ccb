// `topiary inspect file.gguf`: header, the metadata that matters, and every tensor's type,
// saying which tensors fell back from the file type's weight type (llama.cpp's rule: a row
// width that is not a multiple of the block size) and which are the LM head kept at 6–8 bits.
import path from "node:path";
import { explainType } from "../../export/gguf-tensors.js";
import { archKey, FILE_TYPE_TARGET, FileType, Keys, quantTypeName, type QuantType } from "../../formats/gguf/constants.js";
import { GgufFile } from "../../formats/gguf/reader.js";

/** Is `p` a GGUF file (by name; the reader checks the magic)? */
export function isGgufPath(p: string): boolean {
  return p.toLowerCase().endsWith(".gguf");
}

export function inspectGguf(file: string, opts: { json?: boolean }): void {
  const g = GgufFile.open(file);
  try {
    const arch = String(g.get(Keys.General.ARCHITECTURE) ?? "?");
    const ft = g.get(Keys.General.FILE_TYPE);
    const fileType = typeof ft === "number" ? (FileType[ft] ?? `file type ${ft}`) : null;
    const target: QuantType | undefined = typeof ft === "number" ? FILE_TYPE_TARGET[ft as FileType] : undefined;
    const tokens = g.get(Keys.Tokenizer.LIST);
    const num = (key: string) => g.get(archKey(key, arch));
    const hasOutput = g.tensors.some((t) => t.name === "output.weight");
    const tensors = g.tensors.map((t) => ({
      name: t.name,
      type: quantTypeName(t.type),
      shape: t.shape,
      bytes: t.nbytes,
      ...explainType(target, t.name, t.type, t.shape, hasOutput),
    }));
    const info = {
      file: path.resolve(file),
      version: g.version,
      architecture: arch,
      name: g.get(Keys.General.NAME) ?? null,
      fileType,
      alignment: g.alignment,
      layers: num(Keys.LLM.BLOCK_COUNT) ?? null,
      embedding: num(Keys.LLM.EMBEDDING_LENGTH) ?? null,
      feedForward: num(Keys.LLM.FEED_FORWARD_LENGTH) ?? null,
      heads: num(Keys.Attention.HEAD_COUNT) ?? null,
      kvHeads: num(Keys.Attention.HEAD_COUNT_KV) ?? null,
      contextLength: num(Keys.LLM.CONTEXT_LENGTH) ?? null,
      tokenizer: g.get(Keys.Tokenizer.MODEL) ?? null,
      vocabSize: Array.isArray(tokens) ? tokens.length : null,
      keys: g.metadata.size,
      bytes: g.size,
      tensors,
    };
    if (opts.json) {
      console.log(JSON.stringify(info));
      return;
    }
    const fmt = (n: number) => n.toLocaleString("en-US");
    const rows: [string, string][] = [
      ["file", `${info.file} (GGUF v${info.version}, ${fmt(info.bytes)} bytes, ${info.keys} keys, alignment ${info.alignment})`],
      ["architecture", `${arch}${info.name ? ` "${String(info.name)}"` : ""}`],
      ["layers", `${String(info.layers)} (embedding ${String(info.embedding)}, ffn ${String(info.feedForward)}, heads ${String(info.heads)}/${String(info.kvHeads)} kv)`],
      ["vocabulary", `${info.vocabSize === null ? "?" : fmt(info.vocabSize)} tokens (${String(info.tokenizer)}), context ${String(info.contextLength)}`],
      ["file type", fileType ?? "(not set)"],
    ];
    for (const [k, v] of rows) console.log(`${k.padEnd(13)}${v}`);
    const width = Math.max(...tensors.map((t) => t.name.length), 4);
    console.log(`\n${"tensor".padEnd(width)}  ${"type".padEnd(6)}  ${"shape".padEnd(14)}  ${"bytes".padStart(11)}`);
    for (const t of tensors) {
      const note = t.fallback ? `  fell back: ${t.fallback}` : t.note ? `  ${t.note}` : "";
      console.log(`${t.name.padEnd(width)}  ${t.type.padEnd(6)}  ${`[${t.shape.join(", ")}]`.padEnd(14)}  ${fmt(t.bytes).padStart(11)}${note}`);
    }
    const n = tensors.filter((t) => t.fallback).length;
    if (n > 0) console.log(`\n${n} of ${tensors.length} tensors fell back from ${quantTypeName(target!)}`);
  } finally {
    g.close();
  }
}
