// The pruning methods as Compressors: validated options + one call to the algorithm.
import { z } from "zod";
import type { Tensor } from "../../tensor/tensor.js";
import type { Compressor, LayerStats } from "../compressor.js";
import { parsePattern, pattern, sparsity } from "../options.js";
import type { CompressedLinear } from "../../formats/compressed-linear.js";
import { magnitudePrune } from "./magnitude.js";
import { sparsegpt } from "./sparsegpt.js";
import { wandaPrune } from "./wanda.js";

/**
 * ```yaml
 * - method: magnitude
 *   sparsity: 0.5          # or pattern: "2:4"
 *   scope: layer           # layer (one threshold per matrix, the papers' baseline) | row
 * ```
 */
export const magnitudeSchema = z
  .object({ sparsity: sparsity.default(0.5), pattern: pattern.default("unstructured"), scope: z.enum(["layer", "row"]).default("layer") })
  .strict();

export class MagnitudeCompressor implements Compressor {
  readonly name = "magnitude";
  readonly needs = "none";
  constructor(private readonly opt: z.infer<typeof magnitudeSchema>) {}

  async compress(name: string, W: Tensor): Promise<CompressedLinear> {
    return magnitudePrune(name, W, { sparsity: this.opt.sparsity, scope: this.opt.scope, nm: parsePattern(this.opt.pattern) });
  }
}

/**
 * ```yaml
 * - method: wanda
 *   sparsity: 0.5          # per output row; or pattern: "2:4"
 * ```
 */
export const wandaSchema = z.object({ sparsity: sparsity.default(0.5), pattern: pattern.default("unstructured") }).strict();

export class WandaCompressor implements Compressor {
  readonly name = "wanda";
  readonly needs = "diag";
  constructor(private readonly opt: z.infer<typeof wandaSchema>) {}

  async compress(name: string, W: Tensor, stats: LayerStats | null): Promise<CompressedLinear> {
    if (!stats) throw new Error("wanda needs calibration data (--calib)");
    return wandaPrune(name, W, stats.diag(), { sparsity: this.opt.sparsity, nm: parsePattern(this.opt.pattern) });
  }
}

/**
 * ```yaml
 * - method: sparsegpt
 *   sparsity: 0.5          # per 128-column block; or pattern: "2:4"
 *   blocksize: 128
 *   dampening: 0.01        # fraction of mean(diag H) added to the diagonal
 * ```
 * Joint sparsity + quantization (`bits`) is configured by the quantization module.
 */
interface SparseGPTOptions {
  sparsity: number;
  pattern: string;
  blocksize: number;
  dampening: number;
}

export class SparseGPTCompressor implements Compressor {
  readonly name = "sparsegpt";
  readonly needs = "hessian";
  constructor(
    /** validated by quant/compressors.ts's jointSchema (these keys plus bits and sym) */
    private readonly opt: SparseGPTOptions,
    /** joint quantization: builds a per-column quantizer from the weight (see quant/) */
    private readonly jointQuantizer?: (W: Tensor) => { quantizeColumn: (col: Float32Array, j: number) => void; grid: CompressedLinear["quant"] },
  ) {}

  async compress(name: string, W0: Tensor, stats: LayerStats | null): Promise<CompressedLinear> {
    if (!stats) throw new Error("sparsegpt needs calibration data (--calib)");
    const W = W0.clone();
    const joint = this.jointQuantizer?.(W); // params from the weight before anything else, as sparsegpt.py
    const { hinv, dead } = await stats.inverseFactor({ dampening: this.opt.dampening });
    zeroColumns(W, dead);
    const r = await sparsegpt(W, hinv, {
      sparsity: this.opt.sparsity,
      nm: parsePattern(this.opt.pattern),
      blockSize: this.opt.blocksize,
      quantizeColumn: joint?.quantizeColumn,
    });
    return { name, weight: r.W, mask: r.mask, loss: r.loss, quant: joint?.grid };
  }
}

/** W[:, j] = 0 for every dead input column j (their inputs are always zero). */
export function zeroColumns(W: Tensor, cols: Int32Array): void {
  const n = W.cols;
  for (const j of cols) for (let r = 0; r < W.rows; r++) W.data[r * n + j] = 0;
}
