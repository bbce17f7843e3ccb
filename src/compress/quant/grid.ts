// The uniform quantization grid of GPTQ / SparseGPT (IST-DASLab gptq and sparsegpt `quant.py`,
// class `Quantizer`, copied as GPTQQuantizer / SGQuantizer in shared/reference/tools/ref_compress.py),
// always used as the repos use it on weights: perchannel=True, one (scale, zero) per output row of
// a block of columns.
//
//   maxq  = 2^bits − 1
//   xmin  = min(min(x), 0),  xmax = max(max(x), 0)                 per row of the block
//   sym:    xmax = max(|xmin|, xmax);  xmin = −xmax if xmin < 0
//   xmin = xmax = 0  →  xmin = −1, xmax = +1
//   scale = (xmax − xmin) / maxq
//   zero  = sym ? (maxq + 1) / 2 : round(−xmin / scale)
//   q(w)  = scale · (clamp(round(w / scale) + zero, 0, maxq) − zero)  round = half to even
//
// Arithmetic is float32 as in torch: every float32 op is done in double and rounded with
// Math.fround, which gives the correctly rounded float32 result for + − × ÷. The only place that
// cannot be bit-exact with torch is the optional MSE search's error sum (torch sums |q−x|^2.4 in
// float32 in its own vectorised order; we sum in float64), which can flip the chosen shrink factor
// only when two candidates' errors agree to float32 rounding.
import { gridGroups, groupCount, maxQ, quantize, roundHalfEven, type QuantGrid } from "../../formats/compressed-linear.js";
import { Tensor } from "../../tensor/tensor.js";

// the grid arithmetic itself lives with the formats that store codes; re-exported for callers here

export interface GridOptions {
  /** bits per weight, 1..8 (the reference runs use 2, 3, 4, 8) */
  bits: number;
  /** symmetric grid: zero = 2^(bits−1) */
  sym: boolean;
  /** search shrunk ranges p·[xmin, xmax], p = 1, 0.99, …, 0.21, for the least Σ|q − w|^2.4 */
  mse?: boolean;
}

/** (scale, zero) per row of a block: what `Quantizer.find_params(W[:, c0:c1], weight=True)` sets. */
export interface RowParams {
  scale: Float32Array;
  zero: Float32Array;
}

// Quantizer.configure defaults for the MSE search
const MSE_NORM = 2.4;
// torch's pow_ on a float32 tensor casts the exponent to float32: 2.4000000953674316
const MSE_NORM_F32 = Math.fround(MSE_NORM);
const MSE_GRID = 100;
const MSE_MAXSHRINK = 0.8;

/**
 * `find_params` over columns [c0, c1) of a [rows, cols] matrix: one (scale, zero) per row.
 * GPTQ per channel calls it on the whole W; grouped GPTQ/RTN on each group's columns.
 */
export function findParams(W: Tensor, opt: GridOptions, c0 = 0, c1 = W.cols): RowParams {
  const rows = W.rows;
  const cols = W.cols;
  if (!(0 <= c0 && c0 < c1 && c1 <= cols)) throw new Error(`findParams: column range [${c0}, ${c1}) is not inside [0, ${cols})`);
  const d = W.data;
  const xmin = new Float64Array(rows);
  const xmax = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let lo = 0;
    let hi = 0;
    for (let j = c0; j < c1; j++) {
      const v = d[base + j]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    xmin[r] = lo;
    xmax[r] = hi;
  }
  return paramsFromRanges(xmin, xmax, opt, (r) => d.subarray(r * cols + c0, r * cols + c1));
}

/**
 * `findParams` for columns stored transposed: colsT [n, rows] holds n columns of a weight. The
 * per-row ranges are gathered column by column (no transpose), which is how the GPTQ loop keeps
 * its working matrix.
 */
export function findParamsOfColumns(colsT: Float32Array, n: number, rows: number, opt: GridOptions): RowParams {
  const xmin = new Float64Array(rows);
  const xmax = new Float64Array(rows);
  for (let c = 0; c < n; c++) {
    const col = colsT.subarray(c * rows, (c + 1) * rows);
    for (let r = 0; r < rows; r++) {
      const v = col[r]!;
      if (v < xmin[r]!) xmin[r] = v;
      if (v > xmax[r]!) xmax[r] = v;
    }
  }
  const row = (r: number) => Float32Array.from({ length: n }, (_, c) => colsT[c * rows + r]!); // MSE search only
  return paramsFromRanges(xmin, xmax, opt, row);
}

