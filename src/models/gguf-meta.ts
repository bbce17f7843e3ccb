// A small builder for the `{arch}.…` metadata of a GGUF file, for the adapters' GgufFamily.metadata.
import { archKey, Keys, ValueType } from "../formats/gguf/constants.js";
import type { MetadataValue } from "../formats/gguf/writer.js";
import type { ModelConfig } from "./config.js";

export class GgufMeta {
  readonly kv: [string, MetadataValue][] = [];
  constructor(readonly arch: string) {}

  /** `key` may hold "{arch}" (Keys.*) or be a plain suffix ("attention.sliding_window"). */
  private key(key: string): string {
    return key.includes("{arch}") ? archKey(key, this.arch) : `${this.arch}.${key}`;
  }
  u32(key: string, value: number): this {
    this.kv.push([this.key(key), { type: ValueType.UINT32, value }]);
    return this;
  }
  f32(key: string, value: number): this {
    this.kv.push([this.key(key), { type: ValueType.FLOAT32, value }]);
    return this;
  }
  str(key: string, value: string): this {
    this.kv.push([this.key(key), { type: ValueType.STRING, value }]);
    return this;
  }
  u32s(key: string, values: readonly number[]): this {
    this.kv.push([this.key(key), { type: ValueType.ARRAY, itemType: ValueType.UINT32, value: values }]);
    return this;
  }
  bool(key: string, value: boolean): this {
    this.kv.push([this.key(key), { type: ValueType.BOOL, value }]);
    return this;
  }

  /** The keys every transformer architecture of llama.cpp reads (LLM_KV_* common to all). */
  common(c: ModelConfig, rmsEps: number): this {
    // per-layer widths (structured pruning): llama.cpp reads these three keys as per-layer arrays
    const perLayer = (scalar: number, pick: (w: NonNullable<ModelConfig["layerWidths"]>[number]) => number) =>
      c.layerWidths ? c.layerWidths.map(pick) : scalar;
    const put = (key: string, v: number | number[]) => (typeof v === "number" ? this.u32(key, v) : this.u32s(key, v));
    this.u32(Keys.LLM.VOCAB_SIZE, c.vocabSize).u32(Keys.LLM.CONTEXT_LENGTH, c.maxPositions).u32(Keys.LLM.EMBEDDING_LENGTH, c.hiddenSize).u32(Keys.LLM.BLOCK_COUNT, c.numLayers);
    put(Keys.LLM.FEED_FORWARD_LENGTH, perLayer(c.intermediateSize, (w) => w.intermediateSize));
    put(Keys.Attention.HEAD_COUNT, perLayer(c.numHeads, (w) => w.numHeads));
    put(Keys.Attention.HEAD_COUNT_KV, perLayer(c.numKvHeads, (w) => w.numKvHeads));
    return this.u32(Keys.Attention.KEY_LENGTH, c.headDim)
      .u32(Keys.Attention.VALUE_LENGTH, c.headDim)
      .f32(Keys.Attention.LAYERNORM_RMS_EPS, rmsEps);
  }
}
