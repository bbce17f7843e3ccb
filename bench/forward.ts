// Prefill throughput of topiary's forward (the decoder-layer graphs + LM head on onnxruntime),
// for stories260K and for a 2-layer model with TinyLlama-1.1B shapes and random weights
// (models/synthetic.ts: an in-memory WeightSource, no files).
//
// The yardstick, measured in the same run: plain onnxruntime GEMMs of exactly the forward's
// linear-layer shapes (X [tokens, in] · Wᵀ, W [out, in], weights fed as inputs as the layer graphs
// do), run two ways:
//   - `gemm()` of runtime/kernels.ts, the call the compression code uses. Its sessions run without
//     onnxruntime's CPU arena (so a one-off 100 MB output is not kept), which costs a fresh
//     allocation and its page faults per call: on large outputs ~30-40 % more CPU.
//   - a one-node Gemm session with the same settings as the layer sessions (arena on): pure GEMM.
// "efficiency" = bare GEMM time ÷ forward time, i.e. achieved linear FLOP/s of the forward ÷ FLOP/s
// of the bare GEMMs; 1.0 would mean attention, norms, RoPE and the plumbing cost nothing.
// Linear FLOPs = 2 · tokens · (parameters of every q/k/v/o/gate/up/down + lm_head).
// Each figure is the best of a few interleaved runs after a warm-up. GFLOP/s and tokens/s are
// wall-clock; the efficiency ratios use CPU time (all threads), which a shared machine's load
// disturbs far less than wall time.
//
//   npx tsx bench/forward.ts [path/to/stories260K]
import fs from "node:fs";
import path from "node:path";
import type { ModelConfig } from "../src/models/config.js";
import { adapterFor } from "../src/models/registry.js";
import { loadModel } from "../src/models/load.js";
import { CausalLM } from "../src/models/model.js";
import { syntheticModel, tinyLlamaShape } from "../src/models/synthetic.js";
import { windowsPerBatch } from "../src/eval/perplexity.js";
import { gemm } from "../src/runtime/kernels.js";
import { GraphBuilder } from "../src/runtime/onnx-graph.js";
import { cachedSession, f32, releaseSessions } from "../src/runtime/ort.js";

const SEQLEN = 512;

/**
 * Wall-clock and CPU seconds (user + system, all of the process's threads) of one call. On a
 * shared machine the wall time swings with the neighbours' load; the CPU time barely does
 * (onnxruntime's idle threads do not spin, see runtime/ort.ts), so the ratios use it.
 */
async function timed(fn: () => Promise<unknown>): Promise<{ wall: number; cpu: number }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6 };
}

const faster = (a: { wall: number; cpu: number }, b: { wall: number; cpu: number }) => ({ wall: Math.min(a.wall, b.wall), cpu: Math.min(a.cpu, b.cpu) });
const NEVER = { wall: Infinity, cpu: Infinity };

/** (out, in) of every linear the forward runs, with how many times it occurs. */
function linearShapes(c: ModelConfig): Map<string, { out: number; in: number; count: number }> {
  const shapes = new Map<string, { out: number; in: number; count: number }>();
  const add = (out: number, inF: number, n: number) => {
    const key = `${out}x${inF}`;
    const s = shapes.get(key) ?? { out, in: inF, count: 0 };
    s.count += n;
    shapes.set(key, s);
  };
  for (const l of adapterFor(c).linears(c, 0)) add(l.outFeatures, l.inFeatures, c.numLayers);
  add(c.vocabSize, c.hiddenSize, 1); // lm_head (tied or not, it is one more GEMM)
  return shapes;
}

/** Y = X·Wᵀ in a session built like the layer sessions (default options, arena on). */
function arenaGemm(X: Float32Array, xShape: [number, number], W: Float32Array, wShape: [number, number]) {
  const build = () => {
    const g = new GraphBuilder("bench_gemm");
    const x = g.input("X", "float32", ["m", "k"]);
    const w = g.input("W", "float32", ["n", "k"]);
    g.output(g.op("Gemm", [x, w], { transB: 1 }), "Y", "float32", ["m", "n"]);
    return g.toBytes();
  };
  return cachedSession("bench:gemm-arena", build).then((s) => s.run({ X: f32(X, xShape), W: f32(W, wShape) }, ["Y"]));
}

