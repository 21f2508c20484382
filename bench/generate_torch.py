#!/usr/bin/env python3
"""The PyTorch peer of bench/generate.ts: the same Llama-style model with the same weights, fp32 on the CPU, generating
greedily (temperature 0, as ours) with a KV cache: prefill of one prompt, then decode at batch 1 and batch 8.

A benchmark peer, never a dependency: bench/generate.ts runs it when a python3 imports torch (Debian: apt-get install
python3-torch), after writing our model's flat float32 buffer and its layout to files. Written from the Hugging Face
modeling_llama.py conventions (RMSNorm, rotate_half rotary, grouped-query attention, SwiGLU MLP, tied embeddings), the
cache as preallocated (B, nKvHead, maxT, headDim) tensors per layer; attention is torch's fused
scaled_dot_product_attention (torch >= 2.0) or, before, the softmax written out (a causal mask only for the prefill).

Usage: python3 bench/generate_torch.py SPEC.json
  SPEC: {"config": {...}, "weights": path, "layout": [{"name", "shape", "offset"}], "prompt": [ids],
         "decode": steps, "prompts8": [[ids] x 8], "reps": n, "threads": n}
Prints one line of JSON: prefill_s (best), decode1_tps and decode8_tps (per rep), the greedy ids at batch 1, version.
"""
import json
import sys
import time

import torch
import torch.nn.functional as F


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):  # x: (B, h, T, hd); cos, sin: (T, hd)
    h = x.shape[-1] // 2
    rot = torch.cat((-x[..., h:], x[..., :h]), dim=-1)
    return x * cos + rot * sin


def attention(q, k, v, causal):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    s = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
    if causal:
        Tq, Tk = q.shape[-2], k.shape[-2]
        s = s.masked_fill(torch.ones(Tq, Tk, dtype=torch.bool).triu(Tk - Tq + 1), float("-inf"))
    return torch.softmax(s, dim=-1) @ v


class Model:
    def __init__(self, c, p):
        self.c, self.p = c, p
        self.nh, self.nkv, self.hd = c["nHead"], c["nKvHead"], c["nEmbd"] // c["nHead"]
        inv = 1.0 / (c["ropeTheta"] ** (torch.arange(0, self.hd, 2, dtype=torch.float32) / self.hd))
        ang = torch.arange(c["maxSeqLen"], dtype=torch.float32)[:, None] * inv[None, :]
        self.cos = torch.cat((ang.cos(), ang.cos()), -1)
        self.sin = torch.cat((ang.sin(), ang.sin()), -1)

    def new_cache(self, B, maxT):
        return [(torch.zeros(B, self.nkv, maxT, self.hd), torch.zeros(B, self.nkv, maxT, self.hd))
                for _ in range(self.c["nLayer"])]

    # ids: (B, T) appended at position pos of every row; returns the last position's logits (B, V)
    def forward(self, ids, cache, pos):
        c, p = self.c, self.p
        B, T = ids.shape
        x = F.embedding(ids, p["model.embed_tokens.weight"])
        cos, sin = self.cos[pos:pos + T], self.sin[pos:pos + T]
        for l in range(c["nLayer"]):
            L = f"model.layers.{l}."
            h = rmsnorm(x, p[L + "input_layernorm.weight"], c["normEps"])
            q = F.linear(h, p[L + "self_attn.q_proj.weight"]).view(B, T, self.nh, self.hd).transpose(1, 2)
            k = F.linear(h, p[L + "self_attn.k_proj.weight"]).view(B, T, self.nkv, self.hd).transpose(1, 2)
            v = F.linear(h, p[L + "self_attn.v_proj.weight"]).view(B, T, self.nkv, self.hd).transpose(1, 2)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            kc, vc = cache[l]
            kc[:, :, pos:pos + T] = k
            vc[:, :, pos:pos + T] = v
            rep = self.nh // self.nkv
            K = kc[:, :, :pos + T].repeat_interleave(rep, dim=1)
            V = vc[:, :, :pos + T].repeat_interleave(rep, dim=1)
            a = attention(q, K, V, T > 1).transpose(1, 2).reshape(B, T, -1)
            x = x + F.linear(a, p[L + "self_attn.o_proj.weight"])
            h = rmsnorm(x, p[L + "post_attention_layernorm.weight"], c["normEps"])
            x = x + F.linear(F.silu(F.linear(h, p[L + "mlp.gate_proj.weight"])) * F.linear(h, p[L + "mlp.up_proj.weight"]),
                             p[L + "mlp.down_proj.weight"])
        x = rmsnorm(x[:, -1], p["model.norm.weight"], c["normEps"])
        head = p.get("lm_head.weight", p["model.embed_tokens.weight"])
        return F.linear(x, head)


def greedy(model, prompts, steps):
    """Prefill every row (same length), then `steps` greedy decode steps; returns (tokens/s of the decode, ids)."""
    ids = torch.tensor(prompts, dtype=torch.long)
    B, T = ids.shape
    cache = model.new_cache(B, T + steps + 1)
    nxt = model.forward(ids, cache, 0).argmax(-1)
    out = [nxt]
    t0 = time.perf_counter()
    for s in range(steps):
        nxt = model.forward(nxt[:, None], cache, T + s).argmax(-1)
        out.append(nxt)
    dt = time.perf_counter() - t0
    return B * steps / dt, torch.stack(out, 1).tolist()


def main():
    spec = json.load(open(sys.argv[1]))
    torch.set_num_threads(spec["threads"])
    c = spec["config"]
    flat = torch.from_numpy(__import__("numpy").fromfile(spec["weights"], dtype="<f4"))
    p = {t["name"]: flat[t["offset"]:t["offset"] + int(torch.tensor(t["shape"]).prod())].view(*t["shape"])
         for t in spec["layout"]}
    model = Model(c, p)
    res = {"torch": torch.__version__, "threads": torch.get_num_threads(), "prefill_s": [], "decode1_tps": [],
           "decode8_tps": []}
    with torch.inference_mode():
        prompt = torch.tensor([spec["prompt"]], dtype=torch.long)
        for r in range(spec["reps"] + 1):
            cache = model.new_cache(1, prompt.shape[1])
            t0 = time.perf_counter()
            model.forward(prompt, cache, 0)
            if r > 0:
                res["prefill_s"].append(time.perf_counter() - t0)
        for r in range(spec["reps"]):
            tps, ids = greedy(model, [spec["prompts8"][0]], spec["decode"])
            res["decode1_tps"].append(tps)
            res["ids1"] = ids[0]
            tps8, _ = greedy(model, spec["prompts8"], spec["decode"])
            res["decode8_tps"].append(tps8)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
