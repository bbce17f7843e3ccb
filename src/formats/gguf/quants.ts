// ggml's block formats: pack (quantize) and unpack (dequantize), bit-exact with libggml's reference
// quantizers `quantize_row_{q8_0,q4_0,q5_0,q4_K,q6_K}_ref` (ggml/src/ggml-quants.c) and its
// `dequantize_row_*`. The C code works in float32; every float operation here is wrapped in
// `fr` (Math.fround), which gives the same result: an exact double result rounded once to float32
// equals the float32 operation for + − × ÷ √ (double has more than 2·24 + 2 bits). The C reference
// is compiled without FMA contraction (as libggml-base is), which is the result we reproduce; a
// build that fuses `x*id + 8.5f` into one FMA can round a few Q4_0/Q5_0 nibbles differently (gguf-py
// quants.py notes the same). Test vectors: test/formats/gguf/fixtures/ggml-ref-vectors.c.
//
// Block layouts (little-endian, blocks of one row never cross into the next row):
//   Q8_0  [d f16][qs int8 × 32]                       w = d·q
//   Q4_0  [d f16][qs u8 × 16]   q_j | q_{j+16} << 4    w = d·(q − 8)
//   Q5_0  [d f16][qh u32][qs u8 × 16]  fifth bits in qh w = d·(q − 16)
//   Q4_K  [d f16][dmin f16][scales u8 × 12][qs u8 × 128]  per 32-subblock 6-bit sc, m:
//         w = d·sc·q − dmin·m
//   Q6_K  [ql u8 × 128][qh u8 × 64][scales int8 × 16][d f16]  per 16-subblock int8 sc, 6-bit q:
//         w = d·sc·(q − 32), q = low nibble from ql | 2 high bits from qh
import { floatToHalf, halfToFloat } from "../../tensor/dtype.js";
import { QK, QK_K, QUANT_SIZES, QuantType } from "./constants.js";

const fr = Math.fround;

/** ggml's nearest_int: round half to even through the 1.5·2²³ trick (|x| < 2²²). */
function nearestInt(x: number): number {
  return fr(x + 12582912) - 12582912;
}

/** C roundf: half away from zero. */
function roundf(x: number): number {
  return x < 0 ? -Math.round(-x) : Math.round(x);
}

function putHalf(out: Uint8Array, at: number, v: number): void {
  const h = floatToHalf(v);
  out[at] = h & 0xff;
  out[at + 1] = h >> 8;
}

function getHalf(b: Uint8Array, at: number): number {
  return halfToFloat(b[at]! | (b[at + 1]! << 8));
}

/** The types this module can pack (F32/F16 are plain conversions). */
const PACKABLE = [QuantType.F32, QuantType.F16, QuantType.Q8_0, QuantType.Q4_0, QuantType.Q5_0, QuantType.Q4_K, QuantType.Q6_K] as const;
export type PackableType = (typeof PACKABLE)[number];

/** Types this module can unpack to float32. */
const UNPACKABLE = [...PACKABLE, QuantType.BF16] as const;

// ---------------------------------------------------------------------------------------------
// Q8_0

function quantizeBlockQ8_0(x: Float32Array, o: number, y: Uint8Array, p: number): void {
  let amax = 0;
  for (let j = 0; j < QK; j++) amax = Math.max(amax, Math.abs(x[o + j]!));
  const d = fr(amax / 127);
  const id = d ? fr(1 / d) : 0;
  putHalf(y, p, d);
  for (let j = 0; j < QK; j++) y[p + 2 + j] = roundf(fr(x[o + j]! * id)) & 0xff;
}

function dequantizeBlockQ8_0(b: Uint8Array, p: number, out: Float32Array, o: number): void {
  const d = getHalf(b, p);
  for (let j = 0; j < QK; j++) out[o + j] = fr(((b[p + 2 + j]! << 24) >> 24) * d);
}

// ---------------------------------------------------------------------------------------------
// Q4_0 and Q5_0: d = max / −2^(bits−1) where max is the value of largest magnitude

function signedMax(x: Float32Array, o: number): number {
  let amax = 0;
  let max = 0;
  for (let j = 0; j < QK; j++) {
    const v = x[o + j]!;
    if (amax < Math.abs(v)) {
      amax = Math.abs(v);
      max = v;
    }
  }
  return max;
}

