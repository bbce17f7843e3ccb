// --format / --dtype / --restart, shared by prune, quantize and compress.
import type { Command } from "commander";
import { writerFor, type OutputFormat, type OutputWriter } from "../compress/job.js";
import type { FloatDtype } from "../formats/hf-folder.js";
import { UsageError } from "./errors.js";

const FORMATS = ["dense", "compressed-tensors", "pack-quantized", "sparse-bitmask", "sparse-24-bitmask"] as const;
const DTYPES: Record<string, FloatDtype> = { fp32: "F32", float32: "F32", fp16: "F16", float16: "F16", bf16: "BF16", bfloat16: "BF16" };

export interface OutputFlags {
  format: string;
  dtype?: string;
  restart?: boolean;
}

export function addOutputOptions(cmd: Command, defaultFormat: OutputFormat): Command {
  return cmd
    .option(
      "--format <f>",
      "dense (plain safetensors) | compressed-tensors (pack-quantized for quantized models, sparse bitmasks for pruned ones) | pack-quantized | sparse-bitmask | sparse-24-bitmask",
      defaultFormat,
    )
    .option("--dtype <t>", "float dtype of the written tensors: fp32 | fp16 | bf16 (default: the source's; fp32 for dense quantized weights)")
    .option("--restart", "discard the progress an interrupted run of this --out saved, instead of resuming it");
}

export function writerFromFlags(flags: OutputFlags): OutputWriter {
  if (!(FORMATS as readonly string[]).includes(flags.format)) {
    throw new UsageError(`--format must be one of ${FORMATS.join(", ")}, got "${flags.format}"`);
  }
  let dtype: FloatDtype | undefined;
  if (flags.dtype !== undefined) {
    dtype = DTYPES[flags.dtype];
    if (!dtype) throw new UsageError(`--dtype must be fp32, fp16 or bf16, got "${flags.dtype}"`);
  }
  return writerFor(flags.format as OutputFormat, dtype);
}
