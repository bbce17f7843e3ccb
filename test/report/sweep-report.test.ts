// End to end: `topiary sweep` on stories260K with three recipes (tiny calibration, 4 eval windows),
// resuming, refusing changed inputs, `topiary report`, and report.html opened in headless Chromium.
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { before, test } from "node:test";
import { fidelity } from "../../src/eval/fidelity.js";
import { perplexity } from "../../src/eval/perplexity.js";
import { loadModel } from "../../src/models/load.js";
import { readResults, type SweepResults } from "../../src/sweep/results.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { oneLineError, topiary, topiaryInProcess, type CliRun } from "../cli/run-cli.js";
import { DATA, STORIES, tempDir } from "../helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const RECIPES: Record<string, string> = {
  "sgpt50.yaml": "stages:\n  - method: sparsegpt\n    sparsity: 0.5\n",
  "gptq4.yaml": "stages:\n  - method: gptq\n    bits: 4\n    group_size: 32\n",
  // pruned MLP, attention at 4 bits and MLP at 8: per-linear allocation that varies
  "mixed.yaml": [
    "stages:",
    "  - method: sparsegpt",
    "    sparsity: 0.5",
    '    targets: ["mlp\\\\."]',
    "  - method: gptq",
    "    bits: 4",
    "    group_size: 32",
    '    targets: ["self_attn\\\\."]',
    "  - method: gptq",
    "    bits: 8",
    "    group_size: 32",
    '    targets: ["mlp\\\\."]',
    "",
  ].join("\n"),
};
const EVAL = { seqlen: 256, windows: 4 };

let root = "";
let out = "";
let recipeFiles: string[] = [];
let first: CliRun;
let results: SweepResults;

function sweepArgs(extra: string[] = []): string[] {
  return [
    "sweep",
    STORIES,
    "--recipes",
    ...recipeFiles,
    "--calib",
    path.join(DATA, "tinystories", "calib.txt"),
    "--nsamples",
    "8",
    "--calib-seqlen",
    "128",
    "--eval",
    path.join(DATA, "tinystories", "test.txt"),
    "--seqlen",
    String(EVAL.seqlen),
    "--limit-windows",
    String(EVAL.windows),
    "--decode-speed",
    "--decode-tokens",
    "8",
    "--out",
    out,
    ...extra,
  ];
}

before(async () => {
  root = tempDir("topiary-sweep-");
  out = path.join(root, "sweep");
  recipeFiles = Object.entries(RECIPES).map(([name, text]) => {
    fs.writeFileSync(path.join(root, name), text);
    return path.join(root, name);
  });
  first = await topiary(sweepArgs());
  if (first.code === 0) results = readResults(path.join(out, "results.json"));
});

test("sweep: every run measured from the model it wrote", async () => {
  assert.equal(first.code, 0, first.stderr);
  assert.deepEqual(
    results.runs.map((r) => r.id),
    ["sgpt50", "gptq4", "mixed"],
  );
  const byId = Object.fromEntries(results.runs.map((r) => [r.id, r]));
  const originalBytes = fs.statSync(path.join(STORIES, "model.safetensors")).size;
  assert.equal(results.original.bytes, originalBytes);
  for (const r of results.runs) {
    const dir = path.join(out, r.dir);
    const files = fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors"));
    assert.equal(r.bytes, files.reduce((a, f) => a + fs.statSync(path.join(dir, f)).size, 0), `${r.id} bytes`);
    assert.ok(r.bytes < originalBytes, `${r.id}: ${r.bytes} bytes`);
    assert.ok(r.tokensPerSecond! > 0, `${r.id} decode speed`);
    assert.ok(r.klMean > 0 && r.top1Agree < 1 && r.top1Agree > 0.2, `${r.id}: KL ${r.klMean}, top-1 ${r.top1Agree}`);
  }
  // compressed-tensors storage: the quantized run is packed, the pruned one a bitmask
  assert.equal(JSON.parse(fs.readFileSync(path.join(out, byId.gptq4!.dir, "config.json"), "utf8")).quantization_config.format, "pack-quantized");
  assert.ok(byId.gptq4!.bytes < 0.35 * originalBytes && byId.sgpt50!.bytes < 0.7 * originalBytes);
  // 4-bit GPTQ is both smaller and better than 50 % SparseGPT on this model
  assert.ok(byId.gptq4!.perplexity < byId.sgpt50!.perplexity);
  assert.equal(byId.gptq4!.pareto, true);
  assert.equal(byId.sgpt50!.pareto, false);

  // the figures are those of the written model on the same windows
  const model = loadModel(path.join(out, byId.mixed!.dir));
  const original = loadModel(STORIES);
  const ids = TextTokenizer.load(STORIES).encode(fs.readFileSync(path.join(DATA, "tinystories", "test.txt"), "utf8"));
  const p = await perplexity(model, ids, { seqlen: EVAL.seqlen, limitWindows: EVAL.windows });
  const f = await fidelity(original, model, ids, { seqlen: EVAL.seqlen, limitWindows: EVAL.windows });
  model.close();
  original.close();
  assert.equal(byId.mixed!.perplexity, p.perplexity);
  assert.equal(byId.mixed!.klMean, f.klMean);
  assert.equal(byId.mixed!.top1Agree, f.top1Agree);
  assert.deepEqual(results.eval, { data: path.join(DATA, "tinystories", "test.txt"), dataset: "plain", seqlen: 256, windows: 4, limitWindows: 4 });

  // allocation: mixed prunes and 8-bits the MLP, 4-bits attention
  const alloc = byId.mixed!.allocation;
  assert.equal(alloc.length, 35);
  // in the model's order, whatever order the stages compressed them in
  assert.deepEqual(
    alloc.slice(0, 8).map((a) => `${a.layer} ${a.kind}`),
    ["q", "k", "v", "o"].map((x) => `0 self_attn.${x}_proj`).concat(["gate", "up", "down"].map((x) => `0 mlp.${x}_proj`), ["1 self_attn.q_proj"]),
  );
  for (const a of alloc) {
    const mlp = a.kind.startsWith("mlp.");
    assert.equal(a.bits, mlp ? 8 : 4, a.name);
    assert.equal(a.groupSize, 32);
    if (mlp) assert.ok(Math.abs(a.sparsity - 0.5) < 0.01, `${a.name} sparsity ${a.sparsity}`);
    else assert.equal(a.sparsity, 0, a.name);
  }
  assert.ok(byId.sgpt50!.allocation.every((a) => a.bits === null && Math.abs(a.sparsity - 0.5) < 0.01));

  const csv = fs.readFileSync(path.join(out, "results.csv"), "utf8").trimEnd().split("\n");
  assert.equal(csv.length, 1 + 1 + 3);
  assert.match(csv[3]!, new RegExp(`^gptq4,${recipeFiles[1]},gptq,${byId.gptq4!.bytes},`));
});

