// compressed-tensors folders: write → read round trips (bit-exact), the tensor layout and
// config.json against what compressed-tensors / llm-compressor write, and whole stories260K folders
// read back through loadModel.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { findParams, newGrid, rtnQuantize, setGroupParams } from "../../../src/compress/quant/grid.js";
import type { CompressedLinear } from "../../../src/formats/compressed-linear.js";
import { CompressedTensorsWeights } from "../../../src/formats/compressed-tensors/reader.js";
import { writeCompressedTensors, type CompressedTensorsOptions } from "../../../src/formats/compressed-tensors/writer.js";
import { float32ToBytes, SafetensorsFile, writeSafetensors } from "../../../src/formats/safetensors.js";
import { SafetensorsWeights } from "../../../src/formats/weights.js";
import { loadModel } from "../../../src/models/load.js";
import { Tensor } from "../../../src/tensor/tensor.js";
import { STORIES, tempDir } from "../../helpers.js";

const root = tempDir("topiary-ct-");
let counter = 0;
const fresh = (tag: string) => path.join(root, `${tag}-${counter++}`);

/** A source folder with float tensors `t` (name → [shape, data]) stored as `dtype`. */
function sourceFolder(t: Record<string, [number[], Float32Array]>, dtype: "F32" | "F16" = "F32"): string {
  const dir = fresh("src");
  fs.mkdirSync(dir);
  writeSafetensors(
    path.join(dir, "model.safetensors"),
    Object.entries(t).map(([name, [shape, data]]) => ({ name, dtype, shape, data: float32ToBytes(data, dtype) })),
  );
  const torchDtype = dtype === "F32" ? "float32" : "float16";
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ architectures: ["LlamaForCausalLM"], torch_dtype: torchDtype }));
  fs.writeFileSync(path.join(dir, "tokenizer.json"), "{}");
  return dir;
}

/** A deterministic [rows, cols] matrix with a spread of magnitudes. */
function matrix(rows: number, cols: number, seed = 1): Tensor {
  return new Tensor(
    Float32Array.from({ length: rows * cols }, (_, i) => Math.fround(Math.sin(i * 0.731 + seed) * (0.2 + ((i * 7 + seed) % 11) / 10))),
    [rows, cols],
  );
}

/** Zeroes the smaller-magnitude half of every row; returns the pruned weight and its mask. */
function pruneHalf(W: Tensor): { weight: Tensor; mask: Uint8Array } {
  const [rows, cols] = [W.rows, W.cols];
  const out = W.data.slice();
  const mask = new Uint8Array(rows * cols).fill(1);
  for (let r = 0; r < rows; r++) {
    const order = Array.from({ length: cols }, (_, j) => j).sort((a, b) => Math.abs(out[r * cols + a]!) - Math.abs(out[r * cols + b]!));
    for (const j of order.slice(0, Math.floor(cols / 2))) {
      out[r * cols + j] = 0;
      mask[r * cols + j] = 0;
    }
  }
  return { weight: new Tensor(out, W.shape), mask };
}

function header(file: string): Record<string, { dtype: string; shape: number[] }> {
  const f = SafetensorsFile.open(file);
  const h = Object.fromEntries([...f.tensors].map(([n, t]) => [n, { dtype: t.dtype, shape: [...t.shape] }]));
  f.close();
  return h;
}

function readConfig(dir: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(path.join(dir, "config.json"), "utf8"));
}

async function write(opts: Omit<CompressedTensorsOptions, "compressed"> & { compressed: CompressedLinear[] }) {
  const out = fresh("out");
  const report = await writeCompressedTensors(out, { ...opts, compressed: new Map(opts.compressed.map((c) => [c.name, c])) });
  return { out, report };
}

const bits32 = (a: Float32Array) => new Uint32Array(a.buffer, a.byteOffset, a.length);

