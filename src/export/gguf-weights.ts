// A GGUF file written by export/gguf.ts, read back as Hugging Face-named float32 weights: names
// mapped back (formats/gguf/names.ts), blocks dequantized as ggml does, q/k rows returned to HF's
// rotate_half order. So topiary can evaluate exactly the weights llama.cpp runs.
import { FormatError } from "../formats/errors.js";
import { archKey, Keys, quantTypeName } from "../formats/gguf/constants.js";
import { hfTensorName } from "../formats/gguf/names.js";
import type { GgufFile, GgufTensor } from "../formats/gguf/reader.js";
import type { WeightSource } from "../formats/weights.js";
import { LAYER_TENSORS } from "../models/llama.js";
import { unpermuteRows } from "./gguf-tensors.js";

export class GgufWeights implements WeightSource {
  private readonly byHf = new Map<string, GgufTensor>();
  private readonly heads: { q: number; kv: number };

  constructor(readonly gguf: GgufFile) {
    for (const t of gguf.tensors) {
      const hf = hfTensorName(t.name);
      if (hf) this.byHf.set(hf, t);
    }
    const arch = String(gguf.get(Keys.General.ARCHITECTURE));
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
    const data = this.gguf.readFloat32(t.name);
    if (name.endsWith(`${LAYER_TENSORS.q}.weight`)) return unpermuteRows(data, t.shape[0]!, this.heads.q);
    if (name.endsWith(`${LAYER_TENSORS.k}.weight`)) return unpermuteRows(data, t.shape[0]!, this.heads.kv);
    return data;
  }

  close(): void {
    this.gguf.close();
  }
}
