// Deployment: file size and decode speed of compressed models in the runtimes that serve them,
// for stories260K (../shared) and a synthetic model with TinyLlama-1.1B's widths and random
// weights (models/synthetic.ts), written once as an fp16 Hugging Face folder.
//
// Variants, each a real artifact written by topiary and decoded by the runtime that loads it:
//   dense fp32       safetensors F32 · GGUF f32 · ONNX fp32
//   dense fp16       safetensors F16 · GGUF f16 · ONNX fp16            (the baseline of every ratio)
//   50 % sparse      magnitude, unstructured 0.5: compressed-tensors sparse-bitmask (fp16 values)
//                    · GGUF f16 · ONNX fp16 (no CPU runtime has sparse kernels: dense compute)
//   4-bit            RTN 4-bit, groups of 32, symmetric: compressed-tensors pack-quantized
//                    (fp16 scales) · GGUF q4_0 from topiary's own codes (LM head Q6_K) · GGUF q4_k
//                    (re-quantized: its grid cannot hold the RTN codes) · ONNX q4f16
//                    (MatMulNBits from the same codes; embeddings and LM head fp16)
//   50 % + 4-bit     magnitude 0.5, then the same RTN (pruned zeros stay zero on a symmetric grid)
// Sizes: model.safetensors, the .gguf, the .onnx graph + weights; each as a ratio to the same
// format at fp16. Decode: greedy, `--tokens` new tokens after an 8-token prompt, llama.cpp
// (node-llama-cpp's prebuilt CPU binary) on the GGUFs and onnxruntime on the ONNX exports; best
// of ROUNDS rounds, interleaved across variants (a shared CPU only ever slows a round down).
// onnxruntime runs with every core (its idle threads sleep). llama.cpp runs with 1 thread and
// with every core, and the faster counts: its threads spin at every barrier, so on a VM whose
// other core is busy with a neighbour's work a 2-thread decode can be 10× slower than 1 thread.
// Each measurement loads its model, warms up, decodes, and unloads it, so memory holds one model
// at a time. Everything is written under one temporary folder, removed at exit.
//
//   node scripts/tuned.mjs bench/deploy.ts [--layers N] [--tokens N] [--skip-stories] [--skip-tiny-llama] [--llama-bench PATH]
// --llama-bench: also decode every GGUF file with llama.cpp's own `llama-bench` (PATH to the
// binary; bench/structured.ts says why node-llama-cpp's figure carries a per-token thread cost
// and how to build it), a column of its own; the llama.cpp goal is then judged on it.
// --layers: depth of the TinyLlama-shaped model (default 22, the real depth: with a few layers
// the 32000 × 2048 embedding and LM head dominate the files and no 4-bit format reaches 0.3×).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { Llama } from "node-llama-cpp";
import { runCompression, type OutputWriter } from "../src/compress/job.js";
import { buildStage } from "../src/compress/registry.js";
import { exportGguf, type GgufTypeName } from "../src/export/gguf.js";
import { exportOnnx, type OnnxWeightDtype } from "../src/export/onnx.js";
import { fillCompressedTensors } from "../src/formats/compressed-tensors/writer.js";
import { copyModelFiles, writeDenseSafetensors, type FloatDtype } from "../src/formats/hf-folder.js";
import { loadModel } from "../src/models/load.js";
import { llamaBenchSpeeds, llamaCppTokensPerSecond, onnxTokensPerSecond, promptFor, tinyLlamaParameters, writeSyntheticCheckpoint } from "./common.js";

const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const LAYERS = flag("--layers", 22);
const TOKENS = flag("--tokens", 32);
const ROUNDS = 3;
const LLAMA_BENCH = args.includes("--llama-bench") ? args[args.indexOf("--llama-bench") + 1]! : null;
const PROMPT_TOKENS = 8;
const THREADS = os.availableParallelism();
const STORIES = path.resolve(import.meta.dirname, "..", "..", "shared", "models", "stories260K");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "topiary-bench-deploy-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));

