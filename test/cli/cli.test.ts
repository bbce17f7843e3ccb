// The real command line, as a user runs it: `node bin/topiary.js …` in a child process.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { oneLineError, topiary, topiaryInProcess, type CliRun } from "./run-cli.js";
import { DATA, REPO, referenceResults, STORIES, tempDir } from "../helpers.js";
import { copyStories, SAFETENSORS_CASES, withConfig, withSafetensors } from "../formats/broken-models.js";

/** The greedy story and its 200 ids, as recorded in the model's README. */
function recordedGreedy(): { text: string; ids: number[] } {
  const readme = fs.readFileSync(path.join(STORIES, "README.md"), "utf8");
  const text = readme.split("**Greedy generation from BOS, 200 tokens**")[1]!.split("```")[1]!.replace(/^\n/, "").replace(/\n$/, "");
  const ids = readme.split("The 200 generated ids (after the BOS `1`):")[1]!.split("```")[1]!.trim().split(/\s+/).map(Number);
  return { text, ids };
}

test("--help and --version", async () => {
  const help = await topiary(["--help"]);
  assert.equal(help.code, 0);
  for (const cmd of ["inspect", "eval", "generate"]) assert.match(help.stdout, new RegExp(`^  ${cmd} `, "m"));
  const version = await topiary(["--version"]);
  assert.equal(version.stdout.trim(), JSON.parse(fs.readFileSync(path.join(REPO, "package.json"), "utf8")).version);
});

describe("stories260K end to end", () => {
  const greedy = recordedGreedy();

  test("generate --temperature 0 prints the README's greedy story exactly", async () => {
    assert.equal(greedy.ids.length, 200);
    const r = await topiary(["generate", STORIES, "--max-new-tokens", "200", "--temperature", "0"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, greedy.text + "\n");
  });

  test("generate --json: the 200 ids after BOS", async () => {
    const r = await topiary(["generate", STORIES, "--max-new-tokens", "200", "--temperature", "0", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.promptIds, [1]);
    assert.deepEqual(out.ids, greedy.ids);
    assert.equal(out.text, greedy.text);
  });

  test("eval tinystories seqlen 512 --json: within 0.1 % of the reference, protocol counts", async () => {
    const r = await topiary(["eval", STORIES, "--data", path.join(DATA, "tinystories", "test.txt"), "--seqlen", "512", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split("\n");
    assert.equal(lines.length, 1, "one JSON object");
    const out = JSON.parse(lines[0]!);
    const want = referenceResults().results.dense!.ppl_exact.tinystories_test_512!;
    assert.ok(Math.abs(out.perplexity - want) / want < 1e-3, `ppl ${out.perplexity} vs ${want}`);
    assert.deepEqual([out.tokens, out.windows, out.predicted, out.seqlen], [244969, 478, 244258, 512]);
    assert.equal(out.dataset, "plain");
    assert.ok(out.seconds > 0 && out.tokensPerSecond > 0);
  });

  test("inspect --json", async () => {
    const r = await topiary(["inspect", STORIES, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(
      [out.architecture, out.layers, out.parameters, out.tensors, out.bytes, out.tiedEmbeddings],
      ["LlamaForCausalLM", 5, 260032, 47, 1040128, true],
    );
    assert.deepEqual(out.dtypes, { F32: 47 });
  });
});

describe("bad input: one line on stderr naming the file, non-zero exit, no stack trace", () => {
  const root = tempDir();
  let n = 0;
  const fresh = () => path.join(root, `m${n++}`);

  // `run`: the corrupt-file cases go through the CLI's parser in this process (the loader's
  // messages are what they check; a spawn costs ~1.7 s of CPU), the missing-file and bad-flag
  // cases through the spawned CLI.
  async function fails(args: string[], file: string, problem: RegExp, run: (args: string[]) => Promise<CliRun> = topiary): Promise<void> {
    const r = await run(args);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "");
    assert.ok(r.stderr.endsWith("\n"));
    const line = r.stderr.slice(0, -1);
    assert.ok(!line.includes("\n"), `exactly one line:\n${r.stderr}`);
    assert.ok(line.startsWith(`topiary: ${file}: `), line);
    assert.match(line, problem);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }

  // a few of the safetensors corruptions (all of them are checked in test/formats at library level)
  for (const name of ["truncated data", "header length past EOF", "invalid JSON header", "unknown dtype"]) {
    const c = SAFETENSORS_CASES.find((x) => x.name === name)!;
    test(`model.safetensors: ${name}`, async () => {
      const dir = withSafetensors(fresh(), c.make);
      await fails(["inspect", dir], path.join(dir, "model.safetensors"), c.message, topiaryInProcess);
    });
  }

  test("config.json: missing field, wrong type, unknown architecture", async () => {
    const missing = withConfig(fresh(), (c) => delete c.hidden_size);
    await fails(["inspect", missing], path.join(missing, "config.json"), /field "hidden_size" is missing$/, topiaryInProcess);
    const wrongType = withConfig(fresh(), (c) => (c.num_hidden_layers = "5"));
    await fails(["eval", wrongType, "--data", path.join(DATA, "ptb", "ptb.test.txt")], path.join(wrongType, "config.json"), /field "num_hidden_layers": .*received string/, topiaryInProcess);
    const arch = withConfig(fresh(), (c) => (c.architectures = ["UnknownForCausalLM"]));
    await fails(["generate", arch], path.join(arch, "config.json"), /unknown architecture "UnknownForCausalLM"/, topiaryInProcess);
  });

  test("a tensor whose shape contradicts config.json", async () => {
    const dir = withConfig(fresh(), (c) => (c.intermediate_size = 128));
    await fails(["inspect", dir], path.join(dir, "model.safetensors"), /tensor "model\.layers\.0\.mlp\.gate_proj\.weight" has shape \[172, 64\], config\.json implies \[128, 64\]/, topiaryInProcess);
  });

  test("missing tokenizer.json, missing model folder, missing --data file", async () => {
    const noTok = copyStories(fresh());
    fs.rmSync(path.join(noTok, "tokenizer.json"));
    await fails(["generate", noTok, "--max-new-tokens", "2"], path.join(noTok, "tokenizer.json"), /missing \(topiary needs the model's Hugging Face tokenizer\.json/);
    const gone = path.join(root, "no-such-model");
    await fails(["inspect", gone], gone, /no such model folder/);
    const noData = path.join(root, "no-such-text.txt");
    await fails(["eval", STORIES, "--data", noData], noData, /no such file$/);
  });

  test("a bad flag value is refused with the flag named", async () => {
    const r = await topiary(["eval", STORIES, "--data", "x.txt", "--seqlen", "abc"]);
    assert.match(oneLineError(r), /--seqlen must be an integer ≥ 2, got "abc"/);
    assert.match(oneLineError(await topiary(["eval", STORIES])), /required option '--data <file>' not specified/);
  });
});
