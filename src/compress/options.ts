// Option schemas shared by the compressors (recipe keys are snake_case, as in llm-compressor
// recipes). Each method's schema is `.strict()`, so a typo is an error naming the key.
import { z } from "zod";
import type { NM } from "./prune/select.js";

export const sparsity = z
  .number()
  .refine((s) => s >= 0 && s < 1, { message: "sparsity must be in [0, 1)" });

/** "unstructured" or "N:M" (N of every M consecutive inputs pruned, 0 < N < M). */
export const pattern = z
  .string()
  .refine((p) => p === "unstructured" || /^\d+:\d+$/.test(p), { message: 'pattern must be "unstructured" or "N:M", e.g. "2:4"' })
  .refine((p) => p === "unstructured" || (Number(p.split(":")[0]) > 0 && Number(p.split(":")[0]) < Number(p.split(":")[1])), {
    message: "N:M pattern needs 0 < N < M (N of every M inputs are pruned)",
  });

export function parsePattern(p: string | undefined): NM | undefined {
  if (!p || p === "unstructured") return undefined;
  const [n, m] = p.split(":").map(Number) as [number, number];
  return { n, m };
}

export const dampening = z.number().positive().max(1e3);
export const blocksize = z.number().int().positive();
export const bits = z.union([z.literal(2), z.literal(3), z.literal(4), z.literal(8)], {
  message: "bits must be one of 2, 3, 4, 8",
});
