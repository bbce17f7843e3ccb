#!/usr/bin/env python3
"""A yardstick, never a topiary dependency: trains a tiny Llama-architecture model on text that is
not in ../shared, so that topiary's compression and recovery can be checked on a model and text it
was not developed on (issues 12 and 13: "build the general method, do not tune it to stories260K").

Text: the GNU info manuals that Debian installs under /usr/share/info (coreutils, grep, sed, find,
gzip, diffutils, gettext, gnupg, wget, bc, ed, ...; GFDL/GPL documentation), decompressed, the info
node separators and "File: … Node: …" header lines removed. Split by node: every 10th node of every
manual goes to test.txt, every 10th node from the 5th on to valid.txt (used to pick the checkpoint),
the rest to train.txt, so no node is in two of them.

Model: LlamaForCausalLM, 6 layers, hidden 192, 6 query heads / 2 KV heads (GQA, head_dim 32),
SwiGLU 512, RoPE, untied embeddings, context 512; its own byte-level BPE tokenizer (4096 tokens,
trained with `tokenizers` on train.txt only), BOS <s> added in front of every text. Trained with
AdamW (warm-up, cosine to 10 %) on seeded random 512-token windows of train.txt for --steps steps;
the validation loss is measured every 100 steps and the best checkpoint is saved with
save_pretrained (safetensors) + tokenizer.json + tokenizer_config.json.

  python3.11 -m venv /work/venv
  /work/venv/bin/pip install --no-index --find-links /opt/wheels --find-links /opt/pypi/files \
      --find-links /opt/pypi-more/files torch==2.13.0+cpu transformers tokenizers safetensors
  /work/venv/bin/python scripts/train-tiny-llama.py --out /work/othermodel --threads 2

--stage prepare writes OUT/data/{train,valid,test}.txt (+ sources.txt: each info file's sha256) and
OUT/model/tokenizer*.json; --stage train reads them and writes the model (--device cuda when there
is a GPU: the checked model was trained that way, 1,500 steps in about a minute; on 2 loaded CPU
cores a step takes several seconds). --stage all (default) does both.
"""
import argparse
import glob
import gzip
import hashlib
import json
import math
import os
import re
import time

p = argparse.ArgumentParser()
p.add_argument("--out", required=True)
p.add_argument("--info-dir", default="/usr/share/info")
p.add_argument("--stage", choices=["prepare", "train", "all"], default="all")
p.add_argument("--steps", type=int, default=1500)
p.add_argument("--device", default="cpu")
p.add_argument("--threads", type=int, default=2)
p.add_argument("--vocab", type=int, default=4096)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--seqlen", type=int, default=512)
p.add_argument("--lr", type=float, default=3e-3)
p.add_argument("--seed", type=int, default=0)
args = p.parse_args()

import torch  # noqa: E402  (after argparse so --help is fast)
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

torch.set_num_threads(args.threads)
torch.manual_seed(args.seed)
data_dir = os.path.join(args.out, "data")
model_dir = os.path.join(args.out, "model")
os.makedirs(data_dir, exist_ok=True)



# ---- corpus ---------------------------------------------------------------------------------
def info_nodes(path):
    """Nodes of one compressed info file, without the separator and header line."""
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        text = f.read()
    nodes = []
    for chunk in text.split("\x1f"):
        lines = chunk.strip("\n").split("\n")
        if lines and lines[0].startswith("File: "):
            lines = lines[1:]
        body = "\n".join(lines).strip("\n")
        # Tag tables and indirect tables are machine data, not prose.
        if not body or body.startswith("Tag Table:") or body.startswith("Indirect:") or body.startswith("End Tag Table"):
            continue
        body = body.replace("\x7f", "").replace("\x00", "").replace("\x08", "")
        nodes.append(body)
    return nodes