function quantizeBlockQ4_0(x: Float32Array, o: number, y: Uint8Array, p: number): void {
  const d = fr(signedMax(x, o) / -8);
  const id = d ? fr(1 / d) : 0;
  putHalf(y, p, d);
  for (let j = 0; j < QK / 2; j++) {
    const q0 = Math.min(15, Math.trunc(fr(fr(x[o + j]! * id) + 8.5)));
    const q1 = Math.min(15, Math.trunc(fr(fr(x[o + QK / 2 + j]! * id) + 8.5)));
    y[p + 2 + j] = q0 | (q1 << 4);
  }
}

function dequantizeBlockQ4_0(b: Uint8Array, p: number, out: Float32Array, o: number): void {
  const d = getHalf(b, p);
  for (let j = 0; j < QK / 2; j++) {
    const q = b[p + 2 + j]!;
    out[o + j] = fr(((q & 0x0f) - 8) * d);
    out[o + QK / 2 + j] = fr(((q >> 4) - 8) * d);
  }
}

function quantizeBlockQ5_0(x: Float32Array, o: number, y: Uint8Array, p: number): void {
  const d = fr(signedMax(x, o) / -16);
  const id = d ? fr(1 / d) : 0;
  putHalf(y, p, d);
  let qh = 0;
  for (let j = 0; j < QK / 2; j++) {
    const q0 = Math.min(31, Math.trunc(fr(fr(x[o + j]! * id) + 16.5)));
    const q1 = Math.min(31, Math.trunc(fr(fr(x[o + QK / 2 + j]! * id) + 16.5)));
    y[p + 6 + j] = (q0 & 0x0f) | ((q1 & 0x0f) << 4);
    qh |= ((q0 & 0x10) >> 4) << j;
    qh |= ((q1 & 0x10) >> 4) << (j + QK / 2);
  }
  y[p + 2] = qh & 0xff;
  y[p + 3] = (qh >>> 8) & 0xff;
  y[p + 4] = (qh >>> 16) & 0xff;
  y[p + 5] = (qh >>> 24) & 0xff;
}

function dequantizeBlockQ5_0(b: Uint8Array, p: number, out: Float32Array, o: number): void {
  const d = getHalf(b, p);
  const qh = (b[p + 2]! | (b[p + 3]! << 8) | (b[p + 4]! << 16) | (b[p + 5]! << 24)) >>> 0;
  for (let j = 0; j < QK / 2; j++) {
    const q = b[p + 6 + j]!;
    const h0 = ((qh >>> j) << 4) & 0x10;
    const h1 = (qh >>> (j + 12)) & 0x10;
    out[o + j] = fr((((q & 0x0f) | h0) - 16) * d);
    out[o + QK / 2 + j] = fr((((q >> 4) | h1) - 16) * d);
  }
}

// ---------------------------------------------------------------------------------------------
// Q4_K: 8 sub-blocks of 32 with their own scale and min, both stored as 6-bit multiples of d, dmin

/**
 * make_qkx2_quants: codes L ∈ [0, nmax] and (scale, min) minimising Σ w·(scale·L + min − x)²,
 * searching nstep+1 candidate scales around nmax / (max − min). Returns [scale, −min].
 */
