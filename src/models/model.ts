// A causal language model ready to run: config + weights + the layer/head graphs.
// Execution is exposed per decoder layer (hidden states in → hidden states out) because the
// compression pipeline walks the model one layer at a time; `forward` chains them for evaluation.
import path from "node:path";
import { FormatError } from "../formats/errors.js";
import type { WeightSource } from "../formats/weights.js";
import { cachedSession, f32, type RtTensor } from "../runtime/ort.js";
import type { ModelConfig } from "./config.js";
import {
  causalMask,
  EMBED_TOKENS,
  FINAL_NORM,
  headGraph,
  layerGraph,
  layerPrefix,
  layerTensorShapes,
  linearSpecs,
  LM_HEAD,
  ropeTables,
  type CaptureName,
  type LinearSpec,
} from "./llama.js";

/** A decoder layer's weights, by suffix ("self_attn.q_proj.weight" → data). */
export type LayerWeights = Map<string, Float32Array>;

export interface LayerResult {
  hidden: Float32Array;
  captures: Partial<Record<CaptureName, Float32Array>>;
  presentKey?: Float32Array;
  presentValue?: Float32Array;
}

export interface KvCache {
  /** [B, KV, P, hd] per layer */
  keys: Float32Array[];
  values: Float32Array[];
  length: number;
}

/** Keep every layer's weights in memory when they fit in this many bytes (else reload per use). */
const DEFAULT_CACHE_BYTES = 4 * 1024 ** 3;

export class CausalLM {
  private readonly layerCache = new Map<number, LayerWeights>();
  private readonly cacheLayers: boolean;
  private embedding: Float32Array | null = null;
  private headWeights: { norm: Float32Array; head: Float32Array } | null = null;
  private readonly layerKey: string;

  constructor(
    readonly config: ModelConfig,
    readonly weights: WeightSource,
    readonly dir: string,
  ) {
    this.validateTensors();
    this.layerKey = JSON.stringify({
      D: config.hiddenSize,
      H: config.numHeads,
      KV: config.numKvHeads,
      hd: config.headDim,
      F: config.intermediateSize,
      eps: config.rmsNormEps,
      qkvBias: config.qkvBias,
      oBias: config.oBias,
      mlpBias: config.mlpBias,
    });
    const layerBytes = [...layerTensorShapes(config).values()].reduce((a, s) => a + s.reduce((x, y) => x * y, 1) * 4, 0);
    const budget = Number(process.env.TOPIARY_WEIGHT_CACHE_BYTES) || DEFAULT_CACHE_BYTES;
    this.cacheLayers = layerBytes * config.numLayers <= budget;
  }

  get numLayers(): number {
    return this.config.numLayers;
  }

  /** The seven linears of a decoder layer with their full names. */
  linears(layer: number): (LinearSpec & { name: string })[] {
    return linearSpecs(this.config).map((l) => ({ ...l, name: layerPrefix(layer) + l.suffix }));
  }

