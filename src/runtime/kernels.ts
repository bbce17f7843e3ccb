// GEMM-shaped kernels through onnxruntime (MLAS), which runs them ~100× faster than JS loops.
// Each kernel is a tiny graph with symbolic dims, so one cached session serves every size.
import { float, GraphBuilder } from "./onnx-graph.js";
import { cachedSession, f32 } from "./ort.js";

interface GemmOptions {
  transA?: boolean;
  transB?: boolean;
  /** scales op(A)·op(B) */
  alpha?: number;
  /** adds beta·C */
  C?: Float32Array;
  beta?: number;
}

function gemmGraph(transA: number, transB: number, alpha: number, beta: number, withC: boolean): Uint8Array {
  const g = new GraphBuilder("gemm");
  const a = g.input("A", "float32", ["a0", "a1"]);
  const b = g.input("B", "float32", ["b0", "b1"]);
  const inputs = [a, b];
  if (withC) inputs.push(g.input("C", "float32", ["m", "n"]));
  g.output(g.op("Gemm", inputs, { transA, transB, alpha: float(alpha), beta: float(beta) }), "Y", "float32", ["m", "n"]);
  return g.toBytes();
}

/**
 * Y = alpha·op(A)·op(B) + beta·C for row-major A [aRows, aCols] and B [bRows, bCols], where op
 * transposes when the flag is set (in place, no copy). One session per (flags, alpha, beta).
 */
export async function gemm(
  A: Float32Array,
  aShape: readonly [number, number],
  B: Float32Array,
  bShape: readonly [number, number],
  opts: GemmOptions = {},
): Promise<Float32Array> {
  const ta = opts.transA ? 1 : 0;
  const tb = opts.transB ? 1 : 0;
  const alpha = opts.alpha ?? 1;
  const beta = opts.C ? (opts.beta ?? 1) : 0;
  const withC = opts.C !== undefined;
  const s = await cachedSession(`kernel:gemm:${ta}${tb}:${alpha}:${beta}:${withC}`, () => gemmGraph(ta, tb, alpha, beta, withC), { arena: false });
  const feeds = { A: f32(A, aShape), B: f32(B, bShape) } as Record<string, ReturnType<typeof f32>>;
  if (opts.C) {
    const m = ta ? aShape[1] : aShape[0];
    const n = tb ? bShape[0] : bShape[1];
    feeds.C = f32(opts.C, [m, n]);
  }
  const out = await s.run(feeds, ["Y"]);
  return out.Y!.data as Float32Array;
}

function subtractProductGraph(transA: boolean): Uint8Array {
  const g = new GraphBuilder("subtract_product");
  const c = g.input("C", "float32", ["m", "n"]);
  const a = g.input("A", "float32", transA ? ["k", "m"] : ["m", "k"]);
  const b = g.input("B", "float32", ["k", "n"]);
  const left = transA ? g.op("Transpose", [a], { perm: [1, 0] }) : a;
  g.output(g.op("Sub", [c, g.op("MatMul", [left, b])]), "Y", "float32", ["m", "n"]);
  return g.toBytes();
}

/** Below this many multiply-adds a JS loop beats an onnxruntime call (its fixed cost is ~50 µs). */
const SMALL_PRODUCT = 1 << 16;

/**
 * C −= op(A)·B in place, for C [m, n], B [k, n] and A [m, k] — or A [k, m] with `transA` (then
 * onnxruntime transposes it, vectorised, instead of a strided gather in JS). MatMul rather than
 * Gemm: onnxruntime's MatMul ran these shapes 2–3× faster than Gemm with C and transposes.
 */
export async function subtractProduct(
  C: Float32Array,
  A: Float32Array,
  B: Float32Array,
  m: number,
  k: number,
  n: number,
  /** `via` forces one branch (tests run both on the same input); by default the size decides */
  opts: { transA?: boolean; via?: "js" | "onnxruntime" } = {},
): Promise<void> {
  const transA = opts.transA ?? false;
  if (opts.via === "js" || (opts.via === undefined && m * k * n <= SMALL_PRODUCT)) {
    for (let i = 0; i < m; i++) {
      const cRow = C.subarray(i * n, (i + 1) * n);
      for (let t = 0; t < k; t++) {
        const a = transA ? A[t * m + i]! : A[i * k + t]!;
        if (a === 0) continue;
        const bRow = B.subarray(t * n, (t + 1) * n);
        for (let j = 0; j < n; j++) cRow[j] = cRow[j]! - a * bRow[j]!;
      }
    }
    return;
  }
  const s = await cachedSession(`kernel:subtract-product:${transA}`, () => subtractProductGraph(transA));
  const out = await s.run({ C: f32(C, [m, n]), A: f32(A, transA ? [k, m] : [m, k]), B: f32(B, [k, n]) }, ["Y"]);
  C.set(out.Y!.data as Float32Array);
}

