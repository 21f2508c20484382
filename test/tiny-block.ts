// A one-layer Llama-style transformer block composed from the tensor ops (embedding, RMSNorm, grouped-query
// attention with rotary embeddings, SwiGLU MLP, LM head, cross-entropy), with parameters and gradients in one flat
// buffer each (llm.c's malloc_and_point_parameters) and a plain Adam step. Shared by test/block-train.test.ts and
// bench/memory.ts; it is a test fixture, not the model (src/model/ is).
//
// The synthetic task: each sequence repeats a random pattern of `period` tokens; the model must predict the next
// token, which equals the one `period` back, so it needs attention at a fixed relative offset, which rotary
// embeddings make learnable in one layer. The first period - 1 targets are unpredictable and ignored (-1).

import {
  Tensor, add, attention, crossEntropy, embedding, getBackend, linear, rmsnorm, rope, ropeTables, swiglu,
} from '../src/tensor/index.js';
import { rng } from './helpers.js';
export { rng };

export interface TinyConfig {
  vocabSize: number; nEmbd: number; nHead: number; nKvHead: number; hidden: number; maxT: number;
}
export const TINY: TinyConfig = { vocabSize: 8, nEmbd: 24, nHead: 4, nKvHead: 2, hidden: 32, maxT: 16 };


export class TinyBlock {
  readonly cfg: TinyConfig;
  readonly flat: Float32Array;
  readonly gradFlat: Float32Array;
  readonly params = new Map<string, Tensor>();
  private readonly m: Float32Array;
  private readonly v: Float32Array;
  private readonly cos: Float32Array;
  private readonly sin: Float32Array;
  private t = 0;

  constructor(cfg: TinyConfig, seed: number) {
    this.cfg = cfg;
    const { vocabSize: V, nEmbd: C, nHead, nKvHead, hidden: H } = cfg;
    const hd = C / nHead;
    const shapes: [string, number[], 'one' | number][] = [
      ['wte', [V, C], 1],
      ['norm1', [C], 'one'],
      ['wq', [C, C], 1 / Math.sqrt(C)],
      ['wk', [nKvHead * hd, C], 1 / Math.sqrt(C)],
      ['wv', [nKvHead * hd, C], 1 / Math.sqrt(C)],
      ['wo', [C, C], 0.5 / Math.sqrt(C)],
      ['norm2', [C], 'one'],
      ['wgate', [H, C], 1 / Math.sqrt(C)],
      ['wup', [H, C], 1 / Math.sqrt(C)],
      ['wdown', [C, H], 0.5 / Math.sqrt(H)],
      ['normf', [C], 'one'],
      ['lmHead', [V, C], 1 / Math.sqrt(C)],
    ];
    const total = shapes.reduce((s, [, sh]) => s + sh.reduce((a, b) => a * b, 1), 0);
    this.flat = new Float32Array(total);
    this.gradFlat = new Float32Array(total);
    this.m = new Float32Array(total);
    this.v = new Float32Array(total);
    const r = rng(seed);
    let o = 0;
    for (const [name, shape, init] of shapes) {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = this.flat.subarray(o, o + n);
      for (let i = 0; i < n; i++) {
        // uniform with the given standard deviation (sqrt(3) std half-width)
        data[i] = init === 'one' ? 1 : (2 * r() - 1) * Math.sqrt(3) * init;
      }
      const p = new Tensor(data, shape, true);
      p.grad = new Tensor(this.gradFlat.subarray(o, o + n), shape);
      this.params.set(name, p);
      o += n;
    }
    ({ cos: this.cos, sin: this.sin } = ropeTables(cfg.maxT, hd, 100));
  }

  numParams(): number {
    return this.flat.length;
  }

  private p(name: string): Tensor {
    return this.params.get(name)!;
  }

  // Mean cross-entropy of next-token prediction over (B, T) ids.
  loss(ids: Int32Array, targets: Int32Array, B: number, T: number): Tensor {
    const { nEmbd: C, nHead, nKvHead } = this.cfg;
    const hd = C / nHead;
    const eps = 1e-5;
    let x = embedding(ids, this.p('wte')); // (B*T, C)
    const h = rmsnorm(x, this.p('norm1'), eps);
    const q = rope(linear(h, this.p('wq')).view([B, T, nHead, hd]), this.cos, this.sin, null); // (B, T, nHead, hd)
    const k = rope(linear(h, this.p('wk')).view([B, T, nKvHead, hd]), this.cos, this.sin, null); // (B, T, nKvHead, hd)
    const v = linear(h, this.p('wv')).view([B, T, nKvHead, hd]);
    const a = attention(q, k, v).view([B * T, C]); // (B*T, C)
    x = add(x, linear(a, this.p('wo')));
    const h2 = rmsnorm(x, this.p('norm2'), eps);
    const mlp = linear(swiglu(linear(h2, this.p('wgate')), linear(h2, this.p('wup'))), this.p('wdown')); // (B*T, C)
    x = add(x, mlp);
    const logits = linear(rmsnorm(x, this.p('normf'), eps), this.p('lmHead')); // (B*T, V)
    return crossEntropy(logits, targets);
  }

  zeroGrad(): void {
    this.gradFlat.fill(0);
  }

  // Adam (Kingma & Ba 2015) over the flat buffer: the backend's AdamW with no weight decay.
  adamStep(lr: number): void {
    this.t++;
    getBackend().adamw(this.flat, this.gradFlat, this.m, this.v, this.flat.length, lr, 0.9, 0.99, 1e-8, 0, this.t);
  }
}

// Fills ids/targets (B*T each) in place with periodic sequences from r; nothing is allocated.
export function periodicBatch(r: () => number, ids: Int32Array, targets: Int32Array, B: number, T: number, V: number,
  period: number): void {
  for (let b = 0; b < B; b++) {
    const base = b * T;
    for (let t = 0; t <= T; t++) {
      const tok = t < period ? Math.floor(r() * V) : ids[base + t - period];
      if (t < T) ids[base + t] = tok;
      if (t > 0) targets[base + t - 1] = t - 1 < period - 1 ? -1 : tok;
    }
  }
}
