// Sparse bitmask storage of compressed-tensors (see constants.ts `Sparse` for the tensors).
// compressed-tensors 0.14.0: `bitmask_compress` / `bitmask_decompress` (sparse_bitmask.py),
// `sparse24_bitmask_compress` (sparse_24_bitmask.py), `pack_bitmasks` / `unpack_bitmasks` (utils/helpers.py).

export interface BitmaskTensors {
  /** kept values, row-major (the non-zeros; for 2:4, exactly cols/2 per row) */
  values: Float32Array;
  /** [rows, ⌈cols/8⌉], bit j mod 8 of byte ⌊j/8⌋ = column j kept (numpy packbits, bitorder "little") */
  bitmask: Uint8Array;
  /** [rows]: index in `values` of each row's first value */
  rowOffsets: Float64Array;
}

export const bitmaskBytesPerRow = (cols: number) => Math.ceil(cols / 8);

/** sparse-bitmask: keeps w != 0 (so −0 is dropped, as `tensor != 0` does; it reads back as +0). */
export function bitmaskCompress(w: Float32Array, rows: number, cols: number): BitmaskTensors {
  return compressWith(w, rows, cols, (r, j) => w[r * cols + j] !== 0);
}

/**
 * sparse-24-bitmask: keeps exactly 2 of every 4 consecutive columns — the non-zeros, topped up
 * with the first zeros of the group (compressed-tensors takes topk(2) of |w|, whose choice among
 * equal zeros is unspecified; any 2 positions covering the non-zeros decode to the same matrix).
 * Throws when cols is not a multiple of 4 or a group holds more than 2 non-zeros.
 */
export function bitmask24Compress(w: Float32Array, rows: number, cols: number, what: string): BitmaskTensors {
  if (cols % 4 !== 0) throw new Error(`${what}: sparse-24-bitmask needs a multiple of 4 input columns, got ${cols}`);
  const keep = new Uint8Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let g = 0; g < cols; g += 4) {
      const base = r * cols + g;
      let kept = 0;
      for (let k = 0; k < 4; k++) {
        if (w[base + k] !== 0) {
          keep[base + k] = 1;
          kept++;
        }
      }
      if (kept > 2) throw new Error(`${what}: row ${r}, columns ${g}..${g + 3} hold ${kept} non-zeros; 2:4 sparsity allows 2`);
      for (let k = 0; k < 4 && kept < 2; k++) {
        if (!keep[base + k]) {
          keep[base + k] = 1;
          kept++;
        }
      }
    }
  }
  return compressWith(w, rows, cols, (r, j) => keep[r * cols + j] === 1);
}

function compressWith(w: Float32Array, rows: number, cols: number, kept: (r: number, j: number) => boolean): BitmaskTensors {
  const stride = bitmaskBytesPerRow(cols);
  const bitmask = new Uint8Array(rows * stride);
  const rowOffsets = new Float64Array(rows);
  const values: number[] = [];
  for (let r = 0; r < rows; r++) {
    rowOffsets[r] = values.length;
    for (let j = 0; j < cols; j++) {
      if (!kept(r, j)) continue;
      bitmask[r * stride + (j >> 3)]! |= 1 << (j & 7);
      values.push(w[r * cols + j]!);
    }
  }
  return { values: Float32Array.from(values), bitmask, rowOffsets };
}

/** Number of set bits of a bitmask (= values to expect). */
export function bitmaskCount(bitmask: Uint8Array, rows: number, cols: number): number {
  const stride = bitmaskBytesPerRow(cols);
  let n = 0;
  for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) n += (bitmask[r * stride + (j >> 3)]! >> (j & 7)) & 1;
  return n;
}

/**
 * The dense [rows·cols] matrix: values placed at the set bits in row-major order, zeros elsewhere.
 * `rowOffsets`, when given (sparse-bitmask), is checked against the bit counts.
 */
export function bitmaskDecompress(
  values: Float32Array,
  bitmask: Uint8Array,
  rows: number,
  cols: number,
  rowOffsets: ArrayLike<number> | null,
  what: string,
): Float32Array {
  const stride = bitmaskBytesPerRow(cols);
  if (bitmask.length !== rows * stride) throw new Error(`${what}: bitmask has ${bitmask.length} bytes, [${rows}, ${stride}] expected`);
  const out = new Float32Array(rows * cols);
  let k = 0;
  for (let r = 0; r < rows; r++) {
    if (rowOffsets && rowOffsets[r] !== k) throw new Error(`${what}: row_offsets[${r}] is ${rowOffsets[r]}, the bitmask puts row ${r} at value ${k}`);
    for (let j = 0; j < cols; j++) {
      if ((bitmask[r * stride + (j >> 3)]! >> (j & 7)) & 1) {
        if (k >= values.length) throw new Error(`${what}: the bitmask has more set bits than the ${values.length} stored values`);
        out[r * cols + j] = values[k++]!;
      }
    }
  }
  if (k !== values.length) throw new Error(`${what}: ${values.length} stored values, the bitmask has ${k} set bits`);
  return out;
}
