// A model with random weights (any registered family; Llama by default), for benchmarks and tests that need a real model's
// shapes (e.g. TinyLlama-1.1B's) without its files. Weights are generated on read from a seed and
// the tensor name, so nothing is held in memory and every read of a tensor returns the same values.
import { Rng } from "../data/rng.js";
import type { WeightSource } from "../formats/weights.js";
import { adapterFor, parseModelConfig } from "./registry.js";
import type { ModelConfig } from "./config.js";

/** The config.json fields of the shape; everything else takes Llama defaults. */
export interface SyntheticShape {
  architectures?: string[];
  hidden_size: number;
  intermediate_size: number;
  num_hidden_layers: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  head_dim?: number;
  vocab_size: number;
  tie_word_embeddings?: boolean;
  max_position_embeddings?: number;
  [field: string]: unknown;
}

/** TinyLlama-1.1B's widths (hidden 2048, 32/4 heads of 64, ffn 5632, vocab 32000) with `layers` layers. */
export const tinyLlamaShape = (layers: number): SyntheticShape => ({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 2048,
  intermediate_size: 5632,
  num_hidden_layers: layers,
  num_attention_heads: 32,
  num_key_value_heads: 4,
  vocab_size: 32000,
  max_position_embeddings: 2048,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
});

class SyntheticWeights implements WeightSource {
  readonly location = "<synthetic>";

  constructor(
    private readonly shapes: Map<string, number[]>,
    private readonly seed: number,
    /** tables read with std 1 (the embeddings) */
    private readonly embeddings: Set<string>,
  ) {}

  names(): string[] {
    return [...this.shapes.keys()];
  }

  has(name: string): boolean {
    return this.shapes.has(name);
  }

  shape(name: string): readonly number[] {
    const s = this.shapes.get(name);
    if (!s) throw new Error(`<synthetic>: no tensor "${name}"`);
    return s;
  }

  dtype(): string {
    return "F32";
  }

  storedBytes(name: string): number {
    return this.shape(name).reduce((a, b) => a * b, 1) * 4;
  }

  /** Norm weights 1 ± 0.17, biases 0 ± 0.17; matrices uniform with std 1/√fan_in (embeddings: std 1). */
  read(name: string): Float32Array {
    const shape = this.shape(name);
    const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
    let h = this.seed >>> 0;
    for (let i = 0; i < name.length; i++) h = Math.imul(h ^ name.charCodeAt(i), 0x01000193) >>> 0;
    const rng = new Rng(h);
    const vector = shape.length === 1;
    const center = name.endsWith("norm.weight") ? 1 : 0;
    const std = vector ? 0.1 : this.embeddings.has(name) ? 1 : 1 / Math.sqrt(shape[shape.length - 1]!);
    const half = std * Math.sqrt(3); // uniform on [−a, a] has std a/√3
    for (let i = 0; i < out.length; i++) out[i] = center + (2 * rng.next() - 1) * half;
    return out;
  }

  close(): void {}
}

/** A random-weight model of the given shape: its validated config and a weight source. */
export function syntheticModel(shape: SyntheticShape, seed = 0): { config: ModelConfig; weights: WeightSource } {
  const raw: Record<string, unknown> = { architectures: ["LlamaForCausalLM"], ...shape };
  const config = parseModelConfig("<synthetic config>", raw);
  const family = adapterFor(config);
  const shapes = new Map<string, number[]>();
  for (const t of family.globalTensors(config)) if (!t.optional) shapes.set(t.name, t.shape);
  for (let i = 0; i < config.numLayers; i++) {
    for (const [suffix, s] of family.layerTensors(config, i)) shapes.set(family.layerPrefix(i) + suffix, s);
  }
  // the tables an embedding reads: global 2-D tensors other than the head
  const head = family.headWeight(config, { has: (n) => shapes.has(n) });
  const embeddings = new Set(family.globalTensors(config).filter((t) => t.shape.length === 2 && (t.name !== head || config.tieWordEmbeddings)).map((t) => t.name));
  return { config, weights: new SyntheticWeights(shapes, seed, embeddings) };
}
