// compressed-tensors `pack-quantized` bit packing: b-bit codes into int32 words along one dimension.
// Source: vllm-project/compressed-tensors `compressors/pack_quantized/helpers.py`
// (`pack_to_int32` / `unpack_from_int32`).
//
// A code is the unsigned value q ∈ [0, 2^b − 1] of the grid (w = scale · (q − zero)).
// compressed-tensors holds weights as signed int8 x = q − 2^(b−1) and packs x + 2^(b−1) — the same
// unsigned q. Along the packed dimension the codes of one row form a little-endian bit stream:
//
//   "dense" (compressed-tensors ≥ 0.18.0): code j occupies bits [j·b, j·b + b) of the row, word
//           ⌊j·b/32⌋ from bit (j·b) mod 32, spilling into the next word when it crosses a boundary
//           (3-bit: 32 codes in 3 words); a row takes ⌈cols·b/32⌉ words.
//   "word-aligned" (compressed-tensors < 0.18.0): ⌊32/b⌋ codes per word, code j in word
//           ⌊j/⌊32/b⌋⌋ at bit (j mod ⌊32/b⌋)·b, the top 32 mod b bits unused; ⌈cols/⌊32/b⌋⌉ words.
//
// For b ∈ {1, 2, 4, 8} the two layouts are the same bytes (compressed-tensors' own test
// `test_power_of_2_bits_same_packed_output_as_old`); they differ for 3, 5, 6, 7 bits.
// Padding bits are 0. Words are int32 (the top code's high bit makes them negative).

export type PackLayout = "dense" | "word-aligned";

function checkBits(bits: number): void {
  if (!Number.isInteger(bits) || bits < 1 || bits > 8) throw new Error(`packing needs 1..8 bits per code, got ${bits}`);
}

/** Words per row of `count` codes. */
export function packedWords(count: number, bits: number, layout: PackLayout = "dense"): number {
  checkBits(bits);
  return layout === "dense" ? Math.ceil((count * bits) / 32) : Math.ceil(count / Math.floor(32 / bits));
}

/**
 * Packs codes [rows, cols] (row-major) along `dim`:
 *   dim 1 (weights, `weight_packed`):        → [rows, packedWords(cols)]
 *   dim 0 (zero points, `weight_zero_point`): → [packedWords(rows), cols]
 */
export function packInt32(
  codes: Uint8Array,
  rows: number,
  cols: number,
  bits: number,
  opts: { dim?: 0 | 1; layout?: PackLayout } = {},
): Int32Array {
  if (codes.length !== rows * cols) throw new Error(`packInt32: ${codes.length} codes for shape [${rows}, ${cols}]`);
  const layout = opts.layout ?? "dense";
  if ((opts.dim ?? 1) === 0) {
    return transposeInt32(packRows(transposeU8(codes, rows, cols), cols, rows, bits, layout), cols, packedWords(rows, bits, layout));
  }
  return packRows(codes, rows, cols, bits, layout);
}

/** Inverse of packInt32: codes [rows, cols] from words packed along `dim`. */
export function unpackInt32(
  packed: Int32Array,
  rows: number,
  cols: number,
  bits: number,
  opts: { dim?: 0 | 1; layout?: PackLayout } = {},
): Uint8Array {
  const layout = opts.layout ?? "dense";
  if ((opts.dim ?? 1) === 0) {
    const words = packedWords(rows, bits, layout);
    if (packed.length !== words * cols) throw new Error(`unpackInt32: ${packed.length} words, expected [${words}, ${cols}]`);
    return transposeU8(unpackRows(transposeInt32(packed, words, cols), cols, rows, bits, layout), cols, rows);
  }
  return unpackRows(packed, rows, cols, bits, layout);
}

function packRows(codes: Uint8Array, rows: number, cols: number, bits: number, layout: PackLayout): Int32Array {
  const words = packedWords(cols, bits, layout);
  const out = new Int32Array(rows * words);
  const max = (1 << bits) - 1;
  const perWord = Math.floor(32 / bits);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      const q = codes[r * cols + j]!;
      if (q > max) throw new Error(`packInt32: code ${q} at [${r}, ${j}] does not fit in ${bits} bits`);
      if (layout === "word-aligned") {
        out[r * words + Math.floor(j / perWord)]! |= q << ((j % perWord) * bits);
        continue;
      }
      const bit = j * bits;
      const w = r * words + (bit >>> 5);
      const off = bit & 31;
      out[w]! |= q << off;
      if (off + bits > 32) out[w + 1]! |= q >>> (32 - off); // the high bits spill into the next word
    }
  }
  return out;
}

function unpackRows(packed: Int32Array, rows: number, cols: number, bits: number, layout: PackLayout): Uint8Array {
  const words = packedWords(cols, bits, layout);
  if (packed.length !== rows * words) throw new Error(`unpackInt32: ${packed.length} words, expected [${rows}, ${words}]`);
  const out = new Uint8Array(rows * cols);
  const mask = (1 << bits) - 1;
  const perWord = Math.floor(32 / bits);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < cols; j++) {
      let q: number;
      if (layout === "word-aligned") {
        q = (packed[r * words + Math.floor(j / perWord)]! >>> ((j % perWord) * bits)) & mask;
      } else {
        const bit = j * bits;
        const w = r * words + (bit >>> 5);
        const off = bit & 31;
        q = packed[w]! >>> off;
        if (off + bits > 32) q |= packed[w + 1]! << (32 - off);
        q &= mask;
      }
      out[r * cols + j] = q;
    }
  }
  return out;
}

function transposeU8(a: Uint8Array, rows: number, cols: number): Uint8Array {
  const t = new Uint8Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
}

function transposeInt32(a: Int32Array, rows: number, cols: number): Int32Array {
  const t = new Int32Array(a.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = a[r * cols + c]!;
  return t;
}
