// Building blocks the family fragments (embed / block / head) share: norms, activations, rotary.
// Each emits ONNX ops into a GraphBuilder; the math follows transformers' float32 modules.
import { float, type GraphBuilder } from "../runtime/onnx-graph.js";

/** Opset of every graph topiary builds: 23 brings the fused Attention op (GQA, KV cache, mask, softcap). */
export const OPSET = 23;
export const IR_VERSION = 10;

/** weight · x / sqrt(mean(x²) + eps) over the last axis, float32 (LlamaRMSNorm): one fused op. */
export function rmsNorm(g: GraphBuilder, x: string, weight: string, eps: number): string {
  return g.op("RMSNormalization", [x, weight], { axis: -1, epsilon: float(eps) });
}

/** (x − mean) / sqrt(var + eps) · weight + bias over the last axis (torch LayerNorm). */
export function layerNorm(g: GraphBuilder, x: string, weight: string, bias: string, eps: number): string {
  return g.op("LayerNormalization", [x, weight, bias], { axis: -1, epsilon: float(eps) });
}

/** Activation functions by their transformers ACT2FN name. */
export function activation(g: GraphBuilder, name: string, x: string): string {
  switch (name) {
    case "silu":
    case "swish":
      return g.op("Mul", [x, g.op("Sigmoid", [x])]);
    case "relu":
      return g.op("Relu", [x]);
    case "gelu":
      return g.op("Gelu", [x]);
    case "gelu_new":
    case "gelu_pytorch_tanh":
    case "gelu_fast":
      return g.op("Gelu", [x], { approximate: "tanh" });
    default:
      throw new Error(`activation "${name}" has no graph`);
  }
}

/** Names activation() knows, for config validation. */
export const ACTIVATIONS = ["silu", "swish", "relu", "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast"];

/** c · tanh(x / c) (Gemma 2's logit softcapping). */
export function softcap(g: GraphBuilder, x: string, cap: number): string {
  const c = g.constFloat([cap], []);
  return g.op("Mul", [g.op("Tanh", [g.op("Div", [x, c])]), c]);
}

/** x·cos + rotate_half(x)·sin on [B, T, heads, dim]; cos/sin broadcast to it. */
export function rotateHalf(g: GraphBuilder, x: string, cos: string, sin: string, dim: number): string {
  const half = dim / 2;
  const [x1, x2] = g.opN("Split", [x, g.constInt64([half, half])], 2, { axis: -1 });
  const rotated = g.op("Concat", [g.op("Neg", [x2!]), x1!], { axis: -1 });
  return g.op("Add", [g.op("Mul", [x, cos]), g.op("Mul", [rotated, sin])]);
}

/** Splits the last axis of x into parts of the given widths. */
export function splitLast(g: GraphBuilder, x: string, widths: number[]): string[] {
  return g.opN("Split", [x, g.constInt64(widths)], widths.length, { axis: -1 });
}