  /** Checks up front that every tensor the forward needs exists with the right shape. */
  private validateTensors(): void {
    const c = this.config;
    const expect = (name: string, shape: number[]) => {
      if (!this.weights.has(name)) throw new FormatError(this.weights.location, `missing tensor "${name}"`);
      const got = this.weights.shape(name);
      if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
        throw new FormatError(this.weights.location, `tensor "${name}" has shape [${got.join(", ")}], config.json implies [${shape.join(", ")}]`);
      }
      if (/^(BOOL|[IU](8|16|32|64)|F8_\w+)$/.test(this.weights.dtype(name))) throw new FormatError(this.weights.location, `tensor "${name}" has dtype ${this.weights.dtype(name)}; expected a floating type (F32, F16, BF16)`);
    };
    expect(EMBED_TOKENS, [c.vocabSize, c.hiddenSize]);
    expect(FINAL_NORM, [c.hiddenSize]);
    if (!c.tieWordEmbeddings || this.weights.has(LM_HEAD)) expect(LM_HEAD, [c.vocabSize, c.hiddenSize]);
    const shapes = layerTensorShapes(c);
    for (let i = 0; i < c.numLayers; i++) for (const [suffix, shape] of shapes) expect(layerPrefix(i) + suffix, shape);
  }

  /** Reads layer `i`'s weights (cached in memory when the whole model fits the budget). */
  layerWeights(i: number): LayerWeights {
    const cached = this.layerCache.get(i);
    if (cached) return cached;
    const w: LayerWeights = new Map();
    for (const suffix of layerTensorShapes(this.config).keys()) w.set(suffix, this.weights.read(layerPrefix(i) + suffix));
    if (this.cacheLayers) this.layerCache.set(i, w);
    return w;
  }

  /** Drops cached weights of a layer (after the pipeline replaced them). */
  forgetLayer(i: number): void {
    this.layerCache.delete(i);
  }

  embedTable(): Float32Array {
    this.embedding ??= this.weights.read(EMBED_TOKENS);
    return this.embedding;
  }

  /** Token embeddings for ids (any length) → [ids.length, D]. */
  embed(ids: Int32Array): Float32Array {
    const D = this.config.hiddenSize;
    const V = this.config.vocabSize;
    const table = this.embedTable();
    const out = new Float32Array(ids.length * D);
    for (let t = 0; t < ids.length; t++) {
      const id = ids[t]!;
      if (id < 0 || id >= V) throw new Error(`token id ${id} is outside the vocabulary (0..${V - 1})`);
      out.set(table.subarray(id * D, (id + 1) * D), t * D);
    }
    return out;
  }

  /**
   * Runs decoder layer `i` on hidden [B, T, D] at positions start..start+T-1.
   * `weights` defaults to the checkpoint's; `capture` lists linear inputs to return;
   * `cache` (decoding) supplies past keys/values and receives the new ones.
   */
  async runLayer(
    i: number,
    hidden: Float32Array,
    B: number,
    T: number,
    opts: { weights?: LayerWeights; capture?: readonly CaptureName[]; past?: { key: Float32Array; value: Float32Array; length: number } } = {},
  ): Promise<LayerResult> {
    const c = this.config;
    const P = opts.past?.length ?? 0;
    if (c.slidingWindow !== null && P + T > c.slidingWindow) {
      throw new Error(`sequence of ${P + T} tokens exceeds the model's sliding window (${c.slidingWindow}); use a shorter --seqlen`);
    }
    const kv = opts.past !== undefined;
    // without a cache the graph is specialised on T (chunked causal attention, see llama.ts)
    const seqLen = kv ? undefined : T;
    const session = await cachedSession(`layer:${this.layerKey}:${kv}:${seqLen}`, () => layerGraph(c, { kvCache: kv, seqLen }));
    const { cos, sin } = this.rope(P, T);
    const feeds: Record<string, RtTensor> = {
      hidden: f32(hidden, [B, T, c.hiddenSize]),
      cos: f32(cos, [T, 1, c.headDim]),
      sin: f32(sin, [T, 1, c.headDim]),
      mask: f32(this.mask(P, T), [T, P + T]),
    };
    if (opts.past) {
      feeds.past_key = f32(opts.past.key, [B, c.numKvHeads, P, c.headDim]);
      feeds.past_value = f32(opts.past.value, [B, c.numKvHeads, P, c.headDim]);
    }
    const weights = opts.weights ?? this.layerWeights(i);
    for (const [suffix, shape] of layerTensorShapes(c)) {
      const data = weights.get(suffix);
      if (!data) throw new Error(`layer ${i}: weight "${suffix}" was not supplied`);
      feeds[suffix] = f32(data, shape);
    }
    const capture = opts.capture ?? [];
    const fetch = ["out", ...capture, ...(kv ? ["present_key", "present_value"] : [])];
    const out = await session.run(feeds, fetch);
    const captures: LayerResult["captures"] = {};
    for (const name of capture) captures[name] = out[name]!.data as Float32Array;
    return {
      hidden: out.out!.data as Float32Array,
      captures,
      presentKey: kv ? (out.present_key!.data as Float32Array) : undefined,
      presentValue: kv ? (out.present_value!.data as Float32Array) : undefined,
    };
  }

  private async runHead(hidden: Float32Array, targets: Int32Array | null): Promise<Float32Array> {
    const c = this.config;
    const nll = targets !== null;
    const session = await cachedSession(`head:${c.hiddenSize}:${c.vocabSize}:${c.rmsNormEps}:${nll}`, () => headGraph(c, { nll }));
    this.headWeights ??= {
      norm: this.weights.read(FINAL_NORM),
      head: c.tieWordEmbeddings && !this.weights.has(LM_HEAD) ? this.embedTable() : this.weights.read(LM_HEAD),
    };
    const N = hidden.length / c.hiddenSize;
    const feeds: Record<string, RtTensor> = {
      hidden: f32(hidden, [N, c.hiddenSize]),
      norm: f32(this.headWeights.norm, [c.hiddenSize]),
      lm_head: f32(this.headWeights.head, [c.vocabSize, c.hiddenSize]),
    };
    if (targets) feeds.targets = { data: targets, dims: [N] };
    const out = await session.run(feeds, [nll ? "nll" : "logits"]);
    return (nll ? out.nll! : out.logits!).data as Float32Array;
  }

  /** Final norm + LM head: hidden [N, D] → logits [N, V]. */
  logits(hidden: Float32Array): Promise<Float32Array> {
    return this.runHead(hidden, null);
  }

  /** −log p(target) for each row of hidden [N, D], targets [N] (float32 log-softmax). */
  tokenNll(hidden: Float32Array, targets: Int32Array): Promise<Float32Array> {
    return this.runHead(hidden, targets);
  }

  /** Final hidden states [B·T, D] for B independent sequences of T tokens (positions 0..T-1). */
  async hidden(ids: Int32Array, B: number, T: number): Promise<Float32Array> {
    let h = this.embed(ids);
    for (let i = 0; i < this.numLayers; i++) h = (await this.runLayer(i, h, B, T)).hidden;
    return h;
  }

  /** Logits [B·T, V] for B independent sequences of T tokens each. */
  async forward(ids: Int32Array, B: number, T: number): Promise<Float32Array> {
    return this.logits(await this.hidden(ids, B, T));
  }

  /**
   * Appends T tokens per sequence to `cache` (created when null) and returns their logits
   * [B·T, V] — or only the last `keepLast` positions of each sequence [B·keepLast, V], which
   * spares the LM head on a long prompt when only the next token matters.
   */
  async step(ids: Int32Array, B: number, T: number, cache: KvCache | null, keepLast = T): Promise<{ logits: Float32Array; cache: KvCache }> {
    const next: KvCache = { keys: [], values: [], length: (cache?.length ?? 0) + T };
    let h = this.embed(ids);
    for (let i = 0; i < this.numLayers; i++) {
      const past = cache
        ? { key: cache.keys[i]!, value: cache.values[i]!, length: cache.length }
        : { key: new Float32Array(0), value: new Float32Array(0), length: 0 };
      const r = await this.runLayer(i, h, B, T, { past });
      h = r.hidden;
      next.keys.push(r.presentKey!);
      next.values.push(r.presentValue!);
    }
    const keep = Math.min(keepLast, T);
    if (keep < T) {
      const D = this.config.hiddenSize;
      const last = new Float32Array(B * keep * D);
      for (let b = 0; b < B; b++) last.set(h.subarray((b * T + T - keep) * D, (b * T + T) * D), b * keep * D);
      h = last;
    }
    return { logits: await this.logits(h), cache: next };
  }

  private ropeCache = new Map<string, { cos: Float32Array; sin: Float32Array }>();
  private rope(start: number, T: number) {
    const key = `${start}:${T}`;
    let r = this.ropeCache.get(key);
    if (!r) {
      r = ropeTables(this.config, start, T);
      if (this.ropeCache.size > 64) this.ropeCache.clear();
      this.ropeCache.set(key, r);
    }
    return r;
  }

  private maskCache = new Map<string, Float32Array>();
  private mask(P: number, T: number): Float32Array {
    const key = `${P}:${T}`;
    let m = this.maskCache.get(key);
    if (!m) {
      m = causalMask(P, T);
      if (this.maskCache.size > 64) this.maskCache.clear();
      this.maskCache.set(key, m);
    }
    return m;
  }

  close(): void {
    this.weights.close();
  }

  get name(): string {
    return path.basename(this.dir);
  }
}
