// Runs test files through node's test runner in the order given (run with `--import tsx`, which
// each file's process inherits). `node --test a b` sorts its files by name; `run()` keeps ours,
// so scripts/test.mjs can start the slowest first. Reporter as `node --test`'s: spec on a
// terminal, TAP otherwise. Exit 1 when any test fails.
import path from "node:path";
import { run } from "node:test";
import { spec, tap } from "node:test/reporters";

const [concurrency, ...files] = process.argv.slice(2);
let failed = false;
const stream = run({ files: files.map((f) => path.resolve(f)), concurrency: Number(concurrency) });
stream.on("test:fail", (t) => {
  if (!t.todo && !t.skip) failed = true;
});
stream.on("end", () => {
  process.exitCode = failed ? 1 : 0;
});
stream.compose(process.stdout.isTTY ? new spec() : tap).pipe(process.stdout);
