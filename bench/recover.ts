// One recovery training step on a TinyLlama-1.1B-shaped decoder block (hidden 2048, 32 q / 4 kv
// heads of 64, SwiGLU 5632; random weights from models/synthetic.ts), batch 4 × 512 tokens,
// split into forward (the model's layer graph), backward (train/llama-block.ts: forward
// recomputed from the block input, then the gradients) and optimizer (AdamW over the block's
// seven linears, masked at 50 %).
//
// The yardstick, measured in the same run: onnxruntime MatMul of the block's largest GEMM shape
// ([2048 tokens, 2048] · [2048, 5632]), arena on, best of a few runs → its FLOP/s. Each phase's
// FLOP/s is divided by it ("efficiency"; target ≥ 0.5 for forward + backward).
// FLOPs counted (useful work, the usual convention): linears 2·N·P forward and 4·N·P backward
// (dX and dW); attention with the causal half only, 2·2·B·H·T²·hd/2 forward, twice that backward.
// The backward also recomputes the forward (activation checkpointing): that is counted apart,
// as "executed" FLOPs, since it is work a non-checkpointed step would not do.
// Times are CPU seconds of the process (all threads; onnxruntime's idle threads do not spin),
// which a shared machine's load disturbs less than wall time; wall seconds are printed too.
//
// PyTorch, in the same run, when TOPIARY_TORCH_PYTHON names a Python with torch (a yardstick,
// never a dependency): bench/recover-torch.py runs the same step on the same shapes (one block,
// autograd keeping activations, masked AdamW) with as many threads as onnxruntime's pool, and
// the ratio of step times is printed (target: topiary ≤ 1.25× torch).
//
// --layers N[,M…]: peak RSS of one whole training step (recover(): teacher forward, student
// forward + backward, AdamW) of an N-layer TinyLlama-shaped student (fp16 checkpoint on disk, the
// teacher the same folder), with LoRA (r 8) and with masked fine-tuning (--modes picks), each in a fresh
// process (its own process.resourceUsage().maxRSS). Depths run in increasing order; a depth
// whose RSS, projected linearly from the two before it, exceeds the memory available now is
// not started (it would push other work on this machine out of memory): its projection is printed,
// marked as such.
//
//   node scripts/tuned.mjs bench/recover.ts [--batch 4] [--seqlen 512] [--repeats 2] [--layers 2,4,22 [--modes lora,masked]] [--no-step]
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { loadModel } from "../src/models/load.js";
import { CausalLM } from "../src/models/model.js";
import { linearSpecs, type LlamaConfig } from "../src/models/llama.js";
import { syntheticModel, tinyLlamaShape } from "../src/models/synthetic.js";
import { GraphBuilder } from "../src/runtime/onnx-graph.js";
import { cachedSession, f32, releaseSessions } from "../src/runtime/ort.js";
import { AdamW, type Param } from "../src/train/adamw.js";
import { blockBackward } from "../src/train/model-backward.js";
import { recover } from "../src/train/recover.js";
import { writeSyntheticCheckpoint } from "./common.js";

const arg = (name: string, d: number) => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : d;
};
const B = arg("--batch", 4);
const T = arg("--seqlen", 512);
const REPEATS = arg("--repeats", 2);

async function timed<X>(fn: () => Promise<X>): Promise<{ wall: number; cpu: number; value: X }> {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = await fn();
  const c = process.cpuUsage(c0);
  return { wall: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6, value };
}

async function matmulRate(m: number, k: number, n: number): Promise<{ wall: number; cpu: number }> {
  const s = await cachedSession("bench:matmul", () => {
    const g = new GraphBuilder("bench_matmul");
    const a = g.input("A", "float32", ["m", "k"]);
    const b = g.input("B", "float32", ["k", "n"]);
    g.output(g.op("MatMul", [a, b]), "Y", "float32", ["m", "n"]);
    return g.toBytes();
  });
  const A = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
  const Bm = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
  let best = { wall: Infinity, cpu: Infinity };
  for (let r = 0; r < REPEATS + 1; r++) {
    const t = await timed(() => s.run({ A: f32(A, [m, k]), B: f32(Bm, [k, n]) }, ["Y"]));
    if (r > 0) best = { wall: Math.min(best.wall, t.wall), cpu: Math.min(best.cpu, t.cpu) };
  }
  const flops = 2 * m * k * n;
  return { wall: flops / best.wall, cpu: flops / best.cpu };
}

