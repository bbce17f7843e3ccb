// The workload of bench/prune.ts and bench/quantize.ts: one decoder layer with TinyLlama-1.1B
// shapes (hidden 2048, k/v 256, intermediate 5632), random weights N(0, 0.02²)-like, and random
// calibration activations for 128 samples × 512 tokens — the same layer and data layout as
// ../shared/reference/tools/perf_reference.py, so the two can be timed in one run:
//   x  [512, 2048] → q, k, v, gate, up   (one input, so topiary accumulates one H for all five)
//   xo [512, 2048] → o
//   xd [512, 5632] → down
// Hessians are accumulated in batches of SAMPLES_PER_BATCH samples (the pipeline batches runs the
// same way); activation generation is not timed.
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CHOLESKY_BASE } from "../src/compress/cholesky.js";
import type { Compressor } from "../src/compress/compressor.js";
import { InputStatistics } from "../src/compress/hessian.js";
import { Rng } from "../src/data/rng.js";
import { gramFlops } from "../src/runtime/kernels.js";
import { GraphBuilder } from "../src/runtime/onnx-graph.js";
import { cachedSession, f32 } from "../src/runtime/ort.js";
import { Tensor } from "../src/tensor/tensor.js";

export const HIDDEN = 2048;
export const KV = 256;
export const INTER = 5632;
export const SEQLEN = 512;
const SAMPLES_PER_BATCH = 8;

export const LINEARS: { name: string; out: number; in: number; input: "x" | "xo" | "xd" }[] = [
  { name: "self_attn.q_proj", out: HIDDEN, in: HIDDEN, input: "x" },
  { name: "self_attn.k_proj", out: KV, in: HIDDEN, input: "x" },
  { name: "self_attn.v_proj", out: KV, in: HIDDEN, input: "x" },
  { name: "self_attn.o_proj", out: HIDDEN, in: HIDDEN, input: "xo" },
  { name: "mlp.gate_proj", out: INTER, in: HIDDEN, input: "x" },
  { name: "mlp.up_proj", out: INTER, in: HIDDEN, input: "x" },
  { name: "mlp.down_proj", out: HIDDEN, in: INTER, input: "xd" },
];

/** Approximately N(0, σ²): the sum of four uniforms, scaled (timing, not statistics, matters). */
export function randomNormal(n: number, std: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  const k = std * Math.sqrt(3); // Σ of 4 uniforms on [−1, 1] has variance 4/3
  for (let i = 0; i < n; i++) out[i] = (rng.next() + rng.next() + rng.next() + rng.next() - 2) * k;
  return out;
}

export function randomWeights(seed = 0): Map<string, Tensor> {
  const rng = new Rng(seed);
  return new Map(LINEARS.map((l) => [l.name, new Tensor(randomNormal(l.out * l.in, 0.02, rng), [l.out, l.in])]));
}

export interface HessianTiming {
  stats: Map<"x" | "xo" | "xd", InputStatistics>;
  seconds: number;
  flops: number;
}

/** Accumulates the three Hessians over nsamples × 512 random tokens. */
export async function accumulateHessians(nsamples: number, seed = 1): Promise<HessianTiming> {
  const widths = { x: HIDDEN, xo: HIDDEN, xd: INTER } as const;
  const stats = new Map<"x" | "xo" | "xd", InputStatistics>();
  for (const [k, d] of Object.entries(widths)) stats.set(k as "x", new InputStatistics(d, "hessian", k));
  const rng = new Rng(seed);
  let seconds = 0;
  let flops = 0;
  for (let s0 = 0; s0 < nsamples; s0 += SAMPLES_PER_BATCH) {
    const B = Math.min(SAMPLES_PER_BATCH, nsamples - s0);
    for (const [k, d] of Object.entries(widths)) {
      const X = randomNormal(B * SEQLEN * d, 1, rng);
      const t0 = performance.now();
      await stats.get(k as "x")!.add(X, B);
      seconds += (performance.now() - t0) / 1000;
      flops += gramFlops(B * SEQLEN, d);
    }
  }
  const t0 = performance.now();
  for (const s of stats.values()) s.hessian(); // the full symmetric matrices, assembled once
  seconds += (performance.now() - t0) / 1000;
  return { stats, seconds, flops };
}

/** FLOPs of compress/cholesky.ts upperCholeskyOfInverse for n (its recursion, as written). */
export function factorFlops(n: number): number {
  if (n <= CHOLESKY_BASE) return (2 * n ** 3) / 3; // Cholesky n³/3 + triangular inverse n³/3
  const k = Math.ceil(n / 2 / 64) * 64;
  const m = n - k;
  return factorFlops(k) + factorFlops(m) + 2 * (2 * m * k * k) + 2 * (2 * m * m * k);
}

/** FLOPs of the SparseGPT/GPTQ column loop: in-block OBS updates + the lazy block GEMMs. */
export function columnLoopFlops(rows: number, cols: number, blockSize = 128): number {
  let flops = 0;
  for (let i1 = 0; i1 < cols; i1 += blockSize) {
    const count = Math.min(blockSize, cols - i1);
    flops += rows * count * (count - 1); // Σ_i 2·rows·(count − 1 − i)
    flops += 2 * rows * count * (cols - i1 - count);
  }
  return flops;
}

/**
 * GFLOP/s of a plain onnxruntime MatMul 2048³ (a session with default options), best of 10.
 * The benches call it before and after their work and keep the higher rate: a baseline measured
 * while the CPU was busy elsewhere would flatter every ratio against it.
 */
