// Memory: peak RSS of topiary's commands on checkpoints larger than this machine's RAM would allow
// if they were loaded whole. A synthetic Llama checkpoint (random weights, models/synthetic.ts) is
// written as fp16 safetensors in a temporary folder — Llama-2-7B's shapes (32 layers, hidden 4096,
// MLP 11008, 32 heads, vocab 32000: 13.5 GB on disk, 27 GB as float32) and TinyLlama-1.1B's
// (22 layers, hidden 2048, MLP 5632, 32/4 heads: 2.2 GB, 4.4 GB as float32) — and each command
// runs on it as its own child process, through the CLI a user runs (bin/topiary.js), under
// GNU time, which reports the child's peak RSS (the kernel's ru_maxrss) and wall time:
//   eval      2 windows of 512 tokens
//   generate  a 4-token prompt, 2 new tokens (greedy, KV cache)
//   prune     SparseGPT 50 %, 2 calibration windows of 512 tokens, written as compressed-tensors
//   export    GGUF q4_0
//   onnx      ONNX fp16 export (only when named in --only)
// Target: every command ≤ 6 GB. Outputs are deleted after each command, the checkpoint at the end.
//
//   node scripts/tuned.mjs bench/memory.ts [--shape 7b|tinyllama|both] [--layers N] [--dir DIR]
//                                          [--only eval,generate,prune,export,onnx] [--parallel]
// --layers overrides the depth (a 4-layer 7B-wide model is a quick check of the code paths);
// --dir: where the temporary checkpoint goes (default: the OS temp dir; check `df -h` first);
// --parallel: eval + generate, export and prune run side by side (peak RSS is per process, so
// the figures hold; wall times then include the contention).
import { execFile, execFileSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { syntheticModel, tinyLlamaShape, type SyntheticShape } from "../src/models/synthetic.js";
import { writeSyntheticFolder } from "./common.js";

const args = process.argv.slice(2);
const opt = (name: string) => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const SHAPES = opt("--shape") ?? "both";
const LAYERS = opt("--layers") ? Number(opt("--layers")) : undefined;
const ONLY = (opt("--only") ?? "eval,generate,prune,export").split(",");
const PARALLEL = args.includes("--parallel");
const REPO = path.resolve(import.meta.dirname, "..");
const TARGET_BYTES = 6e9;

const llama2_7bShape = (layers: number): SyntheticShape => ({
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 4096,
  intermediate_size: 11008,
  num_hidden_layers: layers,
  num_attention_heads: 32,
  num_key_value_heads: 32,
  vocab_size: 32000,
  max_position_embeddings: 4096,
  rms_norm_eps: 1e-5,
  tie_word_embeddings: false,
  bos_token_id: 1,
  eos_token_id: 2,
});

const tmp = fs.mkdtempSync(path.join(opt("--dir") ?? os.tmpdir(), "topiary-bench-memory-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => process.exit(130));
const t0 = performance.now();
const log = (m: string) => process.stderr.write(`[${((performance.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${m}\n`);
const gb = (b: number) => (b / 1e9).toFixed(2);

function checkpointSize(dir: string, shape: SyntheticShape): { bytes: number; float32Bytes: number } {
  const { weights } = syntheticModel(shape, 1);
  const params = weights.names().reduce((a, n) => a + weights.shape(n).reduce((x, y) => x * y, 1), 0);
  return { bytes: fs.statSync(path.join(dir, "model.safetensors")).size, float32Bytes: params * 4 };
}

if (args[0] === "--write-checkpoint") {
  writeSyntheticFolder(args[1]!, JSON.parse(args[2]!));
  process.exit(0);
}

/** Lower-case words from a fixed generator: text the synthetic tokenizer cuts into many tokens. */
function writeText(file: string, words: number): void {
  let h = 12345;
  const out: string[] = [];
  for (let i = 0; i < words; i++) {
    let w = "";
    h = (Math.imul(h, 1103515245) + 12345) >>> 0;
    const len = 2 + (h % 7);
    for (let k = 0; k < len; k++) {
      h = (Math.imul(h, 1103515245) + 12345) >>> 0;
      w += String.fromCharCode(97 + ((h >>> 16) % 26));
    }
    out.push(w);
  }
  fs.writeFileSync(file, out.join(" ") + "\n");
}

interface Row {
  model: string;
  command: string;
  peakRssBytes: number;
  seconds: number;
}

/** Runs `topiary …` under GNU time; returns its peak RSS and wall time. */
async function measure(model: string, command: string, topiaryArgs: string[]): Promise<Row> {
  const timeFile = path.join(tmp, `time-${topiaryArgs[0]}.txt`);
  log(`${model}: topiary ${topiaryArgs.join(" ")}`);
  // run through scripts/tuned.mjs, the environment has the malloc settings, so bin/topiary.js does
  // not re-run itself and GNU time's child is the process that does the work (without them the
  // re-run child is waited for by its parent, and ru_maxrss still covers it)
  await new Promise<void>((resolve, reject) => {
    const child = execFile("/usr/bin/time", ["-f", "%M %e", "-o", timeFile, process.execPath, path.join(REPO, "bin", "topiary.js"), ...topiaryArgs], {
      cwd: REPO,
      env: { ...process.env, CI: "1" },
      maxBuffer: 1 << 30,
    }, (err, stdout) => {
      if (err) reject(err);
      else {
        process.stdout.write(stdout.slice(0, 1000));
        resolve();
      }
    });
    child.stderr?.pipe(process.stderr);
  });
  const [kb, secs] = fs.readFileSync(timeFile, "utf8").trim().split("\n").pop()!.split(" ").map(Number) as [number, number];
  const row = { model, command, peakRssBytes: kb * 1024, seconds: secs };
  log(`${model} ${command}: peak RSS ${gb(row.peakRssBytes)} GB, ${secs.toFixed(1)} s`);
  return row;
}

const rows: Row[] = [];
const text = path.join(tmp, "text.txt");
writeText(text, 6000);
const shapes: [string, SyntheticShape][] = [];
if (SHAPES === "tinyllama" || SHAPES === "both") shapes.push(["TinyLlama-1.1B", tinyLlamaShape(LAYERS ?? 22)]);
if (SHAPES === "7b" || SHAPES === "both") shapes.push(["Llama-2-7B", llama2_7bShape(LAYERS ?? 32)]);

for (const [label, shape] of shapes) {
  const name = `${label} shape, ${shape.num_hidden_layers} layers`;
  const dir = path.join(tmp, "model");
  const t1 = performance.now();
  // in a child process: the conversion buffers would otherwise stay in this one's heap
  execFileSync(process.execPath, ["--import", "tsx", import.meta.filename, "--write-checkpoint", dir, JSON.stringify(shape)], { cwd: REPO, stdio: "inherit" });
  const { bytes, float32Bytes } = checkpointSize(dir, shape);
  log(`${name}: wrote ${gb(bytes)} GB of fp16 safetensors (${gb(float32Bytes)} GB as float32) in ${((performance.now() - t1) / 1000).toFixed(0)} s`);
  const out = path.join(tmp, "out");
  const groups: (() => Promise<void>)[] = [
    async () => {
      if (ONLY.includes("eval")) rows.push(await measure(name, "eval, 2 × 512 tokens", ["eval", dir, "--data", text, "--seqlen", "512", "--limit-windows", "2", "--json"]));
      if (ONLY.includes("generate")) {
        rows.push(await measure(name, "generate, 2 new tokens", ["generate", dir, "--prompt", "abc def ghi", "--max-new-tokens", "2", "--temperature", "0", "--json"]));
      }
    },
    async () => {
      if (ONLY.includes("export")) {
        rows.push(await measure(name, "export GGUF q4_0", ["export", dir, "--to", "gguf", "--type", "q4_0", "--out", `${out}.gguf`]));
        fs.rmSync(`${out}.gguf`, { force: true });
      }
      if (ONLY.includes("onnx")) {
        rows.push(await measure(name, "export ONNX fp16", ["export", dir, "--to", "onnx", "--type", "fp16", "--out", `${out}-onnx`]));
        fs.rmSync(`${out}-onnx`, { recursive: true, force: true });
      }
    },
    async () => {
      if (!ONLY.includes("prune")) return;
      rows.push(
        await measure(name, "prune SparseGPT 50 %, 2 × 512 calibration", [
          "prune", dir, "--method", "sparsegpt", "--sparsity", "0.5", "--calib", text, "--nsamples", "2", "--calib-seqlen", "512",
          "--calib-sampling", "first", "--format", "compressed-tensors", "--out", out, "--json",
        ]),
      );
      fs.rmSync(out, { recursive: true, force: true });
    },
  ];
  if (PARALLEL) await Promise.all(groups.map((g) => g()));
  else for (const g of groups) await g();
  fs.rmSync(dir, { recursive: true, force: true });
  rows.push({ model: name, command: "(float32 weights, for scale)", peakRssBytes: float32Bytes, seconds: NaN });
}

console.log("\n| model | command | peak RSS | wall |\n| --- | --- | ---: | ---: |");
for (const r of rows) {
  const over = Number.isNaN(r.seconds) || r.peakRssBytes <= TARGET_BYTES ? "" : " (over the 6 GB target)";
  console.log(`| ${r.model} | ${r.command} | ${gb(r.peakRssBytes)} GB${over} | ${Number.isNaN(r.seconds) ? "" : `${r.seconds.toFixed(1)} s`} |`);
}
