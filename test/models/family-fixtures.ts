// Tiny random-weight checkpoints of any registered family, written as the family's own files
// (config.json + model.safetensors in the checkpoint's layout: GPT-2 Conv1D [in, out], optional
// missing base-model prefix), for tests of switches no golden checkpoint covers.
import fs from "node:fs";
import path from "node:path";
import { Rng } from "../../src/data/rng.js";
import type { WeightSource } from "../../src/formats/weights.js";
import { writeSafetensors } from "../../src/formats/safetensors.js";
import { familyOf } from "../../src/models/registry.js";
import { tempDir } from "../helpers.js";

/** float32 tensors held in memory, as a WeightSource. */
export class MemoryWeights implements WeightSource {
  readonly location = "<memory>";
  constructor(readonly tensors: Map<string, { shape: number[]; data: Float32Array }>) {}
  names(): string[] {
    return [...this.tensors.keys()];
  }
  has(name: string): boolean {
    return this.tensors.has(name);
  }
  private get(name: string) {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`<memory>: no tensor "${name}"`);
    return t;
  }
  shape(name: string): readonly number[] {
    return this.get(name).shape;
  }
  read(name: string): Float32Array {
    return Float32Array.from(this.get(name).data);
  }
  storedBytes(name: string): number {
    return this.get(name).data.length * 4;
  }
  dtype(): string {
    return "F32";
  }
  close(): void {}
}

export interface FixtureOptions {
  seed?: number;
  /** save without this base-model prefix ("transformer.", "model.", "gpt_neox.") */
  stripPrefix?: string;
  /** leave out these tensors (e.g. a tied head) */
  omit?: string[];
  /** store these tensors (topiary names) with another shape than the config implies */
  reshape?: Record<string, number[]>;
}

/**
 * Writes a model folder for `config` (a config.json object with `architectures`): every tensor
 * the family's adapter lists, N(0, 0.1)-ish uniform values (norm weights around 1), in the
 * checkpoint's layout. Returns the folder.
 */
export function familyFixture(config: Record<string, unknown>, opts: FixtureOptions = {}): string {
  const arch = (config.architectures as string[])[0]!;
  const family = familyOf(arch);
  if (!family) throw new Error(`no family for ${arch}`);
  const c = family.parseConfig("<fixture config>", config);
  const rng = new Rng(opts.seed ?? 1);
  const tensors = new Map<string, { shape: number[]; data: Float32Array }>();
  const add = (name: string, shape: number[]) => {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    const center = shape.length === 1 && /norm.*\.weight$|ln_.*\.weight$|layernorm\.weight$/.test(name) ? 1 : 0;
    const scale = shape.length === 1 ? 0.1 : 0.25;
    for (let i = 0; i < data.length; i++) data[i] = center + (2 * rng.next() - 1) * scale;
    tensors.set(name, { shape, data });
  };
  for (const t of family.globalTensors(c)) if (!t.optional || !c.tieWordEmbeddings) add(t.name, t.shape);
  for (let i = 0; i < c.numLayers; i++) for (const [suffix, shape] of family.layerTensors(c, i)) add(family.layerPrefix(i) + suffix, shape);
  for (const name of opts.omit ?? []) tensors.delete(name);
  for (const [name, shape] of Object.entries(opts.reshape ?? {})) add(name, shape);
  let stored: WeightSource = new MemoryWeights(tensors);
  if (family.checkpointView) stored = family.checkpointView.toCheckpoint(c, stored);
  const dir = path.join(tempDir("topiary-family-"), arch);
  fs.mkdirSync(dir);
  const rename = (n: string) => (opts.stripPrefix && n.startsWith(opts.stripPrefix) ? n.slice(opts.stripPrefix.length) : n);
  writeSafetensors(
    path.join(dir, "model.safetensors"),
    stored.names().map((name) => {
      const data = stored.read(name);
      return { name: rename(name), dtype: "F32" as const, shape: [...stored.shape(name)], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
    }),
  );
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config, null, 1));
  return dir;
}
