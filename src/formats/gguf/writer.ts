// GGUF writer, after gguf-py gguf_writer.py: everything is declared first (key/values, tensor
// infos with their types and shapes), then the file is written in its order
//   header → key/values → tensor infos → padding → tensor data (each tensor padded)
// and a state enum refuses any other order. Tensor data is streamed one tensor at a time in the
// order the infos were declared, so a model never has to be in memory whole. `writeGguf` wraps
// it all in an atomic write (temporary file, renamed when complete).
import { writeAll, writeFileAtomic } from "../atomic.js";
import { GGML_MAX_DIMS, GGUF_DEFAULT_ALIGNMENT, GGUF_MAGIC, GGUF_VERSION, Keys, QuantType, SCALAR_SIZES, tensorBytes, ValueType } from "./constants.js";

export type Scalar = string | number | bigint | boolean;

/** A metadata value with its GGUF type; arrays carry their item type. */
export type MetadataValue =
  | { type: Exclude<ValueType, ValueType.ARRAY>; value: Scalar }
  | { type: ValueType.ARRAY; itemType: Exclude<ValueType, ValueType.ARRAY>; value: readonly Scalar[] };

enum WriterState {
  EMPTY = "EMPTY",
  HEADER = "HEADER",
  KV_DATA = "KV_DATA",
  TI_DATA = "TI_DATA",
  WEIGHTS = "WEIGHTS",
}

export interface TensorInfo {
  name: string;
  /** outermost first, as numpy/torch write it; GGUF stores the reverse (ne[0] = row length) */
  shape: readonly number[];
  type: QuantType;
  /** byte offset from the start of the data section */
  offset: number;
  nbytes: number;
}

/** Little-endian byte builder for the header, key/values and tensor infos. */
class Bytes {
  private chunks: Buffer[] = [];
  length = 0;

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  u8(v: number): void {
    this.push(Buffer.from([v & 0xff]));
  }

  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }

  u64(v: number | bigint): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }

  string(s: string): void {
    const b = Buffer.from(s, "utf8");
    this.u64(b.length);
    this.push(b);
  }

  scalar(type: ValueType, v: Scalar, key: string): void {
    if (type === ValueType.STRING) {
      if (typeof v !== "string") throw new Error(`metadata "${key}": expected a string, got ${typeof v}`);
      this.string(v);
      return;
    }
    if (type === ValueType.BOOL) {
      if (typeof v !== "boolean") throw new Error(`metadata "${key}": expected a boolean, got ${typeof v}`);
      this.u8(v ? 1 : 0);
      return;
    }
    if (typeof v !== "number" && typeof v !== "bigint") throw new Error(`metadata "${key}": expected a number for ${ValueType[type]}, got ${typeof v}`);
    const size = SCALAR_SIZES[type as keyof typeof SCALAR_SIZES];
    if (size === undefined) throw new Error(`metadata "${key}": value type ${type} cannot be written as a scalar`);
    const b = Buffer.alloc(size);
    switch (type) {
      case ValueType.UINT8:
        b.writeUInt8(Number(v));
        break;
      case ValueType.INT8:
        b.writeInt8(Number(v));
        break;
      case ValueType.UINT16:
        b.writeUInt16LE(Number(v));
        break;
      case ValueType.INT16:
        b.writeInt16LE(Number(v));
        break;
      case ValueType.UINT32:
        b.writeUInt32LE(Number(v));
        break;
      case ValueType.INT32:
        b.writeInt32LE(Number(v));
        break;
      case ValueType.FLOAT32:
        b.writeFloatLE(Number(v));
        break;
      case ValueType.UINT64:
        b.writeBigUInt64LE(BigInt(v));
        break;
      case ValueType.INT64:
        b.writeBigInt64LE(BigInt(v));
        break;
      case ValueType.FLOAT64:
        b.writeDoubleLE(Number(v));
        break;
    }
    this.push(b);
  }

  take(): Buffer {
    const out = Buffer.concat(this.chunks);
    this.chunks = [];
    this.length = 0;
    return out;
  }
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

