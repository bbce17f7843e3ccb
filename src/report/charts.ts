// The report's plots as Vega-Lite specifications (data inlined). Marks drawn once per run are
// named `runs*` (`runs_marks` in the SVG), so a test can count them.
import path from "node:path";
import type { TopLevelSpec } from "vega-lite";
import type { RunResult, SweepResults } from "../sweep/results.js";
import type { SensitivityDb } from "./sensitivity-db.js";

export interface Plot {
  /** anchor and test handle */
  id: string;
  title: string;
  /** what the plot shows, under its title */
  caption: string;
  spec: TopLevelSpec;
  /** per named mark, how many items it must draw (one per run, or one per heatmap cell) */
  expectedMarks: Record<string, number>;
}

const WIDTH = 620;
const HEIGHT = 360;
const FRONT = "on the Pareto front";
const DOMINATED = "dominated";

/** Log scale when the values span more than a factor `ratio` (and are all positive). */
function scaleFor(values: number[], ratio = 8): { type: "log" | "linear"; zero?: boolean } {
  const lo = Math.min(...values);
  const hi = Math.max(...values);
  return lo > 0 && hi / lo > ratio ? { type: "log" } : { type: "linear", zero: false };
}

const methodsOf = (r: RunResult) => r.recipe.map((s) => String(s.method)).join(" + ");

const bytesAxis = { field: "bytes", type: "quantitative", title: "bytes of the weight files", axis: { format: "~s" }, scale: { zero: false, nice: true } } as const;

/** One point per run over bytes, labelled with its id, and the original as a dashed rule. */
function scatter(
  r: SweepResults,
  o: { id: string; title: string; caption: string; field: "perplexity" | "klMean" | "tokensPerSecond"; axisTitle: string; originalValue: number | null; pareto: boolean },
): Plot {
  const points = r.runs.map((x) => ({ id: x.id, methods: methodsOf(x), bytes: x.bytes, value: x[o.field] as number, status: x.pareto ? FRONT : DOMINATED }));
  const values = points.map((x) => x.value).concat(o.originalValue !== null && o.originalValue > 0 ? [o.originalValue] : []);
  const scale = scaleFor(values);
  const rows = points.map((p, i) => ({ ...p, below: labelBelow(points, i, scale.type) }));
  const x = bytesAxis;
  const y = { field: "value", type: "quantitative", title: o.axisTitle, scale } as const;
  const layers: object[] = [];
  if (o.originalValue !== null) {
    layers.push({
      data: { values: [{ value: o.originalValue, label: `original: ${o.originalValue.toPrecision(4)}, ${r.original.bytes.toLocaleString("en-US")} bytes` }] },
      layer: [
        { mark: { type: "rule", strokeDash: [6, 4], color: "#666" }, encoding: { y } },
        { mark: { type: "text", align: "right", baseline: "bottom", dx: -4, dy: -3, color: "#444", fontSize: 11 }, encoding: { y, x: { value: WIDTH }, text: { field: "label" } } },
      ],
    });
  }
  if (o.pareto) {
    const front = rows.filter((p) => p.status === FRONT).sort((a, b) => a.bytes - b.bytes);
    layers.push({ data: { values: front }, mark: { type: "line", color: "#e45756", strokeWidth: 1.5, interpolate: "step-after" }, encoding: { x, y } });
  }
  const colour = o.pareto
    ? { field: "status", type: "nominal", title: null, scale: { domain: [FRONT, DOMINATED], range: ["#e45756", "#4c78a8"] }, legend: { orient: "right" } }
    : { value: "#4c78a8" };
  layers.push({
    name: "runs",
    data: { values: rows },
    mark: { type: "point", filled: true, size: 90, opacity: 0.9 },
    encoding: { x, y, color: colour, shape: { field: "methods", type: "nominal", title: "methods", legend: { orient: "right" } } },
  });
  layers.push({
    name: "labels",
    data: { values: rows },
    // per point (Vega evaluates the expression per datum): below the point when above would collide
    mark: { type: "text", align: "left", dx: 7, dy: { expr: "datum.below ? 12 : -7" }, fontSize: 11 },
    encoding: { x, y, text: { field: "id" } },
  });
  return {
    id: o.id,
    title: o.title,
    caption: o.caption,
    spec: { width: WIDTH, height: HEIGHT, layer: layers, resolve: { scale: { color: "independent" } } } as unknown as TopLevelSpec,
    expectedMarks: { runs: rows.length, labels: rows.length },
  };
}

