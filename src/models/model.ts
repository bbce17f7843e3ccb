// A causal language model ready to run: config + weights + the layer/head graphs.
// Execution is exposed per decoder layer (hidden states in → hidden states out) because the
// compression pipeline walks the model one layer at a time; `forward` chains them for evaluation.
import crypto from "node:crypto";
import path from "node:path";
import { FormatError } from "../formats/errors.js";
import type { WeightSource } from "../formats/weights.js";
import { cachedSession, f32, type RtTensor } from "../runtime/ort.js";
import { kvHeadsOf, type ModelConfig } from "./config.js";
import type { FamilyAdapter, LinearSpec } from "./family.js";
import { adapterFor } from "./registry.js";
import { rotaryTables } from "./rope.js";
import { causalMask, embedGraph, headGraph, layerGraph, maskName, type GraphFeeds } from "./runtime-graphs.js";

/** The name of a captured linear input (the adapter's `LinearSpec.input`). */
export type CaptureName = string;

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

/**
 * Keep every layer's weights in memory when they fit in this many bytes (else reload per use, so
 * a model larger than memory streams layer by layer: bench/memory.ts). Small on purpose: a cached
 * model's float32 copy would be the largest thing in the process (TinyLlama-1.1B: 4.4 GB).
 */
const DEFAULT_CACHE_BYTES = 1024 ** 3;

interface BuiltGraph {
  key: string;
  bytes: Uint8Array;
  feeds: GraphFeeds;
}

/**
 * Bytes of float32 layer weights a model may keep cached (TOPIARY_WEIGHT_CACHE_BYTES): unset, empty
 * or not a number → the default; 0 is a real budget (never cache: every pass re-reads the files).
 */
export function weightCacheBudget(env: string | undefined): number {
  return env !== undefined && env.trim() !== "" && Number.isFinite(Number(env)) && Number(env) >= 0 ? Number(env) : DEFAULT_CACHE_BYTES;
}

export class CausalLM {
  /** the family adapter: everything architecture-specific (models/family.ts) */
  readonly family: FamilyAdapter;
  private readonly layerCache = new Map<number, LayerWeights>();
  private readonly cacheLayers: boolean;
  private readonly globals = new Map<string, Float32Array>();
  private readonly graphs = new Map<string, BuiltGraph>();
  private readonly modelKey: string;

  constructor(
    readonly config: ModelConfig,
    readonly weights: WeightSource,
    readonly dir: string,
  ) {
    this.family = adapterFor(config);
    this.validateTensors();
    this.modelKey = `${this.family.name}:${config.hiddenSize}:${config.vocabSize}`;
    let layerBytes = 0;
    for (let i = 0; i < config.numLayers; i++) {
      for (const s of this.family.layerTensors(config, i).values()) layerBytes += s.reduce((x, y) => x * y, 1) * 4;
    }
    this.cacheLayers = layerBytes <= weightCacheBudget(process.env.TOPIARY_WEIGHT_CACHE_BYTES);
  }

  get numLayers(): number {
    return this.config.numLayers;
  }

  /** The linears of a decoder layer with their full names. */
  linears(layer: number): (LinearSpec & { name: string })[] {
    return this.family.linears(this.config, layer).map((l) => ({ ...l, name: this.family.layerPrefix(layer) + l.suffix }));
  }

  /** Groups of linear suffixes for true-sequential compression, in order. */
  trueSequentialGroups(layer: number): string[][] {
    return this.family.trueSequentialGroups(this.config, layer);
  }

  /** Width of captured input `name` of a layer. */
  captureWidth(layer: number, name: CaptureName): number {
    const w = this.family.captureWidths(this.config, layer)[name];
    if (w === undefined) throw new Error(`layer ${layer} has no captured input "${name}"`);
    return w;
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
    for (const t of this.family.globalTensors(c)) if (!t.optional || this.weights.has(t.name)) expect(t.name, t.shape);
    for (let i = 0; i < c.numLayers; i++) {
      const p = this.family.layerPrefix(i);
      for (const [suffix, shape] of this.family.layerTensors(c, i)) expect(p + suffix, shape);
    }
  }

  /** Reads layer `i`'s weights (cached in memory when the whole model fits the budget). */
  layerWeights(i: number): LayerWeights {
    const cached = this.layerCache.get(i);
    if (cached) return cached;
    const w: LayerWeights = new Map();
    const p = this.family.layerPrefix(i);
    for (const suffix of this.family.layerTensors(this.config, i).keys()) w.set(suffix, this.weights.read(p + suffix));
    if (this.cacheLayers) this.layerCache.set(i, w);
    return w;
  }

  /** Drops cached weights of a layer (after the pipeline replaced them). */
  forgetLayer(i: number): void {
    this.layerCache.delete(i);
  }

  /**
   * Drops the global tensors read so far; they are read again if needed. The pipeline embeds its
   * calibration batch once and then never needs the table (Llama-7B's is 0.5 GB as float32).
   */
  releaseGlobals(): void {
    this.globals.clear();
  }

  /** A global (non-layer) tensor, read once. */
  private global(name: string): Float32Array {
    let t = this.globals.get(name);
    if (!t) {
      t = this.weights.read(name);
      this.globals.set(name, t);
    }
    return t;
  }

