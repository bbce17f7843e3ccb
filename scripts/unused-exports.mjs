#!/usr/bin/env node
// Finds exports of src/ that nothing imports: dead code and leftover shims. `npm test` runs it
// (test/unused-exports.test.ts); `node scripts/unused-exports.mjs` prints the list.
//
// TypeScript 7's compiler API is still "unstable", so this reads the ESM import/export syntax
// the sources use directly (no `export default`, no `export *`, no CommonJS):
//   export function|const|let|class|interface|type|enum NAME    export { a, b as c } [from "…"]
//   import [type] { a, b as c } from "…"    import * as ns from "…"    await import("…")
// A value (function, const, class, enum) counts as used when a file other than its own imports it
// (re-exports count); exported types are not checked.
// Entry points, whose exports are for people rather than imports: the folders and files below.
import fs from "node:fs";
import path from "node:path";

/** Everything outside src/ is an entry point (CLI, tests, benches, scripts), and src/cli/main.ts. */
export const ENTRY_POINTS = ["bin", "bench", "scripts", "test", "src/cli/main.ts"];
const SOURCE_DIRS = ["src", "bin", "bench", "scripts", "test"];

/**
 * Exports left alone for now, each with its reason. Files being rewritten on other branches
 * (issue 14's resume and larger-than-RAM work in compress/job.ts and pipeline.ts; per-family
 * model adapters in models/) keep their exports until those land; then delete these lines.
 */
export const ALLOWED = {
  "src/compress/job.ts": ["TOPIARY_VERSION", "compressedTensorsWriter", "denseWriter"],
  "src/compress/pipeline.ts": ["relativeOutputError"],
  "src/models/config.ts": ["llamaConfigSchema"],
  "src/models/load.ts": ["openWeights"],
  // loaded with a dynamic import() (Vega costs seconds at start-up), which this scanner does not follow
  "src/report/page.ts": ["writeReport"],
};
const EXTENSIONS = [".ts", ".mts", ".js", ".mjs"];

function walk(dir) {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === "node_modules" || e.name === "fixtures" ? [] : walk(p);
    return EXTENSIONS.some((x) => e.name.endsWith(x)) && !e.name.endsWith(".d.ts") ? [p] : [];
  });
}

/** "../x.js" from `file` → the source file it names, or null for packages. */
function resolve(file, spec) {
  if (!spec.startsWith(".")) return null;
  const base = path.resolve(path.dirname(file), spec);
  for (const c of [base, base.replace(/\.js$/, ".ts"), base.replace(/\.mjs$/, ".mts"), `${base}.ts`, path.join(base, "index.ts")]) {
    if (fs.existsSync(c) && fs.statSync(c).isFile()) return c;
  }
  return null;
}

/** Names in `{ a, b as c, type d }`: the imported (left) side. */
function names(list) {
  return list
    .split(",")
    .map((s) => s.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0].trim())
    .filter((s) => /^\w+$/.test(s));
}

/** Strips comments and string contents that could look like syntax (keeps import specifiers). */
function code(text) {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
}

export function findUnusedExports(root = process.cwd()) {
  const files = SOURCE_DIRS.flatMap((d) => walk(path.join(root, d)));
  const exported = new Map(); // file → Set(names)
  const used = new Map(); // file → Set(names), "*" for namespace imports
  const use = (file, name) => {
    if (!file) return;
    if (!used.has(file)) used.set(file, new Set());
    used.get(file).add(name);
  };
  for (const file of files) {
    const text = code(fs.readFileSync(file, "utf8"));
    const ex = new Set();
    // values only: an exported type that spells out a function's parameters or result documents
    // that function's contract even when no other file names it
    for (const m of text.matchAll(/^export\s+(?:declare\s+)?(?:async\s+)?(?:abstract\s+)?(?:function\*?|const|let|var|class|enum)\s+(\w+)/gm)) ex.add(m[1]);
    for (const m of text.matchAll(/^export\s+\{([^}]*)\}(?:\s*from\s*["']([^"']+)["'])?/gm)) {
      const from = m[2] ? resolve(file, m[2]) : null;
      for (const part of m[1].split(",")) {
        const [orig, alias] = part.trim().replace(/^type\s+/, "").split(/\s+as\s+/).map((s) => s?.trim());
        if (!orig) continue;
        ex.add(alias ?? orig);
        if (from) use(from, orig);
      }
    }
    exported.set(file, ex);
    for (const m of text.matchAll(/\bimport\s+(?:type\s+)?(\w+\s*,\s*)?\{([^}]*)\}\s*from\s*["']([^"']+)["']/g)) for (const n of names(m[2])) use(resolve(file, m[3]), n);
    for (const m of text.matchAll(/\bimport\s+\*\s+as\s+\w+\s+from\s*["']([^"']+)["']/g)) use(resolve(file, m[1]), "*");
    // const { a, b } = await import("…"), and import("…").name in types
    for (const m of text.matchAll(/\{([^{}]*)\}\s*=\s*await\s+import\(\s*["']([^"']+)["']\s*\)/g)) for (const n of names(m[1].replace(/:\s*\w+/g, ""))) use(resolve(file, m[2]), n);
    for (const m of text.matchAll(/import\(\s*["']([^"']+)["']\s*\)\.(\w+)/g)) use(resolve(file, m[1]), m[2]);
    // import("…") whose result is kept whole (a module object): every export may be used
    for (const m of text.matchAll(/(?<![{]\s*)=\s*await\s+import\(\s*["']([^"']+)["']\s*\)\s*;/g)) use(resolve(file, m[1]), "*");
  }
  const isEntry = (file) => ENTRY_POINTS.some((e) => {
    const p = path.join(root, e);
    return file === p || file.startsWith(p + path.sep);
  });
  const unused = [];
  for (const [file, ex] of exported) {
    if (isEntry(file)) continue;
    const u = used.get(file) ?? new Set();
    if (u.has("*")) continue;
    const rel = path.relative(root, file);
    for (const name of ex) if (!u.has(name) && !(ALLOWED[rel] ?? []).includes(name)) unused.push(`${rel}: ${name}`);
  }
  return unused.sort();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const unused = findUnusedExports();
  for (const u of unused) console.log(u);
  console.log(`${unused.length} unused export${unused.length === 1 ? "" : "s"}`);
  process.exit(unused.length === 0 ? 0 : 1);
}