/** The one-block step: topiary's phases, then torch's when TOPIARY_TORCH_PYTHON is set. */
async function stepBench(): Promise<void> {
  const { config, weights } = syntheticModel(tinyLlamaShape(1), 1);
  const model = new CausalLM(config, weights, "<synthetic TinyLlama block>");
  const c = config as LlamaConfig;
  const N = B * T;
  const P = linearSpecs(c, 0).reduce((a, l) => a + l.outFeatures * l.inFeatures, 0);
  const attention = 2 * 2 * B * c.numHeads * T * T * c.headDim * 0.5; // QKᵀ and PV, causal half
  const flops = { forward: 2 * N * P + attention, backward: 4 * N * P + 2 * attention };

  const layer = new Map(model.layerWeights(0));
  const params: Param[] = linearSpecs(c, 0).map((l) => {
    const value = layer.get(`${l.suffix}.weight`)!.slice();
    layer.set(`${l.suffix}.weight`, value);
    const mask = Uint8Array.from(value, (_, i) => (i % 2 === 0 ? 1 : 0));
    return { name: l.suffix, value, mask };
  });
  const x = Float32Array.from({ length: N * c.hiddenSize }, (_, i) => Math.sin(0.37 * i));
  const gradOut = Float32Array.from({ length: N * c.hiddenSize }, (_, i) => 1e-3 * Math.cos(0.11 * i));
  const opt = new AdamW();

  const mm = await matmulRate(N, c.hiddenSize, c.intermediateSize);
  const best = { forward: { wall: Infinity, cpu: Infinity }, backward: { wall: Infinity, cpu: Infinity }, optimizer: { wall: Infinity, cpu: Infinity } };
  const keep = (k: keyof typeof best, t: { wall: number; cpu: number }) => {
    best[k] = { wall: Math.min(best[k].wall, t.wall), cpu: Math.min(best[k].cpu, t.cpu) };
  };
  for (let r = 0; r < REPEATS + 1; r++) {
    const f = await timed(() => model.runLayer(0, x, B, T, { weights: layer }));
    const b = await timed(() => blockBackward(c, 0, B, T, x, layer, gradOut));
    const grads = params.map((p) => b.value.grads.get(`${p.name}.weight`)!);
    const o = await timed(async () => opt.step(params, grads, 1e-4));
    if (r === 0) continue; // warm-up: session creation
    keep("forward", f);
    keep("backward", b);
    keep("optimizer", o);
  }
  await releaseSessions();

  const g = (v: number) => (v / 1e9).toFixed(1);
  console.log(`TinyLlama-1.1B-shaped block, batch ${B} × ${T} tokens, ${(P / 1e6).toFixed(1)} M linear parameters; best of ${REPEATS}`);
  console.log(`onnxruntime MatMul [${N}×${c.hiddenSize}]·[${c.hiddenSize}×${c.intermediateSize}]: ${g(mm.cpu)} GFLOP/s per CPU-second (${g(mm.wall)} GFLOP/s wall)`);
  const row = (name: string, t: { wall: number; cpu: number }, fl: number) =>
    console.log(
      `${name.padEnd(10)} ${t.wall.toFixed(3)} s wall, ${t.cpu.toFixed(3)} s CPU` +
        (fl > 0 ? `, ${g(fl / t.cpu)} GFLOP/CPU-s = ${((fl / t.cpu / mm.cpu) * 100).toFixed(0)} % of MatMul` : ""),
    );
  row("forward", best.forward, flops.forward);
  row("backward", best.backward, flops.backward);
  console.log(`           (the backward's executed FLOPs include the recomputed forward: ${g((flops.backward + flops.forward) / best.backward.cpu)} GFLOP/CPU-s = ${(((flops.backward + flops.forward) / best.backward.cpu / mm.cpu) * 100).toFixed(0)} % of MatMul)`);
  row("optimizer", best.optimizer, 0);
  const step = { wall: best.forward.wall + best.backward.wall + best.optimizer.wall, cpu: best.forward.cpu + best.backward.cpu + best.optimizer.cpu };
  row("step", step, flops.forward + flops.backward);
  torchComparison(step);
}

interface Times {
  wall: number;
  cpu: number;
}

function torchComparison(step: Times): void {
  const python = process.env.TOPIARY_TORCH_PYTHON;
  if (!python) {
    console.log("PyTorch: not measured (set TOPIARY_TORCH_PYTHON to a Python with torch)");
    return;
  }
  const threads = Number(process.env.TOPIARY_THREADS) || os.availableParallelism();
  const script = path.join(import.meta.dirname, "recover-torch.py");
  const r = spawnSync(python, [script, "--batch", String(B), "--seqlen", String(T), "--repeats", String(REPEATS), "--threads", String(threads)], { encoding: "utf8" });
  if (r.status !== 0) {
    console.log(`PyTorch: ${python} failed (exit ${r.status}): ${(r.stderr || r.error?.message || "").trim().split("\n").pop()}`);
    return;
  }
  const t = JSON.parse(r.stdout.trim().split("\n").pop()!) as { torch: string; threads: number; forward: Times; backward: Times; optimizer: Times; step: Times };
  console.log(`PyTorch ${t.torch}, ${t.threads} threads, same shapes (autograd keeps activations: no recomputed forward); best of ${REPEATS}`);
  for (const k of ["forward", "backward", "optimizer", "step"] as const) console.log(`${k.padEnd(10)} ${t[k].wall.toFixed(3)} s wall, ${t[k].cpu.toFixed(3)} s CPU`);
  console.log(`topiary step / torch step: ${(step.cpu / t.step.cpu).toFixed(2)}× in CPU time, ${(step.wall / t.step.wall).toFixed(2)}× in wall time (target ≤ 1.25×)`);
}

