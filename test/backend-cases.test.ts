// The ONE shared case file for Backend primitives (after ggml test-backend-ops and hono's common.case.test.ts):
// every primitive runs on random inputs with odd sizes against the JS backend in float64 (the reference) and against
// each available backend in float32: JS, and native at every CPU dispatch level (scalar, AVX2, AVX-512). Each op has
// a stated tolerance on the normalised max error  max|x - ref| / max|ref|  over every array the call touches (outputs,
// accumulated gradients, and inputs, which must come back unchanged). Accumulating primitives start from random
// gradients, so "+=" is checked; gemm with beta 0 starts from NaN, so "ignores C" is checked.
// When the native backend is absent its cases are skipped with the reason printed; they never pass silently.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend, FloatArray } from '../src/tensor/backend.js';
import { jsBackend } from '../src/tensor/backend-js.js';
import { rng, skipNative } from './helpers.js';
import { f32ToBf16Array, quantizeQ8_0 } from '../src/tensor/quant.js';

// ---- seeded inputs

interface Inputs {
  f: Record<string, Float64Array>; // float arrays: inputs and outputs, all compared after the call
  i: Record<string, Int32Array>;
  raw?: Record<string, Uint8Array | Uint16Array>; // low-precision weights, passed as they are; must come back unchanged
}

class Gen {
  readonly r: () => number;
  constructor(seed: number) {
    this.r = rng(seed);
  }
  uniform(n: number, lo = -1, hi = 1): Float64Array {
    const a = new Float64Array(n);
    for (let k = 0; k < n; k++) a[k] = lo + (hi - lo) * this.r();
    return a;
  }
  normal(n: number, std = 1): Float64Array {
    const a = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const u = 1 - this.r(), v = this.r();
      a[k] = std * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
    }
    return a;
  }
  ints(n: number, lo: number, hi: number): Int32Array {
    const a = new Int32Array(n);
    for (let k = 0; k < n; k++) a[k] = lo + Math.floor(this.r() * (hi - lo));
    return a;
  }
  nan(n: number): Float64Array {
    return new Float64Array(n).fill(NaN);
  }
}

interface Case {
  name: string;
  tol: number; // normalised max error allowed in float32
  make(g: Gen): Inputs;
  // Runs the primitive on arrays of the target dtype; returns scalars to compare (for sum, sumSquares), if any.
  run(be: Backend, f: Record<string, FloatArray>, i: Record<string, Int32Array>, raw: Record<string, Uint8Array | Uint16Array>): number[] | void;
}

const SIZES = [1, 7, 33, 65, 127];
const cases: Case[] = [];

// ---- gemm: every transpose combination, beta 0 (C starts NaN) and 1, batched with padded strides

for (const [M, N, K] of [[1, 1, 1], [1, 65, 127], [127, 1, 33], [7, 33, 65], [33, 7, 127], [65, 127, 33], [127, 65, 7]]) {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      for (const beta of [0, 1]) {
        cases.push({
          name: `gemm M${M} N${N} K${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} beta${beta}`,
          tol: 2e-6 * Math.sqrt(K) + 1e-6,
          make: (g) => ({ f: { C: beta ? g.uniform(M * N) : g.nan(M * N), A: g.uniform(M * K), B: g.uniform(K * N) }, i: {} }),
          run: (be, f) => be.gemm(f.C, f.A, f.B, M, N, K, transA, transB, 0.75, beta),
        });
      }
    }
  }
}
for (const [P, M, N, K] of [[3, 7, 33, 5], [2, 33, 1, 65]]) {
  const sA = M * K + 3, sB = K * N + 1, sC = M * N + 2; // padding between the matrices must stay untouched
  cases.push({
    name: `gemm batched P${P} M${M} N${N} K${K} strides`,
    tol: 2e-6 * Math.sqrt(K) + 1e-6,
    make: (g) => ({ f: { C: g.uniform(P * sC), A: g.uniform(P * sA), B: g.uniform(P * sB) }, i: {} }),
    run: (be, f) => be.gemm(f.C, f.A, f.B, M, N, K, true, false, 1, 1, P, sA, sB, sC),
  });
}

// ---- attention: GQA, causal offset (Tq < Tk), the KV-cache form with lens, and the backward