const t0 = performance.now();
const log = (m: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${m}\n`);

// ---------------------------------------------------------------------------------------------
// The synthetic checkpoint

/**
 * Disk the run needs at its peak, per parameter: the fp16 source (2), the decoded artifacts
 * (GGUF and ONNX: fp32 4 + fp16 2 + sparse fp16 2 + three 4-bit ≈ 0.6 each, twice) and the
 * largest scratch (the two-stage job's spilled float32 weights and masks, 2 × 5, plus its output).
 */
const DISK_BYTES_PER_PARAMETER = 2 + 2 * (4 + 2 + 2 + 1.8) + 2 * 5 + 0.6;

// ---------------------------------------------------------------------------------------------
// Artifacts

interface Artifact {
  variant: string;
  format: string;
  bytes: number;
  /** the file or folder a runtime decodes, or null when the format is only sized */
  decode: { runtime: "llama.cpp"; file: string } | { runtime: "onnxruntime"; dir: string } | null;
}

/**
 * The 4-bit GGUFs: q4_0 holds the RTN codes unchanged; q4_k (llama.cpp's usual 4-bit type, 6-bit
 * scales per 32 under an fp16 scale per 256) cannot, so it re-quantizes the dequantized weights.
 */
const FOUR_BIT_GGUF: GgufTypeName[] = ["q4_0", "q4_k"];

const VARIANTS = ["dense fp32", "dense fp16", "50 % sparse", "4-bit", "50 % + 4-bit"] as const;
const MAGNITUDE = { method: "magnitude", sparsity: 0.5 };
const RTN = { method: "rtn", bits: 4, group_size: 32, sym: true };

/** compressed-tensors with every float tensor and every scale stored as fp16. */
function compressedTensorsFp16(format: "sparse-bitmask" | "pack-quantized"): OutputWriter {
  return ({ outDir, sourceDir, config, source, stores, linears, warn }) => {
    const compressed = {
      keys: () => new Set(stores.flatMap((s) => s.names())),
      get: (name: string) => [...stores].reverse().find((s) => s.has(name))?.get(name),
    };
    const report = fillCompressedTensors(outDir, { format, sourceModelDir: sourceDir, compressed, weights: source, config, linears, dtype: "F16", scaleDtype: "F16" });
    for (const w of report.warnings) warn(w);
  };
}

const fileBytes = (file: string) => fs.statSync(file).size;

/** A dense safetensors folder of `src` in `dtype`: its size only (removed once measured). */
function safetensorsArtifact(variant: string, src: string, dtype: FloatDtype, out: string): Artifact {
  const m = loadModel(src);
  try {
    fs.mkdirSync(out);
    writeDenseSafetensors(out, m.weights, () => dtype);
    copyModelFiles(src, out, { ...m.config.raw, torch_dtype: dtype === "F16" ? "float16" : "float32" });
  } finally {
    m.close();
  }
  const bytes = fileBytes(path.join(out, "model.safetensors"));
  fs.rmSync(out, { recursive: true });
  return { variant, format: `safetensors ${dtype}`, bytes, decode: null };
}

/** The GGUF exports (one per type) and the ONNX export of the model folder `src` that the runtimes decode. */
async function runtimeArtifacts(variant: string, src: string, name: string, ggufTypes: GgufTypeName[], onnx: OnnxWeightDtype): Promise<Artifact[]> {
  const m = loadModel(src);
  try {
    const rows: Artifact[] = [];
    for (const gguf of ggufTypes) {
      const file = path.join(tmp, `${name}-${gguf}.gguf`);
      const g = exportGguf({ config: m.config, weights: m.weights, dir: src }, { type: gguf, out: file });
      const fromCodes = g.tensors.filter((t) => t.fromCodes).length;
      log(`${path.basename(file)}: ${(g.bytes / 1e6).toFixed(1)} MB${fromCodes ? `, ${fromCodes} tensors from topiary's codes` : ""}${g.warnings.length ? ` (${g.warnings.join("; ")})` : ""}`);
      rows.push({ variant, format: `GGUF ${gguf}`, bytes: g.bytes, decode: { runtime: "llama.cpp", file } });
    }
    const dir = path.join(tmp, `${name}-onnx`);
    const o = await exportOnnx(m.config, m.weights, dir, { dtype: onnx, sourceDir: src });
    log(`${name}-onnx: ${(o.bytes / 1e6).toFixed(1)} MB, ${o.dtype}${o.quantizedLinears ? `, ${o.quantizedLinears} MatMulNBits` : ""}`);
    rows.push({ variant, format: `ONNX ${o.dtype}`, bytes: o.bytes, decode: { runtime: "onnxruntime", dir } });
    return rows;
  } finally {
    m.close();
  }
}

/** Prunes and/or quantizes `src` through the pipeline into compressed-tensors, sizes it, exports it. */
async function compressedArtifacts(variant: string, src: string, name: string, stages: Record<string, unknown>[], gguf: GgufTypeName[]): Promise<Artifact[]> {
  const out = path.join(tmp, `${name}-ct`);
  const format = stages.some((s) => s.method === "rtn") ? "pack-quantized" : "sparse-bitmask";
  const job = await runCompression({
    modelDir: src,
    outDir: out,
    stages: stages.map((s, k) => buildStage(s, `${variant} stage ${k + 1}`)),
    calibration: null,
    writer: compressedTensorsFp16(format),
  });
  const zeros = job.linears.reduce((a, r) => a + r.zeros, 0) / job.linears.reduce((a, r) => a + r.shape[0] * r.shape[1], 0);
  log(`${name}-ct: ${format}, ${(fileBytes(path.join(out, "model.safetensors")) / 1e6).toFixed(1)} MB, ${(100 * zeros).toFixed(1)} % zeros in the linears, ${job.seconds.toFixed(0)} s`);
  const rows: Artifact[] = [{ variant, format: `compressed-tensors ${format}`, bytes: fileBytes(path.join(out, "model.safetensors")), decode: null }];
  rows.push(...(await runtimeArtifacts(variant, out, name, gguf, "fp16")));
  fs.rmSync(out, { recursive: true });
  return rows;
}

async function artifacts(model: string, src: string): Promise<Artifact[]> {
  const [fp32, fp16, sparse, q4, sparseQ4] = VARIANTS;
  const rows: Artifact[] = [];
  log(`${model}: dense fp32`);
  rows.push(safetensorsArtifact(fp32, src, "F32", path.join(tmp, `${model}-f32`)));
  rows.push(...(await runtimeArtifacts(fp32, src, `${model}-f32`, ["f32"], "fp32")));
  log(`${model}: dense fp16`);
  rows.push(safetensorsArtifact(fp16, src, "F16", path.join(tmp, `${model}-f16`)));
  rows.push(...(await runtimeArtifacts(fp16, src, `${model}-f16`, ["f16"], "fp16")));
  log(`${model}: ${sparse}`);
  rows.push(...(await compressedArtifacts(sparse, src, `${model}-sparse`, [MAGNITUDE], ["f16"])));
  log(`${model}: ${q4}`);
  rows.push(...(await compressedArtifacts(q4, src, `${model}-q4`, [RTN], FOUR_BIT_GGUF)));
  log(`${model}: ${sparseQ4}`);
  rows.push(...(await compressedArtifacts(sparseQ4, src, `${model}-sparse-q4`, [MAGNITUDE, RTN], FOUR_BIT_GGUF)));
  return rows;
}

// ---------------------------------------------------------------------------------------------
// Decoding

/** A decode speed and the threads it ran with. */
interface Speed {
  tps: number;
  threads: number;
}

/** Thread counts llama.cpp is measured with (see the header). */
const LLAMA_THREADS = [...new Set([1, THREADS])];

/**
 * Best tokens/s of each decodable artifact over ROUNDS interleaved rounds; with --llama-bench,
 * also each GGUF file's best in llama-bench (`bench`).
 */
async function measure(llama: Llama, model: string, rows: Artifact[], vocabSize: number): Promise<{ tps: Map<Artifact, Speed>; bench: Map<Artifact, Speed> }> {
  const best = new Map<Artifact, Speed>();
  const bench = new Map<Artifact, Speed>();
  const keep = (r: Artifact, s: Speed, into = best) => {
    if (s.tps > (into.get(r)?.tps ?? 0)) into.set(r, s);
  };
  for (let round = 1; round <= ROUNDS; round++) {
    for (const r of rows) {
      if (!r.decode) continue;
      const speeds: Speed[] = [];
      if (r.decode.runtime === "llama.cpp") {
        for (const threads of LLAMA_THREADS) speeds.push({ tps: await llamaCppTokensPerSecond(llama, r.decode.file, promptFor(vocabSize, PROMPT_TOKENS), TOKENS, threads), threads });
      } else {
        speeds.push({ tps: await onnxTokensPerSecond(r.decode.dir, promptFor(vocabSize, PROMPT_TOKENS), TOKENS), threads: THREADS });
      }
      for (const s of speeds) keep(r, s);
      log(`${model} round ${round}: ${r.variant}, ${r.format} (${r.decode.runtime}): ${speeds.map((s) => `${s.tps.toFixed(1)} tokens/s with ${s.threads} threads`).join(", ")}`);
      if (LLAMA_BENCH && r.decode.runtime === "llama.cpp") {
        const b = await llamaBenchSpeeds(LLAMA_BENCH, r.decode.file, { tokens: TOKENS, threads: LLAMA_THREADS });
        keep(r, { tps: b.decode, threads: b.threads }, bench);
        log(`${model} round ${round}: ${r.variant}, ${r.format} (llama-bench): ${b.decode.toFixed(1)} tokens/s with ${b.threads} threads`);
      }
    }
  }
  return { tps: best, bench };
}

// ---------------------------------------------------------------------------------------------
// Report

interface ModelResult {
  title: string;
  rows: Artifact[];
  tps: Map<Artifact, Speed>;
  /** llama-bench's decode of the GGUF files (empty without --llama-bench) */
  bench: Map<Artifact, Speed>;
}

/** The fp16 row of the same format family (safetensors/compressed-tensors, GGUF, ONNX). */
function baselineOf(r: Artifact, rows: Artifact[]): Artifact {
  const family = r.format.split(" ")[0] === "compressed-tensors" ? "safetensors" : r.format.split(" ")[0];
  return rows.find((b) => b.variant === "dense fp16" && b.format.startsWith(family!))!;
}

function table(res: ModelResult): string {
  const lines = [
    `**${res.title}**`,
    "",
    `| variant | format | bytes | size × fp16 | llama.cpp tok/s | × fp16 |${LLAMA_BENCH ? " llama-bench tok/s | × fp16 |" : ""} onnxruntime tok/s | × fp16 |`,
    `| --- | --- | ---: | ---: | ---: | ---: |${LLAMA_BENCH ? " ---: | ---: |" : ""} ---: | ---: |`,
  ];
  for (const r of res.rows) {
    const base = baselineOf(r, res.rows);
    const s = res.tps.get(r);
    const threads = s && r.decode?.runtime === "llama.cpp" ? ` (${s.threads} t)` : "";
    const speed = s === undefined ? "" : `${s.tps.toFixed(1)}${threads} | ${(s.tps / res.tps.get(base)!.tps).toFixed(2)}×`;
    const [cpp, ort] = r.decode?.runtime === "llama.cpp" ? [speed, " | "] : r.decode?.runtime === "onnxruntime" ? [" | ", speed] : [" | ", " | "];
    const b = res.bench.get(r);
    const bench = !LLAMA_BENCH ? "" : b === undefined ? "  |  |" : ` ${b.tps.toFixed(1)} (${b.threads} t) | ${(b.tps / res.bench.get(base)!.tps).toFixed(2)}× |`;
    lines.push(`| ${r.variant} | ${r.format} | ${r.bytes.toLocaleString("en-US")} | ${(r.bytes / base.bytes).toFixed(3)}× | ${cpp} |${bench} ${ort} |`);
  }
  return lines.join("\n");
}

function goals(res: ModelResult): string[] {
  const find = (variant: string, format: string) => res.rows.find((r) => r.variant === variant && r.format.startsWith(format))!;
  const ratio = (a: Artifact, b: Artifact, m = res.tps) => m.get(a)!.tps / m.get(b)!.tps;
  const f16 = find("dense fp16", "GGUF");
  const q40 = find("4-bit", "GGUF q4_0");
  const q4k = find("4-bit", "GGUF q4_k");
  const size = q40.bytes / f16.bytes;
  // llama.cpp is judged on llama-bench when it ran (no per-token thread creation), else node-llama-cpp
  const judged = res.bench.size ? res.bench : res.tps;
  const cpp = Math.max(ratio(q40, f16, judged), ratio(q4k, f16, judged));
  const ort = ratio(find("4-bit", "ONNX"), find("dense fp16", "ONNX"));
  const node = `q4_0 ${ratio(q40, f16).toFixed(2)}×, q4_k ${ratio(q4k, f16).toFixed(2)}× f16`;
  const bench = res.bench.size ? `llama-bench q4_0 ${ratio(q40, f16, res.bench).toFixed(2)}×, q4_k ${ratio(q4k, f16, res.bench).toFixed(2)}× f16; node-llama-cpp ${node}` : node;
  return [
    `${size <= 0.3 ? "PASS" : "MISS"} 4-bit ≤ 0.3× size: GGUF q4_0 is ${size.toFixed(3)}× GGUF f16 (q4_k ${(q4k.bytes / f16.bytes).toFixed(3)}×)`,
    `${cpp >= 2 ? "PASS" : "MISS"} ≥ 2× decode vs fp16 in llama.cpp: ${bench} (onnxruntime q4f16 vs fp16: ${ort.toFixed(2)}×)`,
  ];
}

// ---------------------------------------------------------------------------------------------

const { getLlama, LlamaLogLevel } = await import("node-llama-cpp");
const llama = await getLlama({ gpu: false, build: "never", usePrebuiltBinaries: true, progressLogs: false, logLevel: LlamaLogLevel.error });
const results: ModelResult[] = [];

if (!args.includes("--skip-stories") && fs.existsSync(STORIES)) {
  const rows = await artifacts("stories260K", STORIES);
  results.push({ title: "stories260K (5 layers, 260K parameters)", rows, ...(await measure(llama, "stories260K", rows, 512)) });
  for (const r of rows) if (r.decode) fs.rmSync("file" in r.decode ? r.decode.file : r.decode.dir, { recursive: true });
}

if (!args.includes("--skip-tiny-llama")) {
  let layers = LAYERS;
  const free = () => {
    const s = fs.statfsSync(tmp);
    return s.bavail * s.bsize;
  };
  while (layers > 1 && tinyLlamaParameters(layers) * DISK_BYTES_PER_PARAMETER > free()) layers--;
  if (layers !== LAYERS) log(`only ${(free() / 1e9).toFixed(1)} GB free under ${tmp}: TinyLlama shape with ${layers} layers instead of ${LAYERS}`);
  const params = tinyLlamaParameters(layers);
  const src = path.join(tmp, "tinyllama-src");
  log(`TinyLlama shape, ${layers} layers (${(params / 1e9).toFixed(2)} B parameters): writing the fp16 checkpoint`);
  writeSyntheticCheckpoint(src, layers);
  const rows = await artifacts("tinyllama", src);
  const title = `TinyLlama-1.1B shape, ${layers} of 22 layers (${(params / 1e9).toFixed(2)} B parameters, random weights)`;
  results.push({ title, rows, ...(await measure(llama, "tinyllama", rows, 32000)) });
}

await llama.dispose();
console.log(
  `Greedy decode, ${TOKENS} new tokens after an ${PROMPT_TOKENS}-token prompt, best of ${ROUNDS} interleaved rounds; onnxruntime ${THREADS} threads, ` +
    `llama.cpp the faster of ${LLAMA_THREADS.join(" and ")} threads ("t")${LLAMA_BENCH ? ` through node-llama-cpp, and in llama-bench (fastest of 3 repetitions per round)` : ""}; ` +
    `ratios against the same format at fp16 (compressed-tensors against safetensors F16). ${new Date().toISOString().slice(0, 10)}, ` +
    `${os.cpus()[0]?.model.trim() ?? "?"} × ${THREADS}, ${(performance.now() - t0) / 60_000 < 1 ? "<1" : ((performance.now() - t0) / 60_000).toFixed(0)} min.\n`,
);
for (const res of results) console.log(table(res) + "\n");
const tiny = results.find((r) => r.title.startsWith("TinyLlama"));
if (tiny) for (const line of goals(tiny)) console.log(line);
