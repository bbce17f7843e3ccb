import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { FormatError } from "../../src/formats/errors.js";
import { cachedTokens } from "../../src/tokenizer/token-cache.js";
import { TextTokenizer } from "../../src/tokenizer/tokenizer.js";
import { STORIES, tempDir } from "../helpers.js";
import { copyStories } from "../formats/broken-models.js";

describe("TextTokenizer on stories260K", () => {
  test("ids as llama2.c run.c encodes them (stories260K README), BOS at the start only", () => {
    const tok = TextTokenizer.load(STORIES);
    assert.equal(tok.bosId, 1);
    assert.equal(tok.addBos, true);
    assert.equal(tok.vocabSize, 512);
    assert.deepEqual(Array.from(tok.encode("a  b")), [1, 261, 410, 268]);
    assert.deepEqual(Array.from(tok.encode("Once upon a time")), [1, 403, 407, 261, 378]);
    assert.deepEqual(Array.from(tok.encode("")), [1]);
    // no BOS in the middle of a long text: one encode, one BOS
    const ids = tok.encode("The end.\n\nOnce upon a time");
    assert.equal(ids.filter((id) => id === 1).length, 1);
    assert.equal(tok.decode([1, 403, 407, 261, 378]), "Once upon a time");
    assert.equal(tok.tokenToId("<s>"), 1);
  });

  test("a missing or broken tokenizer.json is a FormatError naming it", () => {
    const dir = copyStories(tempDir());
    const file = path.join(dir, "tokenizer.json");
    fs.writeFileSync(file, "{ nope");
    assert.throws(() => TextTokenizer.load(dir), (e: unknown) => e instanceof FormatError && e.file === file && /not valid JSON/.test(e.message));
    fs.rmSync(file);
    assert.throws(
      () => TextTokenizer.load(dir),
      (e: unknown) => e instanceof FormatError && e.file === file && /missing \(topiary needs the model's Hugging Face tokenizer\.json/.test(e.message),
    );
  });
});

test("token cache: a long text is encoded once, then read back from disk", () => {
  const saved = { dir: process.env.TOPIARY_CACHE_DIR, off: process.env.TOPIARY_NO_CACHE };
  process.env.TOPIARY_CACHE_DIR = tempDir();
  delete process.env.TOPIARY_NO_CACHE;
  try {
    const text = "x".repeat(25_000);
    let calls = 0;
    const encode = () => (calls++, Int32Array.of(1, 2, 3));
    assert.deepEqual(cachedTokens("key", text, encode), Int32Array.of(1, 2, 3));
    assert.deepEqual(cachedTokens("key", text, encode), Int32Array.of(1, 2, 3));
    assert.equal(calls, 1);
    cachedTokens("other tokenizer", text, encode);
    assert.equal(calls, 2, "the key includes the tokenizer");
    cachedTokens("key", "short", encode);
    cachedTokens("key", "short", encode);
    assert.equal(calls, 4, "short texts are not cached");
    assert.equal(fs.readdirSync(process.env.TOPIARY_CACHE_DIR).length, 2);
  } finally {
    if (saved.dir === undefined) delete process.env.TOPIARY_CACHE_DIR;
    else process.env.TOPIARY_CACHE_DIR = saved.dir;
    if (saved.off !== undefined) process.env.TOPIARY_NO_CACHE = saved.off;
  }
});