function makeQkx2Quants(
  n: number,
  nmax: number,
  x: Float32Array,
  weights: Float32Array,
  L: Uint8Array,
  Laux: Uint8Array,
  rmin: number,
  rdelta: number,
  nstep: number,
): [number, number] {
  let min = x[0]!;
  let max = x[0]!;
  let sumW = weights[0]!;
  let sumX = fr(sumW * x[0]!);
  for (let i = 1; i < n; i++) {
    if (x[i]! < min) min = x[i]!;
    if (x[i]! > max) max = x[i]!;
    const w = weights[i]!;
    sumW = fr(sumW + w);
    sumX = fr(sumX + fr(w * x[i]!));
  }
  if (min > 0) min = 0;
  if (max === min) {
    L.fill(0, 0, n);
    return [0, -min];
  }
  let iscale = fr(nmax / fr(max - min));
  let scale = fr(1 / iscale);
  let bestError = 0;
  for (let i = 0; i < n; i++) {
    const l = nearestInt(fr(iscale * fr(x[i]! - min)));
    L[i] = Math.max(0, Math.min(nmax, l));
    const diff = fr(fr(fr(scale * L[i]!) + min) - x[i]!);
    bestError = fr(bestError + fr(weights[i]! * fr(diff * diff)));
  }
  for (let is = 0; is <= nstep; is++) {
    iscale = fr(fr(fr(rmin + fr(rdelta * is)) + nmax) / fr(max - min));
    let sumL = 0;
    let sumL2 = 0;
    let sumXL = 0;
    for (let i = 0; i < n; i++) {
      const l = Math.max(0, Math.min(nmax, nearestInt(fr(iscale * fr(x[i]! - min)))));
      Laux[i] = l;
      const wl = fr(weights[i]! * l);
      sumL = fr(sumL + wl);
      sumL2 = fr(sumL2 + fr(wl * l));
      sumXL = fr(sumXL + fr(wl * x[i]!));
    }
    const D = fr(fr(sumW * sumL2) - fr(sumL * sumL));
    if (D > 0) {
      let thisScale = fr(fr(fr(sumW * sumXL) - fr(sumX * sumL)) / D);
      let thisMin = fr(fr(fr(sumL2 * sumX) - fr(sumL * sumXL)) / D);
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = fr(sumXL / sumL2);
      }
      let curError = 0;
      for (let i = 0; i < n; i++) {
        const diff = fr(fr(fr(thisScale * Laux[i]!) + thisMin) - x[i]!);
        curError = fr(curError + fr(weights[i]! * fr(diff * diff)));
      }
      if (curError < bestError) {
        L.set(Laux.subarray(0, n));
        bestError = curError;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  return [scale, -min];
}

/** get_scale_min_k4: the 6-bit scale and min of sub-block j from the 12 packed bytes. */
function scaleMinK4(j: number, q: Uint8Array, p: number): [number, number] {
  if (j < 4) return [q[p + j]! & 63, q[p + j + 4]! & 63];
  return [(q[p + j + 4]! & 0x0f) | ((q[p + j - 4]! >> 6) << 4), (q[p + j + 4]! >> 4) | ((q[p + j]! >> 6) << 4)];
}

function quantizeBlockQ4_K(x: Float32Array, o: number, y: Uint8Array, p: number, work: Q4KWork): void {
  const { L, Laux, weights, scales, mins } = work;
  let maxScale = 0;
  let maxMin = 0;
  for (let j = 0; j < QK_K / 32; j++) {
    const xs = x.subarray(o + 32 * j, o + 32 * j + 32);
    let sumX2 = 0;
    for (let l = 0; l < 32; l++) sumX2 = fr(sumX2 + fr(xs[l]! * xs[l]!));
    const avX = fr(Math.sqrt(fr(sumX2 / 32)));
    for (let l = 0; l < 32; l++) weights[l] = fr(avX + Math.abs(xs[l]!));
    const [scale, min] = makeQkx2Quants(32, 15, xs, weights, L.subarray(32 * j, 32 * j + 32), Laux, -1, fr(0.1), 20);
    scales[j] = scale;
    mins[j] = min;
    if (scale > maxScale) maxScale = scale;
    if (min > maxMin) maxMin = min;
  }
  const invScale = maxScale > 0 ? fr(63 / maxScale) : 0;
  const invMin = maxMin > 0 ? fr(63 / maxMin) : 0;
  const sc = p + 4; // the 12 scale bytes
  y.fill(0, sc, sc + 12);
  for (let j = 0; j < QK_K / 32; j++) {
    const ls = Math.min(63, nearestInt(fr(invScale * scales[j]!)) & 0xff);
    const lm = Math.min(63, nearestInt(fr(invMin * mins[j]!)) & 0xff);
    if (j < 4) {
      y[sc + j] = ls;
      y[sc + j + 4] = lm;
    } else {
      y[sc + j + 4] = (ls & 0x0f) | ((lm & 0x0f) << 4);
      y[sc + j - 4] = y[sc + j - 4]! | ((ls >> 4) << 6);
      y[sc + j] = y[sc + j]! | ((lm >> 4) << 6);
    }
  }
  putHalf(y, p, fr(maxScale / 63));
  putHalf(y, p + 2, fr(maxMin / 63));
  const dAll = getHalf(y, p);
  const dminAll = getHalf(y, p + 2);
  for (let j = 0; j < QK_K / 32; j++) {
    const [s, m] = scaleMinK4(j, y, sc);
    const d = fr(dAll * s);
    if (!d) continue;
    const dm = fr(dminAll * m);
    for (let ii = 0; ii < 32; ii++) {
      const l = nearestInt(fr(fr(x[o + 32 * j + ii]! + dm) / d));
      L[32 * j + ii] = Math.max(0, Math.min(15, l));
    }
  }
  const qs = p + 16;
  for (let j = 0; j < QK_K; j += 64) {
    for (let l = 0; l < 32; l++) y[qs + j / 2 + l] = L[j + l]! | (L[j + l + 32]! << 4);
  }
}

interface Q4KWork {
  L: Uint8Array;
  Laux: Uint8Array;
  weights: Float32Array;
  scales: Float32Array;
  mins: Float32Array;
}

function dequantizeBlockQ4_K(b: Uint8Array, p: number, out: Float32Array, o: number): void {
  const d = getHalf(b, p);
  const dmin = getHalf(b, p + 2);
  let q = p + 16;
  let is = 0;
  for (let j = 0; j < QK_K; j += 64) {
    const [s1, m1] = scaleMinK4(is, b, p + 4);
    const [s2, m2] = scaleMinK4(is + 1, b, p + 4);
    const d1 = fr(d * s1);
    const min1 = fr(dmin * m1);
    const d2 = fr(d * s2);
    const min2 = fr(dmin * m2);
    for (let l = 0; l < 32; l++) out[o + j + l] = fr(fr(d1 * (b[q + l]! & 0x0f)) - min1);
    for (let l = 0; l < 32; l++) out[o + j + 32 + l] = fr(fr(d2 * (b[q + l]! >> 4)) - min2);
    q += 32;
    is += 2;
  }
}

// ---------------------------------------------------------------------------------------------
// Q6_K: 16 sub-blocks of 16, each with a signed 8-bit multiple of the super-block scale d

/** GROUP_MAX_EPS: a group whose largest magnitude is below it is all zeros. */
const GROUP_MAX_EPS = fr(1e-15);

/**
 * make_qx_quants with rmse_type 1 (weights x²) and no importance weights: signed codes
 * L − nmax ∈ [−nmax, nmax − 1] and the scale minimising Σ x²·(scale·l − x)², trying the
 * 19 inverse scales −(nmax + 0.1·is) / max, is ∈ [−9, 9], where max is the value of largest
 * magnitude. Writes L (offset by nmax) and returns the scale.
 */
function makeQxQuants(n: number, nmax: number, x: Float32Array, o: number, L: Uint8Array, p: number): number {
  let max = 0;
  let amax = 0;
  for (let i = 0; i < n; i++) {
    const ax = Math.abs(x[o + i]!);
    if (ax > amax) {
      amax = ax;
      max = x[o + i]!;
    }
  }
  if (amax < GROUP_MAX_EPS) {
    L.fill(0, p, p + n);
    return 0;
  }
  let iscale = fr(-nmax / max);
  let sumLX = 0;
  let sumL2 = 0;
  for (let i = 0; i < n; i++) {
    const xi = x[o + i]!;
    const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
    L[p + i] = l + nmax;
    const w = fr(xi * xi);
    sumLX = fr(sumLX + fr(fr(w * xi) * l));
    sumL2 = fr(sumL2 + fr(fr(w * l) * l));
  }
  let scale = sumL2 ? fr(sumLX / sumL2) : 0;
  let best = fr(scale * sumLX);
  for (let is = -9; is <= 9; is++) {
    if (is === 0) continue;
    iscale = fr(-fr(nmax + fr(fr(0.1) * is)) / max);
    sumLX = 0;
    sumL2 = 0;
    for (let i = 0; i < n; i++) {
      const xi = x[o + i]!;
      const l = Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * xi))));
      const w = fr(xi * xi);
      sumLX = fr(sumLX + fr(fr(w * xi) * l));
      sumL2 = fr(sumL2 + fr(fr(w * l) * l));
    }
    if (sumL2 > 0 && fr(sumLX * sumLX) > fr(best * sumL2)) {
      for (let i = 0; i < n; i++) L[p + i] = nmax + Math.max(-nmax, Math.min(nmax - 1, nearestInt(fr(iscale * x[o + i]!))));
      scale = fr(sumLX / sumL2);
      best = fr(scale * sumLX);
    }
  }
  return scale;
}

