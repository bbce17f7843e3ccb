// Decode speed of ONNX exports (export/onnx.ts) run by onnxruntime, against topiary's own
// KV-cache decode of the same model in the same run. Models: stories260K (../shared) and a
// synthetic TinyLlama-1.1B-shaped model with 2 layers and random weights.
//   npx tsx bench/onnx-decode.ts [--tokens N] [--skip-tiny-llama]
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { decode, type Decoder } from "../src/eval/decode.js";
import { OnnxDecoder } from "../src/eval/onnx-decoder.js";
import { exportOnnx, type OnnxExportOptions } from "../src/export/onnx.js";
import type { WeightSource } from "../src/formats/weights.js";
import type { ModelConfig } from "../src/models/config.js";
import { loadModel } from "../src/models/load.js";
import { CausalLM } from "../src/models/model.js";
import { syntheticModel, tinyLlamaShape } from "../src/models/synthetic.js";

const args = process.argv.slice(2);
const tokens = Number(args[args.indexOf("--tokens") + 1]) || 32;
/** Rounds over all variants; other work on a shared CPU only ever slows a round down. */
const ROUNDS = 3;
const STORIES = path.resolve(import.meta.dirname, "..", "..", "shared", "models", "stories260K");
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "topiary-bench-onnx-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

/** Greedy decode of `tokens` tokens after an 8-token prompt; no EOS stop. */
async function tokensPerSecond(model: Decoder): Promise<number> {
  const prompt = Int32Array.from({ length: 8 }, (_, i) => 1 + ((i * 37) % (model.config.vocabSize - 1)));
  await decode(model, prompt, { maxNewTokens: 4, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] }); // warm-up
  const r = await decode(model, prompt, { maxNewTokens: tokens, temperature: 0, topK: 0, topP: 1, seed: 0, stopIds: [] });
  return r.tokensPerSecond;
}

interface Row {
  model: string;
  variant: string;
  mb: number;
  tps: number;
}

/** Exports every variant, then measures all of them `ROUNDS` times, interleaved; the best round counts. */
async function bench(name: string, config: ModelConfig, weights: WeightSource, variants: [string, OnnxExportOptions][]): Promise<Row[]> {
  const runs: { variant: string; mb: number; model: Decoder; close(): unknown }[] = [];
  const own = new CausalLM(config, weights, tmp);
  runs.push({ variant: "topiary (baseline)", mb: NaN, model: own, close: () => {} });
  for (const [variant, opts] of variants) {
    const out = path.join(tmp, `${name}-${variant}`.replace(/[^\w.-]/g, "_"));
    const r = await exportOnnx(config, weights, out, opts);
    const dec = await OnnxDecoder.open(out);
    runs.push({ variant, mb: r.bytes / 1e6, model: dec, close: () => dec.close() });
  }
  const best = new Map<string, number>();
  for (let round = 0; round < ROUNDS; round++) {
    for (const r of runs) best.set(r.variant, Math.max(best.get(r.variant) ?? 0, await tokensPerSecond(r.model)));
  }
  for (const r of runs) await r.close();
  return runs.map((r) => ({ model: name, variant: r.variant, mb: r.mb, tps: best.get(r.variant)! }));
}

const q4 = (extra: Partial<OnnxExportOptions> = {}, head = false): OnnxExportOptions => ({
  dtype: "fp32",
  quantize: { bits: 4, groupSize: 32, sym: false, head },
  ...extra,
});
const variants: [string, OnnxExportOptions][] = [
  ["onnx fp32", { dtype: "fp32" }],
  ["onnx fp16", { dtype: "fp16" }],
  ["onnx q4 g32 acc0", q4({ accuracyLevel: 0 })],
  ["onnx q4 g32 acc4", q4({ accuracyLevel: 4 })],
  ["onnx q4 g32 +head acc4", q4({ accuracyLevel: 4 }, true)],
];

const rows: Row[] = [];
if (fs.existsSync(STORIES)) {
  const m = loadModel(STORIES);
  rows.push(...(await bench("stories260K", m.config, m.weights, variants)));
}
if (!args.includes("--skip-tiny-llama")) {
  const { config, weights } = syntheticModel(tinyLlamaShape(2), 1);
  rows.push(...(await bench("tinyllama-2L", config, weights, variants)));
}
console.log(`decode tokens/s (best of ${ROUNDS}), greedy, ${tokens} tokens after an 8-token prompt, ${os.availableParallelism()} threads`);
console.log("model          variant                    size MB   tokens/s   × baseline");
for (const r of rows) {
  const base = rows.find((b) => b.model === r.model)!.tps;
  const mb = Number.isNaN(r.mb) ? "" : r.mb.toFixed(1);
  console.log(`${r.model.padEnd(14)} ${r.variant.padEnd(26)} ${mb.padStart(7)} ${r.tps.toFixed(1).padStart(10)} ${(r.tps / base).toFixed(2).padStart(12)}`);
}
