// A protobuf *writer*, just enough to serialise ONNX ModelProto (varints, fixed32 floats,
// length-delimited bytes and sub-messages). Written by hand because the alternatives
// (protobufjs + generated onnx.proto code) are a large runtime dependency for ~80 lines of
// encoding, and ONNX export needs to stream multi-gigabyte raw_data without extra copies:
// a message here is a list of byte chunks that are concatenated once, at the end.

export class ProtoWriter {
  private chunks: Uint8Array[] = [];
  private scratch: number[] = [];
  length = 0;

  private flushScratch(): void {
    if (this.scratch.length === 0) return;
    const b = Uint8Array.from(this.scratch);
    this.chunks.push(b);
    this.length += b.length;
    this.scratch = [];
  }

  private byte(b: number): void {
    this.scratch.push(b);
  }

  private varint(v: number | bigint): void {
    let x = BigInt.asUintN(64, BigInt(v)); // negative int64 → two's complement, 10 bytes
    if (typeof v === "number" && v >= 0 && v < 2 ** 31) {
      let n = v;
      while (n >= 0x80) {
        this.byte((n & 0x7f) | 0x80);
        n >>>= 7;
      }
      this.byte(n);
      return;
    }
    while (x >= 0x80n) {
      this.byte(Number(x & 0x7fn) | 0x80);
      x >>= 7n;
    }
    this.byte(Number(x));
  }

  private tag(field: number, wireType: number): void {
    this.varint((field << 3) | wireType);
  }

  /** int32 / int64 / enum field (wire type 0). */
  int(field: number, v: number | bigint): this {
    this.tag(field, 0);
    this.varint(v);
    return this;
  }

  /** float field (wire type 5, little-endian). */
  float(field: number, v: number): this {
    this.tag(field, 5);
    const b = new Uint8Array(new Float32Array([v]).buffer);
    for (const x of b) this.byte(x);
    return this;
  }

  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }

  /** Length-delimited bytes (wire type 2); large buffers are kept by reference, not copied. */
  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2);
    this.varint(data.length);
    this.flushScratch();
    this.chunks.push(data);
    this.length += data.length;
    return this;
  }

  message(field: number, m: ProtoWriter): this {
    m.flushScratch();
    this.tag(field, 2);
    this.varint(m.length);
    this.flushScratch();
    this.chunks.push(...m.chunks);
    this.length += m.length;
    return this;
  }

  /** packed repeated int64 */
  packedInts(field: number, values: readonly (number | bigint)[]): this {
    const inner = new ProtoWriter();
    for (const v of values) inner.varint(v);
    inner.flushScratch();
    this.tag(field, 2);
    this.varint(inner.length);
    this.flushScratch();
    this.chunks.push(...inner.chunks);
    this.length += inner.length;
    return this;
  }

  /** packed repeated float */
  packedFloats(field: number, values: readonly number[]): this {
    return this.bytes(field, new Uint8Array(new Float32Array(values).buffer));
  }

  /** The chunks, for streaming to a file without one big concatenation. */
  parts(): Uint8Array[] {
    this.flushScratch();
    return this.chunks;
  }

  finish(): Uint8Array {
    this.flushScratch();
    const out = new Uint8Array(this.length);
    let off = 0;
    for (const c of this.chunks) {
      out.set(c, off);
      off += c.length;
    }
    return out;
  }
}
