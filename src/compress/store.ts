// Where compressed layers wait until the output is written. The pipeline finishes one decoder
// layer at a time; keeping every compressed weight in memory would hold the whole model, so each
// layer's results are spilled to a safetensors file in a scratch folder and read back lazily
// (by the writers, by the next recipe stage, by evaluation of the in-memory result).
// The part files are also a resumable job's record of its completed layers (compress/resume.ts):
// each is written atomically, and `reopen` restores a store from the parts a commit listed.
import fs from "node:fs";
import path from "node:path";
import { bytesToFloat32, SafetensorsFile, writeSafetensors, type TensorToWrite } from "../formats/safetensors.js";
import type { WeightSource } from "../formats/weights.js";
import { Tensor } from "../tensor/tensor.js";
import type { CompressedLinear, QuantGrid } from "../formats/compressed-linear.js";

interface Meta {
  shape: number[];
  mask: boolean;
  quant?: { bits: number; sym: boolean; groupSize: number; gIdx: boolean };
  loss?: number;
}

const bytesOf = (a: Float32Array | Int32Array | Uint8Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

export class CompressedStore {
  private readonly files = new Map<string, SafetensorsFile>(); // linear name → its layer file
  private readonly meta = new Map<string, Meta>();
  private counter = 0;

  constructor(readonly dir: string) {
    fs.mkdirSync(dir, { recursive: true });
  }

  /**
   * The store whose parts are `parts` (file names in `dir`, in the order they were written); any
   * other file there (a part written after the last commit, a temporary) is removed.
   */
  static reopen(dir: string, parts: readonly string[]): CompressedStore {
    const store = new CompressedStore(dir);
    const keep = new Set(parts);
    for (const f of fs.readdirSync(dir)) if (!keep.has(f)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
    for (const part of parts) {
      const opened = SafetensorsFile.open(path.join(dir, part));
      for (const [name, meta] of Object.entries(opened.metadata)) {
        store.files.set(name, opened);
        store.meta.set(name, JSON.parse(meta));
      }
      store.counter++;
    }
    return store;
  }

  /** The part files written so far, in order (what a resumable job commits). */
  parts(): string[] {
    return Array.from({ length: this.counter }, (_, i) => partName(i));
  }

  /** Saves the results of one unit of work (a layer); overwrites earlier results of the same names. */
  put(items: CompressedLinear[]): void {
    if (items.length === 0) return;
    const tensors: TensorToWrite[] = [];
    const meta: Record<string, string> = {};
    for (const c of items) {
      const m: Meta = { shape: [...c.weight.shape], mask: Boolean(c.mask), loss: c.loss };
      tensors.push({ name: `${c.name}.weight`, dtype: "F32", shape: c.weight.shape, data: bytesOf(c.weight.data) });
      if (c.mask) tensors.push({ name: `${c.name}.mask`, dtype: "U8", shape: [Math.ceil(c.mask.length / 8)], data: packBits(c.mask) });
      if (c.quant) {
        const q = c.quant;
        const groups = q.scale.length / c.weight.shape[0]!;
        m.quant = { bits: q.bits, sym: q.sym, groupSize: q.groupSize, gIdx: Boolean(q.gIdx) };
        tensors.push({ name: `${c.name}.scale`, dtype: "F32", shape: [c.weight.shape[0]!, groups], data: bytesOf(q.scale) });
        tensors.push({ name: `${c.name}.zero`, dtype: "F32", shape: [c.weight.shape[0]!, groups], data: bytesOf(q.zero) });
        if (q.gIdx) tensors.push({ name: `${c.name}.g_idx`, dtype: "I32", shape: [q.gIdx.length], data: bytesOf(q.gIdx) });
      }
      meta[c.name] = JSON.stringify(m);
    }
    const file = path.join(this.dir, partName(this.counter++));
    writeSafetensors(file, tensors, meta);
    const opened = SafetensorsFile.open(file);
    for (const c of items) {
      this.files.set(c.name, opened);
      this.meta.set(c.name, JSON.parse(meta[c.name]!));
    }
  }

  names(): string[] {
    return [...this.meta.keys()];
  }

  has(name: string): boolean {
    return this.meta.has(name);
  }

  /** Whether the stored result of a linear carries a quantization grid. */
  isQuantized(name: string): boolean {
    return Boolean(this.meta.get(name)?.quant);
  }

  /** The dense compressed weight of a linear. */
  weight(name: string): Float32Array {
    return this.read(name, "weight");
  }

  get(name: string): CompressedLinear {
    const m = this.meta.get(name);
    if (!m) throw new Error(`no compressed result for ${name}`);
    const f = this.files.get(name)!;
    const out: CompressedLinear = { name, weight: new Tensor(this.read(name, "weight"), m.shape), loss: m.loss };
    if (m.mask) out.mask = unpackBits(f.readBytes(`${name}.mask`), out.weight.size);
    if (m.quant) {
      const grid: QuantGrid = {
        bits: m.quant.bits,
        sym: m.quant.sym,
        groupSize: m.quant.groupSize,
        scale: this.read(name, "scale"),
        zero: this.read(name, "zero"),
      };
      if (m.quant.gIdx) {
        const b = f.readBytes(`${name}.g_idx`);
        grid.gIdx = new Int32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      }
      out.quant = grid;
    }
    return out;
  }

  private read(name: string, part: string): Float32Array {
    const f = this.files.get(name);
    if (!f) throw new Error(`no compressed result for ${name}`);
    return bytesToFloat32(f.readBytes(`${name}.${part}`), "F32", f.file);
  }

  /** `base` with every stored linear's weight replaced by its compressed version. */
  over(base: WeightSource): WeightSource {
    const store = this;
    const linearOf = (tensor: string) => (tensor.endsWith(".weight") ? tensor.slice(0, -".weight".length) : null);
    return {
      location: base.location,
      names: () => base.names(),
      has: (n) => base.has(n),
      shape: (n) => base.shape(n),
      dtype: (n) => (store.has(linearOf(n) ?? "") ? "F32" : base.dtype(n)),
      storedBytes: (n) => base.storedBytes(n),
      read: (n) => {
        const l = linearOf(n);
        return l && store.has(l) ? store.weight(l) : base.read(n);
      },
      close: () => base.close(),
    };
  }

  /** Closes the part files and keeps them (an interrupted job resumes from them). */
  close(): void {
    const seen = new Set(this.files.values());
    for (const f of seen) f.close();
    this.files.clear();
    this.meta.clear();
  }

  dispose(): void {
    this.close();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

const partName = (i: number) => `part-${String(i).padStart(5, "0")}.safetensors`;

// masks are 0/1 per weight: stored 8 to a byte (a 7B model's masks: 0.8 GB instead of 6.7 GB)
function packBits(mask: Uint8Array): Uint8Array {
  const out = new Uint8Array(Math.ceil(mask.length / 8));
  for (let i = 0; i < mask.length; i++) if (mask[i]) out[i >> 3]! |= 1 << (i & 7);
  return out;
}

function unpackBits(bits: Uint8Array, length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = (bits[i >> 3]! >> (i & 7)) & 1;
  return out;
}