export async function matmulRate(): Promise<number> {
  const n = 2048;
  const rng = new Rng(9);
  const A = randomNormal(n * n, 1, rng);
  const B = randomNormal(n * n, 1, rng);
  const build = () => {
    const g = new GraphBuilder("bench_matmul");
    g.output(g.op("MatMul", [g.input("A", "float32", [n, n]), g.input("B", "float32", [n, n])]), "C", "float32", [n, n]);
    return g.toBytes();
  };
  const s = await cachedSession("bench:matmul", build);
  await s.run({ A: f32(A, [n, n]), B: f32(B, [n, n]) });
  let best = Infinity;
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    await s.run({ A: f32(A, [n, n]), B: f32(B, [n, n]) });
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return (2 * n ** 3) / best / 1e9;
}

export interface ReferenceTiming {
  addBatch: number;
  sparsegpt: number;
  gptq: number;
  matmulGflops: number;
  threads: number;
}

/**
 * Runs ../shared/reference/tools/perf_reference.py (the papers' code) on the same layer shape,
 * or returns a reason it could not: no /usr/bin/python3 with torch, no ../shared.
 */
export function referenceTiming(nsamples: number): ReferenceTiming | string {
  const script = path.resolve(import.meta.dirname, "..", "..", "shared", "reference", "tools", "perf_reference.py");
  if (!fs.existsSync(script)) return `skipped: ${script} not found`;
  const python = "/usr/bin/python3";
  if (spawnSync(python, ["-c", "import torch"], { stdio: "ignore" }).status !== 0) {
    return "skipped: /usr/bin/python3 with torch is not installed (apt-get install python3-torch libopenblas0-pthread)";
  }
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "perf-ref-")), "perf.json");
  const env = { ...process.env, MALLOC_MMAP_THRESHOLD_: "4000000000", MALLOC_TRIM_THRESHOLD_: "8000000000", MALLOC_TOP_PAD_: "1000000000" };
  const r = spawnSync(python, [script, "--out", out, "--nsamples", String(nsamples)], { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  if (r.status !== 0) return `skipped: perf_reference.py failed (${r.stderr.trim().split("\n").pop()})`;
  const j = JSON.parse(fs.readFileSync(out, "utf8"));
  return {
    addBatch: j.add_batch.total_s,
    sparsegpt: j.sparsegpt_50.total_s,
    gptq: j.gptq_4bit_g128.total_s,
    matmulGflops: j.matmul_2048_fp32.gflops,
    threads: j.num_threads,
  };
}

export const fmt = (x: number, digits = 2) => x.toFixed(digits);

/**
 * Runs `layer` once on a few samples and throws the result away. onnxruntime plans every new
 * tensor shape on first sight, and V8 compiles the hot loops; a model run pays that once, on its
 * first layer, so "seconds per layer" is measured on the second.
 */
export async function warmUp(layer: (nsamples: number) => Promise<unknown>): Promise<void> {
  const t0 = performance.now();
  await layer(8);
  console.log(`(warm-up layer: ${fmt((performance.now() - t0) / 1000)} s, not counted)`);
}

export interface LayerTiming {
  /** seconds and FLOPs of each stage */
  hessian: { seconds: number; flops: number };
  factorisation: { seconds: number; flops: number };
  loop: { seconds: number; flops: number };
  total: { seconds: number; flops: number };
}

/**
 * One layer through `compressor`, timed by stage and printed as it goes: after a warm-up layer,
 * Hessians over nsamples × 512 tokens, one Hinv per input (linears sharing an input share it),
 * then the column loop of each linear (its Hinv already memoised).
 */
export async function timeLayer(compressor: Compressor, nsamples: number): Promise<LayerTiming> {
  const weights = randomWeights();
  await warmUp(async (n) => {
    const w = await accumulateHessians(n, 2);
    for (const l of LINEARS) await compressor.compress(l.name, weights.get(l.name)!, w.stats.get(l.input)!.view(l.name, () => {}));
  });
  const h = await accumulateHessians(nsamples);
  console.log(`Hessians (3 inputs, ${nsamples} × 512 tokens): ${fmt(h.seconds)} s, ${fmt(h.flops / h.seconds / 1e9, 1)} GFLOP/s`);

  const factorisation = { seconds: 0, flops: 0 };
  for (const s of h.stats.values()) {
    const t0 = performance.now();
    await s.inverseFactor({ dampening: 0.01 }, () => {});
    factorisation.seconds += (performance.now() - t0) / 1000;
    factorisation.flops += factorFlops(s.width);
  }
  console.log(`Hinv (3 factorisations): ${fmt(factorisation.seconds)} s, ${fmt(factorisation.flops / factorisation.seconds / 1e9, 1)} GFLOP/s`);

  const loop = { seconds: 0, flops: 0 };
  for (const l of LINEARS) {
    const t0 = performance.now();
    await compressor.compress(l.name, weights.get(l.name)!, h.stats.get(l.input)!.view(l.name, () => {}));
    const dt = (performance.now() - t0) / 1000;
    loop.seconds += dt;
    loop.flops += columnLoopFlops(l.out, l.in);
    console.log(`  ${l.name.padEnd(18)} ${l.out}×${l.in}: ${fmt(dt)} s`);
  }
  console.log(`column loop (7 linears): ${fmt(loop.seconds)} s, ${fmt(loop.flops / loop.seconds / 1e9, 1)} GFLOP/s`);
  const hessian = { seconds: h.seconds, flops: h.flops };
  const total = {
    seconds: hessian.seconds + factorisation.seconds + loop.seconds,
    flops: hessian.flops + factorisation.flops + loop.flops,
  };
  return { hessian, factorisation, loop, total };
}