for (const [B, T, nHead, nKv, hd] of [[1, 1, 1, 1, 2], [2, 7, 4, 2, 8], [1, 33, 4, 1, 16], [2, 65, 2, 2, 32], [1, 127, 3, 3, 6]]) {
  const scale = 1 / Math.sqrt(hd);
  const qn = B * T * nHead * hd, kn = B * T * nKv * hd;
  cases.push({
    name: `attentionForward B${B} T${T} h${nHead}/${nKv} hd${hd}`,
    tol: 1e-5,
    make: (g) => ({ f: { out: g.nan(qn), lse: g.nan(B * nHead * T), q: g.normal(qn), k: g.normal(kn), v: g.normal(kn) }, i: {} }),
    run: (be, f) => be.attentionForward(f.out, f.lse, f.q, f.k, f.v, B, T, T, nHead, nKv, hd, scale, null),
  });
  cases.push({
    name: `attentionBackward B${B} T${T} h${nHead}/${nKv} hd${hd}`,
    tol: 2e-5,
    make: (g) => {
      const f = { q: g.normal(qn), k: g.normal(kn), v: g.normal(kn), dout: g.normal(qn), out: new Float64Array(qn),
        lse: new Float64Array(B * nHead * T), dq: g.uniform(qn), dk: g.uniform(kn), dv: g.uniform(kn) };
      jsBackend.attentionForward(f.out, f.lse, f.q, f.k, f.v, B, T, T, nHead, nKv, hd, scale, null);
      return { f, i: {} };
    },
    run: (be, f) => be.attentionBackward(f.dq, f.dk, f.dv, f.dout, f.out, f.lse, f.q, f.k, f.v, B, T, nHead, nKv, hd, scale),
  });
}
for (const [B, Tq, Tk, nHead, nKv, hd, withLens] of [
  [2, 1, 33, 4, 2, 16, true], [3, 7, 65, 4, 1, 8, true], [2, 5, 7, 2, 1, 4, false], [1, 1, 1, 2, 2, 8, true],
] as const) {
  const scale = 0.3;
  const qn = B * Tq * nHead * hd, kn = B * Tk * nKv * hd;
  cases.push({
    name: `attentionForward ${withLens ? 'KV cache (lens)' : 'causal offset'} B${B} Tq${Tq} Tk${Tk} h${nHead}/${nKv}`,
    tol: 1e-5,
    make: (g) => ({
      f: { out: g.nan(qn), lse: g.nan(B * nHead * Tq), q: g.normal(qn), k: g.normal(kn), v: g.normal(kn) },
      i: { lens: g.ints(B, Tq, Tk + 1) },
    }),
    run: (be, f, i) => be.attentionForward(f.out, f.lse, f.q, f.k, f.v, B, Tq, Tk, nHead, nKv, hd, scale, withLens ? i.lens : null),
  });
}

// ---- normalisation, rope, activations, softmax, cross-entropy, embedding

