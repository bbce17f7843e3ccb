// Writes topiary's logits for the first T tokens of a text, for scripts/compare-logits.py (a
// yardstick against transformers; Python is never a topiary dependency).
//   npx tsx scripts/dump-logits.ts <model> <text> <out-prefix> [T=512]
// → <out-prefix>.json {ids, vocab} and <out-prefix>.f32 (logits [T, vocab], little-endian float32).
import fs from "node:fs";
import { loadModel } from "../src/models/load.js";
import { releaseSessions } from "../src/runtime/ort.js";
import { TextTokenizer } from "../src/tokenizer/tokenizer.js";

const [dir, textFile, out, tArg] = process.argv.slice(2);
if (!dir || !textFile || !out) throw new Error("usage: dump-logits.ts <model> <text> <out-prefix> [T]");
const T = Number(tArg ?? 512);
// A prefix long enough for T tokens (a token is a few characters), so the whole text need not be encoded.
const ids = TextTokenizer.load(dir).encode(fs.readFileSync(textFile, "utf8").slice(0, T * 16)).slice(0, T);
const model = loadModel(dir);
const logits = await model.forward(ids, 1, ids.length);
fs.writeFileSync(`${out}.json`, JSON.stringify({ ids: Array.from(ids), vocab: logits.length / ids.length }));
fs.writeFileSync(`${out}.f32`, Buffer.from(logits.buffer, logits.byteOffset, logits.byteLength));
await releaseSessions();
