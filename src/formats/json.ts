// Reading a JSON file with errors that name it (config.json, tokenizer.json, index files).
import fs from "node:fs";
import { FormatError } from "./errors.js";

/** Parses `file`; `what` says what the file is for, in the "missing" message. */
export function readJsonFile(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(file, code === "ENOENT" ? `missing (${what})` : `cannot read (${code})`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `not valid JSON (${(e as Error).message})`);
  }
}