test("sweep: a rerun reuses finished runs and redoes a crashed one; changed inputs are refused", async () => {
  assert.equal(first.code, 0, first.stderr);
  const kept = path.join(out, "runs", "sgpt50", "model", "topiary.json");
  const keptTime = fs.statSync(kept).mtimeMs;
  // "mixed" crashed: no run.json, and a temporary folder left behind
  fs.rmSync(path.join(out, "runs", "mixed", "run.json"));
  fs.mkdirSync(path.join(out, "runs", "mixed", ".model.tmp-1-abcdef"));
  const db = sensitivityDb(results);
  const again = await topiaryInProcess(sweepArgs(["--sensitivity", db]));
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stderr, /\[1\/3\] sgpt50: reusing the compressed model/);
  assert.match(again.stderr, /\[2\/3\] gptq4: reusing the compressed model/);
  assert.match(again.stderr, /\[3\/3\] mixed: compressing/);
  assert.doesNotMatch(again.stderr, /(sgpt50|gptq4|original): (evaluating|measuring)/);
  assert.equal(fs.statSync(kept).mtimeMs, keptTime);
  assert.deepEqual(fs.readdirSync(path.join(out, "runs", "mixed")).sort(), ["model", "run.json"]);
  const second = readResults(path.join(out, "results.json"));
  for (const [i, r] of second.runs.entries()) {
    assert.equal(r.perplexity, results.runs[i]!.perplexity, r.id);
    assert.equal(r.bytes, results.runs[i]!.bytes, r.id);
  }
  assert.equal(second.sensitivity, path.relative(out, db));

  const changed = await topiaryInProcess(sweepArgs(["--nsamples", "4"]));
  assert.match(oneLineError(changed), /runs\/sgpt50: made from other settings .* pass --overwrite/);
});

