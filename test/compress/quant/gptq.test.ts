// GPTQ on small synthetic inputs against a plain port of the reference code (IST-DASLab/gptq,
// gptq.py `fasterquant`: right-looking block updates, column-by-column inside a block), for the
// options that change its control flow: act-order, static groups, groups that straddle blocks;
// and true-sequential through the pipeline on a synthetic model.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { upperCholeskyOfInverse } from "../../../src/compress/cholesky.js";
import { runCompression } from "../../../src/compress/job.js";
import { actOrderPermutation, gptq } from "../../../src/compress/quant/gptq.js";
import { findParamsOfColumns } from "../../../src/compress/quant/grid.js";
import { buildStage } from "../../../src/compress/registry.js";
import { calibrationWindows } from "../../../src/data/calibration.js";
import { Rng } from "../../../src/data/rng.js";
import { maxQ, quantize } from "../../../src/formats/compressed-linear.js";
import { SafetensorsWeights } from "../../../src/formats/weights.js";
import { Tensor } from "../../../src/tensor/tensor.js";
import { syntheticFolder, tempDir } from "../../helpers.js";

function spd(n: number, rng: Rng): Float32Array {
  const t = 2 * n;
  // columns of different scales, so act-order really reorders
  const scale = Float64Array.from({ length: n }, () => 0.2 + 2 * rng.next());
  const X = Float64Array.from({ length: t * n }, (_, i) => (rng.next() - 0.5) * scale[i % n]!);
  const H = new Float32Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) {
      let s = 0;
      for (let r = 0; r < t; r++) s += X[r * n + i]! * X[r * n + j]!;
      H[i * n + j] = H[j * n + i] = s / t + (i === j ? 0.01 : 0);
    }
  }
  return H;
}

interface Opts {
  bits: number;
  sym: boolean;
  groupSize: number;
  blockSize: number;
  actOrder: boolean;
  staticGroups: boolean;
}

/** `fasterquant` line by line (float64 working copy); Hinv is the factor of the permuted H. */
function referenceGptq(W0: Float32Array, rows: number, cols: number, Hinv: Float32Array, perm: Int32Array | null, o: Opts): Float64Array {
  const maxq = maxQ(o.bits);
  const colsOf = (W: Float64Array, c0: number, c1: number) => {
    const t = new Float32Array((c1 - c0) * rows);
    for (let c = c0; c < c1; c++) for (let r = 0; r < rows; r++) t[(c - c0) * rows + r] = W[r * cols + c]!;
    return findParamsOfColumns(t, c1 - c0, rows, o);
  };
  let W = Float64Array.from(W0);
  const groups = o.staticGroups ? Array.from({ length: Math.ceil(cols / o.groupSize) }, (_, g) => colsOf(W, g * o.groupSize, Math.min((g + 1) * o.groupSize, cols))) : [];
  if (perm) W = Float64Array.from({ length: rows * cols }, (_, i) => W[Math.floor(i / cols) * cols + perm[i % cols]!]!);
  const Q = new Float64Array(rows * cols);
  let params = groups[0]!;
  for (let i1 = 0; i1 < cols; i1 += o.blockSize) {
    const i2 = Math.min(i1 + o.blockSize, cols);
    const W1 = W.slice(); // only columns i1..i2 are read from it
    const Err1 = new Float64Array(rows * (i2 - i1));
    for (let i = i1; i < i2; i++) {
      if (!o.staticGroups && i % o.groupSize === 0) params = colsOf(W, i, Math.min(i + o.groupSize, cols)); // W, not W1
      if (o.staticGroups) params = groups[Math.floor((perm ? perm[i]! : i) / o.groupSize)]!;
      const d = Hinv[i * cols + i]!;
      for (let r = 0; r < rows; r++) {
        const w = W1[r * cols + i]!;
        const q = quantize(w, params.scale[r]!, params.zero[r]!, maxq);
        Q[r * cols + i] = q;
        const err = (w - q) / d;
        for (let c = i; c < i2; c++) W1[r * cols + c]! -= err * Hinv[i * cols + c]!;
        Err1[r * (i2 - i1) + (i - i1)] = err;
      }
    }
    for (let r = 0; r < rows; r++) {
      for (let c = i2; c < cols; c++) {
        let s = 0;
        for (let i = i1; i < i2; i++) s += Err1[r * (i2 - i1) + (i - i1)]! * Hinv[i * cols + c]!;
        W[r * cols + c]! -= s;
      }
    }
  }
  if (!perm) return Q;
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) for (let k = 0; k < cols; k++) out[r * cols + perm[k]!] = Q[r * cols + k]!;
  return out;
}

