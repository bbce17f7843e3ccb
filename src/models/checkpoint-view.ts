// Checkpoint layout ↔ topiary layout, for families whose files differ from what the adapters read
// (FamilyAdapter.checkpointView):
//   - a missing base-model prefix: GPT-2 / BLOOM files saved from the base model hold
//     `h.0.attn.c_attn.weight` and `wte.weight` instead of `transformer.h.0…`, OPT's
//     `decoder.layers…` instead of `model.decoder.layers…`, GPT-NeoX's `layers…` instead of
//     `gpt_neox.layers…`;
//   - GPT-2's Conv1D stores W as [in, out]: topiary sees (and compresses) the [out, in] transpose.
// The view renames and transposes on read; nothing is copied until a tensor is read.
import type { WeightSource } from "../formats/weights.js";
import { transpose } from "./fused-layout.js";

/** A WeightSource under other names (view name → base name), some tensors transposed (2-D). */
export class RenamedWeights implements WeightSource {
  private readonly fromBase = new Map<string, string>();

  constructor(
    readonly base: WeightSource,
    private readonly toBase: ReadonlyMap<string, string>,
    private readonly transposed: ReadonlySet<string>,
  ) {
    for (const [view, b] of toBase) this.fromBase.set(b, view);
  }

  get location(): string {
    return this.base.location;
  }

  private baseName(name: string): string {
    return this.toBase.get(name) ?? name;
  }

  names(): string[] {
    return this.base.names().map((n) => this.fromBase.get(n) ?? n);
  }

  has(name: string): boolean {
    const b = this.toBase.get(name);
    if (b !== undefined) return this.base.has(b);
    // a base name that the view renamed is not visible under its old name
    return !this.fromBase.has(name) && this.base.has(name);
  }

  shape(name: string): readonly number[] {
    const s = this.base.shape(this.baseName(name));
    return this.transposed.has(name) ? [...s].reverse() : s;
  }

  read(name: string): Float32Array {
    const data = this.base.read(this.baseName(name));
    if (!this.transposed.has(name)) return data;
    const [rows, cols] = this.base.shape(this.baseName(name)) as [number, number];
    return transpose(data, rows, cols);
  }

  storedBytes(name: string): number {
    return this.base.storedBytes(this.baseName(name));
  }

  dtype(name: string): string {
    return this.base.dtype(this.baseName(name));
  }

  storedTransposed(name: string): boolean {
    return this.transposed.has(name) || (this.base.storedTransposed?.(this.baseName(name)) ?? false);
  }

  /** Integer codes keep their meaning under a new name; a transposed tensor has none to offer. */
  quantized(name: string): ReturnType<NonNullable<WeightSource["quantized"]>> {
    if (this.transposed.has(name) || !this.base.quantized) return null;
    return this.base.quantized(this.baseName(name)) ?? null;
  }

  close(): void {
    this.base.close();
  }
}

/**
 * The names a checkpoint stores the canonical names under: `prefix` + rest, or just rest when the
 * file was saved from the base model (no name starts with `prefix`, the stripped names exist).
 * Names outside the prefix (`lm_head.weight`, `embed_out.weight`) are the same either way.
 */
export function prefixMap(w: WeightSource, prefix: string, canonical: readonly string[]): Map<string, string> {
  const map = new Map<string, string>();
  const names = w.names();
  if (names.some((n) => n.startsWith(prefix))) return map;
  for (const name of canonical) {
    if (!name.startsWith(prefix)) continue;
    const stripped = name.slice(prefix.length);
    if (w.has(stripped)) map.set(name, stripped);
  }
  return map;
}