for (const [N, C] of [[1, 1], [7, 33], [33, 65], [5, 127]]) {
  cases.push({
    name: `rmsnormForward N${N} C${C}`, tol: 1e-6,
    make: (g) => ({ f: { out: g.nan(N * C), rstd: g.nan(N), x: g.normal(N * C), w: g.uniform(C, 0.5, 1.5) }, i: {} }),
    run: (be, f) => be.rmsnormForward(f.out, f.rstd, f.x, f.w, N, C, 1e-5),
  });
  cases.push({
    name: `rmsnormBackward N${N} C${C}`, tol: C === 1 ? 1e-4 : 1e-5, // C = 1: dx is a difference of near-equal terms
    make: (g) => {
      const f = { dx: g.uniform(N * C), dw: g.uniform(C), dout: g.normal(N * C), x: g.normal(N * C), w: g.uniform(C, 0.5, 1.5),
        out: new Float64Array(N * C), rstd: new Float64Array(N) };
      jsBackend.rmsnormForward(f.out, f.rstd, f.x, f.w, N, C, 1e-5);
      return { f, i: {} };
    },
    run: (be, f) => be.rmsnormBackward(f.dx, f.dw, f.dout, f.x, f.w, f.rstd, N, C),
  });
  cases.push({
    name: `residualRmsnormForward N${N} C${C}`, tol: 1e-6,
    make: (g) => ({ f: { sum: g.nan(N * C), out: g.nan(N * C), rstd: g.nan(N), x: g.normal(N * C), y: g.normal(N * C),
      w: g.uniform(C, 0.5, 1.5) }, i: {} }),
    run: (be, f) => be.residualRmsnormForward(f.sum, f.out, f.rstd, f.x, f.y, f.w, N, C, 1e-5),
  });
  cases.push({ // the sum written over x, as the inference path does
    name: `residualRmsnormForward in place N${N} C${C}`, tol: 1e-6,
    make: (g) => ({ f: { out: g.nan(N * C), rstd: g.nan(N), x: g.normal(N * C), y: g.normal(N * C), w: g.uniform(C, 0.5, 1.5) }, i: {} }),
    run: (be, f) => be.residualRmsnormForward(f.x, f.out, f.rstd, f.x, f.y, f.w, N, C, 1e-5),
  });
  cases.push({
    name: `layernormForward N${N} C${C}`, tol: 1e-5,
    make: (g) => ({ f: { out: g.nan(N * C), mean: g.nan(N), rstd: g.nan(N), x: g.normal(N * C, 2), w: g.uniform(C), b: g.uniform(C) }, i: {} }),
    run: (be, f) => be.layernormForward(f.out, f.mean, f.rstd, f.x, f.w, f.b, N, C, 1e-5),
  });
  cases.push({
    name: `layernormBackward N${N} C${C}`, tol: C === 1 ? 2e-4 : 1e-5, // C = 1: rstd = eps^-1/2 amplifies rounding
    make: (g) => {
      const f = { dx: g.uniform(N * C), dw: g.uniform(C), db: g.uniform(C), dout: g.normal(N * C), x: g.normal(N * C, 2),
        w: g.uniform(C), b: g.uniform(C), out: new Float64Array(N * C), mean: new Float64Array(N), rstd: new Float64Array(N) };
      jsBackend.layernormForward(f.out, f.mean, f.rstd, f.x, f.w, f.b, N, C, 1e-5);
      return { f, i: {} };
    },
    run: (be, f) => be.layernormBackward(f.dx, f.dw, f.db, f.dout, f.x, f.w, f.mean, f.rstd, N, C),
  });
  cases.push({
    name: `softmaxForward N${N} C${C}`, tol: 1e-6,
    make: (g) => ({ f: { out: g.nan(N * C), x: g.normal(N * C, 3) }, i: {} }),
    run: (be, f) => be.softmaxForward(f.out, f.x, N, C),
  });
  cases.push({
    name: `softmaxBackward N${N} C${C}`, tol: 1e-6,
    make: (g) => {
      const f = { dx: g.uniform(N * C), dout: g.normal(N * C), out: new Float64Array(N * C), x: g.normal(N * C, 3) };
      jsBackend.softmaxForward(f.out, f.x, N, C);
      return { f, i: {} };
    },
    run: (be, f) => be.softmaxBackward(f.dx, f.dout, f.out, N, C),
  });
  cases.push({
    name: `addBias + sumRows N${N} C${C}`, tol: 1e-6,
    make: (g) => ({ f: { out: g.nan(N * C), x: g.uniform(N * C), b: g.uniform(C), db: g.uniform(C), alias: g.uniform(N * C) }, i: {} }),
    run: (be, f) => {
      be.addBias(f.out, f.x, f.b, N, C);
      be.addBias(f.alias, f.alias, f.b, N, C);
      be.sumRows(f.db, f.x, N, C);
    },
  });
}

