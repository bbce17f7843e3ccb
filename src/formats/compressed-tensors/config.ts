// config.json `quantization_config` for compressed-tensors: built as compressed-tensors'
// `ModelCompressor.update_config` writes it (a pydantic `model_dump` of QuantizationConfig with
// `version`, `quant_method`, `sparsity_config`, `transform_config` added, keys sorted by
// `json.dump(sort_keys=True)`), and parsed back for the reader.
import { FormatError } from "../errors.js";
import { Format, QUANT_METHOD, VERSION, type CompressedTensorsFormat } from "./constants.js";

/** How one group of linears' weights is quantized (QuantizationArgs, weights only, type int). */
export interface WeightScheme {
  bits: number;
  sym: boolean;
  /** "channel": one scale per output row; "group": per `groupSize` input columns; "tensor": one scale */
  strategy: "channel" | "group" | "tensor";
  groupSize: number | null;
  /** "group": groups follow act-order (weight_g_idx present); "weight": act-order with natural groups */
  actorder: "group" | "weight" | null;
}

export interface SparsityInfo {
  format: CompressedTensorsFormat;
  /** fraction of zeros over all the model's parameters (llm-compressor: params_sparse_percent / 100) */
  globalSparsity: number;
  structure: "2:4" | "unstructured";
  targets: string[];
  ignore: string[];
}

/** QuantizationArgs.model_dump() for a weight scheme (compressed-tensors 0.18.0 field set). */
function weightArgs(s: WeightScheme, scaleDtype: string | null): Record<string, unknown> {
  return {
    actorder: s.actorder,
    block_structure: null,
    dynamic: false,
    group_size: s.strategy === "group" ? s.groupSize : null,
    num_bits: s.bits,
    observer: "minmax",
    observer_kwargs: {},
    scale_dtype: scaleDtype,
    strategy: s.strategy,
    symmetric: s.sym,
    type: "int",
    zp_dtype: s.sym ? null : "torch.int8", // serialize_dtype: None when symmetric
  };
}

function sparsityDump(s: SparsityInfo): Record<string, unknown> {
  return {
    format: s.format,
    global_sparsity: s.globalSparsity,
    ignore: s.ignore,
    registry_requires_subclass: false,
    sparsity_structure: s.structure,
    targets: s.targets,
  };
}

/** quantization_config of a pack-quantized model (sparsity, when pruned too, is informational: format "dense"). */
export function packQuantizedConfig(
  groups: { targets: string[]; scheme: WeightScheme }[],
  ignore: string[],
  scaleDtype: string | null,
  sparsity: SparsityInfo | null,
): Record<string, unknown> {
  const configGroups: Record<string, unknown> = {};
  groups.forEach((g, k) => {
    configGroups[`group_${k}`] = {
      format: Format.PACK_QUANTIZED,
      input_activations: null,
      output_activations: null,
      targets: g.targets,
      weights: weightArgs(g.scheme, scaleDtype),
    };
  });
  return sortKeys({
    config_groups: configGroups,
    format: Format.PACK_QUANTIZED,
    global_compression_ratio: null,
    ignore,
    kv_cache_scheme: null,
    quant_method: QUANT_METHOD,
    quantization_status: "compressed",
    sparsity_config: sparsity ? sparsityDump(sparsity) : {},
    transform_config: {},
    version: VERSION[Format.PACK_QUANTIZED],
  }) as Record<string, unknown>;
}

/** quantization_config of a sparse, unquantized model (compressed-tensors 0.14.0: no quantization part). */
export function sparseConfig(sparsity: SparsityInfo): Record<string, unknown> {
  return sortKeys({
    quant_method: QUANT_METHOD,
    sparsity_config: sparsityDump(sparsity),
    transform_config: {},
    version: VERSION[sparsity.format],
  }) as Record<string, unknown>;
}

function sortKeys(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v === null || typeof v !== "object") return v;
  return Object.fromEntries(
    Object.keys(v)
      .sort()
      .map((k) => [k, sortKeys((v as Record<string, unknown>)[k])]),
  );
}

// ---------------------------------------------------------------------------------------------
// Reading

export interface ParsedQuantizationConfig {
  format: string | null;
  /** [major, minor] of `version`; null when absent */
  version: [number, number] | null;
  groups: { targets: string[]; scheme: WeightScheme }[];
  sparsityFormat: string | null;
}

/** Formats whose tensors the reader understands. */
const READABLE = new Set<string>([Format.PACK_QUANTIZED, Format.DENSE, Format.SPARSE_BITMASK, Format.SPARSE_24_BITMASK]);

