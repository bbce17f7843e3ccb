// Round-to-nearest quantization as a Compressor: validated options + one call to rtnQuantize.
import { z } from "zod";
import type { Tensor } from "../../tensor/tensor.js";
import type { Compressor } from "../compressor.js";
import { bits } from "../options.js";
import type { CompressedLinear } from "../../formats/compressed-linear.js";
import { rtnQuantize } from "./grid.js";

/** Input columns per group: a positive count, or -1 for one grid per output row (per channel). */
export const groupSize = z
  .number()
  .int()
  .refine((g) => g === -1 || g > 0, { message: "group_size must be a positive number of columns, or -1 for per channel" });

/**
 * ```yaml
 * - method: rtn            # gptq llama.py --nearest (per channel); groups: one grid per 32 columns
 *   bits: 4                # 2 | 3 | 4 | 8
 *   group_size: 32         # -1: per output row
 *   sym: false
 *   mse: false             # search shrunk ranges for the least Σ|q − w|^2.4 (quant.py `mse`)
 * ```
 */
const rtnSchema = z
  .object({ bits: bits.default(4), group_size: groupSize.default(-1), sym: z.boolean().default(false), mse: z.boolean().default(false) })
  .strict();

class RtnCompressor implements Compressor {
  readonly name = "rtn";
  readonly needs = "none";
  constructor(private readonly opt: z.infer<typeof rtnSchema>) {}

  async compress(name: string, W: Tensor): Promise<CompressedLinear> {
    const { weight, quant } = rtnQuantize(W, { bits: this.opt.bits, sym: this.opt.sym, groupSize: this.opt.group_size, mse: this.opt.mse });
    return { name, weight, quant };
  }
}

/** The registry entry: `registerMethod("rtn", rtnMethod)`. */
export const rtnMethod = { schema: rtnSchema, create: (o: z.infer<typeof rtnSchema>) => new RtnCompressor(o) };
