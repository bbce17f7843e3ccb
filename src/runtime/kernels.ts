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

/** C = A·B with A [m,k], B [k,n]. */
export function matmul(A: Float32Array, B: Float32Array, m: number, k: number, n: number): Promise<Float32Array> {
  return gemm(A, [m, k], B, [k, n]);
}

function gramGraph(): Uint8Array {
  // Hout = a·H + b·XᵀX. MatMul on Transpose(X) is fused by onnxruntime into one transposed GEMM.
  const g = new GraphBuilder("gram_accumulate");
  const H = g.input("H", "float32", ["d", "d"]);
  const X = g.input("X", "float32", ["t", "d"]);
  const a = g.input("a", "float32", [1]);
  const b = g.input("b", "float32", [1]);
  const xtx = g.op("Gemm", [X, X], { transA: 1 });
  const out = g.op("Add", [g.op("Mul", [H, a]), g.op("Mul", [xtx, b])]);
  g.output(out, "Hout", "float32", ["d", "d"]);
  return g.toBytes();
}

/** a·H + b·XᵀX for H [d,d] and X [t,d] (a fresh array; H is not modified). */
export async function gramAccumulate(H: Float32Array, X: Float32Array, d: number, a: number, b: number): Promise<Float32Array> {
  const t = X.length / d;
  const s = await cachedSession("kernel:gram", gramGraph, { arena: false });
  const out = await s.run(
    { H: f32(H, [d, d]), X: f32(X, [t, d]), a: f32(Float32Array.of(a), [1]), b: f32(Float32Array.of(b), [1]) },
    ["Hout"],
  );
  return out.Hout!.data as Float32Array;
}
