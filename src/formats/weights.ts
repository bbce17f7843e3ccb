// WeightSource: where a model's float32 weights come from. The model and the pipeline only see
// this interface, so a plain checkpoint, a compressed-tensors checkpoint (dequantized on read) and
// an in-memory overlay of freshly compressed weights all run the same forward.
import type { QuantGrid } from "./compressed-linear.js";
import { FormatError } from "./errors.js";
import { SafetensorsModel } from "./safetensors.js";

export interface WeightSource {
  /** Where the weights live, for error messages. */
  readonly location: string;
  names(): string[];
  has(name: string): boolean;
  shape(name: string): readonly number[];
  /** The tensor as float32 (a fresh array the caller may keep). */
  read(name: string): Float32Array;
  /** Bytes per element as stored (4 for F32, 2 for F16/BF16), for size reports. */
  storedBytes(name: string): number;
  dtype(name: string): string;
  /**
   * For checkpoints that store integer codes (compressed-tensors pack-quantized, …): the grid
   * and codes [rows·cols] of a quantized weight, so exporters can keep them instead of
   * re-quantizing. Absent or null for a plain float tensor.
   */
  quantized?(name: string): { grid: QuantGrid; codes: Uint8Array; shape: readonly number[] } | null;
  /**
   * True for a linear's weight that its checkpoint stores [in, out] — GPT-2's Conv1D, the
   * transpose of the [out, in] matrix topiary computes with (models/checkpoint-view.ts). Formats
   * that define their own layout (compressed-tensors) cannot hold such a weight. Absent: never.
   */
  storedTransposed?(name: string): boolean;
  close(): void;
}

export class SafetensorsWeights implements WeightSource {
  private constructor(
    readonly location: string,
    private readonly st: SafetensorsModel,
  ) {}

  static open(location: string): SafetensorsWeights {
    const st = SafetensorsModel.open(location);
    return new SafetensorsWeights(st.location, st);
  }

  get checkpoint(): SafetensorsModel {
    return this.st;
  }

  names(): string[] {
    return this.st.names();
  }

  has(name: string): boolean {
    return this.st.has(name);
  }

  shape(name: string): readonly number[] {
    return this.st.info(name).shape;
  }

  dtype(name: string): string {
    return this.st.info(name).dtype;
  }

  storedBytes(name: string): number {
    const t = this.st.info(name);
    return t.end - t.begin;
  }

  read(name: string): Float32Array {
    const t = this.st.info(name);
    if (!["F32", "F16", "BF16", "F64"].includes(t.dtype)) {
      throw new FormatError(t.file, `tensor "${name}" has dtype ${t.dtype}; expected a floating type (F32, F16, BF16)`);
    }
    return this.st.readFloat32(name);
  }

  close(): void {
    this.st.close();
  }
}

/** A base source with some tensors replaced by in-memory arrays (e.g. just-compressed weights). */
export class OverlayWeights implements WeightSource {
  readonly overrides = new Map<string, Float32Array>();

  constructor(readonly base: WeightSource) {}

  get location(): string {
    return this.base.location;
  }

  set(name: string, data: Float32Array): void {
    this.overrides.set(name, data);
  }

  names(): string[] {
    return this.base.names();
  }

  has(name: string): boolean {
    return this.overrides.has(name) || this.base.has(name);
  }

  shape(name: string): readonly number[] {
    return this.base.shape(name);
  }

  dtype(name: string): string {
    return this.overrides.has(name) ? "F32" : this.base.dtype(name);
  }

  storedBytes(name: string): number {
    return this.base.storedBytes(name);
  }

  read(name: string): Float32Array {
    const o = this.overrides.get(name);
    return o ? o.slice() : this.base.read(name);
  }

  close(): void {
    this.base.close();
  }
}
