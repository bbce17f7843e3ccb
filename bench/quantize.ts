// GPTQ 4-bit, group size 128, on one decoder layer with TinyLlama-1.1B shapes (see
// bench/layer-workload.ts): seconds split into Hessian accumulation, factorisation and the column
// loop, achieved GFLOP/s against a plain onnxruntime MatMul in the same run, and — when
// /usr/bin/python3 has torch — the ratio to the reference GPTQ (perf_reference.py: add_batch, then
// `GPTQ.fasterquant` on the same Hessians) on the same shape, same run.
//
//   npm run bench:quantize [-- --nsamples 128]
import { GPTQCompressor } from "../src/compress/quant/compressors.js";
import { fmt, matmulRate, referenceTiming, timeLayer } from "./layer-workload.js";

const nsamples = Number(process.argv[process.argv.indexOf("--nsamples") + 1]) || 128;

const before = await matmulRate();
const gptq = new GPTQCompressor({ bits: 4, group_size: 128, sym: false, act_order: false, static_groups: false, blocksize: 128, dampening: 0.01, mse: false });
const t = await timeLayer(gptq, nsamples);
const rate = Math.max(before, await matmulRate());
console.log(`plain onnxruntime MatMul 2048³: ${fmt(rate, 1)} GFLOP/s (best of a run before and a run after the layer)`);
const gflops = t.total.flops / t.total.seconds / 1e9;
const quantSeconds = t.factorisation.seconds + t.loop.seconds;
console.log(`\ntopiary GPTQ layer: ${fmt(t.total.seconds)} s = Hessian ${fmt(t.hessian.seconds)} + factorisation ${fmt(t.factorisation.seconds)} + column loop ${fmt(t.loop.seconds)}`);
console.log(`overall ${fmt(gflops, 1)} GFLOP/s = ${fmt(gflops / rate)} × the MatMul rate`);

const ref = referenceTiming(nsamples);
if (typeof ref === "string") {
  console.log(`reference code: ${ref}`);
} else {
  console.log(`reference code (torch, ${ref.threads} thread(s), MatMul ${fmt(ref.matmulGflops, 1)} GFLOP/s): add_batch ${fmt(ref.addBatch)} s, fasterquant ${fmt(ref.gptq)} s`);
  console.log(`topiary / reference wall time, Hessian accumulation + GPTQ: ${fmt(t.total.seconds / (ref.addBatch + ref.gptq))} (target ≤ 0.50)`);
  console.log(`topiary / reference wall time, GPTQ alone (factorisation + column loop vs fasterquant): ${fmt(quantSeconds / ref.gptq)}`);
}