test("report: rebuilt from results.json, opens offline in Chromium with one mark per run", async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)`);
  assert.equal(first.code, 0, first.stderr);
  const page = path.join(out, "report.html");
  fs.rmSync(page);
  const rebuilt = await topiary(["report", out]);
  assert.equal(rebuilt.code, 0, rebuilt.stderr);
  const html = fs.readFileSync(page, "utf8");
  // self-contained: nothing that would load another file
  assert.doesNotMatch(html, /<script[^>]+src=|<link[^>]+href=|<img|@import|url\((?!#)/i);
  assert.doesNotMatch(html, /(href|src)="(https?:)?\/\//i);

  const { chromium } = await import("playwright-core");
  const userData = fs.mkdtempSync(path.join(os.tmpdir(), "topiary-chromium-"));
  const context = await chromium.launchPersistentContext(userData, {
    executablePath: CHROMIUM,
    headless: true,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1280, height: 900 },
  });
  const fileUrl = pathToFileURL(page).href;
  // every request the page makes, seen twice: by the router (which lets only the file through)
  // and by the page's own request events
  const routed: string[] = [];
  const seen: string[] = [];
  try {
    await context.route("**/*", (route) => {
      routed.push(route.request().url());
      return route.request().url() === fileUrl ? route.continue() : route.abort();
    });
    const tab = await context.newPage();
    tab.on("request", (r) => seen.push(r.url()));
    await tab.goto(fileUrl, { waitUntil: "load" });
    const plots = await tab.$$eval("figure.plot", (figs) =>
      figs.map((f) => {
        const expected = JSON.parse(f.getAttribute("data-expected-marks")!) as Record<string, number>;
        const drawn = Object.fromEntries(Object.keys(expected).map((name) => [name, f.querySelectorAll(`svg g.${name}_marks > *`).length]));
        const box = f.querySelector("svg")!.getBoundingClientRect();
        return { id: f.getAttribute("data-plot"), expected, drawn, width: box.width, height: box.height };
      }),
    );
    // one mark per run (3), per quantized run in the bits panel (gptq4, mixed), per heatmap cell
    // (35 linears × 2 settings); the counts are written here, not only read from the page
    const want: Record<string, Record<string, number>> = {
      pareto: { runs: 3, labels: 3 },
      fidelity: { runs: 3, labels: 3 },
      decode: { runs: 3, labels: 3 },
      allocation: { runs_sparsity: 3, runs_bits: 2 },
      sensitivity: { cells: 70 },
    };
    assert.deepEqual(
      plots.map((p) => p.id),
      Object.keys(want),
    );
    for (const p of plots) {
      assert.deepEqual(p.drawn, want[p.id!], `${p.id}: marks drawn`);
      assert.deepEqual(p.expected, want[p.id!], `${p.id}: marks expected`);
      assert.ok(p.width > 300 && p.height > 150, `${p.id}: ${p.width}×${p.height}`);
    }
    assert.deepEqual(routed, [fileUrl], "only the page itself is requested");
    assert.deepEqual(seen, [fileUrl], "only the page itself is requested");
    const shotDir = fs.mkdtempSync(path.join(os.tmpdir(), "topiary-report-shot-"));
    const shot = path.join(shotDir, "report.png");
    await tab.screenshot({ path: shot, fullPage: true });
    console.log(`# report screenshot: ${shot}`);
  } finally {
    await context.close();
    fs.rmSync(userData, { recursive: true, force: true });
  }
});

/** A small sensitivity database built by hand: the runs' own per-linear relative errors. */
function sensitivityDb(r: SweepResults): string {
  const settings = [
    { id: "sparsegpt-0.5", method: "sparsegpt", sparsity: 0.5, run: "sgpt50" },
    { id: "gptq-4b-g32", method: "gptq", bits: 4, groupSize: 32, run: "gptq4" },
  ];
  const records = Object.fromEntries(
    settings.map((s) => [s.id, JSON.parse(fs.readFileSync(path.join(out, r.runs.find((x) => x.id === s.run)!.dir, "topiary.json"), "utf8")).linears]),
  ) as Record<string, Record<string, { shape: [number, number]; relativeError: number; loss: number }>>;
  const names = Object.keys(records["sparsegpt-0.5"]!);
  const db = {
    settings: settings.map(({ run: _run, ...s }) => s),
    linears: names.map((name) => ({
      name,
      layer: Number(/layers\.(\d+)\./.exec(name)![1]),
      shape: records["sparsegpt-0.5"]![name]!.shape,
      loss: Object.fromEntries(settings.map((s) => [s.id, records[s.id]![name]!.loss])),
      relLoss: Object.fromEntries(settings.map((s) => [s.id, records[s.id]![name]!.relativeError])),
    })),
  };
  const file = path.join(root, "db.json");
  fs.writeFileSync(file, JSON.stringify(db));
  return file;
}

// The refusals run the CLI's parser in this process (the first sweep and the report are spawned):
// a spawn would cost more than the check.
test("sweep and report: bad input is one line", async () => {
  const dir = tempDir();
  const evalFile = path.join(DATA, "tinystories", "test.txt");
  const base = ["sweep", STORIES, "--eval", evalFile, "--out", path.join(dir, "s")];
  assert.match(oneLineError(await topiaryInProcess([...base, "--grid", "gptq:5"])), /^topiary: --grid entry "gptq:5" \(gptq\): field "bits": bits must be one of 2, 3, 4, 8$/);
  assert.match(oneLineError(await topiaryInProcess([...base, "--grid", "gptq:4", "--recipes", "x.yaml"])), /give either --recipes or --grid/);
  assert.match(oneLineError(await topiaryInProcess([...base, "--grid", "gptq:4"])), /--calib is needed: gptq-4bit uses calibration data/);
  fs.writeFileSync(path.join(dir, "db.json"), JSON.stringify({ settings: [{ id: "a", method: "gptq" }], linears: [{ name: "l", layer: 0, shape: [2, 2], relLoss: { b: 1 } }] }));
  assert.match(
    oneLineError(await topiaryInProcess([...base, "--grid", "magnitude:0.5", "--sensitivity", path.join(dir, "db.json")])),
    /db\.json: linear "l": relLoss names setting "b", which "settings" does not list$/,
  );
  assert.equal(oneLineError(await topiaryInProcess(["report", dir])), `topiary: ${path.join(dir, "results.json")}: missing (expected a folder written by \`topiary sweep\`)`);
  assert.equal(fs.existsSync(path.join(dir, "s")), false);
});
