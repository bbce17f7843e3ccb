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
//   npx tsx bench/recover.ts [--layers-batch 4] [--seqlen 512] [--repeats 2]
import { CausalLM } from "../src/models/model.js";
import { linearSpecs, type LlamaConfig } from "../src/models/llama.js";
import { syntheticModel, tinyLlamaShape } from "../src/models/synthetic.js";
import { GraphBuilder } from "../src/runtime/onnx-graph.js";
import { cachedSession, f32, releaseSessions } from "../src/runtime/ort.js";
import { AdamW, type Param } from "../src/train/adamw.js";
import { blockBackward } from "../src/train/model-backward.js";

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