  /**
   * A runtime graph, built once per model and `key`. Its onnxruntime session is shared by every
   * model whose graph has the same bytes (the digest), so two models that differ in something the
   * key leaves out (a tied head, an epsilon, a softcap) never share a session by mistake.
   */
  private graph(key: string, build: () => { bytes: Uint8Array; feeds: GraphFeeds }): BuiltGraph {
    let b = this.graphs.get(key);
    if (!b) {
      const built = build();
      const digest = crypto.createHash("sha1").update(built.bytes).digest("hex");
      b = { ...built, key: `${this.modelKey}:${key}:${digest}` };
      this.graphs.set(key, b);
    }
    return b;
  }

  /** Rows of `table` for `index` [n] → [n, width], checking the range. */
  private gatherRows(table: string, width: number, index: Int32Array, offset: number): Float32Array {
    const data = this.global(table);
    const rows = data.length / width;
    const out = new Float32Array(index.length * width);
    for (let t = 0; t < index.length; t++) {
      const id = index[t]! + offset;
      if (id < 0 || id >= rows) throw new Error(`row ${id} of "${table}" is outside the table (0..${rows - 1})`);
      out.set(data.subarray(id * width, (id + 1) * width), t * width);
    }
    return out;
  }

  /**
   * Embeddings for B sequences of T ids at positions start..start+T-1 → hidden [B·T, D]
   * (B = 1, T = ids.length by default).
   */
  async embed(ids: Int32Array, B = 1, T = ids.length, start = 0): Promise<Float32Array> {
    const c = this.config;
    const has = (n: string) => this.weights.has(n);
    const built = this.graph("embed", () => {
      const e = embedGraph(this.family, c, has);
      return { bytes: e.bytes, feeds: e.feeds, identity: e.identity };
    }) as BuiltGraph & { identity?: string | null };
    const V = c.vocabSize;
    for (const id of ids) if (id < 0 || id >= V) throw new Error(`token id ${id} is outside the vocabulary (0..${V - 1})`);
    let positions: Int32Array | null = null;
    const rowsFor = (g: { table: string; index: "tokens" | "positions"; offset: number; width: number }) => {
      if (g.index === "tokens") return this.gatherRows(g.table, g.width, ids, g.offset);
      if (!positions) {
        positions = new Int32Array(B * T);
        for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) positions[b * T + t] = start + t;
      }
      return this.gatherRows(g.table, g.width, positions, g.offset);
    };
    if (built.identity) return rowsFor(built.feeds.gathers.get(built.identity)!);
    const feeds: Record<string, RtTensor> = { bt: { data: BigInt64Array.from([BigInt(B), BigInt(T)]), dims: [2] } };
    for (const [name, g] of built.feeds.gathers) feeds[name] = f32(rowsFor(g), [B * T, g.width]);
    for (const [name, shape] of built.feeds.weights) feeds[name] = f32(this.global(name), shape);
    const session = await cachedSession(built.key, () => built.bytes);
    const out = await session.run(feeds, ["hidden"]);
    return out.hidden!.data as Float32Array;
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
    const kv = opts.past !== undefined;
    // without a cache the graph is specialised on T (chunked causal attention, see runtime-graphs.ts)
    const seqLen = kv ? undefined : T;
    const built = this.graph(`layer:${JSON.stringify(this.family.layerKey(c, i))}:${kv}:${seqLen}`, () => layerGraph(this.family, c, i, { kvCache: kv, seqLen }));
    const session = await cachedSession(built.key, () => built.bytes);
    const feeds: Record<string, RtTensor> = { hidden: f32(hidden, [B, T, c.hiddenSize]) };
    for (const [name, dim] of built.feeds.rotary) {
      const { cos, sin } = this.rope(name, P, T);
      feeds[`cos_${name}`] = f32(cos, [T, 1, dim]);
      feeds[`sin_${name}`] = f32(sin, [T, 1, dim]);
    }
    for (const w of built.feeds.windows) feeds[maskName(w)] = f32(this.mask(P, T, w), [T, P + T]);
    if (opts.past) {
      const kvShape = [B, kvHeadsOf(c, i), P, c.headDim];
      feeds.past_key = f32(opts.past.key, kvShape);
      feeds.past_value = f32(opts.past.value, kvShape);
    }
    const weights = opts.weights ?? this.layerWeights(i);
    for (const [suffix, shape] of built.feeds.weights) {
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
    const built = this.graph(`head:${nll}`, () => headGraph(this.family, c, (n) => this.weights.has(n), { nll }));
    const session = await cachedSession(built.key, () => built.bytes);
    const N = hidden.length / c.hiddenSize;
    const feeds: Record<string, RtTensor> = {
      hidden: f32(hidden, [N, c.hiddenSize]),
      bt: { data: BigInt64Array.from([1n, BigInt(N)]), dims: [2] },
    };
    for (const [name, shape] of built.feeds.weights) feeds[name] = f32(this.global(name), shape);
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
    let h = await this.embed(ids, B, T);
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
    let h = await this.embed(ids, B, T, cache?.length ?? 0);
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
  private rope(name: string, start: number, T: number) {
    const key = `${name}:${start}:${T}`;
    let r = this.ropeCache.get(key);
    if (!r) {
      const table = this.family.rotary(this.config)[name]!;
      r = rotaryTables(table.invFreq, start, T, table.attentionScaling ?? 1);
      if (this.ropeCache.size > 64) this.ropeCache.clear();
      this.ropeCache.set(key, r);
    }
    return r;
  }

  private maskCache = new Map<string, Float32Array>();
  private mask(P: number, T: number, window: number | null): Float32Array {
    const key = `${P}:${T}:${window}`;
    let m = this.maskCache.get(key);
    if (!m) {
      m = causalMask(P, T, window);
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
