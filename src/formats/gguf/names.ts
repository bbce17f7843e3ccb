// Hugging Face tensor names ↔ llama.cpp's, through a family's table (gguf-py tensor_mapping.py
// rows; each adapter in src/models/ owns its table). Table rows are [HF module path, llama.cpp
// name] without ".weight"/".bias"; "{bid}" is the decoder block index.

export type TensorNameTable = readonly (readonly [string, string])[];

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

/**
 * "model.layers.3.self_attn.q_proj.weight" → "blk.3.attn_q.weight" (`toGguf`) or the inverse
 * (`toHf`); null for a name the table does not know.
 */
export function mapTensorName(table: TensorNameTable, name: string, direction: "toGguf" | "toHf"): string | null {
  const from = direction === "toGguf" ? 0 : 1;
  const parts = splitSuffix(name);
  if (!parts) return null;
  const [path, suffix] = parts;
  for (const row of table) {
    const bid = matchTemplate(row[from]!, path);
    if (bid !== null) return `${row[1 - from]!.replace("{bid}", bid)}.${suffix}`;
  }
  return null;
}