export function parseQuantizationConfig(file: string, qc: Record<string, unknown>): ParsedQuantizationConfig {
  const where = (k: string) => `quantization_config.${k}`;
  const fail = (k: string, why: string): never => {
    throw new FormatError(file, `${where(k)}: ${why}`);
  };
  if (qc.format !== undefined && qc.format !== null && typeof qc.format !== "string") fail("format", `expected a string, got ${JSON.stringify(qc.format)}`);
  const format = typeof qc.format === "string" ? qc.format : null;
  if (format !== null && format !== "mixed-precision" && !READABLE.has(format)) fail("format", `"${format}" is not supported (topiary reads ${[...READABLE].join(", ")})`);
  const groups: ParsedQuantizationConfig["groups"] = [];
  const rawGroups = (qc.config_groups ?? {}) as Record<string, unknown>;
  if (typeof rawGroups !== "object" || rawGroups === null || Array.isArray(rawGroups)) fail("config_groups", "is not an object");
  for (const [name, raw] of Object.entries(rawGroups)) {
    const g = raw as Record<string, unknown>;
    const key = `config_groups.${name}`;
    if (typeof g !== "object" || g === null) fail(key, "is not an object");
    const groupFormat = typeof g.format === "string" ? g.format : format;
    if (groupFormat !== null && !READABLE.has(groupFormat)) {
      fail(key, `format "${groupFormat}" is not supported (topiary reads ${[...READABLE].join(", ")})`);
    }
    if (g.input_activations || g.output_activations) fail(key, "activation quantization is not supported (weight-only schemes are)");
    if (!g.weights) continue;
    const w = g.weights as Record<string, unknown>;
    if (typeof w !== "object" || Array.isArray(w)) fail(`${key}.weights`, "is not an object");
    if (w.type !== undefined && w.type !== "int") fail(`${key}.weights.type`, `"${String(w.type)}" is not supported (only "int")`);
    const bits = w.num_bits ?? 8;
    if (typeof bits !== "number" || !Number.isInteger(bits) || bits < 1 || bits > 8) fail(`${key}.weights.num_bits`, `expected 1..8, got ${JSON.stringify(bits)}`);
    const groupSize = typeof w.group_size === "number" && w.group_size > 0 ? w.group_size : null;
    const strategy = (w.strategy ?? (groupSize ? "group" : w.group_size === -1 ? "channel" : "tensor")) as string;
    if (strategy !== "channel" && strategy !== "group" && strategy !== "tensor") {
      fail(`${key}.weights.strategy`, `"${strategy}" is not supported (channel, group, tensor are)`);
    }
    if (strategy === "group" && groupSize === null) fail(`${key}.weights.group_size`, "strategy group needs a positive group_size");
    const actorder = w.actorder === true || w.actorder === "group" || w.actorder === "dynamic" ? "group" : w.actorder === "weight" || w.actorder === "static" ? "weight" : null;
    const targets = g.targets;
    if (!Array.isArray(targets) || !targets.every((t) => typeof t === "string")) fail(`${key}.targets`, "is not a list of names");
    groups.push({
      targets: targets as string[],
      scheme: { bits: bits as number, sym: w.symmetric !== false, strategy: strategy as WeightScheme["strategy"], groupSize, actorder },
    });
  }
  const sc = qc.sparsity_config as Record<string, unknown> | undefined | null;
  if (sc !== undefined && sc !== null && (typeof sc !== "object" || Array.isArray(sc))) fail("sparsity_config", "is not an object");
  if (sc && sc.format !== undefined && sc.format !== null && typeof sc.format !== "string") fail("sparsity_config.format", `expected a string, got ${JSON.stringify(sc.format)}`);
  if (sc && sc.targets !== undefined && !(Array.isArray(sc.targets) && sc.targets.every((t) => typeof t === "string"))) fail("sparsity_config.targets", "is not a list of names");
  const sparsityFormat = sc && typeof sc.format === "string" ? sc.format : null;
  if (sparsityFormat !== null && !READABLE.has(sparsityFormat)) {
    fail("sparsity_config.format", `"${sparsityFormat}" is not supported (topiary reads ${[...READABLE].join(", ")})`);
  }
  const m = typeof qc.version === "string" ? /^(\d+)\.(\d+)/.exec(qc.version) : null;
  return { format, version: m ? [Number(m[1]), Number(m[2])] : null, groups, sparsityFormat };
}

/**
 * The scheme of linear `name`: a group naming it (exact name, or "re:<regex>" matched from the
 * start as Python's re.match does) wins over one targeting the class "Linear".
 */
export function schemeFor(parsed: ParsedQuantizationConfig, name: string): WeightScheme | null {
  let byClass: WeightScheme | null = null;
  for (const g of parsed.groups) {
    for (const t of g.targets) {
      if (t === "Linear") byClass ??= g.scheme;
      else if (t.startsWith("re:") ? new RegExp(`^(?:${t.slice(3)})`).test(name) : t === name) return g.scheme;
    }
  }
  return byClass;
}