/**
 * Whether point i's label should go below it: when an earlier point's label, placed above, would
 * overlap. Positions are estimated in plot pixels (width × height of the scatter, a label ~7 px per
 * character and 13 px tall); good enough to separate near-identical runs.
 */
function labelBelow(points: { id: string; bytes: number; value: number }[], i: number, yScale: "log" | "linear"): boolean {
  const xs = points.map((p) => p.bytes);
  const ys = points.map((p) => (yScale === "log" ? Math.log(p.value) : p.value));
  const span = (v: number[]) => Math.max(...v) - Math.min(...v) || 1;
  const px = (k: number) => ((xs[k]! - Math.min(...xs)) / span(xs)) * WIDTH;
  const py = (k: number) => ((ys[k]! - Math.min(...ys)) / span(ys)) * HEIGHT;
  const placedAbove: number[] = [];
  for (let k = 0; k <= i; k++) {
    const clash = placedAbove.some((j) => Math.abs(px(j) - px(k)) < 7 * Math.max(points[j]!.id.length, points[k]!.id.length) && Math.abs(py(j) - py(k)) < 13);
    if (k === i) return clash;
    if (!clash) placedAbove.push(k);
  }
  return false;
}

/** "model.layers.3.mlp.down_proj" at index i → "3 mlp.down" */
function linearLabel(layer: number, kind: string): string {
  const short = kind.replace(/^self_attn\./, "attn.").replace(/_proj$/, "");
  return layer >= 0 ? `${layer} ${short}` : short;
}

/** Per-linear sparsity of every run, and per-linear bits of the runs that quantize. */
function allocationPlot(r: SweepResults): Plot {
  // one x position per linear, in the order results.json lists them (the model's), shared by all runs
  const position = new Map<string, number>();
  for (const x of r.runs) for (const a of x.allocation) if (!position.has(a.name)) position.set(a.name, position.size);
  const rows = r.runs.flatMap((x) =>
    x.allocation.map((a) => ({ run: x.id, index: position.get(a.name)!, linear: linearLabel(a.layer, a.kind), sparsity: a.sparsity, bits: a.bits })),
  );
  const quantizedRuns = new Set(r.runs.filter((x) => x.allocation.some((a) => a.bits !== null)).map((x) => x.id));
  // every linear's label while they fit; past that, only each layer's first linear, as "layer N"
  const perRun = position.size;
  const ordered = [...new Set(rows.slice().sort((a, b) => a.index - b.index).map((x) => x.linear))];
  const firsts = ordered.filter((l, i) => i === 0 || ordered[i - 1]!.split(" ")[0] !== l.split(" ")[0]);
  const axis =
    perRun <= 64
      ? { labelAngle: -90, labelFontSize: 9, labelOverlap: false }
      : { labelAngle: -90, labelFontSize: 9, labelOverlap: false, labelExpr: `indexof(${JSON.stringify(firsts)}, datum.label) >= 0 ? 'layer ' + split(datum.label, ' ')[0] : ''` };
  const xEnc = { field: "linear", type: "ordinal", sort: { field: "index" }, title: "linear (layer, kind), in model order", axis };
  const series = {
    color: { field: "run", type: "nominal", title: "run", legend: { orient: "right" } },
    strokeDash: { field: "run", type: "nominal", title: "run", legend: { orient: "right" } },
  };
  const width = Math.max(420, Math.min(1100, 16 * perRun));
  const panels: object[] = [
    {
      name: "runs_sparsity",
      width,
      height: 200,
      mark: { type: "line", strokeWidth: 2, opacity: 0.85, interpolate: "step" },
      encoding: { x: { ...xEnc, axis: { ...xEnc.axis, title: null, labels: quantizedRuns.size === 0 } }, y: { field: "sparsity", type: "quantitative", title: "sparsity", axis: { format: "%" }, scale: { domain: [0, 1] } }, ...series },
    },
  ];
  const bitsRows = rows.filter((x) => quantizedRuns.has(x.run));
  if (bitsRows.length > 0) {
    panels.push({
      name: "runs_bits",
      width,
      height: 160,
      data: { values: bitsRows },
      mark: { type: "line", strokeWidth: 2, opacity: 0.85, interpolate: "step", invalid: "break-paths-show-domains" },
      encoding: { x: xEnc, y: { field: "bits", type: "quantitative", title: "weight bits", scale: { domain: [0, 8] }, axis: { values: [2, 3, 4, 8] } }, ...series },
    });
  }
  return {
    id: "allocation",
    title: "Where each run spends its budget",
    caption: `Per linear layer: the fraction of weights pruned${bitsRows.length ? ", and below, the weight bits (runs that quantize; a gap is a linear left unquantized)" : ""}. One line per run.`,
    spec: { data: { values: rows }, vconcat: panels, spacing: 8, resolve: { scale: { color: "shared", strokeDash: "shared" } } } as unknown as TopLevelSpec,
    expectedMarks: { runs_sparsity: r.runs.length, ...(bitsRows.length ? { runs_bits: quantizedRuns.size } : {}) },
  };
}

