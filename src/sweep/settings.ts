// What a sweep runs: one setting per run, each a list of recipe stages with a short id that names
// its folder. Settings come from recipe files (compress/recipe.ts) or from a grid shorthand:
//
//   "sparsegpt:0.3,0.5,2:4  gptq:3,4  gptq[group_size=128,sym=true]:4"
//
// Entries are separated by spaces; each is method[options]:values. A value is the method's
// sparsity (or an N:M pattern) for pruning methods, its bits for quantization methods: the one
// of the two keys its schema accepts (SparseGPT accepts both; a plain number is its sparsity).
import path from "node:path";
import { readRecipe } from "../compress/recipe.js";
import { buildStage, type Stage } from "../compress/registry.js";

export interface SweepSetting {
  /** folder name under runs/, unique in the sweep */
  id: string;
  /** where it came from: the recipe file, or the grid entry */
  source: string;
  stages: Stage[];
}

/** Parses the grid shorthand into one single-stage setting per value. */
export function gridSettings(grid: string): SweepSetting[] {
  const entries = grid.trim().split(/\s+/).filter(Boolean);
  if (entries.length === 0) throw new Error(`--grid is empty (expected e.g. "sparsegpt:0.5,0.7 gptq:3,4")`);
  const settings: SweepSetting[] = [];
  for (const entry of entries) {
    const m = /^([a-z0-9_]+)(?:\[([^\]]*)\])?:(.+)$/i.exec(entry);
    if (!m) throw new Error(`--grid entry "${entry}": expected method:values or method[key=value,…]:values, e.g. "sparsegpt:0.5,0.7"`);
    const [, method, optionText, valueText] = m as unknown as [string, string, string | undefined, string];
    const options = parseOptions(optionText ?? "", entry);
    for (const value of valueText.split(",").filter(Boolean)) {
      const raw = { method, ...options, ...primaryOption(method, value, options, entry) };
      const stage = buildStage(raw, `--grid entry "${entry}"`);
      settings.push({ id: gridId(method, value, options), source: `--grid ${entry}`, stages: [stage] });
    }
  }
  return dedupeIds(settings);
}

/** One setting per recipe file, named after the file. */
export function recipeSettings(files: string[]): SweepSetting[] {
  return dedupeIds(files.map((f) => ({ id: safeId(path.basename(f).replace(/\.(ya?ml|json)$/i, "")), source: f, stages: readRecipe(f) })));
}

/** `key=value,…` → an object; values are numbers, booleans or strings. */
function parseOptions(text: string, entry: string): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const pair of text.split(",").filter(Boolean)) {
    const eq = pair.indexOf("=");
    if (eq <= 0) throw new Error(`--grid entry "${entry}": option "${pair}" is not key=value`);
    const v = pair.slice(eq + 1);
    out[pair.slice(0, eq)] = v === "true" ? true : v === "false" ? false : v !== "" && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  return out;
}

/**
 * The key a grid value sets: `pattern` for N:M, else `sparsity` when the method's schema takes
 * it, else `bits`. Asking the schema (through buildStage) keeps method names out of this file.
 */
function primaryOption(method: string, value: string, options: Record<string, unknown>, entry: string): Record<string, unknown> {
  if (/^\d+:\d+$/.test(value)) return { pattern: value };
  const n = Number(value);
  if (value === "" || !Number.isFinite(n)) throw new Error(`--grid entry "${entry}": "${value}" is not a number or an N:M pattern`);
  for (const key of ["sparsity", "bits"]) {
    try {
      buildStage({ method, ...options, [key]: n }, "grid");
      return { [key]: n };
    } catch {
      // not this key (or not this value): try the next, and let buildStage report the last
    }
  }
  return { [/^\d+$/.test(value) && n >= 2 ? "bits" : "sparsity"]: n };
}

function gridId(method: string, value: string, options: Record<string, unknown>): string {
  const v = /^\d+:\d+$/.test(value) ? value.replace(":", "of") : Number.isInteger(Number(value)) && Number(value) >= 2 ? `${value}bit` : value;
  // short tags for the common keys: group_size=128 → g128, sym=true → sym
  const extra = Object.entries(options).map(([k, x]) => (k === "group_size" ? `-g${x}` : x === true ? `-${k}` : x === false ? `-no_${k}` : `-${k}=${x}`));
  return safeId(`${method}-${v}${extra.join("")}`);
}

function safeId(s: string): string {
  return s.replace(/[^A-Za-z0-9._=-]+/g, "_") || "run";
}

function dedupeIds(settings: SweepSetting[]): SweepSetting[] {
  const seen = new Map<string, number>();
  return settings.map((s) => {
    const n = (seen.get(s.id) ?? 0) + 1;
    seen.set(s.id, n);
    return n === 1 ? s : { ...s, id: `${s.id}-${n}` };
  });
}
