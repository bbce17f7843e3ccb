// GGUF reader (after gguf-py gguf_reader.py and ggml's gguf.cpp checks). It validates everything
// it reads and names the file and the problem: magic and version, counts that fit the file, key and
// tensor names (UTF-8, unique), value and tensor types, dimensions, the alignment key, and the
// tensor offsets, which must be packed in order the way ggml's loader requires. Tensor data is read
// on demand, one tensor at a time.
import fs from "node:fs";
import { FormatError } from "../errors.js";
import {
  GGML_MAX_DIMS,
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_MAGIC,
  isQuantType,
  Keys,
  QUANT_SIZES,
  quantTypeName,
  QuantType,
  SCALAR_SIZES,
  ValueType,
} from "./constants.js";
import { dequantize } from "./quants.js";
import type { MetadataValue, Scalar } from "./writer.js";

/** ggml's GGML_MAX_NAME (64 bytes including the terminating zero). */
const MAX_TENSOR_NAME_BYTES = 63;
const CHUNK = 1 << 20;

export interface GgufTensor {
  name: string;
  /** outermost first (numpy order); `ne` is the reverse, as GGUF stores it */
  shape: number[];
  ne: number[];
  type: QuantType;
  /** offset from the start of the data section */
  offset: number;
  nbytes: number;
}

/** Sequential little-endian reads over a file descriptor, buffered in 1 MiB chunks. */
class Cursor {
  private buf = Buffer.alloc(0);
  private bufStart = 0;
  pos = 0;
  private readonly utf8 = new TextDecoder("utf-8", { fatal: true });

  constructor(
    private readonly fd: number,
    readonly size: number,
    private readonly file: string,
  ) {}

  private need(n: number, what: string): Buffer {
    if (this.pos + n > this.size) throw new FormatError(this.file, `truncated: ${what} at byte ${this.pos} needs ${n} bytes, the file has ${this.size}`);
    if (this.pos < this.bufStart || this.pos + n > this.bufStart + this.buf.length) {
      const len = Math.min(Math.max(n, CHUNK), this.size - this.pos);
      this.buf = Buffer.alloc(len);
      fs.readSync(this.fd, this.buf, 0, len, this.pos);
      this.bufStart = this.pos;
    }
    const at = this.pos - this.bufStart;
    this.pos += n;
    return this.buf.subarray(at, at + n);
  }

  u32(what: string): number {
    return this.need(4, what).readUInt32LE(0);
  }

  u64(what: string): number {
    const v = this.need(8, what).readBigUInt64LE(0);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new FormatError(this.file, `${what} at byte ${this.pos - 8} is ${v}, too large`);
    return Number(v);
  }

  string(what: string): string {
    const at = this.pos;
    const len = this.u64(`length of ${what}`);
    if (len > this.size - this.pos) throw new FormatError(this.file, `${what} at byte ${at} claims ${len} bytes, past the end of the file`);
    try {
      return this.utf8.decode(this.need(len, what));
    } catch {
      throw new FormatError(this.file, `${what} at byte ${at} is not valid UTF-8`);
    }
  }

  scalar(type: ValueType, what: string): Scalar {
    if (type === ValueType.STRING) return this.string(what);
    const size = SCALAR_SIZES[type as keyof typeof SCALAR_SIZES];
    if (size === undefined) throw new FormatError(this.file, `${what} has unknown value type ${type}`);
    const b = this.need(size, what);
    switch (type) {
      case ValueType.UINT8:
        return b.readUInt8(0);
      case ValueType.INT8:
        return b.readInt8(0);
      case ValueType.UINT16:
        return b.readUInt16LE(0);
      case ValueType.INT16:
        return b.readInt16LE(0);
      case ValueType.UINT32:
        return b.readUInt32LE(0);
      case ValueType.INT32:
        return b.readInt32LE(0);
      case ValueType.FLOAT32:
        return b.readFloatLE(0);
      case ValueType.FLOAT64:
        return b.readDoubleLE(0);
      case ValueType.BOOL:
        if (b[0]! > 1) throw new FormatError(this.file, `${what} is a BOOL with value ${b[0]}`);
        return b[0] === 1;
      case ValueType.UINT64:
        return narrow(b.readBigUInt64LE(0));
      default:
        return narrow(b.readBigInt64LE(0));
    }
  }
}

