// The budget solver: from a sensitivity database and a size target, the setting of every linear
// that minimises the summed loss within the budget, as a `mixed` recipe stage.
//
// Targets:
//   bytes      total stored bytes of the database's linears ≤ B: a value ≤ 1 is a fraction of
//              their dense bytes, a larger one is bytes. Candidates: the quantized settings and
//              "dense" (all stored together by pack-quantized, which keeps unquantized linears as
//              plain weights).
//   bpw        bytes ≤ bpw/8 × the linears' weights: the same candidates.
//   sparsity   zeros ≥ S × the linears' weights, i.e. kept weights ≤ (1 − S) × weights.
//              Candidates: the sparsity settings and "dense" (stored by sparse-bitmask).
// Sparse and quantized settings are never mixed: no compressed-tensors layout stores a model in
// which some linears are bitmask-sparse and others packed.
//
// Objectives (summed over linears, each measured alone on the dense model's inputs):
//   kl        the end-to-end KL to the original when only that linear is compressed — what OBC's
//             DP minimises (its database's "loss" mode). The default when the database has it.
//   absolute  ½·tr(ΔW·H·ΔWᵀ): the squared error a linear adds to its output, which is what adds
//             up across linears writing into the same residual stream. The default otherwise.
//   relative  the same over ‖WX‖²: invariant to rescalings that leave the model unchanged
//             (v_proj × c with o_proj ÷ c), which the absolute loss is not.
// Neither layer-wise loss says how much the rest of the network amplifies a linear's error; on
// stories260K both lose to uniform settings while kl beats them (README, Budget solver).
import YAML from "yaml";
import type { LinearEntry, SensitivityDatabase, Setting } from "./sensitivity.js";
import { settingStage } from "./sensitivity.js";
import { solveKnapsack } from "./solver.js";

export type BudgetTarget = { kind: "bytes"; value: number } | { kind: "bpw"; value: number } | { kind: "sparsity"; value: number };

export interface PlannedLinear {
  name: string;
  layer: number;
  setting: Setting;
  loss: number;
  bytes: number;
  zeros: number;
}

export interface BudgetPlan {
  target: BudgetTarget;
  objective: Objective;
  /** "bytes" (bytes and bpw targets) or "weights kept" (sparsity target) */
  unit: "bytes" | "kept weights";
  budget: number;
  /** the plan's summed cost in `unit` */
  cost: number;
  /** summed objective (the database's loss, relLoss or kl) */
  loss: number;
  /** stored bytes of the planned linears */
  bytes: number;
  /** bytes of the same linears dense */
  denseBytes: number;
  weights: number;
  linears: PlannedLinear[];
}

const isQuantized = (s: Setting) => s.method === "gptq";
const isSparse = (s: Setting) => s.method === "sparsegpt";

export type Objective = "absolute" | "relative" | "kl";
const OBJECTIVE_KEY = { absolute: "loss", relative: "relLoss", kl: "kl" } as const;

/** The default objective: the end-to-end KL when the database has it (as OBC's DP), else the absolute loss. */
function defaultObjective(db: SensitivityDatabase): Objective {
  return db.linears.every((l) => l.kl) ? "kl" : "absolute";
}

