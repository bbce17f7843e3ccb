#!/usr/bin/env python3
"""A yardstick, never a topiary dependency: loads a model folder that topiary wrote in transformers
and compares its logits with topiary's on the first 512 tokens of a text (topiary's come from
scripts/dump-logits.ts). Prints max |Δ| of the logits, the largest logit, greedy (top-1)
agreement, and whether both tokenizers give the same ids.

  TOPIARY_TORCH_PYTHON=/work/venv/bin/python; $TOPIARY_TORCH_PYTHON scripts/compare-logits.py <model> <text>
"""
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

model_dir, text_file = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with tempfile.TemporaryDirectory() as tmp:
    prefix = os.path.join(tmp, "logits")
    subprocess.run(["npx", "tsx", os.path.join(root, "scripts/dump-logits.ts"), model_dir, text_file, prefix], check=True, cwd=root)
    meta = json.load(open(prefix + ".json"))
    ours = np.fromfile(prefix + ".f32", dtype="<f4").reshape(len(meta["ids"]), meta["vocab"])

ids = meta["ids"]
tok = AutoTokenizer.from_pretrained(model_dir)
theirs_ids = tok(open(text_file, encoding="utf-8").read()[: len(ids) * 16])["input_ids"][: len(ids)]
model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
model.eval()
with torch.no_grad():
    theirs = model(input_ids=torch.tensor([ids])).logits[0].numpy()
d = np.abs(theirs - ours)
print(
    f"{os.path.basename(model_dir.rstrip('/'))}: transformers vs topiary on {len(ids)} tokens: max |Δ logit| {d.max():.3g} "
    f"(max |logit| {np.abs(theirs).max():.3g}), top-1 agree {np.mean(theirs.argmax(-1) == ours.argmax(-1)) * 100:.2f} %, "
    f"same token ids: {theirs_ids == ids}"
)