interface Row {
  model: string;
  batch: string;
  seconds: number;
  tokensPerSecond: number;
  gflops: number;
  /** [kernels.gemm, arena session]: wall GFLOP/s and CPU-time efficiency */
  baselines: { gflops: number; efficiency: number }[];
}

async function measure(label: string, model: CausalLM, B: number, T: number, repeats: number): Promise<Row> {
  const c = model.config;
  const tokens = B * T;
  const ids = new Int32Array(tokens);
  for (let i = 0; i < tokens; i++) ids[i] = (i * 7919 + 1) % c.vocabSize;
  const forward = () => model.forward(ids, B, T);

  const shapes = [...linearShapes(c).values()];
  const flops = shapes.reduce((a, s) => a + s.count * 2 * tokens * s.out * s.in, 0);
  const operands = shapes.map((s) => ({ X: new Float32Array(tokens * s.in).fill(0.01), W: new Float32Array(s.out * s.in).fill(0.02) }));
  const baselines = [0, 1].map((kind) =>
    shapes.map((s, i) => {
      const { X, W } = operands[i]!;
      const run =
        kind === 0 ? () => gemm(X, [tokens, s.in], W, [s.out, s.in], { transB: true }) : () => arenaGemm(X, [tokens, s.in], W, [s.out, s.in]);
      return { count: s.count, run, best: NEVER };
    }),
  );

  // warm-up (sessions, weight reads), then interleave the forward and the GEMMs so all of them
  // see the same load; keep each one's best time
  await forward();
  for (const g of baselines.flat()) await g.run();
  let fwd = NEVER;
  for (let r = 0; r < repeats; r++) {
    fwd = faster(fwd, await timed(forward));
    for (const g of baselines.flat()) g.best = faster(g.best, await timed(g.run));
  }
  return {
    model: label,
    batch: `${B} × ${T}`,
    seconds: fwd.wall,
    tokensPerSecond: tokens / fwd.wall,
    gflops: flops / fwd.wall / 1e9,
    baselines: baselines.map((gs) => ({
      gflops: flops / gs.reduce((a, g) => a + g.count * g.best.wall, 0) / 1e9,
      efficiency: gs.reduce((a, g) => a + g.count * g.best.cpu, 0) / fwd.cpu,
    })),
  };
}

function printTable(rows: Row[]): void {
  const header = [
    "model",
    "batch (windows × tokens)",
    "forward s",
    "tokens/s",
    "linear GFLOP/s",
    "gemm() GFLOP/s",
    "efficiency vs gemm()",
    "arena GEMM GFLOP/s",
    "efficiency vs arena GEMM",
  ];
  const cells = rows.map((r) => [
    r.model,
    r.batch,
    r.seconds.toFixed(3),
    Math.round(r.tokensPerSecond).toLocaleString("en-US"),
    r.gflops.toFixed(1),
    ...r.baselines.flatMap((b) => [b.gflops.toFixed(1), b.efficiency.toFixed(2)]),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)));
  const line = (row: string[]) => `| ${row.map((v, i) => (i < 2 ? v.padEnd(widths[i]!) : v.padStart(widths[i]!))).join(" | ")} |`;
  console.log(line(header));
  console.log(`| ${widths.map((w, i) => (i < 2 ? "-".repeat(w) : "-".repeat(w - 1) + ":")).join(" | ")} |`);
  for (const row of cells) console.log(line(row));
}

const storiesDir = process.argv[2] ?? path.resolve(import.meta.dirname, "..", "..", "shared", "models", "stories260K");
const rows: Row[] = [];
if (fs.existsSync(path.join(storiesDir, "config.json"))) {
  const stories = loadModel(storiesDir);
  rows.push(await measure("stories260K", stories, windowsPerBatch(stories, SEQLEN), SEQLEN, 8));
  stories.close();
  await releaseSessions();
} else {
  console.error(`(no stories260K at ${storiesDir}; pass its folder as the first argument)`);
}
// TinyLlama-1.1B's widths cut to 2 layers (~0.9 GB of float32 weights, drawn on first read)
const { config, weights } = syntheticModel(tinyLlamaShape(2));
const synthetic = new CausalLM(config, weights, "tinyllama-2-layers");
rows.push(await measure("TinyLlama-1.1B shapes, 2 layers", synthetic, windowsPerBatch(synthetic, SEQLEN), SEQLEN, 4));
await releaseSessions();
printTable(rows);
