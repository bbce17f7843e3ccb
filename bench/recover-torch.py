#!/usr/bin/env python3
"""PyTorch yardstick for bench/recover.ts (never a topiary dependency): the same training step on
the same shapes — one TinyLlama-1.1B-shaped decoder block (hidden 2048, 32 query / 4 KV heads of
64, rotate-half RoPE, causal attention, SwiGLU 5632, RMSNorm), batch B × T tokens, float32 —
split into forward, backward (gradients of the seven linears and of the block input, as topiary's
block backward returns them) and a masked AdamW step over the seven linears (50 % of each weight
masked, re-applied after the update, as topiary's AdamW keeps pruned weights at zero).

The backward is PyTorch's autograd as a user runs it (activations kept from the forward, nothing
recomputed). Times: best of --repeats after one warm-up, wall and CPU seconds of this process
(time.process_time, all threads). Prints one JSON object on the last line.

  python bench/recover-torch.py --batch 4 --seqlen 512 --repeats 2 --threads 2
"""
import argparse
import json
import math
import time

import torch

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=4)
p.add_argument("--seqlen", type=int, default=512)
p.add_argument("--repeats", type=int, default=2)
p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
args = p.parse_args()
if args.threads > 0:
    torch.set_num_threads(args.threads)
torch.manual_seed(0)

D, H, KV, HD, F = 2048, 32, 4, 64, 5632
B, T = args.batch, args.seqlen


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        lin = lambda i, o: torch.nn.Linear(i, o, bias=False)  # noqa: E731
        self.q, self.k, self.v, self.o = lin(D, H * HD), lin(D, KV * HD), lin(D, KV * HD), lin(H * HD, D)
        self.gate, self.up, self.down = lin(D, F), lin(D, F), lin(F, D)
        self.n1 = torch.nn.Parameter(torch.ones(D), requires_grad=False)
        self.n2 = torch.nn.Parameter(torch.ones(D), requires_grad=False)
        inv = 1.0 / (10000.0 ** (torch.arange(0, HD, 2).float() / HD))
        ang = torch.outer(torch.arange(T).float(), inv)
        self.register_buffer("cos", torch.cat([ang.cos(), ang.cos()], -1))
        self.register_buffer("sin", torch.cat([ang.sin(), ang.sin()], -1))

    @staticmethod
    def rms(x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5) * w

    def rope(self, x):
        x1, x2 = x[..., : HD // 2], x[..., HD // 2 :]
        return x * self.cos + torch.cat([-x2, x1], -1) * self.sin

    def forward(self, x):
        h = self.rms(x, self.n1)
        q = self.rope(self.q(h).view(B, T, H, HD).transpose(1, 2))
        k = self.rope(self.k(h).view(B, T, KV, HD).transpose(1, 2))
        v = self.v(h).view(B, T, KV, HD).transpose(1, 2)
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, H * HD))
        h = self.rms(x, self.n2)
        return x + self.down(torch.nn.functional.silu(self.gate(h)) * self.up(h))


block = Block()
with torch.no_grad():
    for m in (block.q, block.k, block.v, block.o, block.gate, block.up, block.down):
        m.weight.normal_(0, 0.02)
weights = [m.weight for m in (block.q, block.k, block.v, block.o, block.gate, block.up, block.down)]
masks = [(torch.arange(w.numel()) % 2 == 0).float().view_as(w) for w in weights]
with torch.no_grad():
    for w, m in zip(weights, masks):
        w.mul_(m)
opt = torch.optim.AdamW(weights, lr=1e-4, weight_decay=0.0)
x0 = torch.sin(0.37 * torch.arange(B * T * D, dtype=torch.float32)).view(B, T, D)
grad_out = 1e-3 * torch.cos(0.11 * torch.arange(B * T * D, dtype=torch.float32)).view(B, T, D)


def timed(fn):
    c0, t0 = time.process_time(), time.perf_counter()
    v = fn()
    return {"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0}, v


best = {k: {"wall": math.inf, "cpu": math.inf} for k in ("forward", "backward", "optimizer")}
for r in range(args.repeats + 1):
    x = x0.clone().requires_grad_(True)
    opt.zero_grad(set_to_none=True)
    tf, y = timed(lambda: block(x))
    tb, _ = timed(lambda: y.backward(grad_out))

    def update():
        opt.step()
        with torch.no_grad():
            for w, m in zip(weights, masks):
                w.mul_(m)

    to, _ = timed(update)
    if r == 0:
        continue  # warm-up
    for k, t in (("forward", tf), ("backward", tb), ("optimizer", to)):
        best[k] = {"wall": min(best[k]["wall"], t["wall"]), "cpu": min(best[k]["cpu"], t["cpu"])}
step = {"wall": sum(best[k]["wall"] for k in best), "cpu": sum(best[k]["cpu"] for k in best)}
print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), **best, "step": step}))
