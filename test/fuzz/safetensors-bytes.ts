// Taking a safetensors file apart and putting it back together, without validation, so the fuzzer
// can build files that are broken in one chosen way (and, where it wants, consistent otherwise).

export interface RawTensor {
  dtype: string;
  shape: number[];
  bytes: Buffer;
}

/** The tensors of a (valid) safetensors file, in data order, and its __metadata__. */
export function splitSafetensors(file: Buffer): { tensors: Map<string, RawTensor>; metadata?: Record<string, string> } {
  const n = Number(file.readBigUInt64LE(0));
  const header = JSON.parse(file.subarray(8, 8 + n).toString("utf8")) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const data = file.subarray(8 + n);
  const entries = Object.entries(header).filter(([k]) => k !== "__metadata__");
  entries.sort((a, b) => a[1].data_offsets[0] - b[1].data_offsets[0]);
  const tensors = new Map<string, RawTensor>();
  for (const [name, e] of entries) tensors.set(name, { dtype: e.dtype, shape: e.shape, bytes: data.subarray(e.data_offsets[0], e.data_offsets[1]) });
  return { tensors, metadata: header.__metadata__ as unknown as Record<string, string> | undefined };
}

/** Header JSON text (space-padded to 8 bytes) + data, with an 8-byte length prefix. */
export function joinRaw(headerText: string, data: Buffer, lengthOverride?: bigint): Buffer {
  const text = headerText + " ".repeat((8 - (Buffer.byteLength(headerText) % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(lengthOverride ?? BigInt(Buffer.byteLength(text)));
  return Buffer.concat([len, Buffer.from(text, "utf8"), data]);
}

/**
 * Serializes tensors contiguously; `entry` may rewrite any header entry afterwards (offsets
 * included), so the header can lie about the data.
 */
export function joinSafetensors(
  tensors: Map<string, RawTensor>,
  entry: (name: string, e: Record<string, unknown>) => Record<string, unknown> = (_n, e) => e,
  metadata?: unknown,
): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) header.__metadata__ = metadata;
  let off = 0;
  const parts: Buffer[] = [];
  for (const [name, t] of tensors) {
    // a fresh shape array per call: `entry` may edit it, and the next case must start clean
    header[name] = entry(name, { dtype: t.dtype, shape: [...t.shape], data_offsets: [off, off + t.bytes.length] });
    off += t.bytes.length;
    parts.push(t.bytes);
  }
  return joinRaw(JSON.stringify(header), Buffer.concat(parts));
}
