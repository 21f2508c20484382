#!/usr/bin/env python3
"""The PyTorch peer of bench/train.ts: the same Llama-style model and the same full training step (forward, loss,
backward, gradient clipping, AdamW), fp32 on the CPU, timed the same way (median step after warm-up steps); with
precision bf16, the forward and loss under torch.autocast("cpu", dtype=torch.bfloat16) (its CPU autocast: linear
layers and matmuls in bf16 through oneDNN, float32 weights and optimizer state), the counterpart of --precision bf16.

A benchmark peer, never a dependency: bench/train.ts runs it when `python3 -c "import torch"` works (Debian:
apt-get install python3-torch) and prints our tokens/s over its tokens/s. Written from the Hugging Face
modeling_llama.py conventions (RMSNorm, rotate_half rotary, grouped-query attention, SwiGLU MLP, tied embeddings);
attention is torch's fused scaled_dot_product_attention(is_causal=True) (torch >= 2.0; before, the masked softmax
written out, as models did then), AdamW is torch.optim.AdamW (its default implementation), the loss F.cross_entropy.

Usage: python3 bench/train_torch.py '{"nLayer": 6, ...}' B T steps warmup threads [fp32|bf16]
Prints one line of JSON: {"step_ms": median, "steps_ms": [...], "torch": version, "threads": n, "precision": p}
"""
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, c):
        super().__init__()
        C, I, hd = c["nEmbd"], c["intermediateSize"], c["nEmbd"] // c["nHead"]
        self.nh, self.nkv, self.hd, self.eps = c["nHead"], c["nKvHead"], hd, c["normEps"]
        self.ln1 = torch.nn.Parameter(torch.ones(C))
        self.q = torch.nn.Linear(C, self.nh * hd, bias=False)
        self.k = torch.nn.Linear(C, self.nkv * hd, bias=False)
        self.v = torch.nn.Linear(C, self.nkv * hd, bias=False)
        self.o = torch.nn.Linear(self.nh * hd, C, bias=False)
        self.ln2 = torch.nn.Parameter(torch.ones(C))
        self.gate = torch.nn.Linear(C, I, bias=False)
        self.up = torch.nn.Linear(C, I, bias=False)
        self.down = torch.nn.Linear(I, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        h = F.rms_norm(x, (C,), self.ln1, self.eps) if hasattr(F, "rms_norm") else rmsnorm(x, self.ln1, self.eps)
        q = self.q(h).view(B, T, self.nh, self.hd).transpose(1, 2)
        k = self.k(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        v = self.v(h).view(B, T, self.nkv, self.hd).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        rep = self.nh // self.nkv
        k, v = k.repeat_interleave(rep, dim=1), v.repeat_interleave(rep, dim=1)
        a = attention(q, k, v).transpose(1, 2).reshape(B, T, C)
        x = x + self.o(a)
        h = F.rms_norm(x, (C,), self.ln2, self.eps) if hasattr(F, "rms_norm") else rmsnorm(x, self.ln2, self.eps)
        return x + self.down(F.silu(self.gate(h)) * self.up(h))


def attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0: the fused kernel
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    T = q.shape[-2]
    s = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * cos + rot * sin


class GPT(torch.nn.Module):
    def __init__(self, c, V):
        super().__init__()
        self.c = c
        self.wte = torch.nn.Embedding(V, c["nEmbd"])
        self.blocks = torch.nn.ModuleList(Block(c) for _ in range(c["nLayer"]))
        self.lnf = torch.nn.Parameter(torch.ones(c["nEmbd"]))
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, 0.0, 0.02)

    def forward(self, ids, targets, cos, sin):
        x = self.wte(ids)
        for b in self.blocks:
            x = b(x, cos, sin)
        x = rmsnorm(x, self.lnf, self.c["normEps"])
        logits = x @ self.wte.weight.t()  # tied embeddings
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))


def main():
    c = json.loads(sys.argv[1])
    B, T, steps, warmup, threads = (int(a) for a in sys.argv[2:7])
    precision = sys.argv[7] if len(sys.argv) > 7 else "fp32"
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    V = c["vocabSize"]
    model = GPT(c, V)
    hd = c["nEmbd"] // c["nHead"]
    inv = c["ropeTheta"] ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv[None, :]
    cos = torch.cat((ang.cos(), ang.cos()), -1).float()
    sin = torch.cat((ang.sin(), ang.sin()), -1).float()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, V, (B, T), generator=g)
    targets = torch.randint(0, V, (B, T), generator=g)
    times = []
    for s in range(warmup + steps):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast:
            loss = model(ids, targets, cos, sin)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        loss.item()
        if s >= warmup:
            times.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({"step_ms": statistics.median(times), "steps_ms": times, "torch": torch.__version__,
                      "threads": torch.get_num_threads(), "precision": precision}))


if __name__ == "__main__":
    main()