describe("pack-quantized", () => {
  const W = matrix(40, 72);
  const src = sourceFolder({ "layer.q.weight": [[40, 72], W.data], "norm.weight": [[72], new Float32Array(72).fill(1)] });

  for (const bits of [2, 3, 4, 8]) {
    for (const sym of [false, true]) {
      for (const groupSize of [-1, 32]) {
        test(`${bits}-bit ${sym ? "sym" : "asym"} ${groupSize > 0 ? `g${groupSize}` : "per channel"}: bit-exact round trip, tensor layout`, async () => {
          const q = rtnQuantize(W, { bits, sym, groupSize });
          const { out, report } = await write({ format: "pack-quantized", sourceModelDir: src, compressed: [{ name: "layer.q", ...q }] });
          const groups = groupSize > 0 ? 3 : 1; // 72 columns: 32 + 32 + 8
          const h = header(path.join(out, "model.safetensors"));
          const want: Record<string, { dtype: string; shape: number[] }> = {
            "layer.q.weight_packed": { dtype: "I32", shape: [40, Math.ceil((72 * bits) / 32)] },
            "layer.q.weight_scale": { dtype: "F32", shape: [40, groups] },
            "layer.q.weight_shape": { dtype: "I64", shape: [2] },
            "norm.weight": { dtype: "F32", shape: [72] },
          };
          if (!sym) want["layer.q.weight_zero_point"] = { dtype: "I32", shape: [Math.ceil((40 * bits) / 32), groups] };
          assert.deepEqual(h, want);
          assert.equal(report.warnings.length, groupSize > 0 ? 1 : 0); // 72 % 32 ≠ 0: vLLM would refuse it

          const r = CompressedTensorsWeights.open(out, readConfig(out));
          assert.deepEqual(r.names().sort(), ["layer.q.weight", "norm.weight"]);
          assert.deepEqual(r.shape("layer.q.weight"), [40, 72]);
          assert.deepEqual(bits32(r.read("layer.q.weight")), bits32(q.weight.data));
          const back = r.quantized("layer.q.weight")!;
          assert.deepEqual(back.grid.scale, q.quant.scale);
          assert.deepEqual(back.grid.zero, q.quant.zero);
          assert.equal(back.grid.groupSize, q.quant.groupSize);
          assert.equal(r.quantized("norm.weight"), null);
          assert.equal(r.dtype("layer.q.weight"), `INT${bits}`);
          r.close();
        });
      }
    }
  }

  test("weight_packed and weight_zero_point words equal compressed-tensors' pack_to_int32 output", async () => {
    // 9 rows × 8 columns, 4-bit asym, scale 1: row r's zero point z_r, codes c = w + z_r.
    // Row 0 codes [9..15, 8] → the word of compressed-tensors' test_repack_4bit input [1..7, 0]:
    // −1880241239; zero points [0, 15, 8, 9, 7, 10, 11, 12, 13] packed along the output dim →
    // [[−878208784], [13]] (pack_to_int32(zp, 4, packed_dim=0)).
    const zeros = [0, 15, 8, 9, 7, 10, 11, 12, 13];
    const grid = newGrid(9, 8, { bits: 4, sym: false });
    setGroupParams(grid, 0, { scale: new Float32Array(9).fill(1), zero: Float32Array.from(zeros) });
    const codes0 = [9, 10, 11, 12, 13, 14, 15, 8];
    const w = new Float32Array(72);
    for (let r = 0; r < 9; r++) for (let j = 0; j < 8; j++) w[r * 8 + j] = (r === 0 ? codes0[j]! : (j + r) % 16) - zeros[r]!;
    const src9 = sourceFolder({ "l.weight": [[9, 8], w] });
    const { out } = await write({ format: "pack-quantized", sourceModelDir: src9, compressed: [{ name: "l", weight: new Tensor(w, [9, 8]), quant: grid }] });
    const f = SafetensorsFile.open(path.join(out, "model.safetensors"));
    const i32 = (n: string) => Array.from(new Int32Array(f.readBytes(n).buffer));
    assert.equal(i32("l.weight_packed")[0], -1880241239);
    assert.deepEqual(i32("l.weight_zero_point"), [-878208784, 13]);
    assert.deepEqual(Array.from(new BigInt64Array(f.readBytes("l.weight_shape").buffer)), [9n, 8n]);
    f.close();
  });

  test("config.json quantization_config is what llm-compressor writes for W4A16 asym g32", async () => {
    const q = rtnQuantize(W, { bits: 4, sym: false, groupSize: 32 });
    const { out } = await write({
      format: "pack-quantized",
      sourceModelDir: src,
      compressed: [{ name: "layer.q", ...q }],
      linears: ["layer.q", "layer.k"],
    });
    const config = readConfig(out);
    assert.equal(config.torch_dtype, "float32");
    assert.deepEqual(config.quantization_config, {
      config_groups: {
        group_0: {
          format: "pack-quantized",
          input_activations: null,
          output_activations: null,
          targets: ["Linear"],
          weights: {
            actorder: null,
            block_structure: null,
            dynamic: false,
            group_size: 32,
            num_bits: 4,
            observer: "minmax",
            observer_kwargs: {},
            scale_dtype: null,
            strategy: "group",
            symmetric: false,
            type: "int",
            zp_dtype: "torch.int8",
          },
        },
      },
      format: "pack-quantized",
      global_compression_ratio: null,
      ignore: ["lm_head", "layer.k"],
      kv_cache_scheme: null,
      quant_method: "compressed-tensors",
      quantization_status: "compressed",
      sparsity_config: {},
      transform_config: {},
      version: "0.18.0",
    });
    assert.ok(fs.existsSync(path.join(out, "tokenizer.json")));
  });

  test("act-order groups: weight_g_idx, actorder \"group\", read back through g_idx", async () => {
    const cols = 64;
    const gIdx = Int32Array.from({ length: cols }, (_, j) => (j * 5) % 2); // two scattered groups
    const grid = newGrid(40, cols, { bits: 4, sym: true, groupSize: 32, gIdx });
    const Wk = matrix(40, cols, 3);
    const weight = new Float32Array(40 * cols);
    for (let g = 0; g < 2; g++) {
      const colsOfG = [...gIdx.keys()].filter((j) => gIdx[j] === g);
      const sub = new Tensor(Float32Array.from({ length: 40 * 32 }, (_, i) => Wk.data[Math.floor(i / 32) * cols + colsOfG[i % 32]!]!), [40, 32]);
      const { weight: qs, quant } = rtnQuantize(sub, { bits: 4, sym: true });
      setGroupParams(grid, g, findParams(sub, { bits: 4, sym: true }));
      assert.deepEqual(grid.scale.filter((_, k) => k % 2 === g), quant.scale);
      for (let i = 0; i < 40 * 32; i++) weight[Math.floor(i / 32) * cols + colsOfG[i % 32]!] = qs.data[i]!;
    }
    const srcK = sourceFolder({ "k.weight": [[40, cols], Wk.data] });
    const { out } = await write({ format: "pack-quantized", sourceModelDir: srcK, compressed: [{ name: "k", weight: new Tensor(weight, [40, cols]), quant: grid }] });
    assert.deepEqual(header(path.join(out, "model.safetensors"))["k.weight_g_idx"], { dtype: "I32", shape: [cols] });
    const qc = readConfig(out).quantization_config as { config_groups: { group_0: { weights: Record<string, unknown> } } };
    assert.equal(qc.config_groups.group_0.weights.actorder, "group");
    const r = CompressedTensorsWeights.open(out, readConfig(out));
    assert.deepEqual(bits32(r.read("k.weight")), bits32(weight));
    assert.deepEqual(r.quantized("k.weight")!.grid.gIdx, gIdx);
    r.close();
  });

  test("a weight that is not on its grid is refused", async () => {
    const q = rtnQuantize(W, { bits: 4, sym: false });
    q.weight.data[5] = q.weight.data[5]! + 1e-3;
    await assert.rejects(
      write({ format: "pack-quantized", sourceModelDir: src, compressed: [{ name: "layer.q", ...q }] }),
      /layer\.q: weight \[0, 5\] = .* is not on its 4-bit grid/,
    );
  });

  test("fp16 scales: the reader rounds (code − zero)·scale to fp16 as compressed-tensors does", async () => {
    const q = rtnQuantize(W, { bits: 4, sym: false });
    const { out } = await write({ format: "pack-quantized", sourceModelDir: src, compressed: [{ name: "layer.q", ...q }], scaleDtype: "F16" });
    const qc = readConfig(out).quantization_config as { config_groups: { group_0: { weights: Record<string, unknown> } } };
    assert.equal(qc.config_groups.group_0.weights.scale_dtype, "torch.float16");
    const r = CompressedTensorsWeights.open(out, readConfig(out));
    const w = r.read("layer.q.weight");
    const maxErr = w.reduce((m, v, i) => Math.max(m, Math.abs(v - q.weight.data[i]!)), 0);
    assert.ok(maxErr > 0 && maxErr < 2e-3, `max |Δ| ${maxErr}`);
    r.close();
  });
});

