// `prune` and `quantize` build their stage from flags through the same schemas a recipe uses; a
// bad value is reported under the flag the user typed (--group-size), not the recipe key
// (group_size) they never wrote.
import { buildStage, type Stage } from "../compress/registry.js";
import { UsageError } from "./errors.js";

const FLAG_OF: Record<string, string> = {
  sparsity: "--sparsity",
  pattern: "--pattern",
  scope: "--magnitude-scope",
  blocksize: "--blocksize",
  dampening: "--dampening",
  bits: "--bits",
  sym: "--sym",
  group_size: "--group-size",
  act_order: "--act-order",
  static_groups: "--static-groups",
  mse: "--mse",
  targets: "--targets",
  ignore: "--ignore",
  true_sequential: "--true-sequential",
};

export function stageFromFlags(raw: Record<string, unknown>, command: string): Stage {
  try {
    return buildStage(raw, command);
  } catch (e) {
    const message = (e as Error).message;
    const field = /: field "([a-z_]+)[".]/.exec(message)?.[1];
    const flag = field ? FLAG_OF[field] : undefined;
    if (!flag) throw new UsageError(message);
    const problem = message.slice(message.indexOf(`field "${field}`)).replace(/^field "[^"]+": /, "");
    throw new UsageError(`${command} --method ${String(raw.method)}: ${flag} ${JSON.stringify(raw[field!]) ?? ""}: ${problem}`);
  }
}
