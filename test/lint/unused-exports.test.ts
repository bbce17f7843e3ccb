// Every value src/ exports is imported somewhere (scripts/unused-exports.mjs): dead code and
// leftover shims fail `npm test`. The checker itself is tested on a small tree with known answers.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
// @ts-expect-error: a plain .mjs script without type declarations
import { findUnusedExports } from "../../scripts/unused-exports.mjs";
import { REPO, tempDir } from "../helpers.js";

test("no unused exports in src/", () => {
  assert.deepEqual(findUnusedExports(REPO), []);
});

test("the checker finds an unused export, and sees named, re-exported, namespace and dynamic imports", () => {
  const root = tempDir();
  const write = (f: string, text: string) => {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), text);
  };
  write("src/a.ts", "export function used() {}\nexport const dead = 1;\nexport interface Shape { x: number }\n");
  write("src/b.ts", 'export { viaReexport } from "./c.js";\nexport const all = 2;\n');
  write("src/c.ts", "export const viaReexport = 3;\nexport class Dynamic {}\n");
  write("src/d.ts", "export const everything = 4;\n");
  write("src/cli/main.ts", 'import { used } from "../a.js";\nimport { viaReexport } from "../b.js";\nimport * as d from "../d.js";\nconst { Dynamic } = await import("../c.js");\n');
  write("test/x.test.ts", 'import { all } from "../src/b.js";\nexport const helper = 5;\n');
  assert.deepEqual(findUnusedExports(root), ["src/a.ts: dead"]);
});
