// SparseGPT 50 % on one decoder layer with TinyLlama-1.1B shapes (see bench/layer-workload.ts):
// seconds split into Hessian accumulation, factorisation (Hinv) and the column loop, achieved
// GFLOP/s against a plain onnxruntime MatMul in the same run, and — when /usr/bin/python3 has
// torch — the ratio to the reference code (perf_reference.py) on the same shape, same run.
//
//   npm run bench:prune [-- --nsamples 128]
import { SparseGPTCompressor } from "../src/compress/prune/compressors.js";
import { fmt, matmulRate, referenceTiming, timeLayer } from "./layer-workload.js";

const nsamples = Number(process.argv[process.argv.indexOf("--nsamples") + 1]) || 128;

const before = await matmulRate();
const t = await timeLayer(new SparseGPTCompressor({ sparsity: 0.5, pattern: "unstructured", blocksize: 128, dampening: 0.01 }), nsamples);
const rate = Math.max(before, await matmulRate());
console.log(`plain onnxruntime MatMul 2048³: ${fmt(rate, 1)} GFLOP/s (best of a run before and a run after the layer)`);
const gflops = t.total.flops / t.total.seconds / 1e9;
console.log(`\ntopiary SparseGPT layer: ${fmt(t.total.seconds)} s = Hessian ${fmt(t.hessian.seconds)} + factorisation ${fmt(t.factorisation.seconds)} + column loop ${fmt(t.loop.seconds)}`);
console.log(`overall ${fmt(gflops, 1)} GFLOP/s = ${fmt(gflops / rate)} × the MatMul rate (target ≥ 0.50)`);

const ref = referenceTiming(nsamples);
if (typeof ref === "string") {
  console.log(`reference code: ${ref}`);
} else {
  const refTotal = ref.addBatch + ref.sparsegpt;
  console.log(
    `reference code (torch, ${ref.threads} thread(s), MatMul ${fmt(ref.matmulGflops, 1)} GFLOP/s): add_batch ${fmt(ref.addBatch)} s + fasterprune ${fmt(ref.sparsegpt)} s = ${fmt(refTotal)} s`,
  );
  console.log(`topiary / reference wall time, Hessian accumulation + SparseGPT: ${fmt(t.total.seconds / refTotal)} (target ≤ 0.50)`);
}
