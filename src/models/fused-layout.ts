// Weight layouts of checkpoints whose linears are not stored as one [out, in] matrix per
// projection, and the positional tables some families need:
//   - GPT-2's Conv1D stores W as [in, out] (y = x·W + b): topiary compresses the [out, in]
//     transpose, and writes the compressed weight back transposed.
//   - BLOOM's and GPT-NeoX's `query_key_value` [3·D, D] has rows interleaved per head
//     ([heads, 3, headDim]); llama.cpp wants q|k|v concatenated ([3, heads, headDim]).
//   - BLOOM's ALiBi slopes.
// A fused linear stays ONE matrix for the compressors (the SparseGPT reference compresses BLOOM's
// query_key_value whole); only the graph splits its output, and exporters reorder its rows.

/** The transpose of a row-major [rows, cols] matrix: [cols, rows]. */
export function transpose(data: Float32Array, rows: number, cols: number): Float32Array {
  if (data.length !== rows * cols) throw new Error(`transpose: ${data.length} values is not ${rows}×${cols}`);
  const out = new Float32Array(data.length);
  for (let r = 0; r < rows; r++) {
    const row = r * cols;
    for (let c = 0; c < cols; c++) out[c * rows + r] = data[row + c]!;
  }
  return out;
}

/**
 * For each row of the q|k|v-concatenated layout, the row of the per-head interleaved layout it
 * comes from: dest row (p·heads + h)·headDim + d ← source row (h·3 + p)·headDim + d, p ∈ {q, k, v}.
 */
export function interleavedToConcatenatedRows(heads: number, headDim: number): Int32Array {
  const order = new Int32Array(3 * heads * headDim);
  for (let p = 0; p < 3; p++) {
    for (let h = 0; h < heads; h++) {
      for (let d = 0; d < headDim; d++) order[(p * heads + h) * headDim + d] = (h * 3 + p) * headDim + d;
    }
  }
  return order;
}

type Rows = Float32Array | Uint8Array | Int8Array | Uint16Array;

/** Rows of [rows, cols] `data` taken in `order` (dest row i = source row order[i]); any element type. */
export function gatherRows<T extends Rows>(data: T, order: Int32Array, cols: number): T {
  if (data.length !== order.length * cols) throw new Error(`gatherRows: ${data.length} values is not ${order.length}×${cols}`);
  const out = new (data.constructor as { new (n: number): T })(data.length);
  for (let i = 0; i < order.length; i++) out.set(data.subarray(order[i]! * cols, (order[i]! + 1) * cols), i * cols);
  return out;
}

/** The inverse permutation: gatherRows(gatherRows(x, p), invertRows(p)) = x. */
export function invertRows(order: Int32Array): Int32Array {
  const inv = new Int32Array(order.length);
  for (let i = 0; i < order.length; i++) inv[order[i]!] = i;
  return inv;
}

/**
 * ALiBi slopes of `heads` heads, as transformers' build_alibi_tensor computes them (float32):
 * for the largest power of two n ≤ heads, slope_i = (2^(−8/n))^i, i = 1..n; the remaining
 * heads take every other slope of 2n heads: (2^(−8/(2n)))^i, i = 1, 3, 5, …
 */
export function alibiSlopes(heads: number): number[] {
  const closest = 2 ** Math.floor(Math.log2(heads));
  const base = Math.fround(2 ** -(2 ** -(Math.log2(closest) - 3)));
  const slopes: number[] = [];
  for (let i = 1; i <= closest; i++) slopes.push(Math.fround(base ** i));
  if (closest !== heads) {
    const extraBase = Math.fround(2 ** -(2 ** -(Math.log2(2 * closest) - 3)));
    const remaining = Math.min(closest, heads - closest);
    for (let i = 1; i < 1 + 2 * remaining; i += 2) slopes.push(Math.fround(extraBase ** i));
  }
  return slopes;
}
