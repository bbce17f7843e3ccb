// `topiary export <model> --to <target> --out <file>`: one command, one entry per target in
// TARGETS. A target names its --type values and runs the exporter in export/; this file only
// parses flags and prints.
import fs from "node:fs";
import type { Command } from "commander";
import { exportGguf, GGUF_TYPES, type GgufTypeName } from "../../export/gguf.js";
import { exportOnnx, onnxOptionsFor } from "../../export/onnx.js";
import { DTYPE_SUFFIX, type ExportDtype } from "../../formats/onnx/names.js";
import { loadModel } from "../../models/load.js";
import type { CausalLM } from "../../models/model.js";
import { UsageError } from "../errors.js";
import { int } from "../options.js";
import { progress } from "../progress.js";

export interface ExportFlags {
  to: string;
  type?: string;
  out: string;
  overwrite?: boolean;
  json?: boolean;
  groupSize?: number;
}

/** What every target prints: the file, its size, and lines worth reading. */
interface ExportSummary {
  file: string;
  bytes: number;
  lines: string[];
  warnings: string[];
  /** the target's full report, for --json */
  report: unknown;
}

interface ExportTarget {
  /** --type values; the first is the default */
  types: readonly string[];
  run(model: CausalLM, type: string, flags: ExportFlags): ExportSummary | Promise<ExportSummary>;
}

const gguf: ExportTarget = {
  types: ["f16", ...Object.keys(GGUF_TYPES).filter((t) => t !== "f16")],
  run(model, type, flags) {
    const bar = progress(1, "export {bar} {value}/{total} tensors");
    const r = exportGguf(model, {
      type: type as GgufTypeName,
      out: flags.out,
      onTensor: (done, total) => {
        (bar as { total?: number }).total = total;
        bar.update(done, { total });
      },
    });
    bar.stop();
    const byType = new Map<string, number>();
    for (const t of r.tensors) byType.set(t.type, (byType.get(t.type) ?? 0) + 1);
    const lines = [`${r.fileType}: ${[...byType].map(([t, n]) => `${n} ${t}`).join(", ")}`];
    const fellBack = r.tensors.filter((t) => t.fallback);
    if (fellBack.length > 0) lines.push(`${fellBack.length} tensors fell back (${fellBack[0]!.name}: ${fellBack[0]!.fallback} → ${fellBack[0]!.type})`);
    for (const t of r.tensors.filter((x) => x.note)) lines.push(`${t.name}: ${t.note}`);
    const fromCodes = r.tensors.filter((t) => t.fromCodes);
    if (fromCodes.length > 0) {
      const worst = Math.max(...fromCodes.map((t) => t.scaleRelError ?? 0));
      lines.push(`${fromCodes.length} tensors keep the checkpoint's codes and scales${worst > 0 ? ` (scales rounded to f16: worst relative change ${worst.toExponential(2)})` : " (scales exact in f16)"}`);
    }
    return { file: r.file, bytes: r.bytes, lines, warnings: r.warnings, report: r };
  },
};

// --type is the transformers.js dtype (file model{_fp16,_q4,…}.onnx); 4-bit codes a checkpoint
// already stores stay MatMulNBits whatever the type (see export/onnx.ts)
const onnx: ExportTarget = {
  types: Object.keys(DTYPE_SUFFIX),
  async run(model, type, flags) {
    const opts = { ...onnxOptionsFor(type as ExportDtype, flags.groupSize), sourceDir: model.dir, overwrite: flags.overwrite };
    const r = await exportOnnx(model.config, model.weights, flags.out, opts);
    const lines = [`${r.dtype}${r.quantizedLinears ? `: ${r.quantizedLinears} linears as MatMulNBits` : ""}${r.externalData ? `, weights in ${r.file}_data` : ""}`];
    return { file: r.file, bytes: r.bytes, lines, warnings: r.warnings, report: r };
  },
};

/** Export targets by --to name. A new target is one entry here. */
const TARGETS: Record<string, ExportTarget> = { gguf, onnx };

export function registerExport(program: Command): void {
  program
    .command("export")
    .description("write a model for another runtime (gguf: llama.cpp; onnx: onnxruntime, transformers.js)")
    .argument("<model>", "Hugging Face model folder (local path)")
    .requiredOption("--to <target>", `runtime format: ${Object.keys(TARGETS).join(", ")}`)
    .option("--type <type>", Object.entries(TARGETS).map(([k, t]) => `${k}: ${t.types.join(" | ")} (default ${t.types[0]})`).join("; "))
    .requiredOption("--out <file>", "output path (onnx: a folder)")
    .option("--group-size <n>", "onnx q4/q8/q2: input columns per quantization group (default 32)", int("--group-size", 16))
    .option("--overwrite", "replace an existing output")
    .option("--json", "print one JSON object")
    .action(async (dir: string, flags: ExportFlags) => {
      const target = TARGETS[flags.to];
      if (!target) throw new UsageError(`--to must be one of ${Object.keys(TARGETS).join(", ")}, got "${flags.to}"`);
      const type = flags.type ?? target.types[0]!;
      if (!target.types.includes(type)) throw new UsageError(`--type for --to ${flags.to} must be one of ${target.types.join(", ")}, got "${type}"`);
      if (fs.existsSync(flags.out) && !flags.overwrite) throw new UsageError(`${flags.out}: output already exists (pass --overwrite to replace it)`);
      const model = loadModel(dir);
      let s: ExportSummary;
      try {
        s = await target.run(model, type, flags);
      } finally {
        model.close();
      }
      if (flags.json) {
        console.log(JSON.stringify(s.report));
        return;
      }
      console.log(`${s.file}  ${s.bytes.toLocaleString("en-US")} bytes`);
      for (const line of s.lines) console.log(`  ${line}`);
      for (const w of s.warnings) process.stderr.write(`topiary: warning: ${w}\n`);
    });
}