/** Relative loss of every linear under every candidate setting of the sensitivity database. */
function sensitivityPlot(db: SensitivityDb, file: string): Plot {
  const linears = db.linears.slice().sort((a, b) => a.layer - b.layer);
  const cells = linears.flatMap((l, i) =>
    db.settings
      .filter((s) => Number.isFinite(l.relLoss[s.id]))
      .map((s) => ({ linear: linearLabel(l.layer, l.name.replace(/^.*?layers\.\d+\./, "")), index: i, setting: s.id, relLoss: l.relLoss[s.id]! })),
  );
  const positive = cells.map((c) => c.relLoss).filter((v) => v > 0);
  const logColour = positive.length === cells.length && positive.length > 0 && Math.max(...positive) / Math.min(...positive) > 10;
  const rowHeight = linears.length > 100 ? 7 : 14;
  return {
    id: "sensitivity",
    title: "Sensitivity of each linear",
    caption: `Relative reconstruction loss ‖WX − ŴX‖² / ‖WX‖² on the calibration inputs, per linear (rows, in model order) and candidate setting (columns), from ${path.basename(file)}${logColour ? " (log colour scale)" : ""}. Darker rows are where compression hurts most.`,
    spec: {
      data: { values: cells },
      width: Math.max(240, 34 * db.settings.length),
      height: rowHeight * linears.length,
      mark: { type: "rect" },
      name: "cells",
      encoding: {
        x: { field: "setting", type: "ordinal", sort: db.settings.map((s) => s.id), title: "candidate setting", axis: { labelAngle: -45 } },
        y: { field: "linear", type: "ordinal", sort: { field: "index" }, title: "linear (layer, kind)", axis: { labelFontSize: rowHeight > 10 ? 10 : 7 } },
        color: { field: "relLoss", type: "quantitative", title: "relative loss", scale: { type: logColour ? "log" : "linear", scheme: "inferno", reverse: true } },
      },
    } as unknown as TopLevelSpec,
    expectedMarks: { cells: cells.length },
  };
}

/** Every plot of the report, in page order. */
export function reportPlots(r: SweepResults, db: { data: SensitivityDb; file: string } | null): Plot[] {
  const evalName = path.basename(r.eval.data);
  const plots: Plot[] = [
    scatter(r, {
      id: "pareto",
      title: "Perplexity vs size",
      caption: `Perplexity on ${evalName} (${r.eval.windows} windows of ${r.eval.seqlen} tokens) against the bytes of the written weight files. Red: the Pareto front (no run is both smaller and better); dashed: the original model.`,
      field: "perplexity",
      axisTitle: `perplexity on ${evalName}`,
      originalValue: r.original.perplexity,
      pareto: true,
    }),
    scatter(r, {
      id: "fidelity",
      title: "Fidelity to the original vs size",
      caption: "Mean KL(original ‖ run) per token, in nats, over the same windows: how far each run's predictions moved.",
      field: "klMean",
      axisTitle: "KL to the original (nats/token)",
      originalValue: null,
      pareto: false,
    }),
  ];
  if (r.runs.every((x) => x.tokensPerSecond !== null) && r.original.tokensPerSecond !== null) {
    plots.push(
      scatter(r, {
        id: "decode",
        title: "Decode speed vs size",
        caption: "Greedy decode tokens/s of each run's ONNX export in onnxruntime (best of 3 rounds, after the prefill); dashed: the original.",
        field: "tokensPerSecond",
        axisTitle: "decode tokens/s (onnxruntime)",
        originalValue: r.original.tokensPerSecond,
        pareto: false,
      }),
    );
  }
  if (r.runs.length > 0) plots.push(allocationPlot(r));
  if (db) plots.push(sensitivityPlot(db.data, db.file));
  return plots;
}
