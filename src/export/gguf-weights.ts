// A GGUF file written by export/gguf.ts, read back as Hugging Face-named float32 weights: names
// mapped back and layouts undone by the family's adapter (models/family.ts `gguf`: Llama returns
// q/k rows to HF's rotate_half order), blocks dequantized as ggml does. So topiary can evaluate
// exactly the weights llama.cpp runs.
import { FormatError } from "../formats/errors.js";
import { archKey, Keys, quantTypeName } from "../formats/gguf/constants.js";
import type { GgufFile, GgufTensor } from "../formats/gguf/reader.js";
import type { WeightSource } from "../formats/weights.js";
import type { GgufFamily } from "../models/family.js";
import { familyOfGgufArch } from "../models/registry.js";

export class GgufWeights implements WeightSource {
  private readonly byHf = new Map<string, GgufTensor>();
  private readonly heads: { q: number; kv: number };
  private readonly family: GgufFamily;

  constructor(readonly gguf: GgufFile) {
    const arch = String(gguf.get(Keys.General.ARCHITECTURE));
    const family = familyOfGgufArch(arch)?.gguf;
    if (!family) throw new FormatError(gguf.file, `topiary cannot read llama.cpp architecture "${arch}" back`);
    this.family = family;
    for (const t of gguf.tensors) {
      const hf = family.hfName(t.name);
      if (hf) this.byHf.set(hf, t);
    }
    const q = Number(gguf.get(archKey(Keys.Attention.HEAD_COUNT, arch)));
    const kv = Number(gguf.get(archKey(Keys.Attention.HEAD_COUNT_KV, arch)) ?? q);
    if (!Number.isInteger(q) || q <= 0) throw new FormatError(gguf.file, `missing ${archKey(Keys.Attention.HEAD_COUNT, arch)}`);
    this.heads = { q, kv };
  }

  get location(): string {
    return this.gguf.file;
  }

  names(): string[] {
    return [...this.byHf.keys()];
  }

  has(name: string): boolean {
    return this.byHf.has(name);
  }

  private tensor(name: string): GgufTensor {
    const t = this.byHf.get(name);
    if (!t) throw new FormatError(this.gguf.file, `no tensor for "${name}"`);
    return t;
  }

  shape(name: string): readonly number[] {
    return this.tensor(name).shape;
  }

  dtype(name: string): string {
    return quantTypeName(this.tensor(name).type);
  }

  storedBytes(name: string): number {
    return this.tensor(name).nbytes;
  }

  read(name: string): Float32Array {
    const t = this.tensor(name);
    return this.family.fromGguf(name, this.gguf.readFloat32(t.name), t.shape, this.heads);
  }

  close(): void {
    this.gguf.close();
  }
}
