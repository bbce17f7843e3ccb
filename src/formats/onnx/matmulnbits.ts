// com.microsoft.MatMulNBits: Y = A · dequant(B)ᵀ, with B [N, K] quantized block-wise along K.
// Layout from onnxruntime docs/ContribOperators.md and its quantizer
// (python/tools/quantization/matmul_nbits_quantizer.py, DefaultWeightOnlyQuantizer):
//   B            uint8 [N, kBlocks, blockSize·bits/8]   codes packed along K, low bits first
//   scales       T     [N · kBlocks]                     one per block (row-major N, kBlocks)
//   zero_points  uint8 [N · ceil(kBlocks·bits/8)]        packed like B, each row padded to a byte
//   dequant(B)[n, k] = (q[n, k] − zp[n, k / blockSize]) · scale[n, k / blockSize]
// kBlocks = ceil(K / blockSize): a K that is not a multiple of the block size is padded (the
// quantizer zero-pads the weight); topiary pads with the block's zero point, i.e. weight 0.
// blockSize is a power of two ≥ 16 (checked by the kernel).
import { type QuantGrid, groupCount, groupOf } from "../compressed-linear.js";

/** Bit widths whose codes pack whole into bytes (what the CPU kernel implements). */
export const MATMULNBITS_BITS = [2, 4, 8] as const;
/** Block sizes the CPU kernel (MLAS SQNBit) accepts, largest first. */
const BLOCK_SIZES = [256, 128, 64, 32, 16] as const;
/** Largest block used when one group spans the whole row (per-channel grids). */
const PER_CHANNEL_BLOCK = 128;

export interface MatMulNBitsWeight {
  /** attributes of the node */
  K: number;
  N: number;
  bits: number;
  blockSize: number;
  /** [N, kBlocks, blobSize] */
  B: Uint8Array;
  kBlocks: number;
  blobSize: number;
  /** [N · kBlocks] */
  scales: Float32Array;
  /** [N · ceil(kBlocks·bits/8)]; null for a symmetric grid whose zero is 2^(bits−1), the op's default */
  zeroPoints: Uint8Array | null;
}

/**
 * The MatMulNBits block size that reproduces `grid` on `cols` input columns exactly, or an
 * explanation of why none does. Every block must lie inside one group: groups of G columns split
 * into blocks of B when B divides G; a single group per row (per-channel) fits any block size.
 */
export function blockSizeFor(grid: Pick<QuantGrid, "groupSize" | "gIdx">, cols: number): number | string {
  if (grid.gIdx) {
    for (let j = 0; j < cols; j++) {
      if (grid.gIdx[j] !== Math.floor(j / grid.groupSize)) {
        return "its columns are grouped out of order (act-order g_idx), which MatMulNBits cannot express";
      }
    }
  }
  if (grid.groupSize >= cols) return BLOCK_SIZES.find((size) => size <= Math.min(cols, PER_CHANNEL_BLOCK)) ?? 16;
  const b = BLOCK_SIZES.find((size) => grid.groupSize % size === 0);
  return b ?? `its group size ${grid.groupSize} is not a multiple of a MatMulNBits block (a power of two ≥ 16)`;
}

/** Packs n-bit values, `perByte` to a byte, lowest bits first. */
function packInto(out: Uint8Array, offset: number, index: number, value: number, bits: number): void {
  const perByte = 8 / bits;
  const byte = offset + Math.floor(index / perByte);
  out[byte] = out[byte]! | (value << ((index % perByte) * bits));
}

/**
 * Repacks integer codes [rows, cols] (row = output feature n, col = input feature k) on `grid`
 * into MatMulNBits tensors. Throws when the grid cannot be expressed exactly (see blockSizeFor).
 */
export function packMatMulNBits(codes: Uint8Array, grid: QuantGrid, rows: number, cols: number): MatMulNBitsWeight {
  const bits = grid.bits;
  if (!(MATMULNBITS_BITS as readonly number[]).includes(bits)) {
    throw new Error(`${bits}-bit weights cannot be stored as MatMulNBits (supported: ${MATMULNBITS_BITS.join(", ")} bits)`);
  }
  const blockSize = blockSizeFor(grid, cols);
  if (typeof blockSize === "string") throw new Error(`the quantization grid cannot be stored as MatMulNBits: ${blockSize}`);
  if (codes.length !== rows * cols) throw new Error(`expected ${rows}·${cols} codes, got ${codes.length}`);
  const groups = groupCount(grid, cols);
  const kBlocks = Math.ceil(cols / blockSize);
  const blobSize = (blockSize * bits) / 8;
  const zpRowBytes = Math.ceil((kBlocks * bits) / 8);
  const maxq = 2 ** bits - 1;
  const defaultZero = 2 ** (bits - 1);
  const B = new Uint8Array(rows * kBlocks * blobSize);
  const scales = new Float32Array(rows * kBlocks);
  const zp = new Uint8Array(rows * zpRowBytes);
  let allDefaultZero = true;
  for (let n = 0; n < rows; n++) {
    for (let b = 0; b < kBlocks; b++) {
      const g = groupOf(grid, Math.min(b * blockSize, cols - 1));
      const zero = grid.zero[n * groups + g]!;
      if (!Number.isInteger(zero) || zero < 0 || zero > maxq) {
        throw new Error(`zero point ${zero} (row ${n}, group ${g}) is not an integer in [0, ${maxq}]`);
      }
      if (zero !== defaultZero) allDefaultZero = false;
      scales[n * kBlocks + b] = grid.scale[n * groups + g]!;
      packInto(zp, n * zpRowBytes, b, zero, bits);
      const blob = (n * kBlocks + b) * blobSize;
      for (let i = 0; i < blockSize; i++) {
        const k = b * blockSize + i;
        packInto(B, blob, i, k < cols ? codes[n * cols + k]! : zero, bits); // padding → weight 0
      }
    }
  }
  const zeroPoints = grid.sym && allDefaultZero ? null : zp;
  return { K: cols, N: rows, bits, blockSize, B, kBlocks, blobSize, scales, zeroPoints };
}
