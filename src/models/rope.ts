// Rotary position embeddings: inverse frequencies (with the scalings transformers implements) and
// cos/sin tables computed in JS for the runtime (models/runtime-graphs.ts feeds them per call).
import { FormatError } from "../formats/errors.js";

/** Rotary embedding frequency scaling, as transformers' ROPE_INIT_FUNCTIONS define it. */
export type RopeScaling =
  | { type: "none" }
  | { type: "linear"; factor: number }
  | { type: "llama3"; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositions: number };

/** The rope_scaling / rope_parameters object of a config.json (transformers ≤ 4 and 5 spellings). */
export interface RawRopeScaling {
  rope_type?: string;
  type?: string;
  factor?: number;
  low_freq_factor?: number;
  high_freq_factor?: number;
  original_max_position_embeddings?: number;
}

/** Normalizes a config's rope scaling; an unsupported kind is one line naming the file. */
export function parseRopeScaling(rs: RawRopeScaling | null | undefined, file: string): RopeScaling {
  if (!rs) return { type: "none" };
  const kind = rs.rope_type ?? rs.type;
  if (kind === undefined || kind === "default") return { type: "none" };
  if (kind === "linear" && rs.factor) return { type: "linear", factor: rs.factor };
  if (kind === "llama3" && rs.factor && rs.original_max_position_embeddings) {
    return {
      type: "llama3",
      factor: rs.factor,
      lowFreqFactor: rs.low_freq_factor ?? 1,
      highFreqFactor: rs.high_freq_factor ?? 4,
      originalMaxPositions: rs.original_max_position_embeddings,
    };
  }
  throw new FormatError(file, `rope_scaling ${JSON.stringify(rs)} is not supported (supported: linear, llama3)`);
}

/** inv_freq as transformers computes it (float32), including rope scaling; `dim` = rotated width. */
export function inverseFrequencies(dim: number, theta: number, scaling: RopeScaling): Float32Array {
  const half = dim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(theta, Math.fround((2 * i) / dim));
  if (scaling.type === "linear") {
    for (let i = 0; i < half; i++) inv[i] = inv[i]! / scaling.factor;
  } else if (scaling.type === "llama3") {
    // transformers _compute_llama3_parameters
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
    const lowWavelen = originalMaxPositions / lowFreqFactor;
    const highWavelen = originalMaxPositions / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const f = inv[i]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) inv[i] = f / factor;
      else if (wavelen >= highWavelen) {
        const smooth = (originalMaxPositions / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = (1 - smooth) * (f / factor) + smooth * f;
      }
    }
  }
  return inv;
}

/**
 * cos/sin tables [T, 1, dim] for positions start..start+T-1 (dim = 2·invFreq.length):
 * cat(freqs, freqs) as HF does, times `scaling` (attention_scaling of yarn/longrope; 1 otherwise).
 */
export function rotaryTables(invFreq: Float32Array, start: number, T: number, scaling = 1): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const dim = 2 * half;
  const cos = new Float32Array(T * dim);
  const sin = new Float32Array(T * dim);
  for (let t = 0; t < T; t++) {
    for (let i = 0; i < half; i++) {
      const angle = Math.fround((start + t) * invFreq[i]!); // float32 product, as torch computes it
      const cv = scaling === 1 ? Math.cos(angle) : Math.fround(Math.cos(angle)) * scaling;
      const sv = scaling === 1 ? Math.sin(angle) : Math.fround(Math.sin(angle)) * scaling;
      cos[t * dim + i] = cv;
      cos[t * dim + i + half] = cv;
      sin[t * dim + i] = sv;
      sin[t * dim + i + half] = sv;
    }
  }
  return { cos, sin };
}