def prepare():
    files = sorted(glob.glob(os.path.join(args.info_dir, "*.info*.gz")))
    splits, sources = {"train": [], "valid": [], "test": []}, []
    for path in files:
        nodes = info_nodes(path)
        for i, node in enumerate(nodes):
            splits["test" if i % 10 == 9 else "valid" if i % 10 == 4 else "train"].append(node)
        with open(path, "rb") as f:
            sources.append(f"{os.path.basename(path)}\t{len(nodes)} nodes\tsha256 {hashlib.sha256(f.read()).hexdigest()}")
    texts = {k: "\n\n".join(v) + "\n" for k, v in splits.items()}
    for k, text in texts.items():
        with open(os.path.join(data_dir, f"{k}.txt"), "w", encoding="utf-8") as f:
            f.write(text)
    with open(os.path.join(data_dir, "sources.txt"), "w") as f:
        f.write("\n".join(sources) + "\n")
    print(f"corpus: {len(files)} info files; " + ", ".join(f"{k} {len(t)} chars ({len(splits[k])} nodes)" for k, t in texts.items()))

    # Tokenizer: GPT-2-style byte-level BPE on train.txt only, BOS <s> in front of every text.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=args.vocab,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    train_text = texts["train"]
    tok.train_from_iterator([train_text[i : i + 100000] for i in range(0, len(train_text), 100000)], trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)])
    os.makedirs(model_dir, exist_ok=True)
    tok.save(os.path.join(model_dir, "tokenizer.json"))
    with open(os.path.join(model_dir, "tokenizer_config.json"), "w") as f:
        json.dump(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": "<s>",
                "eos_token": "</s>",
                "unk_token": "<unk>",
                "add_bos_token": True,
                "add_eos_token": False,
                "model_max_length": args.seqlen,
                "clean_up_tokenization_spaces": False,
            },
            f,
            indent=2,
        )


def perplexity(model, ids, device, limit=None):
    """topiary's `eval` protocol: BOS once at the start, non-overlapping windows of seqlen."""
    n = len(ids) // args.seqlen
    if limit:
        n = min(n, limit)
    nll, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for w in range(0, n, 16):
            x = torch.tensor([ids[v * args.seqlen : (v + 1) * args.seqlen] for v in range(w, min(n, w + 16))], device=device)
            logits = model(input_ids=x).logits[:, :-1].double()
            nll += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1), reduction="sum").item()
            count += x.shape[0] * (args.seqlen - 1)
    model.train()
    return math.exp(nll / count)


def train():
    device = torch.device(args.device)
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    read = lambda k: open(os.path.join(data_dir, f"{k}.txt"), encoding="utf-8").read()  # noqa: E731
    train_ids = tok.encode(read("train")).ids
    valid_ids = tok.encode(read("valid")).ids
    test_ids = tok.encode(read("test")).ids
    print(f"tokenizer: {tok.get_vocab_size()} tokens; train {len(train_ids)}, valid {len(valid_ids)}, test {len(test_ids)} tokens")
    data = torch.tensor(train_ids[1:], dtype=torch.long)  # the window gets its own BOS

    config = LlamaConfig(
        vocab_size=tok.get_vocab_size(),
        hidden_size=192,
        intermediate_size=512,
        num_hidden_layers=6,
        num_attention_heads=6,
        num_key_value_heads=2,
        max_position_embeddings=args.seqlen,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=False,
        bos_token_id=bos,
        eos_token_id=eos,
        hidden_act="silu",
    )
    model = LlamaForCausalLM(config).to(device)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, on {device}")
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1)
    gen = torch.Generator().manual_seed(args.seed)
    warmup = 50
    best = (float("inf"), 0, None)
    t0 = time.time()
    for step in range(1, args.steps + 1):
        lr = args.lr * min(1.0, step / warmup) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, len(data) - args.seqlen, (args.batch,), generator=gen).tolist()
        x = torch.stack([torch.cat([torch.tensor([bos]), data[s : s + args.seqlen - 1]]) for s in starts]).to(device)
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == args.steps:
            v = perplexity(model, valid_ids, device)
            if v < best[0]:
                best = (v, step, {k: t.detach().cpu().clone() for k, t in model.state_dict().items()})
            print(f"step {step} loss {loss.item():.4f} lr {lr:.2e} valid ppl {v:.3f} {(time.time() - t0):.0f} s", flush=True)
    print(f"trained {args.steps} steps x {args.batch} x {args.seqlen} tokens in {time.time() - t0:.0f} s; best valid ppl {best[0]:.3f} at step {best[1]}")
    model.load_state_dict(best[2])
    model = model.to("cpu")
    model.generation_config.bos_token_id = bos
    model.generation_config.eos_token_id = eos
    model.save_pretrained(model_dir, safe_serialization=True)
    print(f"test perplexity (torch float32, seqlen {args.seqlen}): {perplexity(model, test_ids, 'cpu'):.4f}")


if args.stage in ("prepare", "all"):
    prepare()
if args.stage in ("train", "all"):
    train()