for (const [B, T, nHead, hd, withPos] of [[1, 1, 1, 2, false], [2, 7, 3, 8, true], [1, 33, 2, 64, false], [3, 5, 1, 126, true]] as const) {
  const n = B * T * nHead * hd, half = hd / 2, maxT = T + 9;
  const tables = (g: Gen) => {
    const ang = g.uniform(maxT * half, -3, 3);
    return { cos: ang.map(Math.cos), sin: ang.map(Math.sin) };
  };
  cases.push({
    name: `ropeForward B${B} T${T} h${nHead} hd${hd}${withPos ? ' pos0' : ''} (and in place)`, tol: 1e-6,
    make: (g) => ({ f: { out: g.nan(n), x: g.normal(n), inplace: g.normal(n), ...tables(g) }, i: { pos0: g.ints(B, 0, 10) } }),
    run: (be, f, i) => {
      be.ropeForward(f.out, f.x, f.cos, f.sin, B, T, nHead, hd, withPos ? i.pos0 : null);
      be.ropeForward(f.inplace, f.inplace, f.cos, f.sin, B, T, nHead, hd, withPos ? i.pos0 : null);
    },
  });
  cases.push({
    name: `ropeBackward B${B} T${T} h${nHead} hd${hd}${withPos ? ' pos0' : ''}`, tol: 1e-6,
    make: (g) => ({ f: { dx: g.uniform(n), dout: g.normal(n), ...tables(g) }, i: { pos0: g.ints(B, 0, 10) } }),
    run: (be, f, i) => be.ropeBackward(f.dx, f.dout, f.cos, f.sin, B, T, nHead, hd, withPos ? i.pos0 : null),
  });
}

for (const [N, V] of [[1, 1], [7, 33], [33, 127], [5, 1031]]) {
  const targets = (g: Gen) => {
    const t = g.ints(N, 0, V);
    if (N > 1) t[1] = -1; // an ignored position
    return t;
  };
  cases.push({
    name: `crossEntropyForward N${N} V${V}`, tol: 1e-6,
    make: (g) => ({ f: { losses: g.nan(N), lse: g.nan(N), logits: g.normal(N * V, 4) }, i: { targets: targets(g) } }),
    run: (be, f, i) => be.crossEntropyForward(f.losses, f.lse, f.logits, i.targets, N, V),
  });
  cases.push({
    name: `crossEntropyBackward N${N} V${V} (separate, and aliasing the logits)`, tol: 1e-6,
    make: (g) => {
      const f = { dlogits: g.nan(N * V), dlosses: g.uniform(N), logits: g.normal(N * V, 4), lse: new Float64Array(N),
        losses: new Float64Array(N), alias: new Float64Array(0) };
      const i = { targets: targets(g) };
      jsBackend.crossEntropyForward(f.losses, f.lse, f.logits, i.targets, N, V);
      f.alias = f.logits.slice();
      return { f, i };
    },
    run: (be, f, i) => {
      be.crossEntropyBackward(f.dlogits, f.dlosses, f.logits, f.lse, i.targets, N, V);
      be.crossEntropyBackward(f.alias, f.dlosses, f.alias, f.lse, i.targets, N, V);
    },
  });
}

for (const [N, V, C] of [[1, 1, 1], [33, 7, 65], [127, 33, 7]]) {
  cases.push({
    name: `embedding forward/backward N${N} V${V} C${C} (repeated ids)`, tol: 1e-6,
    make: (g) => ({ f: { out: g.nan(N * C), dwte: g.uniform(V * C), wte: g.uniform(V * C), dout: g.uniform(N * C) }, i: { ids: g.ints(N, 0, V) } }),
    run: (be, f, i) => {
      be.embeddingForward(f.out, i.ids, f.wte, N, C);
      be.embeddingBackward(f.dwte, f.dout, i.ids, N, C);
    },
  });
}

// ---- elementwise, reductions, adamw over odd lengths