/** 64-bit integers as numbers when exact, else bigint. */
function narrow(v: bigint): number | bigint {
  return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export class GgufFile {
  private byName: Map<string, GgufTensor> | null = null;

  private constructor(
    readonly file: string,
    private fd: number | null,
    readonly size: number,
    readonly version: number,
    readonly metadata: ReadonlyMap<string, MetadataValue>,
    readonly tensors: readonly GgufTensor[],
    readonly alignment: number,
    /** byte where the data section starts */
    readonly dataOffset: number,
  ) {}

  static open(file: string): GgufFile {
    let fd: number;
    try {
      fd = fs.openSync(file, "r");
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new FormatError(file, code === "ENOENT" ? "no such file" : `cannot open (${code})`);
    }
    try {
      return GgufFile.parse(file, fd);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  private static parse(file: string, fd: number): GgufFile {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new FormatError(file, "is not a file");
    const size = stat.size;
    if (size < 24) throw new FormatError(file, `${size} bytes is too short for a GGUF header (24 bytes)`);
    const c = new Cursor(fd, size, file);
    const magic = c.u32("magic");
    if (magic !== GGUF_MAGIC) throw new FormatError(file, `not a GGUF file (magic 0x${magic.toString(16).padStart(8, "0")}, expected 0x${GGUF_MAGIC.toString(16)} "GGUF")`);
    const version = c.u32("version");
    if (version !== 2 && version !== 3) throw new FormatError(file, `GGUF version ${version} is not supported (2 and 3 are)`);
    const nTensors = c.u64("tensor count");
    const nKv = c.u64("key/value count");
    // every key/value takes at least 8 (key length) + 4 (type) bytes, every tensor info 8 + 4 + 8 + 4 + 8
    if (nKv * 12 + nTensors * 32 > size) throw new FormatError(file, `header claims ${nKv} key/values and ${nTensors} tensors, more than ${size} bytes can hold`);

    const metadata = new Map<string, MetadataValue>();
    for (let i = 0; i < nKv; i++) {
      const key = c.string(`key ${i}`);
      if (metadata.has(key)) throw new FormatError(file, `duplicate key "${key}"`);
      const type = c.u32(`type of key "${key}"`);
      if (!(type in ValueType)) throw new FormatError(file, `key "${key}" has unknown value type ${type}`);
      if (type === ValueType.ARRAY) {
        const itemType = c.u32(`item type of key "${key}"`);
        if (!(itemType in ValueType)) throw new FormatError(file, `array "${key}" has unknown item type ${itemType}`);
        if (itemType === ValueType.ARRAY) throw new FormatError(file, `array "${key}" holds arrays (nested arrays are not supported)`);
        const n = c.u64(`length of array "${key}"`);
        const minItem = itemType === ValueType.STRING ? 8 : SCALAR_SIZES[itemType as keyof typeof SCALAR_SIZES];
        if (n * minItem > size - c.pos) throw new FormatError(file, `array "${key}" claims ${n} items, more than the rest of the file holds`);
        const value: Scalar[] = new Array(n);
        for (let j = 0; j < n; j++) value[j] = c.scalar(itemType, `item ${j} of "${key}"`);
        metadata.set(key, { type: ValueType.ARRAY, itemType, value });
      } else {
        metadata.set(key, { type, value: c.scalar(type, `value of "${key}"`) } as MetadataValue);
      }
    }

    let alignment = GGUF_DEFAULT_ALIGNMENT;
    const a = metadata.get(Keys.General.ALIGNMENT);
    if (a) {
      const v = Number(a.value);
      if (a.type !== ValueType.UINT32 || v === 0 || (v & (v - 1)) !== 0) {
        throw new FormatError(file, `${Keys.General.ALIGNMENT} must be a UINT32 power of two, got ${ValueType[a.type]} ${String(a.value)}`);
      }
      alignment = v;
    }

    const tensors: GgufTensor[] = [];
    const names = new Set<string>();
    for (let i = 0; i < nTensors; i++) {
      const name = c.string(`name of tensor ${i}`);
      if (Buffer.byteLength(name) > MAX_TENSOR_NAME_BYTES) throw new FormatError(file, `tensor name "${name}" is longer than ggml's ${MAX_TENSOR_NAME_BYTES} bytes`);
      if (names.has(name)) throw new FormatError(file, `duplicate tensor name "${name}"`);
      names.add(name);
      const nDims = c.u32(`dimension count of "${name}"`);
      if (nDims < 1 || nDims > GGML_MAX_DIMS) throw new FormatError(file, `tensor "${name}" has ${nDims} dimensions (ggml allows 1 to ${GGML_MAX_DIMS})`);
      const ne: number[] = [];
      for (let d = 0; d < nDims; d++) ne.push(c.u64(`dimension ${d} of "${name}"`));
      if (ne.some((d) => d <= 0)) throw new FormatError(file, `tensor "${name}" has dimensions [${ne.join(", ")}]; all must be positive`);
      const type = c.u32(`type of "${name}"`);
      if (!isQuantType(type)) throw new FormatError(file, `tensor "${name}" has unknown type ${type}`);
      const [block, blockBytes] = QUANT_SIZES[type];
      if (ne[0]! % block !== 0) throw new FormatError(file, `tensor "${name}": rows of ${ne[0]} values are not a multiple of ${quantTypeName(type)}'s block size ${block}`);
      const rows = ne.slice(1).reduce((x, y) => x * y, 1);
      const nbytes = (ne[0]! / block) * blockBytes * rows;
      if (!Number.isSafeInteger(nbytes)) throw new FormatError(file, `tensor "${name}" is too large ([${ne.join(", ")}])`);
      const offset = c.u64(`offset of "${name}"`);
      tensors.push({ name, shape: [...ne].reverse(), ne, type, offset, nbytes });
    }

    const dataOffset = alignUp(c.pos, alignment);
    let expected = 0;
    for (const t of tensors) {
      if (t.offset !== expected) {
        throw new FormatError(file, `tensor "${t.name}" starts at data offset ${t.offset}; ggml expects ${expected} (tensors packed in order, each padded to ${alignment} bytes)`);
      }
      if (dataOffset + t.offset + t.nbytes > size) {
        throw new FormatError(file, `tensor "${t.name}" ends at byte ${dataOffset + t.offset + t.nbytes}, past the end of the file (${size} bytes)`);
      }
      expected = alignUp(t.offset + t.nbytes, alignment);
    }
    return new GgufFile(file, fd, size, version, metadata, tensors, alignment, dataOffset);
  }

  /** A metadata value (arrays as arrays), or undefined. */
  get(key: string): Scalar | readonly Scalar[] | undefined {
    return this.metadata.get(key)?.value;
  }

  tensor(name: string): GgufTensor {
    this.byName ??= new Map(this.tensors.map((x) => [x.name, x]));
    const t = this.byName.get(name);
    if (!t) throw new FormatError(this.file, `no tensor named "${name}"`);
    return t;
  }

  /** The tensor's stored bytes. */
  readBytes(name: string): Uint8Array {
    if (this.fd === null) throw new FormatError(this.file, "is closed");
    const t = this.tensor(name);
    const out = new Uint8Array(t.nbytes);
    let done = 0;
    while (done < t.nbytes) {
      const n = fs.readSync(this.fd, out, done, t.nbytes - done, this.dataOffset + t.offset + done);
      if (n === 0) throw new FormatError(this.file, `tensor "${name}" is truncated`);
      done += n;
    }
    return out;
  }

  /** The tensor unpacked to float32 (row-major, `shape` order). */
  readFloat32(name: string): Float32Array {
    const t = this.tensor(name);
    try {
      return dequantize(t.type, this.readBytes(name));
    } catch (e) {
      if (e instanceof FormatError) throw e;
      throw new FormatError(this.file, `tensor "${name}": ${(e as Error).message}`);
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}