describe("GPTQ = the reference code's fasterquant on synthetic inputs", () => {
  const rows = 24;
  const cols = 96;
  for (const o of [
    { bits: 4, sym: false, groupSize: 24, blockSize: 32, actOrder: false, staticGroups: false }, // groups straddle blocks
    { bits: 4, sym: false, groupSize: 24, blockSize: 32, actOrder: true, staticGroups: false },
    { bits: 3, sym: true, groupSize: 16, blockSize: 32, actOrder: true, staticGroups: true },
    { bits: 4, sym: false, groupSize: 32, blockSize: 128, actOrder: false, staticGroups: true },
  ] satisfies Opts[]) {
    const name = `${o.bits}-bit${o.sym ? " sym" : ""} g${o.groupSize}, blocks of ${o.blockSize}${o.actOrder ? ", act-order" : ""}${o.staticGroups ? ", static groups" : ""}`;
    test(name, async () => {
      const rng = new Rng(o.groupSize * 10 + (o.actOrder ? 1 : 0) + (o.staticGroups ? 2 : 0));
      const H = spd(cols, rng);
      const W0 = Float32Array.from({ length: rows * cols }, () => rng.next() * 2 - 1);
      const diag = Float32Array.from({ length: cols }, (_, j) => H[j * cols + j]!);
      const perm = o.actOrder ? actOrderPermutation(diag) : null;
      assert.ok(!perm || perm.some((p, k) => p !== k), "act-order permutes");
      const Hp = perm ? Float32Array.from({ length: cols * cols }, (_, i) => H[perm[Math.floor(i / cols)]! * cols + perm[i % cols]!]!) : H;
      const Hinv = await upperCholeskyOfInverse(Hp, cols);
      const got = await gptq(new Tensor(W0.slice(), [rows, cols]), Hinv, o, perm ?? undefined);
      const want = referenceGptq(W0, rows, cols, Hinv, perm, o);
      let same = 0;
      for (let i = 0; i < rows * cols; i++) if (Math.abs(got.W.data[i]! - want[i]!) < 1e-6) same++;
      // float32 vs float64 working copies may move a value across a rounding boundary, rarely
      assert.ok(same >= 0.995 * rows * cols, `${same} of ${rows * cols} weights equal the reference's`);
      // every written weight lies on its group's grid; act-order without static groups records g_idx
      const { grid } = got;
      assert.equal(Boolean(grid.gIdx), o.actOrder && !o.staticGroups);
      const groups = grid.scale.length / rows; // scale is [rows, groups]
      for (let r = 0; r < rows; r++) {
        for (let j = 0; j < cols; j++) {
          const g = grid.gIdx ? grid.gIdx[j]! : Math.floor(j / o.groupSize);
          const k = r * groups + g;
          const w = got.W.data[r * cols + j]!;
          assert.equal(quantize(w, grid.scale[k]!, grid.zero[k]!, maxQ(o.bits)), w, `row ${r} column ${j} off its grid`);
        }
      }
    });
  }
});

test("true-sequential: q/k/v see the same inputs, o_proj sees the quantized attention (synthetic 1-layer model)", async () => {
  const { dir } = await syntheticFolder(64, 1, 64);
  const T = 32;
  const n = 4;
  const ids = Int32Array.from({ length: n * T }, (_, i) => ((i * 7919) % 60) + 3);
  const batch = calibrationWindows(ids, { nsamples: n, seqlen: T, sampling: "first", seed: 0 });
  const info = { file: "synthetic", sha256: "", tokens: ids.length, nsamples: n, seqlen: T, sampling: "first" as const, seed: 0 };
  const run = async (trueSequential: boolean) => {
    const outDir = path.join(tempDir(), "out");
    const stage = buildStage({ method: "gptq", bits: 3, group_size: 16, true_sequential: trueSequential }, "test");
    await runCompression({ modelDir: dir, outDir, stages: [stage], calibration: { batch, info } });
    const w = SafetensorsWeights.open(outDir);
    const read = (n: string) => w.read(`model.layers.0.${n}.weight`);
    const r = { q: read("self_attn.q_proj"), k: read("self_attn.k_proj"), v: read("self_attn.v_proj"), o: read("self_attn.o_proj"), down: read("mlp.down_proj") };
    w.close();
    assert.ok(fs.existsSync(path.join(outDir, "topiary.json")));
    return r;
  };
  const plain = await run(false);
  const seq = await run(true);
  assert.deepEqual(seq.q, plain.q);
  assert.deepEqual(seq.k, plain.k);
  assert.deepEqual(seq.v, plain.v);
  assert.notDeepEqual(seq.o, plain.o, "o_proj is calibrated on the attention of the quantized q/k/v");
  assert.notDeepEqual(seq.down, plain.down);
});