for (const n of SIZES.concat([1031])) {
  const ew = (name: string, tol: number, make: (g: Gen) => Inputs, run: Case['run']) =>
    cases.push({ name: `${name} n${n}`, tol, make, run });
  const two = (g: Gen) => ({ f: { out: g.nan(n), a: g.uniform(n, -2, 2), b: g.uniform(n, 0.5, 2).map((x, k) => (k % 2 ? x : -x)) }, i: {} });
  for (const op of ['add', 'sub', 'mul', 'div', 'minimum', 'maximum'] as const) {
    ew(op, 1e-6, two, (be, f) => be[op](f.out, f.a, f.b, n));
  }
  ew('add in place', 1e-6, two, (be, f) => be.add(f.a, f.a, f.b, n));
  ew('scaleShift + axpy', 1e-6, two, (be, f) => {
    be.scaleShift(f.out, f.a, -1.5, 0.25, n);
    be.axpy(f.b, 0.3, f.a, n);
  });
  ew('exp', 1e-6, (g) => ({ f: { out: g.nan(n), a: g.uniform(n, -8, 8) }, i: {} }), (be, f) => be.exp(f.out, f.a, n));
  ew('log', 1e-6, (g) => ({ f: { out: g.nan(n), a: g.uniform(n, 1e-3, 50) }, i: {} }), (be, f) => be.log(f.out, f.a, n));
  ew('sigmoid', 1e-6, (g) => ({ f: { out: g.nan(n), a: g.uniform(n, -40, 40) }, i: {} }), (be, f) => be.sigmoid(f.out, f.a, n));
  ew('logSigmoid', 1e-6, (g) => ({ f: { out: g.nan(n), a: g.uniform(n, -40, 40) }, i: {} }), (be, f) => be.logSigmoid(f.out, f.a, n));
  ew('clamp', 1e-6, (g) => ({ f: { out: g.nan(n), a: g.uniform(n, -2, 2) }, i: {} }), (be, f) => be.clamp(f.out, f.a, -0.5, 0.7, n));
  ew('where', 1e-6, (g) => ({ f: { out: g.nan(n), cond: g.ints(n, 0, 2).reduce((a, x, k) => ((a[k] = x), a), new Float64Array(n)),
    a: g.uniform(n), b: g.uniform(n) }, i: {} }), (be, f) => be.where(f.out, f.cond, f.a, f.b, n));
  ew('fill', 0, (g) => ({ f: { out: g.nan(n) }, i: {} }), (be, f) => be.fill(f.out, 0.125, n));
  ew('swiglu forward/backward', 1e-6, (g) => ({ f: { out: g.nan(n), gate: g.normal(n, 3), up: g.normal(n), dgate: g.uniform(n),
    dup: g.uniform(n), dout: g.normal(n) }, i: {} }), (be, f) => {
    be.swigluForward(f.out, f.gate, f.up, n);
    be.swigluBackward(f.dgate, f.dup, f.dout, f.gate, f.up, n);
  });
  ew('gelu forward/backward', 1e-6, (g) => ({ f: { out: g.nan(n), x: g.normal(n, 3), dx: g.uniform(n), dout: g.normal(n) }, i: {} }),
    (be, f) => {
      be.geluForward(f.out, f.x, n);
      be.geluBackward(f.dx, f.dout, f.x, n);
    });
  ew('sum, sumSquares', 1e-5, (g) => ({ f: { x: g.uniform(n) }, i: {} }), (be, f) => [be.sum(f.x, n), be.sumSquares(f.x, n)]);
  ew('adamw', 1e-5, (g) => ({ f: { p: g.uniform(n), g: g.normal(n), m: g.normal(n, 0.1), v: g.uniform(n, 0, 0.1) }, i: {} }),
    (be, f) => be.adamw(f.p, f.g, f.m, f.v, n, 1e-2, 0.9, 0.95, 1e-8, 0.1, 3));
}

// ---- products with low-precision weights (last, so the seeds of the cases above stay as they were): the decode path (M <= 8: rows in groups of 4, column tails) and the
// blocked path (M > 8: dequantizing packer, several K blocks, threads), K odd for bf16; a zero q8_0 row (d = 0)

const lowpW = (g: Gen, N: number, K: number, dtype: 'bf16' | 'q8_0') => {
  const w = Float32Array.from(g.uniform(N * K));
  if (N > 2) w.fill(0, K, 2 * K);
  return dtype === 'bf16' ? f32ToBf16Array(w) : quantizeQ8_0(w, N, K);
};
for (const [M, N, K] of [[1, 1, 32], [1, 65, 96], [2, 7, 160], [3, 33, 64], [4, 127, 32], [5, 9, 96], [7, 66, 320],
  [8, 300, 640], [9, 33, 64], [33, 127, 832], [70, 65, 416]]) {
  for (const dtype of ['bf16', 'q8_0'] as const) {
    const k = dtype === 'bf16' && K > 32 ? K - 25 : K; // bf16: K need not be whole blocks
    cases.push({
      name: `gemm${dtype === 'bf16' ? 'Bf16' : 'Q8_0'} M${M} N${N} K${k}`,
      tol: 2e-6 * Math.sqrt(k) + 1e-6,
      make: (g) => ({ f: { C: g.nan(M * N), A: g.uniform(M * k) }, i: {}, raw: { W: lowpW(g, N, k, dtype) } }),
      run: (be, f, _i, raw) => dtype === 'bf16' ? be.gemmBf16(f.C, f.A, raw.W as Uint16Array, M, N, k)
        : be.gemmQ8_0(f.C, f.A, raw.W as Uint8Array, M, N, k),
    });
  }
}