/** (scale, zero) per row from its range min(min(x), 0) .. max(max(x), 0); `row(r)` for the MSE search. */
function paramsFromRanges(xmins: Float64Array, xmaxs: Float64Array, opt: GridOptions, row: (r: number) => Float32Array): RowParams {
  const rows = xmins.length;
  const maxq = maxQ(opt.bits);
  const symZero = (maxq + 1) / 2;
  const scale = new Float32Array(rows);
  const zero = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    let xmin = xmins[r]!;
    let xmax = xmaxs[r]!;
    if (opt.sym) {
      xmax = Math.max(-xmin, xmax);
      if (xmin < 0) xmin = -xmax;
    }
    if (xmin === 0 && xmax === 0) {
      xmin = -1;
      xmax = 1;
    }
    let s = Math.fround(Math.fround(xmax - xmin) / maxq);
    let z = opt.sym ? symZero : roundHalfEven(Math.fround(-xmin / s)) + 0; // + 0: no −0 zero points
    if (opt.mse) {
      const x = row(r);
      [s, z] = mseSearch(x, 0, x.length, xmin, xmax, s, z, opt.sym, maxq);
    }
    scale[r] = s;
    zero[r] = z;
  }
  return { scale, zero };
}

/** The `if self.mse:` loop of find_params for one row x = data[from, to). */
function mseSearch(
  data: Float32Array,
  from: number,
  to: number,
  xmin: number,
  xmax: number,
  scale: number,
  zero: number,
  sym: boolean,
  maxq: number,
): [number, number] {
  let best = Infinity;
  const terms = new Float32Array(to - from); // |q − x|^2.4, rounded to float32 as torch's pow_ does
  const steps = Math.trunc(MSE_MAXSHRINK * MSE_GRID);
  for (let i = 0; i < steps; i++) {
    const p = Math.fround(1 - i / MSE_GRID); // a Python float times a float32 tensor: float32 math
    const xmin1 = Math.fround(p * xmin);
    const xmax1 = Math.fround(p * xmax);
    const scale1 = Math.fround(Math.fround(xmax1 - xmin1) / maxq);
    const zero1 = sym ? zero : roundHalfEven(Math.fround(-xmin1 / scale1)) + 0;
    for (let k = from; k < to; k++) {
      const x = data[k]!;
      terms[k - from] = Math.abs(Math.fround(quantize(x, scale1, zero1, maxq) - x)) ** MSE_NORM_F32;
    }
    const err = sumFloat32TorchOrder(terms);
    if (err < best) {
      best = err;
      scale = scale1;
      zero = zero1;
    }
  }
  return [scale, zero];
}

// torch's float32 CPU sum of a contiguous row (aten/src/ATen/native/cpu/SumKernel.cpp, AVX2 build):
// `vectorized_inner_sum` for rows of ≥ 8 values (8-lane vectors), `scalar_inner_sum` below that;
// both call `row_sum` (4 interleaved accumulators) → `multi_row_sum` (cascade levels of ≥ 16).
// The MSE search compares such sums with `<`, so ties and near-ties resolve as in the reference
// only when each sum is rounded the same way.
const VECTOR_LANES = 8;
const ILP = 4;
const LEVELS = 4;

function sumFloat32TorchOrder(x: Float32Array): number {
  const lanes = x.length >= VECTOR_LANES ? VECTOR_LANES : 1;
  const width = ILP * lanes;
  const vecCount = Math.floor(x.length / lanes);
  const rows = Math.floor(vecCount / ILP); // multi_row_sum rows of ILP vectors
  const levelPower = Math.max(4, Math.floor(ceilLog2(rows) / LEVELS));
  const levelStep = 1 << levelPower;
  const levelMask = levelStep - 1;
  const acc = Array.from({ length: LEVELS }, () => new Float32Array(width)); // [level][ilp·lanes + lane]
  const addRow = (row: number) => {
    for (let k = 0; k < width; k++) acc[0]![k] = acc[0]![k]! + x[row * width + k]!;
  };
  let i = 0;
  while (i + levelStep <= rows) {
    for (let j = 0; j < levelStep; j++, i++) addRow(i);
    for (let j = 1; j < LEVELS; j++) {
      for (let k = 0; k < width; k++) {
        acc[j]![k] = acc[j]![k]! + acc[j - 1]![k]!;
        acc[j - 1]![k] = 0;
      }
      if ((i & (levelMask << (j * levelPower))) !== 0) break;
    }
  }
  for (; i < rows; i++) addRow(i);
  for (let j = 1; j < LEVELS; j++) for (let k = 0; k < width; k++) acc[0]![k] = acc[0]![k]! + acc[j]![k]!;
  // row_sum: leftover vectors into accumulator 0, then accumulators 1..3 into 0
  const v = acc[0]!;
  for (let r = rows * ILP; r < vecCount; r++) for (let l = 0; l < lanes; l++) v[l] = v[l]! + x[r * lanes + l]!;
  for (let a = 1; a < ILP; a++) for (let l = 0; l < lanes; l++) v[l] = v[l]! + v[a * lanes + l]!;
  if (lanes === 1) return v[0]!;
  // vectorized_inner_sum: the scalar tail first, then the lanes in order
  let total = 0;
  for (let k = vecCount * lanes; k < x.length; k++) total = Math.fround(total + x[k]!);
  for (let l = 0; l < lanes; l++) total = Math.fround(total + v[l]!);
  return total;
}

