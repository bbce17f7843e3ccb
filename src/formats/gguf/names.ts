// Hugging Face tensor names → llama.cpp's (gguf-py tensor_mapping.py, Llama rows), one table.
// "{bid}" is the decoder block index; the ".weight"/".bias" suffix carries over unchanged.

/** llama.cpp tensor names (MODEL_TENSOR → TENSOR_NAMES in gguf-py constants.py). */
const GGUF_TENSOR = {
  TOKEN_EMBD: "token_embd",
  OUTPUT_NORM: "output_norm",
  OUTPUT: "output",
  ROPE_FREQS: "rope_freqs",
  ATTN_NORM: "blk.{bid}.attn_norm",
  ATTN_Q: "blk.{bid}.attn_q",
  ATTN_K: "blk.{bid}.attn_k",
  ATTN_V: "blk.{bid}.attn_v",
  ATTN_OUT: "blk.{bid}.attn_output",
  FFN_NORM: "blk.{bid}.ffn_norm",
  FFN_GATE: "blk.{bid}.ffn_gate",
  FFN_UP: "blk.{bid}.ffn_up",
  FFN_DOWN: "blk.{bid}.ffn_down",
} as const;

/** HF module path (without .weight/.bias) → llama.cpp name. */
const HF_TO_GGUF: readonly (readonly [string, string])[] = [
  ["model.embed_tokens", GGUF_TENSOR.TOKEN_EMBD],
  ["model.norm", GGUF_TENSOR.OUTPUT_NORM],
  ["lm_head", GGUF_TENSOR.OUTPUT],
  ["model.layers.{bid}.input_layernorm", GGUF_TENSOR.ATTN_NORM],
  ["model.layers.{bid}.self_attn.q_proj", GGUF_TENSOR.ATTN_Q],
  ["model.layers.{bid}.self_attn.k_proj", GGUF_TENSOR.ATTN_K],
  ["model.layers.{bid}.self_attn.v_proj", GGUF_TENSOR.ATTN_V],
  ["model.layers.{bid}.self_attn.o_proj", GGUF_TENSOR.ATTN_OUT],
  ["model.layers.{bid}.post_attention_layernorm", GGUF_TENSOR.FFN_NORM],
  ["model.layers.{bid}.mlp.gate_proj", GGUF_TENSOR.FFN_GATE],
  ["model.layers.{bid}.mlp.up_proj", GGUF_TENSOR.FFN_UP],
  ["model.layers.{bid}.mlp.down_proj", GGUF_TENSOR.FFN_DOWN],
];

function splitSuffix(name: string): [string, string] | null {
  const m = /^(.*)\.(weight|bias)$/.exec(name);
  return m ? [m[1]!, m[2]!] : null;
}

function matchTemplate(template: string, path: string): string | null {
  const [head, tail] = template.split("{bid}") as [string, string | undefined];
  if (tail === undefined) return path === head ? "" : null;
  if (!path.startsWith(head) || !path.endsWith(tail)) return null;
  const bid = path.slice(head.length, path.length - tail.length);
  return /^\d+$/.test(bid) ? bid : null;
}

function translate(name: string, from: 0 | 1): string | null {
  const parts = splitSuffix(name);
  if (!parts) return null;
  const [path, suffix] = parts;
  for (const row of HF_TO_GGUF) {
    const bid = matchTemplate(row[from], path);
    if (bid !== null) return `${row[1 - from]!.replace("{bid}", bid)}.${suffix}`;
  }
  return null;
}

/** "model.layers.3.self_attn.q_proj.weight" → "blk.3.attn_q.weight"; null for an unknown name. */
export function ggufTensorName(hfName: string): string | null {
  return translate(hfName, 0);
}

/** The inverse: "blk.3.attn_q.weight" → "model.layers.3.self_attn.q_proj.weight". */
export function hfTensorName(ggufName: string): string | null {
  return translate(ggufName, 1);
}
