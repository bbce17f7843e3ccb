// Runs an exported ONNX folder (export/onnx.ts) with a KV cache through onnxruntime, feeding the
// graph exactly what transformers.js feeds it: input_ids, attention_mask (all ones), position_ids,
// past_key_values.N.{key,value}, num_logits_to_keep. Its `step` has CausalLM.step's contract, so
// the decoding loop of eval/decode.ts drives either.
import fs from "node:fs";
import path from "node:path";
import { FormatError } from "../formats/errors.js";
import { DTYPE_SUFFIX, IO, modelFileName, ONNX_SUBFOLDER, type ExportDtype } from "../formats/onnx/names.js";
import { kvHeadsOf, readRawConfig, type ModelConfig } from "../models/config.js";
import type { KvCache } from "../models/model.js";
import { parseModelConfig } from "../models/registry.js";
import { Session, type RtTensor } from "../runtime/ort.js";

/** True when `dir` looks like an ONNX export (an onnx/ folder with a model*.onnx). */
export function isOnnxExport(dir: string): boolean {
  const sub = path.join(dir, ONNX_SUBFOLDER);
  return fs.existsSync(sub) && fs.readdirSync(sub).some((f) => /^model.*\.onnx$/.test(f));
}

export class OnnxDecoder {
  private constructor(
    readonly config: ModelConfig,
    private readonly session: Session,
    /** path of the .onnx file */
    readonly file: string,
    readonly dtype: ExportDtype,
  ) {}

  /**
   * Opens `dir`/onnx/model{suffix}.onnx; `dtype` picks the file, else config.json's
   * transformers.js_config.dtype, else the first present of fp32, fp16, q4, q4f16, q8.
   */
  static async open(dir: string, dtype?: ExportDtype): Promise<OnnxDecoder> {
    const { file: configFile, json } = readRawConfig(dir);
    const config = parseModelConfig(configFile, json);
    const hinted = (json["transformers.js_config"] as { dtype?: unknown } | undefined)?.dtype;
    const order = Object.keys(DTYPE_SUFFIX) as ExportDtype[];
    const choice =
      dtype ??
      (typeof hinted === "string" && hinted in DTYPE_SUFFIX ? (hinted as ExportDtype) : undefined) ??
      order.find((d) => fs.existsSync(path.join(dir, ONNX_SUBFOLDER, modelFileName(d))));
    const file = path.join(dir, ONNX_SUBFOLDER, modelFileName(choice ?? "fp32"));
    if (!choice || !fs.existsSync(file)) {
      const present = order.filter((d) => fs.existsSync(path.join(dir, ONNX_SUBFOLDER, modelFileName(d))));
      const has = present.length ? `this export has --dtype ${present.join(", ")}` : "expected an ONNX export made by `topiary export --to onnx`";
      throw new FormatError(file, `missing (${has})`);
    }
    const session = await Session.create(`onnx-export:${file}`, file);
    return new OnnxDecoder(config, session, file, choice);
  }

  /**
   * Appends T tokens per sequence (B sequences, no padding) to `cache` and returns logits
   * [B·T', V] for the last `keepLast` positions of each (0 = all T).
   */
  async step(ids: Int32Array, B: number, T: number, cache: KvCache | null, keepLast = 0): Promise<{ logits: Float32Array; cache: KvCache }> {
    const c = this.config;
    const P = cache?.length ?? 0;
    const inputIds = new BigInt64Array(B * T);
    const positions = new BigInt64Array(B * T);
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        inputIds[b * T + t] = BigInt(ids[b * T + t]!);
        positions[b * T + t] = BigInt(P + t);
      }
    }
    const feeds: Record<string, RtTensor> = {
      [IO.inputIds]: { data: inputIds, dims: [B, T] },
      [IO.attentionMask]: { data: new BigInt64Array(B * (P + T)).fill(1n), dims: [B, P + T] },
      [IO.positionIds]: { data: positions, dims: [B, T] },
      [IO.numLogitsToKeep]: { data: BigInt64Array.of(BigInt(keepLast)), dims: [] },
    };
    for (let i = 0; i < c.numLayers; i++) {
      const kvDims = [B, kvHeadsOf(c, i), P, c.headDim];
      feeds[IO.pastKey(i)] = { data: cache?.keys[i] ?? new Float32Array(0), dims: kvDims };
      feeds[IO.pastValue(i)] = { data: cache?.values[i] ?? new Float32Array(0), dims: kvDims };
    }
    const out = await this.session.run(feeds);
    const next: KvCache = { keys: [], values: [], length: P + T };
    for (let i = 0; i < c.numLayers; i++) {
      next.keys.push(out[IO.presentKey(i)]!.data as Float32Array);
      next.values.push(out[IO.presentValue(i)]!.data as Float32Array);
    }
    return { logits: out[IO.logits]!.data as Float32Array, cache: next };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}