describe("sparse formats and dense", () => {
  // a realistic width: the 8-byte row offsets and bitmask padding are small next to the values
  const W = matrix(256, 512, 5);
  const { weight, mask } = pruneHalf(W);

  for (const dtype of ["F32", "F16"] as const) {
    test(`sparse-bitmask ${dtype}: bit-exact round trip, ≤ 0.6× the dense file`, async (t) => {
      const src = sourceFolder({ "mlp.up.weight": [[256, 512], W.data] }, dtype);
      const srcBytes = fs.statSync(path.join(src, "model.safetensors")).size;
      // prune what the source holds (fp16-rounded for F16): the values then fit the source dtype
      const { weight: pruned, mask: kept } = pruneHalf(new Tensor(readTensor(src, "mlp.up.weight"), [256, 512]));
      const { out, report } = await write({ format: "sparse-bitmask", sourceModelDir: src, compressed: [{ name: "mlp.up", weight: pruned, mask: kept }] });
      assert.deepEqual(header(path.join(out, "model.safetensors")), {
        "mlp.up.bitmask": { dtype: "U8", shape: [256, 64] },
        "mlp.up.compressed": { dtype, shape: [256 * 256] },
        "mlp.up.row_offsets": { dtype: "I64", shape: [256] },
        "mlp.up.shape": { dtype: "I64", shape: [2] },
      });
      const r = CompressedTensorsWeights.open(out, readConfig(out));
      assert.deepEqual(bits32(r.read("mlp.up.weight")), bits32(pruned.data));
      assert.equal(r.dtype("mlp.up.weight"), dtype);
      r.close();
      const ratio = report.bytes / srcBytes;
      t.diagnostic(`sparse-bitmask ${dtype} 256×512 at 50 %: ${report.bytes} / ${srcBytes} bytes = ${ratio.toFixed(3)}`);
      assert.ok(ratio <= 0.6, `ratio ${ratio}`);
      assert.deepEqual(readConfig(out).quantization_config, {
        quant_method: "compressed-tensors",
        sparsity_config: {
          format: "sparse-bitmask",
          global_sparsity: 0.5,
          ignore: ["lm_head"],
          registry_requires_subclass: false,
          sparsity_structure: "unstructured",
          targets: ["Linear"],
        },
        transform_config: {},
        version: "0.14.0",
      });
    });
  }

  test("sparse-24-bitmask: values [rows, cols/2], shape [2, 1], round trip", async () => {
    const w24 = W.data.slice();
    const m24 = new Uint8Array(w24.length).fill(1);
    for (let i = 0; i < w24.length; i += 4) {
      w24[i + 1] = 0; // keep columns 0 and 3 of every group, drop 1 and 2
      w24[i + 2] = 0;
      m24[i + 1] = m24[i + 2] = 0;
    }
    const src = sourceFolder({ "mlp.up.weight": [[256, 512], W.data] });
    const { out } = await write({ format: "sparse-24-bitmask", sourceModelDir: src, compressed: [{ name: "mlp.up", weight: new Tensor(w24, [256, 512]), mask: m24 }] });
    assert.deepEqual(header(path.join(out, "model.safetensors")), {
      "mlp.up.bitmask": { dtype: "U8", shape: [256, 64] },
      "mlp.up.compressed": { dtype: "F32", shape: [256, 256] },
      "mlp.up.shape": { dtype: "I64", shape: [2, 1] },
    });
    const sc = (readConfig(out).quantization_config as { sparsity_config: Record<string, unknown> }).sparsity_config;
    assert.equal(sc.sparsity_structure, "2:4");
    const r = CompressedTensorsWeights.open(out, readConfig(out));
    assert.deepEqual(bits32(r.read("mlp.up.weight")), bits32(w24));
    r.close();
    await assert.rejects(
      write({ format: "sparse-24-bitmask", sourceModelDir: src, compressed: [{ name: "mlp.up", weight, mask }] }),
      /mlp\.up: row 0, columns .* non-zeros; 2:4 sparsity allows 2/,
    );
  });

  test("sparse formats refuse quantized linears", async () => {
    const src = sourceFolder({ "mlp.up.weight": [[256, 512], W.data] });
    await assert.rejects(
      write({ format: "sparse-bitmask", sourceModelDir: src, compressed: [{ name: "mlp.up", ...rtnQuantize(W, { bits: 4, sym: false }) }] }),
      /sparse-bitmask stores pruned float weights; this linear is quantized/,
    );
  });

  test("dense: plain weights, no quantization_config", async () => {
    const src = sourceFolder({ "mlp.up.weight": [[256, 512], W.data] });
    const q = rtnQuantize(W, { bits: 3, sym: false });
    const { out } = await write({ format: "dense", sourceModelDir: src, compressed: [{ name: "mlp.up", ...q }] });
    assert.equal(readConfig(out).quantization_config, undefined);
    const r = SafetensorsWeights.open(out);
    assert.deepEqual(bits32(r.read("mlp.up.weight")), bits32(q.weight.data));
    r.close();
  });
});

