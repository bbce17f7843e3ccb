// The fuzzer's inputs: a seeded generator of bad inputs, each a small workspace (files to write,
// or links to good files) plus a command line. Every one is broken in at least one way that must
// be refused: the CLI must exit 1 with one line naming `names` (a file, or a flag).
//
// Bases (good files the mutations start from) come from stories260K: its folder, a
// compressed-tensors copy (RTN 4-bit g32, pack-quantized), a sparse-bitmask copy, a GGUF q4_0.
import fs from "node:fs";
import path from "node:path";
import { Rng } from "../../src/data/rng.js";
import { ggufLayout } from "./gguf-layout.js";
import { joinRaw, joinSafetensors, splitSafetensors, type RawTensor } from "./safetensors-bytes.js";

/** A file to write: its bytes, a link to a good file, or (null) absent. */
export type FileSpec = Buffer | string | { link: string } | null;

export interface FuzzCase {
  id: string;
  category: string;
  /** relative path in the workspace → content */
  files: Record<string, FileSpec>;
  /** arguments after `topiary`; "$W" stands for the workspace folder */
  args: string[];
  /** the error line must contain one of these (a file name or a flag) */
  names: string[];
}

export interface Bases {
  /** folders and files the mutations start from */
  model: string;
  ctPack: string;
  ctBitmask: string;
  gguf: string;
  data: string;
}

/** A model folder at `dir` in the workspace: links to `base`'s files, except those in `over`. */
function folder(base: string, over: Record<string, FileSpec>, dir = "model"): Record<string, FileSpec> {
  const files: Record<string, FileSpec> = {};
  for (const f of fs.readdirSync(base)) if (!fs.statSync(path.join(base, f)).isDirectory()) files[`${dir}/${f}`] = { link: path.join(base, f) };
  for (const [f, c] of Object.entries(over)) files[`${dir}/${f}`] = c;
  return files;
}

const json = (v: unknown) => JSON.stringify(v, null, 1);

/** Commands that read a whole model folder at $W/model, one picked per case. */
function modelCommand(rng: Rng, dir = "$W/model"): string[] {
  const cmds = [
    ["inspect", dir],
    ["eval", dir, "--data", "$W/data.txt", "--seqlen", "64", "--limit-windows", "1"],
    ["generate", dir, "--max-new-tokens", "3", "--temperature", "0"],
    ["prune", dir, "--method", "magnitude", "--sparsity", "0.5", "--out", "$W/out"],
    ["export", dir, "--to", "gguf", "--type", "q8_0", "--out", "$W/out.gguf"],
  ];
  return cmds[rng.int(cmds.length)]!;
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)]!;
}

// ---------------------------------------------------------------------------------------------