function ceilLog2(n: number): number {
  return n <= 1 ? 0 : Math.ceil(Math.log2(n));
}

/**
 * Quantizes one column: out[r] = q(w[r]) with row r's (scale, zero). This is the GPTQ / SparseGPT
 * column-loop step `quantize(w.unsqueeze(1), scale, zero, maxq).flatten()`.
 */
export function quantizeColumn(w: Float32Array, params: RowParams, bits: number, out = new Float32Array(w.length)): Float32Array {
  const maxq = maxQ(bits);
  if (params.scale.length !== w.length) {
    throw new Error(`quantizeColumn: column has ${w.length} rows, params have ${params.scale.length}`);
  }
  for (let r = 0; r < w.length; r++) out[r] = quantize(w[r]!, params.scale[r]!, params.zero[r]!, maxq);
  return out;
}

/** A grid for a [rows, cols] weight with all (scale, zero) still 0; fill it with setGroupParams. */
export function newGrid(
  rows: number,
  cols: number,
  opt: { bits: number; sym: boolean; groupSize?: number; gIdx?: Int32Array },
): QuantGrid {
  maxQ(opt.bits);
  const groupSize = opt.groupSize === undefined || opt.groupSize <= 0 || opt.groupSize >= cols ? cols : opt.groupSize;
  if (opt.gIdx && opt.gIdx.length !== cols) throw new Error(`newGrid: gIdx has ${opt.gIdx.length} entries for ${cols} columns`);
  const grid: QuantGrid = { bits: opt.bits, sym: opt.sym, groupSize, scale: new Float32Array(0), zero: new Float32Array(0) };
  if (opt.gIdx) grid.gIdx = opt.gIdx;
  const groups = groupCount(grid, cols);
  grid.scale = new Float32Array(rows * groups);
  grid.zero = new Float32Array(rows * groups);
  return grid;
}

/** Stores `params` as group g's column of grid.scale / grid.zero ([rows, groups]). */
export function setGroupParams(grid: QuantGrid, g: number, params: RowParams): void {
  const rows = params.scale.length;
  const groups = gridGroups(grid, rows);
  if (g < 0 || g >= groups) throw new Error(`setGroupParams: group ${g} outside 0..${groups - 1}`);
  for (let r = 0; r < rows; r++) {
    grid.scale[r * groups + g] = params.scale[r]!;
    grid.zero[r * groups + g] = params.zero[r]!;
  }
}

/** Group g's (scale, zero) per row, as findParams returned them. */
export function groupParams(grid: QuantGrid, g: number, rows: number): RowParams {
  const groups = gridGroups(grid, rows);
  const scale = new Float32Array(rows);
  const zero = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    scale[r] = grid.scale[r * groups + g]!;
    zero[r] = grid.zero[r * groups + g]!;
  }
  return { scale, zero };
}

/** A quantized weight: its values (all on the grid) and the grid. */
export interface QuantizedWeight {
  weight: Tensor;
  quant: QuantGrid;
}

export interface RtnOptions extends GridOptions {
  /** consecutive input columns per group (the last one may be narrower); absent, ≤ 0 or ≥ cols: per channel */
  groupSize?: number;
}

/**
 * Round to nearest (gptq `llama.py --nearest`): per channel, find_params on the whole W; with groups,
 * find_params(W[:, j:j+groupSize]) per group (the reference's `rtn-*-g32` extension), then q(W).
 */
export function rtnQuantize(W: Tensor, opt: RtnOptions): QuantizedWeight {
  const rows = W.rows;
  const cols = W.cols;
  const grid = newGrid(rows, cols, { bits: opt.bits, sym: opt.sym, groupSize: opt.groupSize });
  const maxq = maxQ(opt.bits);
  const out = new Float32Array(rows * cols);
  for (let g = 0, c0 = 0; c0 < cols; g++, c0 += grid.groupSize) {
    const c1 = Math.min(c0 + grid.groupSize, cols);
    const p = findParams(W, opt, c0, c1);
    setGroupParams(grid, g, p);
    for (let r = 0; r < rows; r++) {
      const s = p.scale[r]!;
      const z = p.zero[r]!;
      for (let j = c0; j < c1; j++) out[r * cols + j] = quantize(W.data[r * cols + j]!, s, z, maxq);
    }
  }
  return { weight: new Tensor(out, [rows, cols]), quant: grid };
}

