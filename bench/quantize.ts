// GPTQ 4-bit, group size 128, on one decoder layer with TinyLlama-1.1B shapes (see
// bench/layer-workload.ts): seconds per layer split into Hessian accumulation, factorisation and
// the column loop, achieved GFLOP/s against a plain onnxruntime MatMul in the same run, and —
// when /usr/bin/python3 has torch — the ratio to the reference GPTQ (perf_reference.py
// `GPTQ.fasterquant`, Hessians reused as in that script) on the same shape, same run.
//
//   npm run bench:quantize [-- --nsamples 128]
import { GPTQCompressor } from "../src/compress/quant/compressors.js";
import { LINEARS, accumulateHessians, warmUp, columnLoopFlops, factorFlops, fmt, matmulRate, randomWeights, referenceTiming } from "./layer-workload.js";

const nsamples = Number(process.argv[process.argv.indexOf("--nsamples") + 1]) || 128;

const rate = await matmulRate();
console.log(`plain onnxruntime MatMul 2048³: ${fmt(rate, 1)} GFLOP/s`);

const weights = randomWeights();
const compressor = new GPTQCompressor({ bits: 4, group_size: 128, sym: false, act_order: false, static_groups: false, blocksize: 128, dampening: 0.01, mse: false });
await warmUp(async (n) => {
  const w = await accumulateHessians(n, 2);
  for (const l of LINEARS) await compressor.compress(l.name, weights.get(l.name)!, w.stats.get(l.input)!.view(l.name, () => {}));
});
const h = await accumulateHessians(nsamples);
console.log(`Hessians (3 inputs, ${nsamples} × 512 tokens): ${fmt(h.seconds)} s, ${fmt(h.flops / h.seconds / 1e9, 1)} GFLOP/s`);

let factorSeconds = 0;
let factorFlopCount = 0;
for (const s of h.stats.values()) {
  const t0 = performance.now();
  await s.inverseFactor({ dampening: 0.01 }, () => {});
  factorSeconds += (performance.now() - t0) / 1000;
  factorFlopCount += factorFlops(s.width);
}
console.log(`Hinv (3 factorisations): ${fmt(factorSeconds)} s, ${fmt(factorFlopCount / factorSeconds / 1e9, 1)} GFLOP/s`);

let loopSeconds = 0;
let loopFlops = 0;
for (const l of LINEARS) {
  const stats = h.stats.get(l.input)!.view(l.name, () => {});
  const t0 = performance.now();
  await compressor.compress(l.name, weights.get(l.name)!, stats); // Hinv is memoised: this is the loop
  const dt = (performance.now() - t0) / 1000;
  loopSeconds += dt;
  loopFlops += columnLoopFlops(l.out, l.in);
  console.log(`  ${l.name.padEnd(18)} ${l.out}×${l.in}: ${fmt(dt)} s`);
}
console.log(`column loop (7 linears): ${fmt(loopSeconds)} s, ${fmt(loopFlops / loopSeconds / 1e9, 1)} GFLOP/s`);

const quantSeconds = factorSeconds + loopSeconds;
const total = h.seconds + quantSeconds;
const flops = h.flops + factorFlopCount + loopFlops;
console.log(`\ntopiary GPTQ layer: ${fmt(total)} s = Hessian ${fmt(h.seconds)} + factorisation ${fmt(factorSeconds)} + column loop ${fmt(loopSeconds)}`);
console.log(`overall ${fmt(flops / total / 1e9, 1)} GFLOP/s = ${fmt(flops / total / 1e9 / rate)} × the MatMul rate`);

const ref = referenceTiming(nsamples);
if (typeof ref === "string") {
  console.log(`reference code: ${ref}`);
} else {
  console.log(`reference code (torch, ${ref.threads} thread(s), MatMul ${fmt(ref.matmulGflops, 1)} GFLOP/s): add_batch ${fmt(ref.addBatch)} s, fasterquant ${fmt(ref.gptq)} s`);
  console.log(`topiary / reference, quantization (factorisation + column loop vs fasterquant): ${fmt(quantSeconds / ref.gptq)} (target ≤ 0.50)`);
  console.log(`topiary / reference, whole layer (with Hessian accumulation): ${fmt(total / (ref.addBatch + ref.gptq))}`);
}
