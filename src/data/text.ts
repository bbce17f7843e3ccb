// Evaluation and calibration text, prepared exactly as the papers' code prepares it.
import fs from "node:fs";
import { FormatError } from "../formats/errors.js";

export const DATASETS = ["plain", "wikitext2", "ptb", "c4"] as const;
export type DatasetKind = (typeof DATASETS)[number];

function readUtf8(file: string): string {
  try {
    return fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(file, code === "ENOENT" ? "no such file" : `cannot read (${code})`);
  }
}

/**
 * WikiText-2 evaluation string from a raw `wiki.test.raw`: the HF dataset's rows are the file's
 * lines, a non-blank line keeping its "\n" and a blank line (" ") becoming ""; the papers' code
 * scores "\n\n".join(rows). (For the test split: 4358 rows, md5 7646de4f…)
 */
export function wikitext2EvalString(raw: string): string {
  const lines = raw.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => (l.trim() === "" ? "" : `${l}\n`)).join("\n\n");
}

/** PTB as GPTQ's get_ptb builds it from HF ptb_text_only: stripped rows joined with " ". */
export function ptbEvalString(raw: string): string {
  const lines = raw.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.map((l) => l.trim()).join(" ");
}

/** The `text` fields of a JSON-lines file (C4 shards, most HF dataset dumps). */
export function jsonlTexts(file: string, raw: string): string[] {
  const texts: string[] = [];
  raw.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    let row: unknown;
    try {
      row = JSON.parse(line);
    } catch {
      throw new FormatError(file, `line ${i + 1} is not valid JSON`);
    }
    const text = (row as { text?: unknown })?.text;
    if (typeof text !== "string") throw new FormatError(file, `line ${i + 1} has no string "text" field`);
    texts.push(text);
  });
  return texts;
}

/**
 * The text to score. `plain` reads the file as-is (a .jsonl file: its texts joined by "\n\n");
 * `wikitext2` and `ptb` build the papers' strings from the raw files; `c4` joins a jsonl file's
 * texts with " " as GPTQ's C4 evaluation does.
 */
export function loadEvalText(file: string, dataset: DatasetKind = "plain"): string {
  const raw = readUtf8(file);
  switch (dataset) {
    case "wikitext2":
      return wikitext2EvalString(raw);
    case "ptb":
      return ptbEvalString(raw);
    case "c4":
      return jsonlTexts(file, raw).join(" ");
    case "plain":
      return file.endsWith(".jsonl") ? jsonlTexts(file, raw).join("\n\n") : raw;
  }
}
