// results.json and results.csv of a sweep: one row per run (and one for the original model), as
// written by `topiary sweep` and read back by `topiary report`.
import fs from "node:fs";
import { z } from "zod";
import { writeAll, writeFileAtomic } from "../formats/atomic.js";
import { FormatError } from "../formats/errors.js";

const allocation = z.object({
  name: z.string(),
  layer: z.number(),
  kind: z.string(),
  sparsity: z.number(),
  bits: z.number().nullable(),
  groupSize: z.number().nullable(),
});

const metrics = z.object({
  perplexity: z.number(),
  /** mean KL(original ‖ run) per position, nats (0 for the original) */
  klMean: z.number(),
  /** share of positions whose argmax equals the original's */
  top1Agree: z.number(),
  /** bytes of the weight files (*.safetensors) */
  bytes: z.number(),
  /** greedy decode tokens/s through onnxruntime (--decode-speed), else null */
  tokensPerSecond: z.number().nullable(),
});

const run = metrics.extend({
  id: z.string(),
  /** recipe file or grid entry */
  source: z.string(),
  /** the stages, as topiary.json records them */
  recipe: z.array(z.record(z.string(), z.unknown())),
  /** the run's model folder, relative to the sweep folder */
  dir: z.string(),
  /** bytes ÷ the original's bytes */
  bytesRatio: z.number(),
  /** exact zeros ÷ parameters over the compressed linears (a quantizer's zeros included) */
  zeros: z.number(),
  /** no other run (nor the original) has both fewer or equal bytes and lower or equal perplexity, one strictly */
  pareto: z.boolean(),
  /** seconds the compression took (when this sweep ran it) */
  seconds: z.number().nullable(),
  allocation: z.array(allocation),
});

const sweepResultsSchema = z.object({
  topiary: z.string(),
  created: z.string(),
  model: z.string(),
  eval: z.object({ data: z.string(), dataset: z.string(), seqlen: z.number(), windows: z.number(), limitWindows: z.number().nullable() }),
  calibration: z.record(z.string(), z.unknown()).nullable(),
  /** the original model, measured the same way */
  original: metrics,
  runs: z.array(run),
  /** sensitivity database the report shows, relative to the sweep folder or absolute */
  sensitivity: z.string().nullable(),
});

export type SweepResults = z.infer<typeof sweepResultsSchema>;
export type RunResult = z.infer<typeof run>;
export type RunMetrics = z.infer<typeof metrics>;

/**
 * Marks the Pareto front over (bytes, perplexity), both lower-is-better: a run is on it when no
 * other point — another run or the original — is at least as good in both and better in one.
 */
export function paretoFront(points: { bytes: number; perplexity: number }[]): boolean[] {
  return points.map((p) => !points.some((q) => q !== p && q.bytes <= p.bytes && q.perplexity <= p.perplexity && (q.bytes < p.bytes || q.perplexity < p.perplexity)));
}

const CSV_COLUMNS = ["id", "source", "methods", "bytes", "bytes_ratio", "zeros", "perplexity", "kl_mean", "top1_agree", "tokens_per_second", "pareto", "dir"] as const;

/** One header line, the original model, then one line per run (RFC 4180 quoting). */
export function resultsCsv(r: SweepResults): string {
  const rows: (string | number | boolean | null)[][] = [
    [...CSV_COLUMNS],
    ["original", r.model, "", r.original.bytes, 1, 0, r.original.perplexity, r.original.klMean, r.original.top1Agree, r.original.tokensPerSecond, "", r.model],
    ...r.runs.map((x) => [
      x.id,
      x.source,
      x.recipe.map((s) => s.method).join("+"),
      x.bytes,
      x.bytesRatio,
      x.zeros,
      x.perplexity,
      x.klMean,
      x.top1Agree,
      x.tokensPerSecond,
      x.pareto,
      x.dir,
    ]),
  ];
  return rows.map((row) => row.map(csvField).join(",")).join("\n") + "\n";
}

function csvField(v: string | number | boolean | null): string {
  if (v === null) return "";
  const s = String(v);
  return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export function writeTextAtomic(file: string, text: string): void {
  writeFileAtomic(file, (fd) => writeAll(fd, Buffer.from(text, "utf8")));
}

export function readResults(file: string): SweepResults {
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FormatError(file, code === "ENOENT" ? "missing (expected a folder written by `topiary sweep`)" : `not valid JSON (${(e as Error).message.split("\n")[0]})`);
  }
  const parsed = sweepResultsSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FormatError(file, `${issue.path.join(".") || "(top level)"}: ${issue.message}`);
  }
  return parsed.data;
}
