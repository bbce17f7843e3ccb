// The chat template survives every output topiary writes: the folders of prune / quantize /
// compress (dense and compressed-tensors, both through copyModelFiles) and of the ONNX export get
// the files it lives in, byte for byte; a GGUF gets tokenizer.chat_template as gguf-py writes it.
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { describe, test } from "node:test";
import { exportGguf } from "../../src/export/gguf.js";
import { exportOnnx } from "../../src/export/onnx.js";
import { GgufFile } from "../../src/formats/gguf/reader.js";
import { AUX_FILES, copyModelFiles } from "../../src/formats/hf-folder.js";
import { loadModel } from "../../src/models/load.js";
import { topiaryInProcess } from "../cli/run-cli.js";
import { copyStories } from "../formats/broken-models.js";
import { tempDir } from "../helpers.js";

const IN_CONFIG = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}";
const JINJA = "{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}";
const TOOL_USE = "{% for t in tools %}{{ t }}{% endfor %}";

/** stories260K with a chat template in each place a checkpoint keeps one. */
function storiesWithTemplates(dir: string, where: { config?: boolean; jinja?: boolean; extra?: boolean; json?: boolean }): string {
  copyStories(dir);
  if (where.config) {
    const file = path.join(dir, "tokenizer_config.json");
    const cfg = JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>;
    fs.writeFileSync(file, JSON.stringify({ ...cfg, chat_template: IN_CONFIG }, null, 2));
  }
  if (where.jinja) fs.writeFileSync(path.join(dir, "chat_template.jinja"), JINJA);
  if (where.extra) {
    fs.mkdirSync(path.join(dir, "additional_chat_templates"));
    fs.writeFileSync(path.join(dir, "additional_chat_templates", "tool_use.jinja"), TOOL_USE);
  }
  if (where.json) fs.writeFileSync(path.join(dir, "chat_template.json"), JSON.stringify({ chat_template: JINJA }));
  return dir;
}

const TEMPLATE_FILES = ["tokenizer_config.json", "chat_template.jinja", "chat_template.json", path.join("additional_chat_templates", "tool_use.jinja")];

function assertSameTemplates(src: string, out: string): void {
  for (const f of TEMPLATE_FILES) assert.equal(fs.readFileSync(path.join(out, f), "utf8"), fs.readFileSync(path.join(src, f), "utf8"), f);
}

describe("chat templates are carried into every output", () => {
  const root = tempDir("topiary-chat-template-");
  const all = storiesWithTemplates(path.join(root, "all"), { config: true, jinja: true, extra: true, json: true });

  test("copyModelFiles (prune / quantize / compress outputs) copies every file a template lives in", () => {
    const out = path.join(root, "copied");
    fs.mkdirSync(out);
    copyModelFiles(all, out, { a: 1 });
    assertSameTemplates(all, out);
    assert.ok(AUX_FILES.includes("chat_template.jinja") && AUX_FILES.includes("chat_template.json"));
  });

  test("topiary prune: the output folder has the templates", async () => {
    const out = path.join(root, "pruned");
    // the CLI's parser in this process (the folder it writes is the subject; a spawn costs ~1.7 s of CPU)
    const r = await topiaryInProcess(["prune", all, "--method", "magnitude", "--sparsity", "0.5", "--out", out]);
    assert.equal(r.code, 0, r.stderr);
    assertSameTemplates(all, out);
  });

  test("ONNX export: the output folder has the templates", async () => {
    const model = loadModel(all);
    const out = path.join(root, "onnx");
    try {
      await exportOnnx(model.config, model.weights, out, { dtype: "fp32", sourceDir: all });
    } finally {
      model.close();
    }
    assertSameTemplates(all, out);
  });

  test("GGUF export: tokenizer.chat_template from tokenizer_config.json, else chat_template.jinja (named extras beside it)", () => {
    const cases = [
      { name: "config", dir: all, expect: { "tokenizer.chat_template": IN_CONFIG } },
      {
        name: "jinja",
        dir: storiesWithTemplates(path.join(root, "jinja"), { jinja: true, extra: true }),
        expect: { "tokenizer.chat_template": JINJA, "tokenizer.chat_template.tool_use": TOOL_USE, "tokenizer.chat_templates": ["tool_use"] },
      },
      { name: "json", dir: storiesWithTemplates(path.join(root, "json"), { json: true }), expect: { "tokenizer.chat_template": JINJA } },
      { name: "none", dir: copyStories(path.join(root, "none")), expect: {} },
    ];
    for (const c of cases) {
      const model = loadModel(c.dir);
      const file = path.join(root, `${c.name}.gguf`);
      try {
        exportGguf(model, { type: "f32", out: file });
      } finally {
        model.close();
      }
      const g = GgufFile.open(file);
      try {
        const got = Object.fromEntries([...g.metadata.keys()].filter((k) => k.startsWith("tokenizer.chat_template")).map((k) => [k, g.get(k)]));
        assert.deepEqual(got, c.expect, c.name);
      } finally {
        g.close();
      }
    }
  });
});