function safetensorsCases(rng: Rng, b: Bases, n: number): FuzzCase[] {
  const good = fs.readFileSync(path.join(b.model, "model.safetensors"));
  const { tensors } = splitSafetensors(good);
  const names = [...tensors.keys()];
  const headerLen = Number(good.readBigUInt64LE(0));
  const headerText = good.subarray(8, 8 + headerLen).toString("utf8");
  const data = good.subarray(8 + headerLen);
  const withEntry = (target: string, change: (e: Record<string, unknown>) => void) =>
    joinSafetensors(tensors, (name, e) => {
      if (name === target) change(e);
      return e;
    });
  const without = (target: string, keepData: boolean) => {
    if (keepData) return joinSafetensors(tensors, (name, e) => (name === target ? { ...e, dtype: undefined, shape: undefined, data_offsets: undefined } : e));
    const m = new Map(tensors);
    m.delete(target);
    return joinSafetensors(m);
  };
  const BAD_VALUES: unknown[] = [null, "F32", 3.5, -1, [], {}, true, 1e300, [1, 2, 3]];
  const kinds: ((name: string) => [string, Buffer])[] = [
    () => {
      const v = pick(rng, [0n, 1n, 7n, BigInt(good.length), BigInt(good.length - 7), 2n ** 53n, 2n ** 64n - 1n, 100_000_001n, BigInt(rng.int(1e9))]);
      const c = Buffer.from(good);
      c.writeBigUInt64LE(v, 0);
      return [`header length ${v}`, c];
    },
    () => {
      const at = rng.int(good.length);
      return [`truncated at ${at}`, good.subarray(0, at)];
    },
    () => {
      // one structural character of the JSON ({ } [ ] : , ") replaced by another (a changed
      // letter inside a string, e.g. in __metadata__, can leave a valid file)
      const structural = [...headerText].flatMap((ch, i) => ("{}[]:,\"".includes(ch) ? [i] : []));
      const at = 8 + pick(rng, structural);
      const c = Buffer.from(good);
      c[at] = pick(rng, [0x7b, 0x22, 0x00, 0xff, 0x5d, 0x2c, 0x3a].filter((x) => x !== good[at]));
      return [`header byte ${at} broken`, c];
    },
    () => [`header not JSON`, joinRaw(pick(rng, ["", "{", "nul", "[", '{"a":', "\u0000", "{}}", "\"x\""]), data)],
    () => [`header deeply nested`, joinRaw("[".repeat(200_000) + "]".repeat(200_000), data)],
    () => [`header a JSON ${pick(rng, ["array", "number", "string", "null"])}`, joinRaw(pick(rng, ["[1]", "42", '"s"', "null"]), data)],
    (t) => {
      const d = pick(rng, ["F4", "f32", "", "Q4_0", "I4", "F8", "FLOAT", 5, null]);
      return [`dtype ${JSON.stringify(d)} on ${t}`, withEntry(t, (e) => void (e.dtype = d))];
    },
    (t) => [`dtype I32 on ${t}`, withEntry(t, (e) => void (e.dtype = "I32"))],
    (t) => [`dtype U8 on ${t} (shape widened to fit)`, withEntry(t, (e) => {
      e.dtype = "U8";
      const s = e.shape as number[];
      s[s.length - 1]! *= 4;
    })],
    (t) => [`shape off by one on ${t}`, withEntry(t, (e) => {
      const s = [...(e.shape as number[])];
      const i = rng.int(s.length);
      s[i]! += rng.int(2) ? 1 : -1;
      e.shape = s;
    })],
    (t) => {
      const v = pick(rng, BAD_VALUES.concat([[-64, -4], [64.5, 4], ["64", 4]]));
      return [`shape ${JSON.stringify(v)} on ${t}`, withEntry(t, (e) => void (e.shape = v))];
    },
    (t) => [`shape 10^12 elements on ${t}`, withEntry(t, (e) => {
      const [b0] = e.data_offsets as number[];
      e.shape = [1_000_000, 1_000_000];
      e.data_offsets = [b0!, b0! + 4e12];
    })],
    (t) => [`shape 2^60 elements, offsets unchanged, on ${t}`, withEntry(t, (e) => void (e.shape = [2 ** 30, 2 ** 30]))],
    () => {
      // a non-square matrix stored transposed: same bytes, wrong shape
      const t = pick(rng, names.filter((n) => tensors.get(n)!.shape.length === 2 && tensors.get(n)!.shape[0] !== tensors.get(n)!.shape[1]));
      return [`shape transposed on ${t}`, withEntry(t, (e) => void (e.shape = [...(e.shape as number[])].reverse()))];
    },
    (t) => {
      const v = pick(rng, BAD_VALUES.concat([[-4, 0], [4, 2], [0], [0, 1, 2], ["0", "4"], [1.5, 5.5], [2 ** 53, 2 ** 53 + 8]]));
      return [`data_offsets ${JSON.stringify(v)} on ${t}`, withEntry(t, (e) => void (e.data_offsets = v))];
    },
    (t) => [`offsets past the data on ${t}`, withEntry(t, (e) => {
      const [b0, e0] = e.data_offsets as number[];
      e.data_offsets = [b0! + data.length, e0! + data.length];
    })],
    (t) => [`offsets shifted into a neighbour on ${t}`, withEntry(t, (e) => {
      const [b0, e0] = e.data_offsets as number[];
      const d = 4 * (1 + rng.int(8));
      e.data_offsets = b0! >= d ? [b0! - d, e0! - d] : [b0! + d, e0! + d];
    })],
    (t) => [`entry of ${t} not an object`, withEntry(t, (e) => {
      for (const k of Object.keys(e)) delete e[k];
      e.x = 1;
    })],
    (t) => [`hole: ${t} left out, its bytes kept`, without(t, true)],
    (t) => [`tensor ${t} missing`, without(t, false)],
    () => [`trailing bytes`, Buffer.concat([good, Buffer.alloc(8 * (1 + rng.int(100)))])],
    () => [`__metadata__ ${pick(rng, ["not strings", "a list"])}`, joinSafetensors(tensors, undefined, rng.int(2) ? { format: 5 } : ["pt"])],
    () => [`empty file`, Buffer.alloc(0)],
    () => [`random bytes`, Buffer.from(Array.from({ length: 8 + rng.int(4000) }, () => rng.int(256)))],
    (t) => {
      // a header that names the first bytes twice, under a second name
      const dup = JSON.stringify({ dtype: tensors.get(t)!.dtype, shape: tensors.get(t)!.shape, data_offsets: [0, tensors.get(t)!.bytes.length] });
      return [`duplicate range for ${t}`, joinRaw(headerText.replace(/^\{/, `{"dup.${t}":${dup},`), data)];
    },
  ];
  const out: FuzzCase[] = [];
  for (let i = 0; i < n; i++) {
    const kind = kinds[i % kinds.length]!;
    const [what, bytes] = kind(pick(rng, names));
    out.push({ id: `safetensors/${i}: ${what}`, category: "safetensors", files: { ...folder(b.model, { "model.safetensors": bytes }), "data.txt": { link: b.data } }, args: modelCommand(rng), names: ["model.safetensors"] });
  }
  // sharded checkpoints: a broken model.safetensors.index.json
  const shardCases: [string, Record<string, FileSpec>][] = [
    ["index not JSON", { "model.safetensors.index.json": "{ weight_map" }],
    ["index without weight_map", { "model.safetensors.index.json": json({ metadata: {} }) }],
    ["index weight_map a list", { "model.safetensors.index.json": json({ weight_map: ["model.safetensors"] }) }],
    ["index names a missing shard", { "model.safetensors.index.json": json({ weight_map: Object.fromEntries(names.map((t, j) => [t, j === 3 ? "model-00002-of-00002.safetensors" : "model.safetensors"])) }) }],
    ["index shard path escapes the folder", { "model.safetensors.index.json": json({ weight_map: Object.fromEntries(names.map((t) => [t, "../model.safetensors"])) }) }],
    ["index maps a tensor the shard lacks", { "model.safetensors.index.json": json({ weight_map: { ...Object.fromEntries(names.map((t) => [t, "model.safetensors"])), "model.extra.weight": "model.safetensors" } }) }],
    ["index maps a shard to a number", { "model.safetensors.index.json": json({ weight_map: Object.fromEntries(names.map((t) => [t, 7])) }) }],
    ["index lists too few tensors", { "model.safetensors.index.json": json({ weight_map: Object.fromEntries(names.slice(0, 5).map((t) => [t, "model.safetensors"])) }) }],
  ];
  for (const [what, over] of shardCases) {
    out.push({ id: `safetensors/index: ${what}`, category: "safetensors", files: { ...folder(b.model, over), "data.txt": { link: b.data } }, args: modelCommand(rng), names: ["model.safetensors"] });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function configCases(rng: Rng, b: Bases, n: number): FuzzCase[] {
  const good = JSON.parse(fs.readFileSync(path.join(b.model, "config.json"), "utf8")) as Record<string, unknown>;
  const REQUIRED = ["architectures", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "vocab_size"];
  const INTS = ["hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings"];
  const MISTYPED: unknown[] = ["64", 64.5, true, null, [64], { v: 64 }, -64, 0, 1e20, Number.MAX_VALUE];
  const kinds: ((c: Record<string, unknown>) => string)[] = [
    (c) => {
      const f = pick(rng, REQUIRED);
      delete c[f];
      return `${f} missing`;
    },
    (c) => {
      const f = pick(rng, INTS);
      const v = pick(rng, MISTYPED);
      c[f] = v;
      return `${f} = ${JSON.stringify(v)}`;
    },
    (c) => {
      const v = pick(rng, [1e6, 1e9, 6, 100]);
      c.num_hidden_layers = v;
      return `num_hidden_layers ${v}`;
    },
    (c) => {
      const v = pick(rng, [0, -8, 3, 5, 7, 9, 64, 128]);
      c.num_attention_heads = v;
      return `num_attention_heads ${v}`;
    },
    (c) => {
      const v = pick(rng, [0, -4, 3, 5, 16, 7]);
      c.num_key_value_heads = v;
      return `num_key_value_heads ${v}`;
    },
    (c) => {
      const v = pick(rng, [0, 3, 7, 16, 32, -8, 8.5]);
      c.head_dim = v;
      return `head_dim ${v}`;
    },
    (c) => {
      const f = pick(rng, ["hidden_size", "intermediate_size", "vocab_size"]);
      const v = (c[f] as number) * pick(rng, [2, 3]) + pick(rng, [0, 8]);
      c[f] = v;
      return `${f} ${v} contradicts the tensors`;
    },
    (c) => {
      const v = pick(rng, ["gelu", "relu", "gelu_new", "bogus", 5, null, ""]);
      c.hidden_act = v;
      return `hidden_act ${JSON.stringify(v)}`;
    },
    (c) => {
      const v = pick(rng, [["GPT2LMHeadModel"], [], "LlamaForCausalLM", [5], null, ["BertModel", "LlamaForCausalLM"]]);
      c.architectures = v;
      return `architectures ${JSON.stringify(v)}`;
    },
    (c) => {
      const v = pick(rng, [{ type: "yarn", factor: 2 }, { type: "linear" }, { type: "linear", factor: -1 }, "linear", 5, { rope_type: "llama3", factor: 8 }, { type: "dynamic", factor: 2 }]);
      c.rope_scaling = v;
      return `rope_scaling ${JSON.stringify(v)}`;
    },
    (c) => {
      const f = pick(rng, ["rms_norm_eps", "rope_theta"]);
      const v = pick(rng, [-1, 0, "1e-5", null, []]);
      c[f] = v;
      return `${f} ${JSON.stringify(v)}`;
    },
    (c) => {
      const f = pick(rng, ["tie_word_embeddings", "attention_bias", "mlp_bias"]);
      const v = pick(rng, ["yes", 1, "false", []]);
      c[f] = v;
      return `${f} ${JSON.stringify(v)}`;
    },
    (c) => {
      const f = pick(rng, ["bos_token_id", "eos_token_id"]);
      const v = pick(rng, ["1", 1.5, [1, "2"], { id: 1 }]);
      c[f] = v;
      return `${f} ${JSON.stringify(v)}`;
    },
    (c) => {
      c.architectures = ["MistralForCausalLM"];
      const v = pick(rng, [0, -5, 1.5, "4096"]);
      c.sliding_window = v;
      return `Mistral sliding_window ${JSON.stringify(v)}`;
    },
    (c) => {
      c.attention_bias = true;
      return `attention_bias true without bias tensors`;
    },
    (c) => {
      c.tie_word_embeddings = false;
      return `untied embeddings without lm_head.weight`;
    },
  ];
  const out: FuzzCase[] = [];
  for (let i = 0; i < n; i++) {
    const c = structuredClone(good);
    const what = kinds[i % kinds.length]!(c);
    out.push({ id: `config/${i}: ${what}`, category: "config", files: { ...folder(b.model, { "config.json": json(c) }), "data.txt": { link: b.data } }, args: modelCommand(rng), names: ["config.json", "model.safetensors"] });
  }
  const whole: [string, FileSpec][] = [
    ["not JSON", "{ hidden_size: 64 }"],
    ["empty", ""],
    ["a JSON list", "[]"],
    ["a number", "42"],
    ["null", "null"],
    ["a byte-order mark and garbage", "\ufeff{"],
    ["missing", null],
    ["binary", Buffer.from([0xff, 0xfe, 0, 0, 0x7b])],
  ];
  for (const [what, spec] of whole) {
    out.push({ id: `config/file: ${what}`, category: "config", files: { ...folder(b.model, { "config.json": spec }), "data.txt": { link: b.data } }, args: modelCommand(rng), names: ["config.json"] });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function tokenizerCases(rng: Rng, b: Bases): FuzzCase[] {
  const tok = JSON.parse(fs.readFileSync(path.join(b.model, "tokenizer.json"), "utf8")) as { model: Record<string, unknown> } & Record<string, unknown>;
  const vocab = tok.model.vocab as Record<string, number>;
  const edits: [string, string, (t: typeof tok) => unknown][] = [
    ["tokenizer.json", "model missing", (t) => void delete (t as Record<string, unknown>).model],
    ["tokenizer.json", "model.type unknown", (t) => void (t.model.type = "Foo")],
    ["tokenizer.json", "vocab a list", (t) => void (t.model.vocab = Object.keys(vocab))],
    ["tokenizer.json", "vocab ids strings", (t) => void (t.model.vocab = Object.fromEntries(Object.entries(vocab).map(([k, v]) => [k, String(v)])))],
    ["tokenizer.json", "merges not pairs", (t) => void (t.model.merges = [5, 6])],
    ["tokenizer.json", "merges a string", (t) => void (t.model.merges = "a b")],
    ["tokenizer.json", "added_tokens not a list", (t) => void (t.added_tokens = { a: 1 })],
    ["tokenizer.json", "normalizer unknown", (t) => void (t.normalizer = { type: "Nope" })],
    ["tokenizer.json", "pre_tokenizer unknown", (t) => void (t.pre_tokenizer = { type: "Nope" })],
    ["tokenizer.json", "decoder unknown", (t) => void (t.decoder = { type: "Nope" })],
    ["tokenizer.json", "post_processor unknown", (t) => void (t.post_processor = { type: "Nope" })],
    // ids the model's embedding does not have: every common token moved past the vocabulary
    ["tokenizer.json", "token ids past the model's vocabulary", (t) => void (t.model.vocab = Object.fromEntries(Object.entries(vocab).map(([k, v]) => [k, v + 100_000])))],
    ["tokenizer.json", "one token id past the model's vocabulary", (t) => {
      const m = { ...vocab };
      for (const k of Object.keys(m)) if (k === "▁the" || k === "e" || k === "▁") m[k] = 600 + Object.keys(m).indexOf(k);
      t.model.vocab = m;
    }],
    ["tokenizer.json", "negative token ids", (t) => void (t.model.vocab = Object.fromEntries(Object.entries(vocab).map(([k, v]) => [k, -1 - v])))],
    ["tokenizer_config.json", "add_bos_token a string", () => ({ add_bos_token: "yes", bos_token: "<s>" })],
    ["tokenizer_config.json", "bos_token a number", () => ({ add_bos_token: true, bos_token: 1 })],
    ["tokenizer_config.json", "bos_token content a number", () => ({ add_bos_token: true, bos_token: { content: 1 } })],
    ["tokenizer_config.json", "a JSON list", () => [1, 2]],
    ["tokenizer_config.json", "a number", () => 5],
    ["tokenizer_config.json", "bos_token not in the vocabulary, add_bos_token true", () => ({ add_bos_token: true, bos_token: "<nope>" })],
  ];
  const out: FuzzCase[] = [];
  const cmd = () => pick(rng, [
    ["eval", "$W/model", "--data", "$W/data.txt", "--seqlen", "64", "--limit-windows", "1"],
    ["generate", "$W/model", "--prompt", "Once upon a time", "--max-new-tokens", "3", "--temperature", "0"],
    ["prune", "$W/model", "--method", "wanda", "--calib", "$W/data.txt", "--nsamples", "2", "--calib-seqlen", "32", "--out", "$W/out"],
  ]);
  for (const [file, what, edit] of edits) {
    let text: string;
    if (file === "tokenizer.json") {
      const t = structuredClone(tok);
      edit(t);
      text = json(t);
    } else text = json(edit(tok));
    out.push({ id: `tokenizer/${what}`, category: "tokenizer", files: { ...folder(b.model, { [file]: text }), "data.txt": { link: b.data } }, args: cmd(), names: [file] });
  }
  for (const [file, what, spec] of [
    ["tokenizer.json", "missing", null],
    ["tokenizer.json", "not JSON", "{"],
    ["tokenizer.json", "empty", ""],
    ["tokenizer.json", "a JSON list", "[]"],
    ["tokenizer.json", "empty object", "{}"],
    ["tokenizer_config.json", "not JSON", "{ bos"],
  ] as [string, string, FileSpec][]) {
    out.push({ id: `tokenizer/${file} ${what}`, category: "tokenizer", files: { ...folder(b.model, { [file]: spec }), "data.txt": { link: b.data } }, args: cmd(), names: [file] });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function recipeCases(rng: Rng, b: Bases): FuzzCase[] {
  const yaml: [string, string][] = [
    ["invalid YAML", "stages:\n  - method: sparsegpt\n   sparsity: 0.5\n"],
    ["unclosed quote", 'stages:\n  - method: "gptq\n'],
    ["tab indentation", "stages:\n\t- method: rtn\n"],
    ["empty file", ""],
    ["only a comment", "# nothing\n"],
    ["a scalar", "sparsegpt\n"],
    ["stages empty", "stages: []\n"],
    ["stages a map", "stages:\n  method: rtn\n"],
    ["a stage a string", "stages:\n  - sparsegpt\n"],
    ["a stage a list", "stages:\n  - [method, rtn]\n"],
    ["method missing", "stages:\n  - sparsity: 0.5\n"],
    ["unknown method", "stages:\n  - method: obc\n"],
    ["method a number", "stages:\n  - method: 5\n"],
    ["unknown key", "stages:\n  - method: rtn\n    bits: 4\n    grup_size: 32\n"],
    ["unknown top-level key", "stages:\n  - method: rtn\nsteps: 2\n"],
    ["sparsity 1.5", "stages:\n  - method: magnitude\n    sparsity: 1.5\n"],
    ["sparsity -0.1", "stages:\n  - method: magnitude\n    sparsity: -0.1\n"],
    ["sparsity a string", "stages:\n  - method: magnitude\n    sparsity: half\n"],
    ["sparsity 1", "stages:\n  - method: magnitude\n    sparsity: 1\n"],
    ["pattern 4:2", "stages:\n  - method: magnitude\n    pattern: \"4:2\"\n"],
    ["pattern 2:0", "stages:\n  - method: wanda\n    pattern: \"2:0\"\n"],
    ["pattern x", "stages:\n  - method: sparsegpt\n    pattern: x\n"],
    ["sparsity and pattern", "stages:\n  - method: magnitude\n    sparsity: 0.5\n    pattern: \"2:4\"\n"],
    ["bits 5", "stages:\n  - method: rtn\n    bits: 5\n"],
    ["bits 0", "stages:\n  - method: rtn\n    bits: 0\n"],
    ["bits a string", "stages:\n  - method: gptq\n    bits: \"4\"\n"],
    ["group_size 0", "stages:\n  - method: rtn\n    group_size: 0\n"],
    ["group_size -2", "stages:\n  - method: rtn\n    group_size: -2\n"],
    ["group_size 2.5", "stages:\n  - method: rtn\n    group_size: 2.5\n"],
    ["blocksize 0", "stages:\n  - method: gptq\n    blocksize: 0\n"],
    ["dampening -1", "stages:\n  - method: sparsegpt\n    dampening: -1\n"],
    ["targets an invalid regex", "stages:\n  - method: rtn\n    targets: [\"(\"]\n"],
    ["targets match nothing", "stages:\n  - method: rtn\n    targets: [\"no_such_linear\"]\n"],
    ["targets a string", "stages:\n  - method: rtn\n    targets: 5\n"],
    ["ignore everything", "stages:\n  - method: rtn\n    ignore: [\".\"]\n"],
    ["second stage broken", "stages:\n  - method: magnitude\n    sparsity: 0.5\n  - method: rtn\n    bits: 9\n"],
    ["alias bomb", "a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\nstages: [*f]\n"],
    ["10^4 stages, one broken", "stages:\n" + "  - method: magnitude\n    sparsity: 0.1\n".repeat(10_000) + "  - method: nope\n"],
    ["act_order on rtn", "stages:\n  - method: rtn\n    act_order: true\n"],
    ["bits on wanda", "stages:\n  - method: wanda\n    bits: 4\n"],
  ];
  const out: FuzzCase[] = [];
  for (const [what, text] of yaml) {
    out.push({
      id: `recipe/${what}`,
      category: "recipe",
      files: { ...folder(b.model, {}), "recipe.yaml": text, "data.txt": { link: b.data } },
      args: ["compress", "$W/model", "--recipe", "$W/recipe.yaml", "--calib", "$W/data.txt", "--nsamples", "2", "--calib-seqlen", "32", "--out", "$W/out"],
      names: ["recipe.yaml"],
    });
  }
  for (const [what, text] of [
    ["JSON trailing comma", '{"stages": [{"method": "rtn",}]}'],
    ["JSON stages null", '{"stages": null}'],
    ["JSON bits negative", '{"stages": [{"method": "gptq", "bits": -4}]}'],
    ["JSON a string", '"rtn"'],
  ] as [string, string][]) {
    out.push({
      id: `recipe/${what}`,
      category: "recipe",
      files: { ...folder(b.model, {}), "recipe.json": text, "data.txt": { link: b.data } },
      args: ["compress", "$W/model", "--recipe", "$W/recipe.json", "--out", "$W/out"],
      names: ["recipe.json"],
    });
  }
  out.push({ id: "recipe/missing file", category: "recipe", files: folder(b.model, {}), args: ["compress", "$W/model", "--recipe", "$W/recipe.yaml", "--out", "$W/out"], names: ["recipe.yaml"] });
  out.push({ id: "recipe/a folder", category: "recipe", files: { ...folder(b.model, {}), "recipe.yaml/x": "" }, args: ["compress", "$W/model", "--recipe", "$W/recipe.yaml", "--out", "$W/out"], names: ["recipe.yaml"] });
  void rng;
  return out;
}

// ---------------------------------------------------------------------------------------------

function compressedTensorsCases(rng: Rng, b: Bases, n: number): FuzzCase[] {
  const out: FuzzCase[] = [];
  // commands that read every weight (inspect reads headers and shapes only)
  const cmd = () => pick(rng, [
    ["eval", "$W/model", "--data", "$W/data.txt", "--seqlen", "64", "--limit-windows", "1"],
    ["export", "$W/model", "--to", "gguf", "--type", "q4_0", "--out", "$W/out.gguf"],
    ["export", "$W/model", "--to", "onnx", "--type", "q4", "--out", "$W/out-onnx"],
    ["prune", "$W/model", "--method", "magnitude", "--out", "$W/out"],
  ]);
  for (const [base, kind] of [[b.ctPack, "pack"], [b.ctBitmask, "bitmask"]] as const) {
    const config = JSON.parse(fs.readFileSync(path.join(base, "config.json"), "utf8")) as Record<string, unknown>;
    const st = splitSafetensors(fs.readFileSync(path.join(base, "model.safetensors")));
    const names = [...st.tensors.keys()];
    const ofSuffix = (s: string) => names.filter((x) => x.endsWith(s));
    // config.json: quantization_config broken
    const groups = (qc: Record<string, unknown>) => Object.values((qc.config_groups ?? {}) as Record<string, Record<string, unknown> & { weights: Record<string, unknown> }>);
    const packEdits: [string, (qc: Record<string, unknown>) => void][] = [
      ["format unknown", (qc) => void (qc.format = "int7-packed")],
      ["quant_method missing", (qc) => void delete qc.quant_method],
      ["config_groups missing", (qc) => void delete qc.config_groups],
      ["config_groups a list", (qc) => void (qc.config_groups = [])],
      ["config_groups empty", (qc) => void (qc.config_groups = {})],
      ["weights num_bits 5", (qc) => {
        for (const g of groups(qc)) if (g.weights) g.weights.num_bits = 5;
      }],
      ["weights num_bits a string", (qc) => {
        for (const g of groups(qc)) if (g.weights) g.weights.num_bits = "4";
      }],
      ["weights group_size 0", (qc) => {
        for (const g of groups(qc)) if (g.weights) g.weights.group_size = 0;
      }],
      ["weights group_size 7", (qc) => {
        for (const g of groups(qc)) if (g.weights) g.weights.group_size = 7;
      }],
      ["weights strategy unknown", (qc) => {
        for (const g of groups(qc)) if (g.weights) g.weights.strategy = "block";
      }],
      ["targets not a list", (qc) => {
        for (const g of groups(qc)) g.targets = "Linear";
      }],
      ["weights missing", (qc) => {
        for (const g of groups(qc)) delete (g as Record<string, unknown>).weights;
      }],
      ["quantization_config a list", (qc) => void Object.assign(qc, { __replace: [] })],
    ];
    const sparseEdits: [string, (qc: Record<string, unknown>) => void][] = [
      ["sparsity_config missing", (qc) => void delete qc.sparsity_config],
      ["sparsity_config format missing", (qc) => void delete (qc.sparsity_config as Record<string, unknown>).format],
      ["sparsity_config format unknown", (qc) => void ((qc.sparsity_config as Record<string, unknown>).format = "sparse-csr")],
      ["sparsity_config a string", (qc) => void (qc.sparsity_config = "sparse-bitmask")],
      ["sparsity_config targets a string", (qc) => void ((qc.sparsity_config as Record<string, unknown>).targets = "Linear")],
      ["quant_method unknown", (qc) => void (qc.quant_method = "gptq")],
      ["quantization_config a number", (qc) => void Object.assign(qc, { __replace: 4 })],
    ];
    const qcEdits = kind === "pack" ? packEdits : sparseEdits;
    for (const [what, edit] of qcEdits) {
      const c = structuredClone(config);
      const qc = (c.quantization_config ?? {}) as Record<string, unknown>;
      edit(qc);
      c.quantization_config = "__replace" in qc ? qc.__replace : qc;
      out.push({ id: `compressed-tensors/${kind}: ${what}`, category: "compressed-tensors", files: { ...folder(base, { "config.json": json(c) }), "data.txt": { link: b.data } }, args: cmd(), names: ["config.json", "model.safetensors"] });
    }
    // model.safetensors: tensors broken (consistently with their headers)
    const retensor = (change: (m: Map<string, RawTensor>) => void) => {
      const m = new Map(st.tensors);
      change(m);
      return joinSafetensors(m, undefined, st.metadata);
    };
    const f32 = (shape: number[], fill: number) => {
      const a = new Float32Array(shape.reduce((x, y) => x * y, 1)).fill(fill);
      return { dtype: "F32", shape, bytes: Buffer.from(a.buffer) };
    };
    const i32 = (shape: number[], fill: number) => {
      const a = new Int32Array(shape.reduce((x, y) => x * y, 1)).fill(fill);
      return { dtype: "I32", shape, bytes: Buffer.from(a.buffer) };
    };
    const tensorEdits: [string, (m: Map<string, RawTensor>, t: string) => void, string][] =
      kind === "pack"
        ? [
            ["scale with one group too many", (m, t) => { const s = m.get(t)!; m.set(t, f32([s.shape[0]!, s.shape[1]! + 1], 0.1)); }, "weight_scale"],
            ["scale 1-D", (m, t) => { const s = m.get(t)!; m.set(t, f32([s.shape[0]!], 0.1)); }, "weight_scale"],
            ["scale missing", (m, t) => void m.delete(t), "weight_scale"],
            ["zero point of the wrong shape", (m, t) => { const s = m.get(t)!; m.set(t, i32([s.shape[0]! + 1, s.shape[1] ?? 1], 0)); }, "weight_zero_point"],
            ["packed words one short", (m, t) => { const s = m.get(t)!; m.set(t, i32([s.shape[0]!, s.shape[1]! - 1], 0)); }, "weight_packed"],
            ["packed F32", (m, t) => { const s = m.get(t)!; m.set(t, f32(s.shape, 0)); }, "weight_packed"],
            ["packed missing", (m, t) => void m.delete(t), "weight_packed"],
            ["weight_shape [64, 999]", (m, t) => void m.set(t, { dtype: "I64", shape: [2], bytes: Buffer.from(BigInt64Array.of(64n, 999n).buffer) }), "weight_shape"],
            ["weight_shape 3 values", (m, t) => void m.set(t, { dtype: "I64", shape: [3], bytes: Buffer.from(BigInt64Array.of(64n, 64n, 1n).buffer) }), "weight_shape"],
            ["weight_shape negative", (m, t) => void m.set(t, { dtype: "I64", shape: [2], bytes: Buffer.from(BigInt64Array.of(-64n, 64n).buffer) }), "weight_shape"],
            ["weight_shape 10^12", (m, t) => void m.set(t, { dtype: "I64", shape: [2], bytes: Buffer.from(BigInt64Array.of(1_000_000n, 1_000_000n).buffer) }), "weight_shape"],
            ["weight_shape F32", (m, t) => void m.set(t, f32([2], 64)), "weight_shape"],
            ["weight_shape missing", (m, t) => void m.delete(t), "weight_shape"],
            ["scale NaN-free but zero-size", (m, t) => { const s = m.get(t)!; m.set(t, f32([0, s.shape[1] ?? 1], 0)); }, "weight_scale"],
            ["g_idx out of range", (m, t) => void m.set(t, i32([64], 1_000_000)), "weight_g_idx"],
          ]
        : [
            ["bitmask one row short", (m, t) => { const s = m.get(t)!; m.set(t, { dtype: "U8", shape: [s.shape[0]! - 1, s.shape[1]!], bytes: s.bytes.subarray(0, s.bytes.length - s.shape[1]!) }); }, "bitmask"],
            ["bitmask all ones (more bits than values)", (m, t) => { const s = m.get(t)!; m.set(t, { ...s, bytes: Buffer.alloc(s.bytes.length, 0xff) }); }, "bitmask"],
            ["bitmask I32", (m, t) => { const s = m.get(t)!; m.set(t, { dtype: "I32", shape: [s.shape[0]!, s.shape[1]! / 4], bytes: s.bytes }); }, "bitmask"],
            ["bitmask missing", (m, t) => void m.delete(t), "bitmask"],
            ["row_offsets past the values", (m, t) => { const s = m.get(t)!; m.set(t, { ...s, bytes: Buffer.from(new Int32Array(s.bytes.length / 4).fill(1_000_000).buffer) }); }, "row_offsets"],
            ["row_offsets decreasing", (m, t) => { const s = m.get(t)!; m.set(t, { ...s, bytes: Buffer.from(Int32Array.from({ length: s.bytes.length / 4 }, (_, i) => 1000 - i).buffer) }); }, "row_offsets"],
            ["compressed values one short", (m, t) => { const s = m.get(t)!; m.set(t, { dtype: s.dtype, shape: [s.shape[0]! - 1], bytes: s.bytes.subarray(0, s.bytes.length - (s.dtype === "F32" ? 4 : 2)) }); }, ".weight"],
            ["shape [64, 999]", (m, t) => void m.set(t, { dtype: "I64", shape: [2], bytes: Buffer.from(BigInt64Array.of(64n, 999n).buffer) }), ".shape"],
            ["shape 10^12", (m, t) => void m.set(t, { dtype: "I64", shape: [2], bytes: Buffer.from(BigInt64Array.of(1_000_000n, 1_000_000n).buffer) }), ".shape"],
            ["shape missing", (m, t) => void m.delete(t), ".shape"],
          ];
    for (let i = 0; i < n; i++) {
      const [what, edit, suffix] = tensorEdits[i % tensorEdits.length]!;
      const candidates = ofSuffix(suffix).filter((x) => x.includes("layers."));
      const t = candidates.length ? pick(rng, candidates) : `model.layers.${rng.int(5)}.mlp.down_proj.${suffix.replace(/^\./, "")}`;
      const bytes = retensor((m) => edit(m, t));
      out.push({ id: `compressed-tensors/${kind}: ${what} (${t})`, category: "compressed-tensors", files: { ...folder(base, { "model.safetensors": bytes }), "data.txt": { link: b.data } }, args: cmd(), names: ["model.safetensors"] });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------

function ggufCases(rng: Rng, b: Bases, n: number): FuzzCase[] {
  const good = fs.readFileSync(b.gguf);
  const L = ggufLayout(good);
  const u32 = (pos: number, v: number) => {
    const c = Buffer.from(good);
    c.writeUInt32LE(v >>> 0, pos);
    return c;
  };
  const u64 = (pos: number, v: bigint) => {
    const c = Buffer.from(good);
    c.writeBigUInt64LE(v, pos);
    return c;
  };
  const big = () => pick(rng, [2n ** 64n - 1n, 2n ** 63n, 10n ** 12n, 2n ** 40n, 2n ** 32n + 1n]);
  const kinds: (() => [string, Buffer])[] = [
    () => {
      const at = rng.int(L.headerEnd + 64);
      return [`truncated at ${at}`, good.subarray(0, at)];
    },
    () => [`truncated in the data`, good.subarray(0, L.headerEnd + 64 + rng.int(good.length - L.headerEnd - 64))],
    () => [`magic`, u32(0, pick(rng, [0, 0x46554748, 0x47475546, 0xffffffff]))],
    () => {
      const v = pick(rng, [0, 1, 4, 0xffffffff]);
      return [`version ${v}`, u32(4, v)];
    },
    () => {
      const v = big();
      return [`tensor count ${v}`, u64(8, v)];
    },
    () => {
      const v = big();
      return [`key/value count ${v}`, u64(16, v)];
    },
    () => {
      const kv = pick(rng, L.kvs);
      const v = big();
      return [`key length ${v} of "${kv.key}"`, u64(kv.keyLen, v)];
    },
    () => {
      const kv = pick(rng, L.kvs);
      const v = pick(rng, [13, 99, 0xffffffff]);
      return [`value type ${v} of "${kv.key}"`, u32(kv.typePos, v)];
    },
    () => {
      const kv = pick(rng, L.kvs.filter((k) => k.type === 8 || k.type === 9));
      const pos = kv.type === 9 ? kv.arrayLenPos! : kv.valuePos;
      const v = big();
      return [`${kv.type === 9 ? "array" : "string"} length ${v} of "${kv.key}"`, u64(pos, v)];
    },
    () => {
      const kv = pick(rng, L.kvs.filter((k) => k.type === 9));
      const v = pick(rng, [9, 13, 99]);
      return [`array item type ${v} of "${kv.key}"`, u32(kv.valuePos, v)];
    },
    () => {
      const t = pick(rng, L.tensors);
      const v = pick(rng, [0, 5, 100, 0xffffffff]);
      return [`n_dims ${v} of ${t.name}`, u32(t.nDims, v)];
    },
    () => {
      const t = pick(rng, L.tensors);
      const v = pick(rng, [0n, 3n, 10n ** 12n, 2n ** 63n, 2n ** 64n - 1n]);
      return [`dim ${v} of ${t.name}`, u64(pick(rng, t.dims), v)];
    },
    () => {
      const t = pick(rng, L.tensors);
      const v = pick(rng, [4, 5, 40, 99, 0xffffffff]);
      return [`type ${v} of ${t.name}`, u32(t.typePos, v)];
    },
    () => {
      const t = pick(rng, L.tensors);
      const v = pick(rng, [1n, 31n, BigInt(good.length), 2n ** 62n, 2n ** 64n - 32n]);
      return [`data offset ${v} of ${t.name}`, u64(t.offsetPos, v)];
    },
    () => {
      // two tensors at the same offset
      const [a, c] = [L.tensors[0]!, L.tensors[1 + rng.int(L.tensors.length - 1)]!];
      return [`${c.name} at ${a.name}'s offset`, u64(c.offsetPos, good.readBigUInt64LE(a.offsetPos))];
    },
    () => {
      const t = pick(rng, L.tensors);
      const c = Buffer.from(good);
      c.writeBigUInt64LE(good.readBigUInt64LE(L.tensors[0]!.nameLen), t.nameLen);
      return [`name length of ${t.name} changed`, c];
    },
  ];
  const out: FuzzCase[] = [];
  for (let i = 0; i < n; i++) {
    const [what, bytes] = kinds[i % kinds.length]!();
    out.push({ id: `gguf/${i}: ${what}`, category: "gguf", files: { "model.gguf": bytes }, args: ["inspect", "$W/model.gguf", ...(rng.int(2) ? ["--json"] : [])], names: ["model.gguf"] });
  }
  for (const [what, spec] of [["empty", Buffer.alloc(0)], ["text", "GGUF is a file format\n"], ["random bytes", Buffer.from(Array.from({ length: 5000 }, () => rng.int(256)))]] as [string, FileSpec][]) {
    out.push({ id: `gguf/${what}`, category: "gguf", files: { "model.gguf": spec }, args: ["inspect", "$W/model.gguf"], names: ["model.gguf"] });
  }
  out.push({ id: "gguf/a folder named .gguf", category: "gguf", files: { "model.gguf/x": "" }, args: ["inspect", "$W/model.gguf"], names: ["model.gguf"] });
  out.push({ id: "gguf/missing", category: "gguf", files: {}, args: ["inspect", "$W/model.gguf"], names: ["model.gguf"] });
  return out;
}

// ---------------------------------------------------------------------------------------------

function flagCases(rng: Rng, b: Bases): FuzzCase[] {
  const M = "$W/model";
  const D = "$W/data.txt";
  const calib = ["--calib", D, "--nsamples", "2", "--calib-seqlen", "32"];
  const list: [string[], string[]][] = [
    [["eval", M, "--data", D, "--seqlen", "abc"], ["--seqlen"]],
    [["eval", M, "--data", D, "--seqlen", "-5"], ["--seqlen"]],
    [["eval", M, "--data", D, "--seqlen", "1"], ["--seqlen"]],
    [["eval", M, "--data", D, "--seqlen", "1e9"], ["--seqlen"]],
    [["eval", M, "--data", D, "--seqlen", "100000"], ["--seqlen"]],
    [["eval", M, "--data", D, "--seqlen", "NaN"], ["--seqlen"]],
    [["eval", M, "--data", D, "--seqlen", "64.5"], ["--seqlen"]],
    [["eval", M, "--data", D, "--limit-windows", "0"], ["--limit-windows"]],
    [["eval", M, "--data", D, "--dataset", "imdb"], ["--dataset"]],
    [["eval", M], ["--data"]],
    [["eval", M, "--data", "$W/nope.txt"], ["nope.txt"]],
    [["eval", M, "--data", "$W/empty.txt", "--seqlen", "64"], ["empty.txt"]],
    [["eval", M, "--data", "$W/tiny.txt", "--seqlen", "512"], ["tiny.txt"]],
    [["eval", M, "--data", "$W/bad.jsonl", "--seqlen", "64"], ["bad.jsonl"]],
    [["eval", M, "--data", D, "--reference", "$W/nope"], ["nope"]],
    [["eval", M, "--data", D, "--bogus"], ["--bogus"]],
    [["generate", M, "--max-new-tokens", "-1"], ["--max-new-tokens"]],
    [["generate", M, "--temperature", "-1"], ["--temperature"]],
    [["generate", M, "--top-p", "2"], ["--top-p"]],
    [["generate", M, "--top-k", "x"], ["--top-k"]],
    [["generate", M, "--seed", "1.5"], ["--seed"]],
    [["generate", "$W/nope"], ["nope"]],
    [["generate", D], ["data.txt"]],
    [["prune", M, "--method", "obs", "--out", "$W/out"], ["--method", "obs"]],
    [["prune", M, "--method", "magnitude", "--sparsity", "1.5", "--out", "$W/out"], ["--sparsity"]],
    [["prune", M, "--method", "magnitude", "--sparsity", "-0.5", "--out", "$W/out"], ["--sparsity"]],
    [["prune", M, "--method", "magnitude", "--sparsity", "1", "--out", "$W/out"], ["--sparsity"]],
    [["prune", M, "--method", "magnitude", "--pattern", "4:2", "--out", "$W/out"], ["--pattern", "4:2"]],
    [["prune", M, "--method", "magnitude", "--pattern", "0:4", "--out", "$W/out"], ["--pattern", "0:4"]],
    [["prune", M, "--method", "magnitude", "--pattern", "a:b", "--out", "$W/out"], ["--pattern", "a:b"]],
    [["prune", M, "--method", "magnitude", "--sparsity", "0.5", "--pattern", "2:4", "--out", "$W/out"], ["--sparsity", "--pattern"]],
    [["prune", M, "--method", "magnitude", "--magnitude-scope", "column", "--out", "$W/out"], ["--magnitude-scope", "column"]],
    [["prune", M, "--method", "wanda", "--out", "$W/out"], ["--calib"]],
    [["prune", M, "--method", "sparsegpt", "--out", "$W/out", ...calib, "--blocksize", "0"], ["--blocksize"]],
    [["prune", M, "--method", "sparsegpt", "--out", "$W/out", ...calib, "--dampening", "-1"], ["--dampening"]],
    [["prune", M, "--method", "sparsegpt", "--out", "$W/out", ...calib, "--bits", "5"], ["--bits"]],
    [["prune", M, "--method", "wanda", "--out", "$W/out", ...calib, "--bits", "4"], ["--bits"]],
    [["prune", M, "--method", "wanda", "--out", "$W/out", "--calib", D, "--nsamples", "0"], ["--nsamples"]],
    [["prune", M, "--method", "wanda", "--out", "$W/out", "--calib", D, "--calib-seqlen", "100000"], ["--calib-seqlen"]],
    [["prune", M, "--method", "wanda", "--out", "$W/out", "--calib", D, "--calib-sampling", "middle"], ["--calib-sampling"]],
    [["prune", M, "--method", "wanda", "--out", "$W/out", "--calib", "$W/nope.txt"], ["nope.txt"]],
    [["prune", M, "--method", "wanda", "--out", "$W/out", "--calib", "$W/empty.txt", "--nsamples", "2", "--calib-seqlen", "32"], ["empty.txt"]],
    [["prune", M, "--method", "wanda", "--out", "$W/out", "--calib", "$W/tiny.txt", "--nsamples", "128", "--calib-seqlen", "256", "--calib-sampling", "first"], ["tiny.txt"]],
    [["prune", M, "--method", "magnitude", "--out", "$W/out", "--targets", "("], ["--targets", "("]],
    [["prune", M, "--method", "magnitude", "--out", "$W/out", "--targets", "no_such_linear"], ["--targets", "no_such_linear"]],
    [["prune", M, "--method", "magnitude", "--out", "$W/out", "--ignore", "["], ["--ignore", "["]],
    [["prune", M, "--method", "magnitude", "--out", "$W/out", "--format", "csr"], ["--format"]],
    [["prune", M, "--method", "magnitude", "--out", "$W/out", "--dtype", "fp8"], ["--dtype"]],
    [["prune", M, "--method", "magnitude"], ["--out"]],
    [["prune", M, "--method", "magnitude", "--out", "$W/data.txt/out"], ["data.txt"]],
    [["quantize", M, "--method", "rtn", "--bits", "5", "--out", "$W/out"], ["--bits"]],
    [["quantize", M, "--method", "rtn", "--bits", "0", "--out", "$W/out"], ["--bits"]],
    [["quantize", M, "--method", "rtn", "--group-size", "0", "--out", "$W/out"], ["--group-size"]],
    [["quantize", M, "--method", "rtn", "--group-size", "abc", "--out", "$W/out"], ["--group-size"]],
    [["quantize", M, "--method", "rtn", "--group-size", "-7", "--out", "$W/out"], ["--group-size"]],
    [["quantize", M, "--method", "awq", "--out", "$W/out"], ["--method", "awq"]],
    [["quantize", M, "--method", "rtn", "--act-order", "--out", "$W/out"], ["--act-order"]],
    [["quantize", M, "--method", "gptq", "--out", "$W/out"], ["--calib"]],
    [["quantize", M, "--method", "rtn", "--format", "sparse-bitmask", "--out", "$W/out"], ["--format", "sparse-bitmask"]],
    [["export", M, "--to", "tflite", "--out", "$W/out"], ["--to"]],
    [["export", M, "--to", "gguf", "--type", "q5_1", "--out", "$W/out.gguf"], ["--type"]],
    [["export", M, "--to", "onnx", "--type", "q4", "--group-size", "0", "--out", "$W/out"], ["--group-size"]],
    [["export", M, "--to", "onnx", "--type", "q4", "--group-size", "7", "--out", "$W/out"], ["--group-size"]],
    [["export", M, "--to", "gguf"], ["--out"]],
    [["run", M, "--dtype", "int3"], ["--dtype"]],
    [["run", "$W/nope"], ["nope"]],
    [["inspect"], ["model"]],
    [["inspect", "$W/nope"], ["nope"]],
    [["frobnicate", M], ["frobnicate"]],
    [["compress", M, "--out", "$W/out"], ["--recipe"]],
  ];
  const files: Record<string, FileSpec> = {
    ...folder(b.model, {}),
    "data.txt": { link: b.data },
    "empty.txt": "",
    "tiny.txt": "Once upon a time.",
    "bad.jsonl": '{"text": "a"}\n{"txt": 5}\nnot json\n',
  };
  void rng;
  return list.map(([args, names], i) => ({ id: `flags/${i}: ${args.slice(2).join(" ")}`, category: "flags", files, args, names }));
}

/** Every case, in a fixed order for a given seed. */
export function fuzzCases(bases: Bases, seed = 1): FuzzCase[] {
  const rng = new Rng(seed);
  return [
    ...safetensorsCases(rng, bases, 80),
    ...configCases(rng, bases, 56),
    ...tokenizerCases(rng, bases),
    ...recipeCases(rng, bases),
    ...compressedTensorsCases(rng, bases, 15),
    ...ggufCases(rng, bases, 64),
    ...flagCases(rng, bases),
  ];
}