/**
 * XᵀX is symmetric, so only its upper block triangle is computed: X is split into k column
 * blocks and X_iᵀX_j is one GEMM for each i ≤ j. With blocks of ~512 columns that is k(k+1)/2 of
 * k² blocks: 62 % of the work at d = 2048, 55 % at 5632. The running sum stays in those blocks
 * (the graph takes them in and returns a·H_ij + b·X_iᵀX_j), and is assembled into the full
 * symmetric matrix once, when asked for.
 */
const GRAM_BLOCK = 512;

function gramSizes(d: number): number[] {
  const k = Math.max(1, Math.round(d / GRAM_BLOCK));
  return Array.from({ length: k }, (_, i) => Math.floor(((i + 1) * d) / k) - Math.floor((i * d) / k));
}

function gramGraph(d: number): Uint8Array {
  const g = new GraphBuilder("gram_blocks");
  const X = g.input("X", "float32", ["t", d]);
  const a = g.input("a", "float32", [1]);
  const b = g.input("b", "float32", [1]);
  const sizes = gramSizes(d);
  const k = sizes.length;
  const parts = k === 1 ? [X] : g.opN("Split", [X, g.constInt64(sizes)], k, { axis: 1 });
  // X_iᵀ made contiguous once: MatMul(X_iᵀ, X_j) ran ~1.8× faster than Gemm(transA) here
  const partsT = parts.map((p) => g.op("Transpose", [p], { perm: [1, 0] }));
  for (let i = 0; i < k; i++) {
    for (let j = i; j < k; j++) {
      const H = g.input(`H_${i}_${j}`, "float32", [sizes[i]!, sizes[j]!]);
      const G = g.op("MatMul", [partsT[i]!, parts[j]!]);
      g.output(g.op("Add", [g.op("Mul", [H, a]), g.op("Mul", [G, b])]), `out_${i}_${j}`, "float32", [sizes[i]!, sizes[j]!]);
    }
  }
  return g.toBytes();
}

/** H = Σ-style accumulation of XᵀX for inputs of width d, through onnxruntime GEMMs. */
export class GramAccumulator {
  private readonly sizes: number[];
  private readonly offsets: number[];
  private blocks = new Map<string, Float32Array>();

  constructor(readonly d: number) {
    this.sizes = gramSizes(d);
    this.offsets = this.sizes.map((_, i) => this.sizes.slice(0, i).reduce((x, y) => x + y, 0));
    for (let i = 0; i < this.sizes.length; i++) {
      for (let j = i; j < this.sizes.length; j++) this.blocks.set(`${i}_${j}`, new Float32Array(this.sizes[i]! * this.sizes[j]!));
    }
  }

  /** H ← a·H + b·XᵀX for X [t, d]. */
  async add(X: Float32Array, a: number, b: number): Promise<void> {
    const d = this.d;
    // no arena: at d = 11008 (Llama-7B's MLP) the blocks are 250 MB, which an arena would keep
    // resident for the rest of the run
    const s = await cachedSession(`kernel:gram:${d}`, () => gramGraph(d), { arena: false });
    const feeds: Record<string, ReturnType<typeof f32>> = {
      X: f32(X, [X.length / d, d]),
      a: f32(Float32Array.of(a), [1]),
      b: f32(Float32Array.of(b), [1]),
    };
    for (const [key, block] of this.blocks) {
      const [i, j] = key.split("_").map(Number) as [number, number];
      feeds[`H_${key}`] = f32(block, [this.sizes[i]!, this.sizes[j]!]);
    }
    const out = await s.run(feeds);
    for (const key of this.blocks.keys()) this.blocks.set(key, out[`out_${key}`]!.data as Float32Array);
  }

  /** The full symmetric H [d, d]. */
  matrix(): Float32Array {
    const d = this.d;
    const H = new Float32Array(d * d);
    for (const [key, G] of this.blocks) {
      const [i, j] = key.split("_").map(Number) as [number, number];
      const rows = this.sizes[i]!;
      const cols = this.sizes[j]!;
      const r0 = this.offsets[i]!;
      const c0 = this.offsets[j]!;
      for (let r = 0; r < rows; r++) H.set(G.subarray(r * cols, (r + 1) * cols), (r0 + r) * d + c0);
      if (i === j) continue;
      // the mirror block below the diagonal, in 64×64 tiles (strided writes stay in cache)
      for (let rt = 0; rt < rows; rt += 64) {
        for (let ct = 0; ct < cols; ct += 64) {
          for (let r = rt; r < Math.min(rt + 64, rows); r++) {
            for (let c = ct; c < Math.min(ct + 64, cols); c++) H[(c0 + c) * d + r0 + r] = G[r * cols + c]!;
          }
        }
      }
    }
    return H;
  }
}

/** Floating-point operations GramAccumulator.add spends in GEMMs for X [t, d]. */
export function gramFlops(t: number, d: number): number {
  const sizes = gramSizes(d);
  let flops = 0;
  for (let i = 0; i < sizes.length; i++) for (let j = i; j < sizes.length; j++) flops += 2 * t * sizes[i]! * sizes[j]!;
  return flops;
}
