// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length N,
// N bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the data buffer; offsets are relative to the start of the data buffer.
//
// The reader is lazy: it parses and validates the header on open and reads a tensor's bytes only
// when asked, so a model larger than memory can be walked one tensor at a time. Validation follows
// the Rust reference implementation: every tensor's byte range must match shape × dtype size, lie
// inside the file, and not overlap another; the data buffer must be fully covered (no holes).
import fs from "node:fs";
import path from "node:path";
import { writeAll, writeFileAtomic } from "./atomic.js";
import { FormatError } from "./errors.js";
import { killPoint } from "./kill-point.js";
import { bf16ArrayToFloat, floatArrayToBf16, floatArrayToHalf, halfArrayToFloat } from "../tensor/dtype.js";

export const DTYPE_BYTES = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U64: 8,
  U32: 4,
  U16: 2,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
} as const;

export type Dtype = keyof typeof DTYPE_BYTES;

function isDtype(s: unknown): s is Dtype {
  return typeof s === "string" && Object.hasOwn(DTYPE_BYTES, s);
}

export interface TensorInfo {
  readonly name: string;
  readonly dtype: Dtype;
  readonly shape: readonly number[];
  /** Absolute byte offsets in `file`. */
  readonly begin: number;
  readonly end: number;
  readonly file: string;
}

/** The safetensors spec caps the header at 100 MB; larger is a corrupt or hostile file. */
const MAX_HEADER_BYTES = 100_000_000;

function parseHeader(file: string, fd: number, fileSize: number) {
  if (fileSize < 8) throw new FormatError(file, `file is ${fileSize} bytes, too short for a safetensors header`);
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  const headerLen = Number(lenBuf.readBigUInt64LE(0));
  if (headerLen > fileSize - 8) {
    throw new FormatError(file, `header length ${headerLen} runs past the end of the file (${fileSize} bytes)`);
  }
  if (headerLen > MAX_HEADER_BYTES) throw new FormatError(file, `header length ${headerLen} exceeds 100 MB`);
  const headerBuf = Buffer.alloc(headerLen);
  fs.readSync(fd, headerBuf, 0, headerLen, 8);
  let json: unknown;
  try {
    json = JSON.parse(headerBuf.toString("utf8"));
  } catch (e) {
    throw new FormatError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new FormatError(file, "header is not a JSON object");
  }
  return { headerLen, json: json as Record<string, unknown> };
}

function parseEntry(file: string, name: string, raw: unknown, dataStart: number, dataSize: number): TensorInfo {
  if (typeof raw !== "object" || raw === null) throw new FormatError(file, `tensor "${name}": entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = raw as Record<string, unknown>;
  if (!isDtype(dtype)) throw new FormatError(file, `tensor "${name}": unknown dtype ${JSON.stringify(dtype)}`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new FormatError(file, `tensor "${name}": shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) ||
    offsets[0] > offsets[1]
  ) {
    throw new FormatError(file, `tensor "${name}": data_offsets ${JSON.stringify(offsets)} is not [begin, end] with begin <= end`);
  }
  const [b, e] = offsets as [number, number];
  const expected = (shape as number[]).reduce((a, d) => a * d, 1) * DTYPE_BYTES[dtype];
  if (e - b !== expected) {
    throw new FormatError(
      file,
      `tensor "${name}": shape [${shape.join(", ")}] of ${dtype} needs ${expected} bytes, data_offsets give ${e - b}`,
    );
  }
  if (e > dataSize) {
    throw new FormatError(file, `tensor "${name}": data ends at byte ${e}, past the end of the data (${dataSize} bytes)`);
  }
  return { name, dtype, shape: shape as number[], begin: dataStart + b, end: dataStart + e, file };
}

/** One .safetensors file, opened lazily. */
export class SafetensorsFile {
  readonly tensors = new Map<string, TensorInfo>();
  readonly metadata: Record<string, string>;
  private fd: number | null;

  private constructor(
    readonly file: string,
    fd: number,
    tensors: TensorInfo[],
    metadata: Record<string, string>,
  ) {
    this.fd = fd;
    for (const t of tensors) this.tensors.set(t.name, t);
    this.metadata = metadata;
  }