/** Child process of --layers: one recover() step; prints its peak RSS as JSON. */
async function rssChild(dir: string, mode: "lora" | "masked"): Promise<void> {
  const student = loadModel(dir);
  const teacher = loadModel(dir);
  const ids = Int32Array.from({ length: 2 * B * T }, (_, i) => 1 + ((i * 7919) % (student.config.vocabSize - 1)));
  const t0 = performance.now();
  const r = await recover(student, teacher, ids, {
    mode, steps: 1, batch: B, seqlen: T, lr: 1e-4, warmup: 0, weightDecay: 0, clip: 0, seed: 0, loss: "kl", temperature: 1,
    rank: 8, alpha: 16, evalIds: null, evalSeqlen: T, evalEvery: 0,
  });
  const seconds = (performance.now() - t0) / 1000;
  await releaseSessions();
  console.log(JSON.stringify({ maxRssBytes: process.resourceUsage().maxRSS * 1024, seconds, trainable: r.trainable, loss: r.losses[0] }));
}

function memAvailable(): number {
  const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync("/proc/meminfo", "utf8"));
  return m ? Number(m[1]) * 1024 : os.freemem();
}

const MODES = (process.argv.includes("--modes") ? process.argv[process.argv.indexOf("--modes") + 1]!.split(",") : ["lora", "masked"]) as ("lora" | "masked")[];

async function rssBench(depths: number[]): Promise<void> {
  const GB = (b: number) => (b / 1e9).toFixed(2);
  const root = fs.mkdtempSync(path.join(os.tmpdir(), "topiary-bench-recover-"));
  const seen: Record<string, { layers: number; rss: number }[]> = { lora: [], masked: [] };
  console.log(`Peak RSS of one training step (batch ${B} × ${T}, KL to the teacher), TinyLlama-shaped student, fresh process each; load average ${os.loadavg().map((l) => l.toFixed(1)).join(", ")}`);
  try {
    for (const layers of [...depths].sort((a, b) => a - b)) {
      const dir = path.join(root, `l${layers}`);
      let written = false;
      for (const mode of MODES) {
        const prior = seen[mode]!;
        const projected =
          prior.length >= 2 ? prior.at(-1)!.rss + ((prior.at(-1)!.rss - prior.at(-2)!.rss) / (prior.at(-1)!.layers - prior.at(-2)!.layers)) * (layers - prior.at(-1)!.layers) : null;
        const available = memAvailable();
        if (projected !== null && projected > 0.9 * available) {
          console.log(`${String(layers).padStart(3)} layers, ${mode.padEnd(6)}: not run — projected ${GB(projected)} GB (linear in depth from ${prior.at(-2)!.layers} and ${prior.at(-1)!.layers} layers), ${GB(available)} GB available now`);
          continue;
        }
        if (!written) {
          writeSyntheticCheckpoint(dir, layers);
          written = true;
        }
        const r = spawnSync(process.execPath, [...process.execArgv, import.meta.filename, "--rss-child", dir, mode, "--batch", String(B), "--seqlen", String(T)], { encoding: "utf8" });
        if (r.status !== 0) {
          console.log(`${String(layers).padStart(3)} layers, ${mode.padEnd(6)}: failed (exit ${r.status ?? r.signal}): ${(r.stderr || "").trim().split("\n").pop()}`);
          continue;
        }
        const m = JSON.parse(r.stdout.trim().split("\n").pop()!) as { maxRssBytes: number; seconds: number; trainable: number };
        prior.push({ layers, rss: m.maxRssBytes });
        console.log(`${String(layers).padStart(3)} layers, ${mode.padEnd(6)}: peak RSS ${GB(m.maxRssBytes)} GB (${(m.trainable / 1e6).toFixed(1)} M trainable; step ${m.seconds.toFixed(1)} s wall)`);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    }
    for (const mode of ["lora", "masked"] as const) {
      const p = seen[mode]!;
      if (p.length >= 2 && !p.some((x) => x.layers === 22)) {
        const [a, b] = [p.at(-2)!, p.at(-1)!];
        const slope = (b.rss - a.rss) / (b.layers - a.layers);
        console.log(`${mode}: ${GB(slope)} GB per layer; projected to 22 layers: ${GB(b.rss + slope * (22 - b.layers))} GB (not measured)`);
      }
    }
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
}

const child = process.argv.indexOf("--rss-child");
if (child >= 0) {
  await rssChild(process.argv[child + 1]!, process.argv[child + 2] as "lora" | "masked");
} else {
  // RSS first: the step bench leaves this process holding a block's weights and sessions (GBs)
  // while the children would run beside it
  const layersArg = process.argv.indexOf("--layers");
  if (layersArg >= 0) await rssBench(process.argv[layersArg + 1]!.split(",").map(Number));
  if (!process.argv.includes("--no-step")) await stepBench();
}
