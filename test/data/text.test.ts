import assert from "node:assert/strict";
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { jsonlTexts, loadEvalText, ptbEvalString, wikitext2EvalString } from "../../src/data/text.js";
import { FormatError } from "../../src/formats/errors.js";
import { DATA, tempDir } from "../helpers.js";

const md5 = (s: string) => crypto.createHash("md5").update(s, "utf8").digest("hex");

describe("evaluation strings", () => {
  test("wikitext2: rows = lines, non-blank keep their \\n, blank → \"\", joined with \\n\\n", () => {
    const raw = " \n = Title = \n \n Some text . \n";
    assert.equal(wikitext2EvalString(raw), "\n\n = Title = \n\n\n\n\n Some text . \n");
  });

  test("ptb: stripped lines joined with one space", () => {
    assert.equal(ptbEvalString(" a b \n c <unk> N \n"), "a b c <unk> N");
  });

  test("jsonl: the text fields, errors naming the file and line", () => {
    assert.deepEqual(jsonlTexts("f.jsonl", '{"text": "a"}\n\n{"text": "b", "id": 2}\n'), ["a", "b"]);
    assert.throws(() => jsonlTexts("f.jsonl", '{"text": "a"}\n{oops'), /f\.jsonl: line 2 is not valid JSON/);
    assert.throws(() => jsonlTexts("f.jsonl", '{"txt": "a"}'), /f\.jsonl: line 1 has no string "text" field/);
  });

  test("loadEvalText: a missing file is a FormatError naming it", () => {
    const missing = path.join(tempDir(), "nope.txt");
    assert.throws(() => loadEvalText(missing), (e: unknown) => e instanceof FormatError && e.file === missing && /no such file/.test(e.message));
    const jsonl = path.join(tempDir(), "c4.jsonl");
    fs.writeFileSync(jsonl, '{"text": "one"}\n{"text": "two"}\n');
    assert.equal(loadEvalText(jsonl), "one\n\ntwo");
    assert.equal(loadEvalText(jsonl, "c4"), "one two");
  });

  test("WikiText-2 test eval string matches the papers' (shared/data README)", () => {
    const s = loadEvalText(path.join(DATA, "wikitext2", "test.raw"), "wikitext2");
    assert.equal(md5(s), "7646de4fa2ddef8d6781e2e1fbcbfb47");
    assert.equal(Buffer.byteLength(s, "utf8"), 1296370);
    assert.equal(s.length, 1294336);
    const valid = loadEvalText(path.join(DATA, "wikitext2", "valid.raw"), "wikitext2");
    assert.equal(md5(valid), "b9779ae253a3257c02aa4fa5bce1e76a");
  });

  test("plain PTB and TinyStories are the file's bytes", () => {
    assert.equal(crypto.createHash("md5").update(loadEvalText(path.join(DATA, "ptb", "ptb.test.txt"))).digest("hex"), "8b80168b89c18661a38ef683c0dc3721");
    assert.equal(md5(loadEvalText(path.join(DATA, "tinystories", "test.txt"))), "23a2d9d23a23f070c8a8301144af5bf1");
  });
});