export class GgufWriter {
  private state = WriterState.EMPTY;
  private readonly kv = new Map<string, MetadataValue>();
  private readonly infos: TensorInfo[] = [];
  private readonly byName = new Map<string, TensorInfo>();
  private dataBytes = 0;
  /** bytes written so far (for padding) */
  private position = 0;
  private nextTensor = 0;

  constructor(
    private readonly fd: number,
    /** the file's name, for errors */
    readonly file: string,
    readonly alignment = GGUF_DEFAULT_ALIGNMENT,
  ) {
    if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) throw new Error(`${file}: alignment must be a positive multiple of 8, got ${alignment}`);
  }

  private expect(state: WriterState, what: string): void {
    if (this.state !== state) throw new Error(`${this.file}: ${what}: expected state ${state}, got ${this.state}`);
  }

  addKeyValue(key: string, v: MetadataValue): void {
    this.expect(WriterState.EMPTY, `cannot add key "${key}" after writing started`);
    if (this.kv.has(key)) throw new Error(`${this.file}: duplicate key "${key}"`);
    if (key === Keys.General.ALIGNMENT && Number(v.value) !== this.alignment) {
      throw new Error(`${this.file}: key "${key}" is ${String(v.value)} but the writer aligns to ${this.alignment}`);
    }
    this.kv.set(key, v);
  }

  addString(key: string, value: string): void {
    this.addKeyValue(key, { type: ValueType.STRING, value });
  }

  addUint32(key: string, value: number): void {
    this.addKeyValue(key, { type: ValueType.UINT32, value });
  }

  addFloat32(key: string, value: number): void {
    this.addKeyValue(key, { type: ValueType.FLOAT32, value });
  }

  addBool(key: string, value: boolean): void {
    this.addKeyValue(key, { type: ValueType.BOOL, value });
  }

  addArray(key: string, itemType: Exclude<ValueType, ValueType.ARRAY>, value: readonly Scalar[]): void {
    this.addKeyValue(key, { type: ValueType.ARRAY, itemType, value });
  }

  /** Declares a tensor; its data must later be written in declaration order. */
  addTensorInfo(name: string, shape: readonly number[], type: QuantType): TensorInfo {
    this.expect(WriterState.EMPTY, `cannot add tensor "${name}" after writing started`);
    if (this.byName.has(name)) throw new Error(`${this.file}: duplicate tensor name "${name}"`);
    if (shape.length === 0 || shape.length > GGML_MAX_DIMS || shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new Error(`${this.file}: tensor "${name}" has shape [${shape.join(", ")}]; GGUF needs 1 to ${GGML_MAX_DIMS} positive dimensions`);
    }
    const rowLength = shape[shape.length - 1]!;
    let nbytes: number;
    try {
      nbytes = tensorBytes(type, rowLength, shape.slice(0, -1).reduce((a, b) => a * b, 1));
    } catch (e) {
      throw new Error(`${this.file}: tensor "${name}": ${(e as Error).message}`);
    }
    const info: TensorInfo = { name, shape: [...shape], type, offset: this.dataBytes, nbytes };
    this.dataBytes = alignUp(this.dataBytes + nbytes, this.alignment);
    this.infos.push(info);
    this.byName.set(name, info);
    return info;
  }

  get tensors(): readonly TensorInfo[] {
    return this.infos;
  }

  private emit(b: Uint8Array): void {
    writeAll(this.fd, b);
    this.position += b.length;
  }

  private pad(): void {
    const n = alignUp(this.position, this.alignment) - this.position;
    if (n > 0) this.emit(new Uint8Array(n));
  }

  writeHeader(): void {
    this.expect(WriterState.EMPTY, "cannot write the header");
    const b = new Bytes();
    b.u32(GGUF_MAGIC);
    b.u32(GGUF_VERSION);
    b.u64(this.infos.length);
    b.u64(this.kv.size);
    this.emit(b.take());
    this.state = WriterState.HEADER;
  }

  writeKvData(): void {
    this.expect(WriterState.HEADER, "cannot write key/values before the header");
    const b = new Bytes();
    for (const [key, v] of this.kv) {
      b.string(key);
      b.u32(v.type);
      if (v.type === ValueType.ARRAY) {
        b.u32(v.itemType);
        b.u64(v.value.length);
        for (const item of v.value) b.scalar(v.itemType, item, key);
      } else {
        b.scalar(v.type, v.value, key);
      }
    }
    this.emit(b.take());
    this.state = WriterState.KV_DATA;
  }

  writeTensorInfos(): void {
    this.expect(WriterState.KV_DATA, "cannot write tensor infos before the key/values");
    const b = new Bytes();
    for (const t of this.infos) {
      b.string(t.name);
      b.u32(t.shape.length);
      for (let i = t.shape.length - 1; i >= 0; i--) b.u64(t.shape[i]!);
      b.u32(t.type);
      b.u64(t.offset);
    }
    this.emit(b.take());
    this.pad();
    this.state = WriterState.TI_DATA;
  }

  /** Writes the next tensor's bytes (declaration order), padded to the alignment. */
  writeTensorData(name: string, data: Uint8Array): void {
    if (this.state !== WriterState.TI_DATA && this.state !== WriterState.WEIGHTS) {
      throw new Error(`${this.file}: cannot write tensor "${name}": expected state ${WriterState.TI_DATA} or ${WriterState.WEIGHTS}, got ${this.state}`);
    }
    const t = this.infos[this.nextTensor];
    if (!t) throw new Error(`${this.file}: tensor "${name}" was not declared (all ${this.infos.length} tensors are written)`);
    if (t.name !== name) throw new Error(`${this.file}: expected data of tensor "${t.name}" next, got "${name}"`);
    if (data.byteLength !== t.nbytes) {
      throw new Error(`${this.file}: tensor "${name}" has ${data.byteLength} bytes; ${QuantType[t.type]} [${t.shape.join(", ")}] needs ${t.nbytes}`);
    }
    this.emit(data);
    this.pad();
    this.nextTensor++;
    this.state = WriterState.WEIGHTS;
  }

  /** Checks that every declared tensor was written. */
  finish(): void {
    if (this.nextTensor !== this.infos.length) {
      throw new Error(`${this.file}: ${this.infos.length - this.nextTensor} of ${this.infos.length} tensors were not written (next: "${this.infos[this.nextTensor]!.name}")`);
    }
    if (this.state === WriterState.EMPTY || this.state === WriterState.HEADER) throw new Error(`${this.file}: nothing was written past the ${this.state}`);
  }
}

export interface GgufTensorToWrite {
  name: string;
  shape: readonly number[];
  type: QuantType;
  /** produces the bytes when it is this tensor's turn (one tensor in memory at a time) */
  data: () => Uint8Array;
}

/**
 * Writes a whole GGUF file atomically: on any error (a tensor that cannot be produced, a size
 * mismatch) nothing is left at `file`. Returns the declared tensor infos.
 */
export function writeGguf(
  file: string,
  metadata: Iterable<readonly [string, MetadataValue]>,
  tensors: readonly GgufTensorToWrite[],
  opts: { alignment?: number } = {},
): readonly TensorInfo[] {
  let infos: readonly TensorInfo[] = [];
  writeFileAtomic(file, (fd) => {
    const w = new GgufWriter(fd, file, opts.alignment);
    for (const [k, v] of metadata) w.addKeyValue(k, v);
    for (const t of tensors) w.addTensorInfo(t.name, t.shape, t.type);
    w.writeHeader();
    w.writeKvData();
    w.writeTensorInfos();
    for (const t of tensors) w.writeTensorData(t.name, t.data());
    w.finish();
    infos = w.tensors;
  });
  return infos;
}