  static open(file: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (e) {
      throw new FormatError(file, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
    }
    try {
      const stat = fs.fstatSync(fd);
      if (!stat.isFile()) throw new FormatError(file, "is not a file");
      const fileSize = stat.size;
      const { headerLen, json } = parseHeader(file, fd, fileSize);
      const dataStart = 8 + headerLen;
      const dataSize = fileSize - dataStart;
      let metadata: Record<string, string> = {};
      const infos: TensorInfo[] = [];
      for (const [name, raw] of Object.entries(json)) {
        if (name === "__metadata__") {
          if (typeof raw !== "object" || raw === null || Array.isArray(raw) || !Object.values(raw).every((v) => typeof v === "string")) {
            throw new FormatError(file, `__metadata__ must map strings to strings`);
          }
          metadata = raw as Record<string, string>;
          continue;
        }
        infos.push(parseEntry(file, name, raw, dataStart, dataSize));
      }
      checkCoverage(file, infos, dataStart, dataSize);
      return new SafetensorsFile(file, fd, infos, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new FormatError(this.file, `no tensor named "${name}"`);
    return t;
  }

  /** The tensor's bytes, in a fresh (8-byte aligned) buffer. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    if (this.fd === null) throw new FormatError(this.file, "file is closed");
    const out = new Uint8Array(t.end - t.begin);
    let off = 0;
    while (off < out.length) {
      const n = fs.readSync(this.fd, out, off, out.length - off, t.begin + off);
      if (n === 0) throw new FormatError(this.file, `tensor "${name}": file ended while reading its data`);
      off += n;
    }
    return out;
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/** Byte ranges must not overlap and must cover the whole data buffer (as the Rust reader checks). */
function checkCoverage(file: string, infos: TensorInfo[], dataStart: number, dataSize: number): void {
  const sorted = [...infos].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = dataStart;
  let prev: TensorInfo | null = null;
  for (const t of sorted) {
    if (t.begin < pos && prev) {
      throw new FormatError(file, `tensors "${prev.name}" and "${t.name}" overlap (bytes ${t.begin - dataStart}..${prev.end - dataStart})`);
    }
    if (t.begin > pos) {
      throw new FormatError(file, `data bytes ${pos - dataStart}..${t.begin - dataStart} belong to no tensor (hole before "${t.name}")`);
    }
    pos = Math.max(pos, t.end);
    prev = t;
  }
  if (pos !== dataStart + dataSize) {
    throw new FormatError(file, `data bytes ${pos - dataStart}..${dataSize} belong to no tensor (trailing bytes)`);
  }
}

/** Converts raw bytes of a floating dtype to float32 (copying only when needed). */
export function bytesToFloat32(bytes: Uint8Array, dtype: Dtype, where: string): Float32Array {
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  switch (dtype) {
    case "F32":
      return new Float32Array(buf);
    case "F16":
      return halfArrayToFloat(new Uint16Array(buf));
    case "BF16":
      return bf16ArrayToFloat(new Uint16Array(buf));
    case "F64":
      return Float32Array.from(new Float64Array(buf));
    default:
      throw new Error(`${where}: dtype ${dtype} is not a floating type`);
  }
}

/** A checkpoint folder or file: model.safetensors, or shards listed in model.safetensors.index.json. */
export class SafetensorsModel {
  private readonly byName = new Map<string, SafetensorsFile>();
  readonly files: SafetensorsFile[];
  /** The file to name in errors about the checkpoint as a whole: model.safetensors or the index. */
  readonly location: string;

  private constructor(files: SafetensorsFile[], weightMap?: Map<string, SafetensorsFile>, index?: string) {
    this.files = files;
    this.location = index ?? files[0]!.file;
    if (weightMap) {
      for (const [n, f] of weightMap) this.byName.set(n, f);
    } else {
      for (const f of files) for (const n of f.tensors.keys()) this.byName.set(n, f);
    }
  }

  static open(location: string): SafetensorsModel {
    const stat = fs.statSync(location, { throwIfNoEntry: false });
    if (!stat) throw new FormatError(location, "no such file or folder");
    if (stat.isFile()) return new SafetensorsModel([SafetensorsFile.open(location)]);
    const index = path.join(location, "model.safetensors.index.json");
    if (fs.existsSync(index)) return SafetensorsModel.openIndex(index);
    const single = path.join(location, "model.safetensors");
    if (fs.existsSync(single)) return new SafetensorsModel([SafetensorsFile.open(single)]);
    throw new FormatError(location, "no model.safetensors or model.safetensors.index.json in this folder");
  }

  private static openIndex(index: string): SafetensorsModel {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(index, "utf8"));
    } catch (e) {
      throw new FormatError(index, `not valid JSON (${(e as Error).message})`);
    }
    const weightMap = (json as { weight_map?: unknown })?.weight_map;
    if (typeof weightMap !== "object" || weightMap === null) throw new FormatError(index, `missing "weight_map" object`);
    const dir = path.dirname(index);
    const opened = new Map<string, SafetensorsFile>();
    const map = new Map<string, SafetensorsFile>();
    try {
      for (const [name, shard] of Object.entries(weightMap)) {
        if (typeof shard !== "string" || shard.includes("/") || shard.includes("\\")) {
          throw new FormatError(index, `weight_map["${name}"] is not a shard file name`);
        }
        let f = opened.get(shard);
        if (!f) {
          // name the index when a listed shard is absent: that is the file a user has to fix
          if (!fs.existsSync(path.join(dir, shard))) throw new FormatError(index, `weight_map puts "${name}" in ${shard}, which is not in this folder`);
          f = SafetensorsFile.open(path.join(dir, shard));
          opened.set(shard, f);
        }
        if (!f.tensors.has(name)) throw new FormatError(index, `weight_map puts "${name}" in ${shard}, which has no such tensor`);
        map.set(name, f);
      }
    } catch (e) {
      for (const f of opened.values()) f.close();
      throw e;
    }
    if (opened.size === 0) throw new FormatError(index, "weight_map lists no tensors");
    return new SafetensorsModel([...opened.values()], map, index);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const f = this.byName.get(name);
    if (!f) throw new FormatError(this.files[0]?.file ?? "checkpoint", `no tensor named "${name}"`);
    return f.info(name);
  }

  readBytes(name: string): Uint8Array {
    return this.fileOf(name).readBytes(name);
  }

  /** Reads a floating tensor as float32 (F16/BF16/F64 converted). */
  readFloat32(name: string): Float32Array {
    const t = this.info(name);
    return bytesToFloat32(this.readBytes(name), t.dtype, `${t.file}: tensor "${name}"`);
  }

  metadata(): Record<string, string> {
    return Object.assign({}, ...this.files.map((f) => f.metadata));
  }

  close(): void {
    for (const f of this.files) f.close();
  }

  private fileOf(name: string): SafetensorsFile {
    const f = this.byName.get(name);
    if (!f) throw new FormatError(this.files[0]?.file ?? "checkpoint", `no tensor named "${name}"`);
    return f;
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

export interface TensorToWrite {
  name: string;
  dtype: Dtype;
  shape: readonly number[];
  /** The bytes, or a function producing them when written (so one tensor is in memory at a time). */
  data: Uint8Array | (() => Uint8Array);
}

/** float32 data → bytes of `dtype` (F32, F16 or BF16). */
export function float32ToBytes(data: Float32Array, dtype: "F32" | "F16" | "BF16"): Uint8Array {
  if (dtype === "F32") return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const half = dtype === "F16" ? floatArrayToHalf(data) : floatArrayToBf16(data);
  return new Uint8Array(half.buffer);
}

/**
 * Writes one .safetensors file atomically. The header is padded with spaces to a multiple of 8
 * bytes (as the Rust writer does) so every tensor starts 8-byte aligned when all sizes are.
 */
export function writeSafetensors(file: string, tensors: TensorToWrite[], metadata: Record<string, string> = {}): void {
  const header: Record<string, unknown> = {};
  if (Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  let offset = 0;
  const seen = new Set<string>();
  for (const t of tensors) {
    if (seen.has(t.name)) throw new Error(`${file}: duplicate tensor name "${t.name}"`);
    seen.add(t.name);
    const bytes = t.shape.reduce((a, d) => a * d, 1) * DTYPE_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const pad = (8 - (Buffer.byteLength(json) % 8)) % 8;
  json += " ".repeat(pad);
  const headerBytes = Buffer.from(json, "utf8");
  writeFileAtomic(file, (fd) => {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    writeAll(fd, len);
    writeAll(fd, headerBytes);
    for (const t of tensors) {
      killPoint(`write:${path.basename(file)}`);
      const data = typeof t.data === "function" ? t.data() : t.data;
      const want = (header[t.name] as { data_offsets: number[] }).data_offsets;
      if (data.byteLength !== want[1]! - want[0]!) {
        throw new Error(`${file}: tensor "${t.name}" has ${data.byteLength} bytes, shape and dtype need ${want[1]! - want[0]!}`);
      }
      writeAll(fd, data);
    }
  });
}
