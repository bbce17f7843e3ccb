// Shared by the ONNX export tests: a checkpoint whose linears are stored as 4-bit codes (what a
// compressed-tensors reader offers through WeightSource.quantized), built in memory from
// stories260K with RTN g32, and the same weights dequantized for topiary's own forward.
import { rtnQuantize } from "../../src/compress/quant/grid.js";
import { dequantize, quantizeToCodes } from "../../src/formats/compressed-linear.js";
import type { QuantGrid } from "../../src/formats/compressed-linear.js";
import { OverlayWeights, type WeightSource } from "../../src/formats/weights.js";
import type { CausalLM } from "../../src/models/model.js";
import { Tensor } from "../../src/tensor/tensor.js";

export const PROMPTS = ["Once upon a time", "The little dog wanted to", "Lily and Tom went to the park. They"];

interface Quantized {
  grid: QuantGrid;
  codes: Uint8Array;
  shape: readonly number[];
}

/** A base checkpoint whose decoder linears read as dequantized codes and offer the codes too. */
class QuantizedCheckpoint extends OverlayWeights {
  constructor(
    base: WeightSource,
    private readonly codes: Map<string, Quantized>,
  ) {
    super(base);
    for (const [name, q] of codes) this.set(name, dequantize(q.codes, q.grid, q.shape[1]!));
  }

  override dtype(name: string): string {
    return this.codes.has(name) ? "I4" : super.dtype(name);
  }

  quantized(name: string): Quantized | null {
    return this.codes.get(name) ?? null;
  }
}

/** RTN (asymmetric, groups of `groupSize`) codes for every decoder linear of `model`. */
export function quantizedCheckpoint(model: CausalLM, bits = 4, groupSize = 32): WeightSource {
  const codes = new Map<string, Quantized>();
  for (let i = 0; i < model.config.numLayers; i++) {
    for (const l of model.linears(i)) {
      const name = `${l.name}.weight`;
      const W = new Tensor(model.weights.read(name), model.weights.shape(name));
      const { quant } = rtnQuantize(W, { bits, sym: false, groupSize });
      codes.set(name, { grid: quant, codes: quantizeToCodes(W, quant), shape: W.shape });
    }
  }
  return new QuantizedCheckpoint(model.weights, codes);
}

export function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} ≠ ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Fraction of rows [n, V] whose argmax agrees. */
export function top1Agreement(a: Float32Array, b: Float32Array, V: number): number {
  let same = 0;
  const rows = a.length / V;
  for (let r = 0; r < rows; r++) {
    let ia = 0;
    let ib = 0;
    for (let v = 1; v < V; v++) {
      if (a[r * V + v]! > a[r * V + ia]!) ia = v;
      if (b[r * V + v]! > b[r * V + ib]!) ib = v;
    }
    if (ia === ib) same++;
  }
  return same / rows;
}
