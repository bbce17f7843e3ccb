// Shared by the GGUF export tests: a symmetric round-to-nearest quantizer (the reference grid of
// gptq quant.py with sym=True), a WeightSource that serves its codes the way a
// compressed-tensors checkpoint does (`quantized(name)` → grid + codes; `read` → dequantized),
// and stories260K widened by zero padding so that its rows are whole Q4_K super-blocks.
import type { QuantGrid } from "../../src/formats/compressed-linear.js";
import type { WeightSource } from "../../src/formats/weights.js";
import type { ModelConfig } from "../../src/models/config.js";
import type { LlamaConfig } from "../../src/models/llama.js";
import { floatToHalf, halfToFloat } from "../../src/tensor/dtype.js";

function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return r - x === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export interface RtnResult {
  grid: QuantGrid;
  codes: Uint8Array;
  /** scale·(q − zero): the weight the grid represents */
  dense: Float32Array;
}

/**
 * Symmetric RTN with groups of `groupSize` columns: scale = 2·max|w| / maxq (gptq quant.py's
 * find_params with sym=True: xmax = max(|xmin|, xmax), xmin = −xmax), zero = 2^(bits−1),
 * q = clamp(round(w / scale) + zero, 0, maxq). With `f16Scales` each scale is first rounded to
 * f16, as a checkpoint saved in half precision stores it.
 */
export function rtnSym(W: Float32Array, rows: number, cols: number, bits: number, groupSize: number, f16Scales: boolean): RtnResult {
  const maxq = 2 ** bits - 1;
  const zero = 2 ** (bits - 1);
  const groups = Math.ceil(cols / groupSize);
  const scale = new Float32Array(rows * groups);
  const codes = new Uint8Array(rows * cols);
  const dense = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < groups; g++) {
      const c0 = g * groupSize;
      const c1 = Math.min(cols, c0 + groupSize);
      let amax = 0;
      for (let c = c0; c < c1; c++) amax = Math.max(amax, Math.abs(W[r * cols + c]!));
      let s = amax > 0 ? Math.fround((2 * amax) / maxq) : Math.fround(2 / maxq);
      if (f16Scales) s = halfToFloat(floatToHalf(s));
      scale[r * groups + g] = s;
      for (let c = c0; c < c1; c++) {
        const q = Math.min(maxq, Math.max(0, roundHalfEven(Math.fround(W[r * cols + c]! / s)) + zero));
        codes[r * cols + c] = q;
        dense[r * cols + c] = Math.fround(s * (q - zero));
      }
    }
  }
  return { grid: { bits, sym: true, groupSize, scale, zero: new Float32Array(rows * groups).fill(zero) }, codes, dense };
}

/** `base` with some linears quantized: read() gives the dequantized weight, quantized() the codes. */
export class QuantizedOverlay implements WeightSource {
  readonly entries = new Map<string, RtnResult>();

  constructor(readonly base: WeightSource) {}

  get location(): string {
    return this.base.location;
  }

  names(): string[] {
    return this.base.names();
  }

  has(name: string): boolean {
    return this.base.has(name);
  }

  shape(name: string): readonly number[] {
    return this.base.shape(name);
  }

  dtype(name: string): string {
    // as the compressed-tensors reader names stored codes ("INT4"): not a safetensors integer dtype
    return this.entries.has(name) ? "INT8" : this.base.dtype(name);
  }

  storedBytes(name: string): number {
    return this.base.storedBytes(name);
  }

  read(name: string): Float32Array {
    return this.entries.get(name)?.dense.slice() ?? this.base.read(name);
  }

  quantized(name: string): { grid: QuantGrid; codes: Uint8Array; shape: readonly number[] } | null {
    const e = this.entries.get(name);
    return e ? { grid: e.grid, codes: e.codes, shape: this.base.shape(name) } : null;
  }

  close(): void {
    this.base.close();
  }
}

/** Tensors held in memory. */
export class MemoryWeights implements WeightSource {
  readonly location = "memory";

