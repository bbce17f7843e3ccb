// The only module that talks to onnxruntime-node. Graphs come in as ONNX bytes (built by
// onnx-graph.ts); sessions are cached by a caller-chosen key, so one session per graph *shape*
// (e.g. one per decoder-layer configuration) serves every layer: weights are fed as inputs.
import { createRequire } from "node:module";
import os from "node:os";
import * as ort from "onnxruntime-node";

export type NumericArray = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Uint16Array;

/** A tensor crossing the runtime boundary: flat data plus dims, no onnxruntime types. */
export interface RtTensor<T extends NumericArray = NumericArray> {
  data: T;
  dims: readonly number[];
}

function typeOf(a: NumericArray): "float32" | "float64" | "int32" | "int64" | "uint8" | "int8" | "float16" {
  if (a instanceof Float32Array) return "float32";
  if (a instanceof Float64Array) return "float64"; // the finite-difference checks of train/
  if (a instanceof Int32Array) return "int32";
  if (a instanceof BigInt64Array) return "int64";
  if (a instanceof Uint8Array) return "uint8";
  if (a instanceof Int8Array) return "int8";
  return "float16"; // Uint16Array carries float16 bits
}

/**
 * Threads for onnxruntime's intra-op pool: every core the process may use. (onnxruntime's own
 * default, 0, counts physical cores and picked 1 on a 2-vCPU VM, halving throughput.)
 * TOPIARY_THREADS overrides.
 */
function intraOpThreads(): number {
  const env = Number(process.env.TOPIARY_THREADS);
  return Number.isInteger(env) && env > 0 ? env : os.availableParallelism();
}

export class Session {
  private constructor(
    private readonly inner: ort.InferenceSession,
    readonly key: string,
  ) {}

  /**
   * `arena: false` for sessions whose tensors are large and few (GEMM kernels): onnxruntime's
   * CPU arena never returns memory, so a one-off 100 MB GEMM output would stay resident.
   */
  static async create(key: string, model: Uint8Array | string, opts: { arena?: boolean } = {}): Promise<Session> {
    const options: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: intraOpThreads(),
      interOpNumThreads: 1,
      graphOptimizationLevel: "all",
      enableCpuMemArena: opts.arena ?? true,
      executionMode: "sequential",
      // Idle pool threads must not spin: JS work between runs (NLL sums, the SparseGPT column
      // loop) shares the same cores.
      extra: { session: { intra_op: { allow_spinning: "0" } } },
    };
    const inner =
      typeof model === "string" ? await ort.InferenceSession.create(model, options) : await ort.InferenceSession.create(model, options);
    return new Session(inner, key);
  }

  get inputNames(): readonly string[] {
    return this.inner.inputNames;
  }

  get outputNames(): readonly string[] {
    return this.inner.outputNames;
  }

  /** Runs the graph; only the outputs named in `fetch` are computed and copied back. */
  async run(feeds: Record<string, RtTensor>, fetch: readonly string[] = this.outputNames): Promise<Record<string, RtTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = {};
    for (const [name, t] of Object.entries(feeds)) {
      ortFeeds[name] = new ort.Tensor(typeOf(t.data), t.data, t.dims as number[]);
    }
    const out = await this.inner.run(ortFeeds, fetch as string[]);
    const result: Record<string, RtTensor> = {};
    for (const name of fetch) {
      const t = out[name]!;
      result[name] = { data: t.data as NumericArray, dims: t.dims };
    }
    return result;
  }

  async release(): Promise<void> {
    await this.inner.release();
  }
}

const cache = new Map<string, Promise<Session>>();

/** The session for `key`, built from `build()` the first time it is asked for. */
export function cachedSession(key: string, build: () => Uint8Array, opts: { arena?: boolean } = {}): Promise<Session> {
  let s = cache.get(key);
  if (!s) {
    s = Session.create(key, build(), opts);
    cache.set(key, s);
    s.catch(() => cache.delete(key));
  }
  return s;
}

/** Releases every cached session (tests and long-running tools call this between models). */
export async function releaseSessions(): Promise<void> {
  const all = [...cache.values()];
  cache.clear();
  for (const s of all) await (await s).release();
}

export const f32 = (data: Float32Array, dims: readonly number[]): RtTensor<Float32Array> => ({ data, dims });

/** The onnxruntime-node version in use (recorded in topiary.json). */
export function runtimeVersion(): string {
  return (createRequire(import.meta.url)("onnxruntime-node/package.json") as { version: string }).version;
}
