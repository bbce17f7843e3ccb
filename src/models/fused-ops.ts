// Graph pieces of the GPT-NeoX / BLOOM / GPT-2 blocks: partial rotary embeddings (GPT-NeoX
// rotates only the first rotary_ndims dims of a head) and the split of a per-head interleaved
// fused q/k/v output (BLOOM, GPT-NeoX).
// Every function adds nodes to a GraphBuilder and returns the output's name.
import type { GraphBuilder } from "../runtime/onnx-graph.js";
import { rotateHalf, splitLast } from "./graph-ops.js";

/**
 * Rotary embedding of the first `rotaryDim` dims of each head (rotate_half, GPT-NeoX style);
 * the remaining headDim − rotaryDim dims pass through. x is [B, T, heads, headDim]; cos/sin
 * broadcast to [B, T, heads, rotaryDim] (HF's cat(freqs, freqs) layout).
 */
export function partialRope(g: GraphBuilder, x: string, cos: string, sin: string, rotaryDim: number, headDim: number): string {
  if (rotaryDim === headDim) return rotateHalf(g, x, cos, sin, headDim);
  const [rot, pass] = splitLast(g, x, [rotaryDim, headDim - rotaryDim]);
  return g.op("Concat", [rotateHalf(g, rot!, cos, sin, rotaryDim), pass!], { axis: -1 });
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