  constructor(readonly tensors: Map<string, { data: Float32Array; shape: number[] }>) {}

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  private get(name: string): { data: Float32Array; shape: number[] } {
    const t = this.tensors.get(name);
    if (!t) throw new Error(`no tensor "${name}"`);
    return t;
  }

  shape(name: string): readonly number[] {
    return this.get(name).shape;
  }

  dtype(): string {
    return "F32";
  }

  storedBytes(name: string): number {
    return this.get(name).data.byteLength;
  }

  read(name: string): Float32Array {
    return this.get(name).data.slice();
  }

  close(): void {}
}

/** Copies a [rows, cols] matrix into the top-left corner of a zero [R, C] one. */
function pad(data: Float32Array, rows: number, cols: number, R: number, C: number): Float32Array {
  const out = new Float32Array(R * C);
  for (let r = 0; r < rows; r++) out.set(data.subarray(r * cols, (r + 1) * cols), r * C);
  return out;
}

/**
 * The same function as a Llama model, with the residual width padded to `D` and the MLP to `F` by
 * zeros, so every row is a whole Q4_K super-block (256). The padded dimensions stay exactly zero;
 * RMSNorm over D instead of D0 values sees mean(x²)·D0/D, which ε' = ε·D0/D and norm weights
 * w·√(D0/D) undo exactly.
 */
export function widenLlama(config: ModelConfig, w: WeightSource, D: number, F: number): { config: ModelConfig; weights: MemoryWeights } {
  const D0 = config.hiddenSize;
  const F0 = config.intermediateSize;
  const qDim = config.numHeads * config.headDim;
  const kvDim = config.numKvHeads * config.headDim;
  const normScale = Math.sqrt(D0 / D);
  const t = new Map<string, { data: Float32Array; shape: number[] }>();
  const put = (name: string, data: Float32Array, shape: number[]) => t.set(name, { data, shape });
  put("model.embed_tokens.weight", pad(w.read("model.embed_tokens.weight"), config.vocabSize, D0, config.vocabSize, D), [config.vocabSize, D]);
  put("model.norm.weight", pad(w.read("model.norm.weight").map((x) => x * normScale), 1, D0, 1, D), [D]);
  for (let i = 0; i < config.numLayers; i++) {
    const p = `model.layers.${i}.`;
    for (const n of ["input_layernorm", "post_attention_layernorm"]) put(`${p}${n}.weight`, pad(w.read(`${p}${n}.weight`).map((x) => x * normScale), 1, D0, 1, D), [D]);
    put(`${p}self_attn.q_proj.weight`, pad(w.read(`${p}self_attn.q_proj.weight`), qDim, D0, qDim, D), [qDim, D]);
    for (const n of ["k_proj", "v_proj"]) put(`${p}self_attn.${n}.weight`, pad(w.read(`${p}self_attn.${n}.weight`), kvDim, D0, kvDim, D), [kvDim, D]);
    put(`${p}self_attn.o_proj.weight`, pad(w.read(`${p}self_attn.o_proj.weight`), D0, qDim, D, qDim), [D, qDim]);
    for (const n of ["gate_proj", "up_proj"]) put(`${p}mlp.${n}.weight`, pad(w.read(`${p}mlp.${n}.weight`), F0, D0, F, D), [F, D]);
    put(`${p}mlp.down_proj.weight`, pad(w.read(`${p}mlp.down_proj.weight`), D0, F0, D, F), [D, F]);
  }
  return {
    config: {
      ...config,
      hiddenSize: D,
      intermediateSize: F,
      // the per-layer widths the Llama adapter reads (models/llama.ts LlamaLayerShape)
      layers: (config as LlamaConfig).layers.map((l) => ({ ...l, intermediateSize: F })),
      rmsNormEps: (config as LlamaConfig).rmsNormEps * (D0 / D),
    } as LlamaConfig,
    weights: new MemoryWeights(t),
  };
}