// ---- gemmMixedBf16 (last, as above): the product with inputs rounded to bf16 and float32 sums (the reference rounds
// the same float32 values alike, so only the sums' order and precision differ); native where the CPU has AVX512_BF16

for (const [M, N, K] of [[1, 65, 127], [33, 7, 127], [65, 127, 33], [127, 65, 7]]) {
  for (const [transA, transB] of [[false, true], [false, false], [true, false], [true, true]]) {
    const beta = transA ? 1 : 0;
    cases.push({
      name: `gemmMixedBf16 M${M} N${N} K${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} beta${beta}`,
      tol: 2e-6 * Math.sqrt(K) + 1e-6,
      make: (g) => ({ f: { C: beta ? g.uniform(M * N) : g.nan(M * N), A: g.uniform(M * K), B: g.uniform(K * N) }, i: {} }),
      run: (be, f) => be.gemmMixedBf16(f.C, f.A, f.B, M, N, K, transA, transB, 1, beta),
    });
  }
}

// ---- running and comparing

function toF32(inp: Inputs): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [k, v] of Object.entries(inp.f)) out[k] = Float32Array.from(v);
  return out;
}

function nmaxErr(x: ArrayLike<number>, ref: ArrayLike<number>): number {
  let e = 0, m = 0;
  for (let k = 0; k < ref.length; k++) {
    const d = Math.abs(x[k] - ref[k]);
    if (Number.isNaN(x[k]) !== Number.isNaN(ref[k])) return Infinity;
    if (!Number.isNaN(d) && d > e) e = d;
    if (Math.abs(ref[k]) > m) m = Math.abs(ref[k]);
  }
  return m > 0 ? e / m : e;
}

// Runs every case on `be` in float32 against the float64 JS reference; returns the failures.
function runAll(be: Backend): string[] {
  const failures: string[] = [];
  let seed = 1;
  for (const c of cases) {
    const inputs = c.make(new Gen(seed++));
    // The reference runs on the float32-rounded inputs, so the errors measured are the backend's alone.
    for (const v of Object.values(inputs.f)) for (let k = 0; k < v.length; k++) v[k] = Math.fround(v[k]);
    const ref = { f: Object.fromEntries(Object.entries(inputs.f).map(([k, v]) => [k, v.slice()])), i: inputs.i };
    const raw = inputs.raw ?? {}, rawCopy = Object.fromEntries(Object.entries(raw).map(([k, v]) => [k, v.slice()]));
    const refScalars = c.run(jsBackend, ref.f, ref.i, raw) ?? [];
    const f32 = toF32(inputs);
    let scalars: number[];
    try {
      scalars = c.run(be, f32, inputs.i, raw) ?? [];
    } catch (e) {
      failures.push(`${c.name}: threw ${(e as Error).message}`);
      continue;
    }
    for (const [k, r] of Object.entries(ref.f)) {
      const err = nmaxErr(f32[k], r);
      if (!(err <= c.tol)) failures.push(`${c.name}: ${k} normalised max error ${err.toExponential(2)} > ${c.tol.toExponential(1)}`);
    }
    for (const [k, v] of Object.entries(rawCopy)) {
      if (!v.every((x, j) => x === raw[k][j])) failures.push(`${c.name}: ${k} was changed`);
    }
    refScalars.forEach((r, k) => {
      const err = Math.abs(scalars[k] - r) / Math.max(1, Math.abs(r));
      if (!(err <= c.tol)) failures.push(`${c.name}: scalar ${k} = ${scalars[k]}, reference ${r}`);
    });
  }
  return failures;
}