function quantizeBlockQ6_K(x: Float32Array, o: number, y: Uint8Array, p: number, work: Q6KWork): void {
  const { L, scales } = work;
  let maxScale = 0;
  let maxAbsScale = 0;
  for (let ib = 0; ib < QK_K / 16; ib++) {
    const scale = makeQxQuants(16, 32, x, o + 16 * ib, L, 16 * ib);
    scales[ib] = scale;
    if (Math.abs(scale) > maxAbsScale) {
      maxAbsScale = Math.abs(scale);
      maxScale = scale;
    }
  }
  const sc = p + QK_K / 2 + QK_K / 4; // the 16 int8 scales, after ql and qh
  const dAt = sc + QK_K / 16;
  if (maxAbsScale < GROUP_MAX_EPS) {
    y.fill(0, p, dAt + 2);
    return;
  }
  const iscale = fr(-128 / maxScale);
  putHalf(y, dAt, fr(1 / iscale));
  for (let ib = 0; ib < QK_K / 16; ib++) y[sc + ib] = Math.min(127, nearestInt(fr(iscale * scales[ib]!))) & 0xff;
  const dAll = getHalf(y, dAt);
  for (let j = 0; j < QK_K / 16; j++) {
    const d = fr(dAll * ((y[sc + j]! << 24) >> 24));
    if (!d) continue;
    for (let ii = 0; ii < 16; ii++) {
      const l = nearestInt(fr(x[o + 16 * j + ii]! / d));
      L[16 * j + ii] = Math.max(-32, Math.min(31, l)) + 32;
    }
  }
  for (let j = 0; j < QK_K; j += 128) {
    const ql = p + j / 2;
    const qh = p + QK_K / 2 + j / 4;
    for (let l = 0; l < 32; l++) {
      const q1 = L[j + l]!;
      const q2 = L[j + l + 32]!;
      const q3 = L[j + l + 64]!;
      const q4 = L[j + l + 96]!;
      y[ql + l] = (q1 & 0x0f) | ((q3 & 0x0f) << 4);
      y[ql + l + 32] = (q2 & 0x0f) | ((q4 & 0x0f) << 4);
      y[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
    }
  }
}

interface Q6KWork {
  L: Uint8Array;
  scales: Float32Array;
}

function dequantizeBlockQ6_K(b: Uint8Array, p: number, out: Float32Array, o: number): void {
  const d = getHalf(b, p + QK_K / 2 + QK_K / 4 + QK_K / 16);
  for (let n = 0; n < QK_K; n += 128) {
    const ql = p + n / 2;
    const qh = p + QK_K / 2 + n / 4;
    const sc = p + QK_K / 2 + QK_K / 4 + n / 16;
    for (let l = 0; l < 32; l++) {
      const is = sc + (l >> 4); // sub-blocks is, is + 2, is + 4, is + 6 hold values l, l + 32, l + 64, l + 96
      const h = b[qh + l]!;
      const q1 = ((b[ql + l]! & 0x0f) | ((h & 3) << 4)) - 32;
      const q2 = ((b[ql + l + 32]! & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
      const q3 = ((b[ql + l]! >> 4) | (((h >> 4) & 3) << 4)) - 32;
      const q4 = ((b[ql + l + 32]! >> 4) | (((h >> 6) & 3) << 4)) - 32;
      out[o + n + l] = fr(fr(d * ((b[is]! << 24) >> 24)) * q1);
      out[o + n + l + 32] = fr(fr(d * ((b[is + 2]! << 24) >> 24)) * q2);
      out[o + n + l + 64] = fr(fr(d * ((b[is + 4]! << 24) >> 24)) * q3);
      out[o + n + l + 96] = fr(fr(d * ((b[is + 6]! << 24) >> 24)) * q4);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Whole tensors

/**
 * Quantizes row-major data whose rows are `rowLength` long into `type`'s bytes. Rows must be a
 * multiple of the block size, so blocks never straddle rows and the result is the rows' blocks
 * one after another, exactly as ggml lays out a tensor.
 */
export function quantize(type: PackableType, data: Float32Array, rowLength: number): Uint8Array {
  const [block, bytes] = QUANT_SIZES[type];
  if (rowLength % block !== 0 || data.length % rowLength !== 0) {
    throw new Error(`cannot store rows of ${rowLength} values as ${QuantType[type]} (block size ${block})`);
  }
  if (type === QuantType.F32) return new Uint8Array(data.slice().buffer);
  const nBlocks = data.length / block;
  const out = new Uint8Array(nBlocks * bytes);
  if (type === QuantType.F16) {
    for (let i = 0; i < data.length; i++) putHalf(out, 2 * i, data[i]!);
    return out;
  }
  const work: Q4KWork = {
    L: new Uint8Array(QK_K),
    Laux: new Uint8Array(32),
    weights: new Float32Array(32),
    scales: new Float32Array(QK_K / 32),
    mins: new Float32Array(QK_K / 32),
  };
  const work6: Q6KWork = { L: new Uint8Array(QK_K), scales: new Float32Array(QK_K / 16) };
  for (let b = 0; b < nBlocks; b++) {
    if (type === QuantType.Q8_0) quantizeBlockQ8_0(data, b * block, out, b * bytes);
    else if (type === QuantType.Q4_0) quantizeBlockQ4_0(data, b * block, out, b * bytes);
    else if (type === QuantType.Q5_0) quantizeBlockQ5_0(data, b * block, out, b * bytes);
    else if (type === QuantType.Q4_K) quantizeBlockQ4_K(data, b * block, out, b * bytes, work);
    else quantizeBlockQ6_K(data, b * block, out, b * bytes, work6);
  }
  return out;
}

/** `type`'s bytes → float32 values (n = bytes / blockBytes · blockSize). */
export function dequantize(type: QuantType, bytes: Uint8Array): Float32Array {
  const [block, size] = QUANT_SIZES[type];
  if (bytes.length % size !== 0) throw new Error(`${bytes.length} bytes is not a whole number of ${QuantType[type]} blocks (${size} bytes)`);
  const nBlocks = bytes.length / size;
  const out = new Float32Array(nBlocks * block);
  if (type === QuantType.F32) {
    out.set(new Float32Array(bytes.slice().buffer));
    return out;
  }
  if (type === QuantType.BF16) {
    const bits = new Uint32Array(out.buffer); // bf16 is the top half of a float32
    for (let i = 0; i < nBlocks; i++) bits[i] = (bytes[2 * i]! | (bytes[2 * i + 1]! << 8)) << 16;
    return out;
  }
  for (let b = 0; b < nBlocks; b++) {
    const p = b * size;
    const o = b * block;
    switch (type) {
      case QuantType.F16:
        out[o] = getHalf(bytes, p);
        break;
      case QuantType.Q8_0:
        dequantizeBlockQ8_0(bytes, p, out, o);
        break;
      case QuantType.Q4_0:
        dequantizeBlockQ4_0(bytes, p, out, o);
        break;
      case QuantType.Q5_0:
        dequantizeBlockQ5_0(bytes, p, out, o);
        break;
      case QuantType.Q4_K:
        dequantizeBlockQ4_K(bytes, p, out, o);
        break;
      case QuantType.Q6_K:
        dequantizeBlockQ6_K(bytes, p, out, o);
        break;
      default:
        throw new Error(`unpacking ${QuantType[type] ?? `type ${type}`} is not supported (supported: ${UNPACKABLE.map((t) => QuantType[t]).join(", ")})`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Blocks from integer codes that are already on a block's grid (no re-quantization)

/**
 * Packs signed codes c (w = d·c, one f16 scale per 32 values) as Q4_0 (c ∈ [−8, 7], nibble c + 8)
 * or Q8_0 (c ∈ [−128, 127]). `scaleBits` are the f16 bit patterns of the block scales.
 */
export function packCodes(type: QuantType.Q4_0 | QuantType.Q8_0, codes: Int8Array, scaleBits: Uint16Array): Uint8Array {
  const [block, bytes] = QUANT_SIZES[type];
  const nBlocks = codes.length / block;
  if (!Number.isInteger(nBlocks) || scaleBits.length !== nBlocks) {
    throw new Error(`${codes.length} codes and ${scaleBits.length} scales do not make whole ${QuantType[type]} blocks of ${block}`);
  }
  const lo = type === QuantType.Q4_0 ? -8 : -128;
  const hi = -lo - 1;
  const out = new Uint8Array(nBlocks * bytes);
  for (let b = 0; b < nBlocks; b++) {
    const p = b * bytes;
    out[p] = scaleBits[b]! & 0xff;
    out[p + 1] = scaleBits[b]! >> 8;
    for (let j = 0; j < block; j++) {
      const c = codes[b * block + j]!;
      if (c < lo || c > hi) throw new Error(`code ${c} at block ${b} is outside ${QuantType[type]}'s range [${lo}, ${hi}]`);
    }
    if (type === QuantType.Q8_0) {
      for (let j = 0; j < block; j++) out[p + 2 + j] = codes[b * block + j]! & 0xff;
    } else {
      for (let j = 0; j < block / 2; j++) out[p + 2 + j] = (codes[b * block + j]! + 8) | ((codes[b * block + block / 2 + j]! + 8) << 4);
    }
  }
  return out;
}
