// Graph pieces of the GPT-NeoX / BLOOM / GPT-2 blocks: partial rotary embeddings (GPT-NeoX
// rotates only the first rotary_ndims dims of a head) and the splits of fused q/k/v outputs.
// Every function adds nodes to a GraphBuilder and returns the output's name.
import type { GraphBuilder } from "../runtime/onnx-graph.js";

/**
 * Rotary embedding of the first `rotaryDim` dims of each head (rotate_half, GPT-NeoX style);
 * the remaining headDim − rotaryDim dims pass through. x is [B, T, heads, headDim]; cos/sin
 * broadcast to [B, T, heads, rotaryDim] (HF's cat(freqs, freqs) layout).
 */
export function partialRope(g: GraphBuilder, x: string, cos: string, sin: string, rotaryDim: number, headDim: number): string {
  const half = rotaryDim / 2;
  if (rotaryDim === headDim) return rotate(g, x, cos, sin, half);
  const [rot, pass] = g.opN("Split", [x, g.constInt64([rotaryDim, headDim - rotaryDim])], 2, { axis: -1 });
  return g.op("Concat", [rotate(g, rot!, cos, sin, half), pass!], { axis: -1 });
}

function rotate(g: GraphBuilder, x: string, cos: string, sin: string, half: number): string {
  const [x1, x2] = g.opN("Split", [x, g.constInt64([half, half])], 2, { axis: -1 });
  const rotated = g.op("Concat", [g.op("Neg", [x2!]), x1!], { axis: -1 });
  return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])]);
}

/**
 * q, k, v [N, heads·headDim] from the output [N, heads·3·headDim] of a fused linear whose rows
 * are interleaved per head — [heads, 3, headDim], as BLOOM's and GPT-NeoX's `query_key_value`
 * store them (transformers `_split_heads` / `view(..., heads, 3·head_size)`).
 */
export function splitInterleavedQkv(g: GraphBuilder, qkv: string, heads: number, headDim: number): [string, string, string] {
  const perHead = g.op("Reshape", [qkv, g.constInt64([-1, heads, 3 * headDim])]); // (N, heads, 3·hd)
  const parts = g.opN("Split", [perHead, g.constInt64([headDim, headDim, headDim])], 3, { axis: -1 });
  const flat = g.constInt64([-1, heads * headDim]);
  return parts.map((p) => g.op("Reshape", [p, flat])) as [string, string, string];
}

/** q, k, v [N, ·] from a fused linear whose rows are concatenated q|k|v (GPT-2's c_attn, Phi-3). */
export function splitConcatenated(g: GraphBuilder, fused: string, widths: readonly number[]): string[] {
  return g.opN("Split", [fused, g.constInt64(widths)], widths.length, { axis: -1 });
}
