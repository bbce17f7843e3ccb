// report.html: one self-contained page — styles inline, each plot rendered by Vega to an inline
// SVG in Node (no canvas, no script needed to view it), and the results embedded as JSON data.
// Nothing on the page refers to another file or to the network.
import path from "node:path";
import * as vega from "vega";
import { compile } from "vega-lite";
import type { SweepResults } from "../sweep/results.js";
import { writeTextAtomic } from "../sweep/results.js";
import { reportPlots, type Plot } from "./charts.js";
import type { SensitivityDb } from "./sensitivity-db.js";

const FONT = "DejaVu Sans, Helvetica, Arial, sans-serif";

/** Shared look of every plot. */
const CONFIG = {
  font: FONT,
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: "normal" },
  legend: { labelFontSize: 11, titleFontSize: 12, labelLimit: 260 },
  view: { stroke: "#ccc" },
};

/** A Vega-Lite spec as SVG text. */
async function renderSvg(plot: Plot): Promise<string> {
  const vgSpec = compile({ ...plot.spec, config: CONFIG } as Parameters<typeof compile>[0]).spec;
  const view = new vega.View(vega.parse(vgSpec), { renderer: "none", logLevel: vega.Warn });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

const escapeHtml = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
const fmt = (v: number | null, digits = 4) => (v === null ? "—" : v.toPrecision(digits));
const bytes = (v: number) => v.toLocaleString("en-US");
const rate = (v: number | null) => (v === null ? "—" : Math.round(v).toLocaleString("en-US"));

function resultsTable(r: SweepResults): string {
  const speed = r.original.tokensPerSecond !== null;
  const head = ["run", "methods", "bytes", "× original", "exact zeros", "perplexity", "KL (nats)", "top-1 agree", ...(speed ? ["decode tok/s"] : []), "Pareto"];
  const row = (cells: string[], cls = "") => `<tr${cls ? ` class="${cls}"` : ""}>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
  const original = row(
    ["original", "—", bytes(r.original.bytes), "1", "—", fmt(r.original.perplexity), "0", "100 %", ...(speed ? [rate(r.original.tokensPerSecond)] : []), ""],
    "original",
  );
  const runs = r.runs
    .slice()
    .sort((a, b) => a.bytes - b.bytes)
    .map((x) =>
      row(
        [
          `<span title="${escapeHtml(x.source)}">${escapeHtml(x.id)}</span>`,
          escapeHtml(x.recipe.map((s) => String(s.method)).join(" + ")),
          bytes(x.bytes),
          x.bytesRatio.toFixed(3),
          `${(100 * x.zeros).toFixed(1)} %`,
          fmt(x.perplexity),
          fmt(x.klMean, 3),
          `${(100 * x.top1Agree).toFixed(1)} %`,
          ...(speed ? [rate(x.tokensPerSecond)] : []),
          x.pareto ? "★" : "",
        ],
        x.pareto ? "front" : "",
      ),
    );
  return `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join("")}</tr></thead><tbody>${original}${runs.join("")}</tbody></table>`;
}

const STYLE = `
body { font-family: ${FONT}; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
h2 { font-size: 1.15em; margin: 1.6em 0 0.2em; }
p.meta, figcaption { color: #555; font-size: 0.9em; }
table { border-collapse: collapse; font-size: 0.9em; margin-top: 0.8em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
tr.original td { color: #666; font-style: italic; }
tr.front td:first-child { font-weight: bold; color: #c0392b; }
figure { margin: 0.5em 0 1.5em; }
figure svg { max-width: 100%; height: auto; }
`;

/** The whole page as one string. */
async function reportHtml(r: SweepResults, db: { data: SensitivityDb; file: string } | null): Promise<string> {
  const plots = reportPlots(r, db);
  const figures: string[] = [];
  for (const p of plots) {
    const expected = escapeHtml(JSON.stringify(p.expectedMarks));
    figures.push(
      `<section id="${p.id}"><h2>${escapeHtml(p.title)}</h2><figure class="plot" data-plot="${p.id}" data-expected-marks="${expected}">${await renderSvg(p)}<figcaption>${escapeHtml(p.caption)}</figcaption></figure></section>`,
    );
  }
  const cal = r.calibration as { file?: string; nsamples?: number; seqlen?: number } | null;
  const meta = [
    `model <code>${escapeHtml(r.model)}</code>`,
    `evaluated on <code>${escapeHtml(path.basename(r.eval.data))}</code> (${r.eval.dataset}, ${r.eval.windows} × ${r.eval.seqlen} tokens)`,
    cal?.file ? `calibrated on <code>${escapeHtml(path.basename(cal.file))}</code> (${cal.nsamples} × ${cal.seqlen} tokens)` : "no calibration",
    `${r.runs.length} runs, ${escapeHtml(r.created)}`,
  ].join(" · ");
  // the data as inert JSON (`<` escaped so no string can close the element)
  const data = JSON.stringify(r).replace(/</g, "\\u003c");
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>topiary sweep — ${escapeHtml(path.basename(r.model))}</title>
<style>${STYLE}</style></head>
<body>
<h1>Compression sweep of ${escapeHtml(path.basename(r.model))}</h1>
<p class="meta">${meta}</p>
${resultsTable(r)}
${figures.join("\n")}
<script type="application/json" id="results">${data}</script>
</body></html>
`;
}

/** Writes `dir`/report.html atomically. */
export async function writeReport(dir: string, r: SweepResults, db: { data: SensitivityDb; file: string } | null): Promise<string> {
  const file = path.join(dir, "report.html");
  writeTextAtomic(file, await reportHtml(r, db));
  return file;
}
