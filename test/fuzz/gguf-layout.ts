// Where things are in a (valid) GGUF file's header, so the fuzzer can overwrite one field with a
// bad value: a minimal walker over the key/values and tensor infos (GGUF v3).

export interface GgufLayout {
  /** byte position of: the key's length, its type, its value (for arrays: the item type) */
  kvs: { key: string; keyLen: number; type: number; typePos: number; valuePos: number; arrayLenPos: number | null }[];
  tensors: { name: string; nameLen: number; nDims: number; dims: number[]; typePos: number; offsetPos: number }[];
  /** end of the tensor infos (the data section starts at the next alignment boundary) */
  headerEnd: number;
}

const SCALAR: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };

export function ggufLayout(b: Buffer): GgufLayout {
  let p = 24;
  const nTensors = Number(b.readBigUInt64LE(8));
  const nKv = Number(b.readBigUInt64LE(16));
  const str = () => {
    const n = Number(b.readBigUInt64LE(p));
    const s = b.subarray(p + 8, p + 8 + n).toString("utf8");
    p += 8 + n;
    return s;
  };
  const skipValue = (type: number) => {
    if (type === 8) str();
    else p += SCALAR[type]!;
  };
  const kvs: GgufLayout["kvs"] = [];
  for (let i = 0; i < nKv; i++) {
    const keyLen = p;
    const key = str();
    const typePos = p;
    const type = b.readUInt32LE(p);
    p += 4;
    const valuePos = p;
    let arrayLenPos: number | null = null;
    if (type === 9) {
      const item = b.readUInt32LE(p);
      arrayLenPos = p + 4;
      const n = Number(b.readBigUInt64LE(p + 4));
      p += 12;
      for (let j = 0; j < n; j++) skipValue(item);
    } else skipValue(type);
    kvs.push({ key, keyLen, type, typePos, valuePos, arrayLenPos });
  }
  const tensors: GgufLayout["tensors"] = [];
  for (let i = 0; i < nTensors; i++) {
    const nameLen = p;
    const name = str();
    const nDims = p;
    const n = b.readUInt32LE(p);
    p += 4;
    const dims: number[] = [];
    for (let d = 0; d < n; d++, p += 8) dims.push(p);
    const typePos = p;
    p += 4;
    const offsetPos = p;
    p += 8;
    tensors.push({ name, nameLen, nDims, dims, typePos, offsetPos });
  }
  return { kvs, tensors, headerEnd: p };
}
