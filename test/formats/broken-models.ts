// Broken copies of stories260K for the bad-input tests (library and CLI share them).
// Each case corrupts one thing, the way real files go wrong: a cut-off download, a hand-edited
// header, a config.json from another family.
import fs from "node:fs";
import path from "node:path";
import { STORIES } from "../helpers.js";

interface Parsed {
  header: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] } | Record<string, string>>;
  data: Buffer;
}

/** Splits a safetensors file into its header (JSON) and data buffer. */
export function parseSafetensors(bytes: Buffer): Parsed {
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString("utf8")), data: bytes.subarray(8 + n) };
}

/** Header JSON (padded to 8 bytes) + data, without any validation: for building bad files. */
export function rawSafetensors(header: unknown, data: Uint8Array, headerText = JSON.stringify(header)): Buffer {
  const text = headerText + " ".repeat((8 - (Buffer.byteLength(headerText) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
  return Buffer.concat([len, Buffer.from(text, "utf8"), data]);
}

type Entry = { dtype: string; shape: number[]; data_offsets: [number, number] };

function edit(bytes: Buffer, change: (h: Record<string, Entry>, data: Buffer) => Buffer | void): Buffer {
  const { header, data } = parseSafetensors(bytes);
  const h = structuredClone(header) as Record<string, Entry>;
  const newData = change(h, data);
  return rawSafetensors(h, newData ?? data);
}

const EMBED = "model.embed_tokens.weight";
const NORM0 = "model.layers.0.input_layernorm.weight";
const DOWN0 = "model.layers.0.mlp.down_proj.weight";
const GATE0 = "model.layers.0.mlp.gate_proj.weight";

/** Corruptions of model.safetensors: the broken bytes and what the error must say. */
export const SAFETENSORS_CASES: { name: string; make: (good: Buffer) => Buffer; message: RegExp }[] = [
  { name: "truncated data", make: (b) => b.subarray(0, b.length - 1000), message: /past the end of the data/ },
  { name: "shorter than the length prefix", make: (b) => b.subarray(0, 5), message: /5 bytes, too short for a safetensors header/ },
  {
    name: "header length past EOF",
    make: (b) => {
      const c = Buffer.from(b);
      c.writeBigUInt64LE(10_000_000n, 0);
      return c;
    },
    message: /header length 10000000 runs past the end of the file \(1044992 bytes\)/,
  },
  {
    name: "invalid JSON header",
    make: (b) => {
      const c = Buffer.from(b);
      c.write("{{", 8);
      return c;
    },
    message: /header is not valid JSON/,
  },
  { name: "header is a JSON array", make: (b) => rawSafetensors(null, parseSafetensors(b).data, "[1, 2]"), message: /header is not a JSON object/ },
  {
    name: "overlapping offsets",
    make: (b) =>
      edit(b, (h) => {
        const n = h[NORM0]!;
        const size = n.data_offsets[1] - n.data_offsets[0];
        n.data_offsets = [4, 4 + size]; // inside the embedding
      }),
    message: new RegExp(`tensors "${EMBED}" and "${NORM0}" overlap`),
  },
  {
    name: "offsets past the data",
    make: (b) =>
      edit(b, (h, data) => {
        const t = h[GATE0]!;
        const size = t.data_offsets[1] - t.data_offsets[0];
        t.data_offsets = [data.length, data.length + size];
      }),
    message: new RegExp(`tensor "${GATE0}": data ends at byte \\d+, past the end of the data \\(1040128 bytes\\)`),
  },
  {
    name: "negative offset",
    make: (b) => edit(b, (h) => void (h[GATE0]!.data_offsets = [-4, 0])),
    message: /data_offsets \[-4,0\] is not \[begin, end\]/,
  },
  {
    name: "unknown dtype",
    make: (b) => edit(b, (h) => void (h[DOWN0]!.dtype = "F4")),
    message: new RegExp(`tensor "${DOWN0}": unknown dtype "F4"`),
  },
  {
    name: "shape does not match the byte range",
    make: (b) => edit(b, (h) => void (h[DOWN0]!.shape = [64, 171])),
    message: /shape \[64, 171\] of F32 needs 43776 bytes, data_offsets give 44032/,
  },
  {
    name: "hole between tensors",
    make: (b) => edit(b, (h) => void delete h[NORM0]),
    message: /data bytes \d+\.\.\d+ belong to no tensor \(hole before/,
  },
  {
    name: "trailing bytes after the last tensor",
    make: (b) => edit(b, (_h, data) => Buffer.concat([data, Buffer.alloc(16)])),
    message: /data bytes 1040128\.\.1040144 belong to no tensor \(trailing bytes\)/,
  },
];

/** A copy of stories260K in `dir` (model.safetensors copied, so it can be replaced). */
export function copyStories(dir: string): string {
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "model.safetensors"]) {
    fs.copyFileSync(path.join(STORIES, f), path.join(dir, f));
  }
  return dir;
}

/** A stories260K copy whose config.json went through `change`. */
export function withConfig(dir: string, change: (c: Record<string, unknown>) => void): string {
  copyStories(dir);
  const file = path.join(dir, "config.json");
  const c = JSON.parse(fs.readFileSync(file, "utf8"));
  change(c);
  fs.writeFileSync(file, JSON.stringify(c, null, 2));
  return dir;
}

/** A stories260K copy whose model.safetensors is `make(original bytes)`. */
export function withSafetensors(dir: string, make: (good: Buffer) => Buffer): string {
  copyStories(dir);
  const file = path.join(dir, "model.safetensors");
  fs.writeFileSync(file, make(fs.readFileSync(file)));
  return dir;
}