/** One tensor of a folder as float32. */
function readTensor(dir: string, name: string): Float32Array {
  const w = SafetensorsWeights.open(dir);
  const d = w.read(name);
  w.close();
  return d;
}

describe("stories260K folders through loadModel", () => {
  const source = SafetensorsWeights.open(STORIES);
  const linearNames = source
    .names()
    .filter((n) => /^model\.layers\.\d+\.(self_attn|mlp)\.\w+_proj\.weight$/.test(n))
    .map((n) => n.slice(0, -".weight".length))
    .sort();
  const dense = new Map(source.names().map((n) => [n, source.read(n)]));
  const shapes = new Map(source.names().map((n) => [n, [...source.shape(n)]]));
  const sourceBytes = fs.statSync(path.join(STORIES, "model.safetensors")).size;
  source.close();
  const W = (name: string) => new Tensor(dense.get(`${name}.weight`)!, shapes.get(`${name}.weight`)!);

  async function roundTrip(t: { diagnostic(m: string): void }, label: string, format: CompressedTensorsOptions["format"], compressed: CompressedLinear[]) {
    const { out, report } = await write({ format, sourceModelDir: STORIES, compressed, linears: linearNames });
    const model = loadModel(out);
    const want = new Map(compressed.map((c) => [`${c.name}.weight`, c.weight.data]));
    try {
      assert.deepEqual(model.weights.names().sort(), [...dense.keys()].sort());
      for (const [name, data] of dense) assert.deepEqual(bits32(model.weights.read(name)), bits32(want.get(name) ?? data), name);
    } finally {
      model.close();
    }
    const lines = `${label}: model.safetensors ${report.bytes} B = ${(report.bytes / sourceBytes).toFixed(3)}× the fp32 source; linears ${report.linearBytes} B = ${(report.linearBytes / report.linearDenseBytes).toFixed(3)}× fp32, ${(report.linearBytes / (report.linearDenseBytes / 2)).toFixed(3)}× fp16`;
    t.diagnostic(lines);
    return { out, report };
  }

  test("RTN 4-bit g32 → pack-quantized → loadModel: bit-identical weights", async (t) => {
    const compressed = linearNames.map((name) => ({ name, ...rtnQuantize(W(name), { bits: 4, sym: false, groupSize: 32 }) }));
    const { report } = await roundTrip(t, "rtn 4-bit g32 pack-quantized", "pack-quantized", compressed);
    assert.equal(report.warnings.length, 1); // down_proj: 172 inputs, partial last group
  });

  test("RTN 4-bit per channel, 4-bit sym per channel: packed tensors ≤ 0.3× their fp16 bytes", async (t) => {
    for (const sym of [false, true]) {
      const compressed = linearNames.map((name) => ({ name, ...rtnQuantize(W(name), { bits: 4, sym }) }));
      const { report } = await roundTrip(t, `rtn 4-bit ${sym ? "sym" : "asym"} per channel`, "pack-quantized", compressed);
      assert.ok(report.linearBytes <= 0.3 * (report.linearDenseBytes / 2));
    }
  });

  test("50 % of every row pruned → sparse-bitmask → loadModel: bit-identical weights", async (t) => {
    const compressed = linearNames.map((name) => ({ name, ...pruneHalf(W(name)) }));
    const { report } = await roundTrip(t, "50 % pruned sparse-bitmask", "sparse-bitmask", compressed);
    assert.ok(report.linearBytes < 0.6 * report.linearDenseBytes);
  });

  test("pruned + quantized (joint) → pack-quantized with an informational sparsity_config", async (t) => {
    const compressed = linearNames.map((name) => {
      const { weight, mask } = pruneHalf(W(name));
      return { name, mask, ...rtnQuantize(weight, { bits: 4, sym: false }) };
    });
    const { out } = await roundTrip(t, "50 % pruned + rtn 4-bit pack-quantized", "pack-quantized", compressed);
    const qc = readConfig(out).quantization_config as { sparsity_config: Record<string, unknown> };
    assert.equal(qc.sparsity_config.format, "dense");
    assert.equal(qc.sparsity_config.sparsity_structure, "unstructured");
  });
});