test(`backend cases: JS float32 against the JS float64 reference (${cases.length} cases)`, () => {
  const failures = runAll(jsBackend);
  assert.deepEqual(failures, []);
});

test('backend cases: the reference itself agrees with direct formulas', () => {
  // Guards against the reference and the code under test sharing a bug: a few primitives by hand.
  const C = new Float64Array(4).fill(NaN);
  jsBackend.gemm(C, Float64Array.of(1, 2, 3, 4, 5, 6), Float64Array.of(1, 0, 0, 1, 1, 1), 2, 2, 3, false, false, 1, 0);
  assert.deepEqual(Array.from(C), [1 + 3, 2 + 3, 4 + 6, 5 + 6]); // [[1,2,3],[4,5,6]] @ [[1,0],[0,1],[1,1]]
  const losses = new Float64Array(1), lse = new Float64Array(1);
  jsBackend.crossEntropyForward(losses, lse, Float64Array.of(0, Math.log(3)), Int32Array.of(1), 1, 2);
  assert.ok(Math.abs(losses[0] - Math.log(4 / 3)) < 1e-12); // p = 3/4
  const out = new Float64Array(2), l2 = new Float64Array(1);
  // One key: attention returns v exactly; lse = scale q.k
  jsBackend.attentionForward(out, l2, Float64Array.of(1, 2), Float64Array.of(3, 4), Float64Array.of(5, 6), 1, 1, 1, 1, 1, 2, 0.5, null);
  assert.deepEqual(Array.from(out), [5, 6]);
  assert.ok(Math.abs(l2[0] - 0.5 * 11) < 1e-12);
});

// ---- native at every dispatch level

interface NativeControls {
  cpuLevel(): number;
  setCpuLevel(n: number): number;
}
interface NativeModule {
  loadNativeBackend(): Backend | null;
  nativeControls?: NativeControls | null;
  nativeMethodNames?(): string[];
}

const NATIVE_MODULE = '../src/tensor/backend-native.js';
async function loadNative(): Promise<{ be: Backend; controls: NativeControls | null } | string> {
  let mod: NativeModule;
  try {
    mod = (await import(NATIVE_MODULE)) as NativeModule;
  } catch (e) {
    return `src/tensor/backend-native.ts is not there (${(e as Error).message.split('\n')[0]})`;
  }
  let be: Backend | null = null;
  try {
    be = mod.loadNativeBackend();
  } catch (e) {
    return `the native addon did not load: ${(e as Error).message.split('\n')[0]}`;
  }
  if (!be) return 'the native addon did not load (run `npm run build:native`)';
  const names = mod.nativeMethodNames?.();
  if (names) console.log(`# native backend: ${names.length} of ${Object.keys(jsBackend).length - 1} primitives run in C (gemmMixedBf16 where the CPU has AVX512_BF16); the others fall back to JS`);
  const c = mod.nativeControls;
  return { be, controls: c && typeof c.setCpuLevel === 'function' ? c : null };
}

const LEVELS = process.arch === 'arm64' ? ['scalar', 'neon', 'avx512'] : ['scalar', 'avx2', 'avx512']; // level 1 is NEON on arm64
test('backend cases: native float32 at every CPU dispatch level', async (t) => {
  const native = await loadNative();
  if (typeof native === 'string') {
    skipNative(t, `native backend cases: ${native}`);
    return;
  }
  const { be, controls } = native;
  if (!controls) {
    const reason = 'backend-native.ts exports no nativeControls.setCpuLevel: only the default level is tested';
    console.log(`# ${reason}`);
    t.diagnostic(reason);
    assert.deepEqual(runAll(be), []);
    return;
  }
  const initial = controls.cpuLevel();
  try {
    for (let level = 0; level <= 2; level++) {
      await t.test(`level ${level} (${LEVELS[level]})`, (tt) => {
        const got = controls.setCpuLevel(level);
        if (got !== level) {
          const reason = `this CPU does not support ${LEVELS[level]} (level in force: ${LEVELS[got] ?? got})`;
          console.log(`# SKIP native ${LEVELS[level]}: ${reason}`);
          tt.skip(reason);
          return;
        }
        assert.deepEqual(runAll(be), []);
      });
    }
  } finally {
    controls.setCpuLevel(initial);
  }
});