export function solveBudget(db: SensitivityDatabase, target: BudgetTarget, opts: { buckets?: number; objective?: Objective } = {}): BudgetPlan {
  const objective = opts.objective ?? defaultObjective(db);
  const key = OBJECTIVE_KEY[objective];
  if (db.linears.some((l) => !l[key])) throw new Error(`the sensitivity database has no ${key} (objective ${objective}; measure it with topiary sensitivity --end-to-end)`);
  const dense = db.settings.find((s) => s.id === "dense");
  if (!dense) throw new Error('the sensitivity database has no "dense" setting');
  const weights = db.linears.reduce((a, l) => a + l.shape[0] * l.shape[1], 0);
  const denseBytes = db.linears.reduce((a, l) => a + l.bytes.dense!, 0);
  const bySparsity = target.kind === "sparsity";
  const candidates = db.settings.filter((s) => s === dense || (bySparsity ? isSparse(s) : isQuantized(s)));
  if (candidates.length === 1) throw new Error(`the sensitivity database has no ${bySparsity ? "sparsity" : "quantization"} settings`);
  const kept = (l: LinearEntry, s: Setting) => l.shape[0] * l.shape[1] - l.zeros[s.id]!;
  const cost = (l: LinearEntry, s: Setting) => (bySparsity ? kept(l, s) : l.bytes[s.id]!);
  let budget: number;
  if (target.kind === "bytes") budget = target.value <= 1 ? target.value * denseBytes : target.value;
  else if (target.kind === "bpw") budget = (target.value / 8) * weights;
  else budget = (1 - target.value) * weights;
  budget = Math.floor(budget);

  const items = db.linears.map((l) => candidates.map((s) => ({ cost: cost(l, s), loss: l[key]![s.id]! })));
  const solution = solveKnapsack(items, budget, opts.buckets);
  if (!solution) {
    const cheapest = items.reduce((a, opts) => a + Math.min(...opts.map((o) => o.cost)), 0);
    throw new Error(`the budget (${budget} ${bySparsity ? "kept weights" : "bytes"}) is below the smallest plan the database allows (${cheapest})`);
  }
  const linears = db.linears.map((l, i) => {
    const s = candidates[solution.choice[i]!]!;
    return { name: l.name, layer: l.layer, setting: s, loss: l[key]![s.id]!, bytes: l.bytes[s.id]!, zeros: l.zeros[s.id]! };
  });
  return {
    target,
    objective,
    unit: bySparsity ? "kept weights" : "bytes",
    budget,
    cost: solution.cost,
    loss: solution.loss,
    bytes: linears.reduce((a, l) => a + l.bytes, 0),
    denseBytes,
    weights,
    linears,
  };
}

/** The plan as one `mixed` stage (linears left dense are not listed). */
export function planStage(plan: BudgetPlan): Record<string, unknown> {
  const linears: Record<string, Record<string, unknown>> = {};
  for (const l of plan.linears) {
    const stage = settingStage(l.setting);
    if (stage) linears[l.name] = stage;
  }
  return { method: "mixed", linears };
}

/** A re-runnable recipe (`topiary compress --recipe`) with the plan's figures as a comment. */
export function planRecipe(plan: BudgetPlan, source: { model: string; database: string }): string {
  const t = plan.target;
  const header = [
    `Per-linear plan chosen by \`topiary compress --target-${t.kind} ${t.value}\` from ${source.database} (${source.model}):`,
    `budget ${plan.budget} ${plan.unit}, plan ${plan.cost} ${plan.unit}; stored linear bytes ${plan.bytes} of ${plan.denseBytes} dense`,
    `(${((8 * plan.bytes) / plan.weights).toFixed(3)} bits per weight); summed ${plan.objective} loss ${plan.loss.toPrecision(6)}. Linears not listed stay dense.`,
  ];
  const doc = new YAML.Document({ stages: [planStage(plan)] });
  doc.commentBefore = header.map((h) => ` ${h}`).join("\n");
  // one line per linear: `name: { method: gptq, bits: 3, group_size: 128 }`
  const linears = doc.getIn(["stages", 0, "linears"]);
  if (YAML.isMap(linears)) for (const item of linears.items) if (YAML.isMap(item.value)) item.value.flow = true;
  return doc.toString({ lineWidth: 0 });
}

/** Per-linear summary for topiary.json. */
export function planRecord(plan: BudgetPlan, database: string): Record<string, unknown> {
  return {
    method: "budget",
    database,
    target: plan.target,
    objective: plan.objective,
    unit: plan.unit,
    budget: plan.budget,
    cost: plan.cost,
    predictedLoss: plan.loss,
    linearBytes: plan.bytes,
    linearDenseBytes: plan.denseBytes,
    bitsPerWeight: (8 * plan.bytes) / plan.weights,
    linears: Object.fromEntries(plan.linears.map((l) => [l.name, { setting: l.setting.id, bytes: l.bytes, loss: l.loss }])),
  };
}
