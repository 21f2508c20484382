// The autograd ops: each forward is one or a few Backend calls over whole arrays, and each backward is composed from
// Backend primitives that accumulate into the inputs' gradients (gradOf). No per-element work crosses the backend.
// Boundary: shapes and gradients live here; arithmetic lives in the backends; buffers come from tensor.ts.
// Conventions: row-major, the last dimension is the feature dimension; `linear` takes weights in the Hugging Face
// (out, in) layout; attention tensors are (B, T, nHead, headDim) so q, k, v are views of a projection's output.

import type { Backend, FloatArray } from './backend.js';
import { jsBackend } from './backend-js.js';
import { getBackend } from './registry.js';
import {
  Tensor, checkLive, dtypeOf, fmtShape, giveBuffer, gradForOverwrite, gradOf, makeResult, needsGrad, outBuffer,
  takeBuffer, type DType,
} from './tensor.js';

// float64 data (gradient checks) always runs on the JS backend; the native one takes Float32Array only.
function be(a: FloatArray): Backend {
  return a instanceof Float64Array ? jsBackend : getBackend();
}

// ---- argument checks: errors name the op, the argument and the shapes

function live(op: string, name: string, t: Tensor): void {
  checkLive(op, name, t);
}

function sameShape(op: string, an: string, a: Tensor, bn: string, b: Tensor): void {
  live(op, an, a);
  live(op, bn, b);
  const ok = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  if (!ok) throw new Error(`${op}: ${bn} has shape ${fmtShape(b.shape)} but ${an} has shape ${fmtShape(a.shape)}; they must match`);
  if (dtypeOf(a.data) !== dtypeOf(b.data)) throw new Error(`${op}: ${an} is ${dtypeOf(a.data)} but ${bn} is ${dtypeOf(b.data)}`);
}

function lastDim(op: string, name: string, t: Tensor): number {
  live(op, name, t);
  if (t.shape.length < 1) throw new Error(`${op}: ${name} must have at least one dimension, got shape ${fmtShape(t.shape)}`);
  return t.shape[t.shape.length - 1];
}

function rank(op: string, name: string, t: Tensor, r: number, meaning: string): void {
  live(op, name, t);
  if (t.shape.length !== r) throw new Error(`${op}: ${name} must be ${meaning}, got shape ${fmtShape(t.shape)}`);
}

// A temporary for a backward: from the pool, given back before the closure returns.
function tmp(dtype: DType, n: number): FloatArray {
  return takeBuffer(dtype, n);
}

// ---- matrix products

// y = x @ w^T + b.  x: (..., in), w: (out, in), b: (out)  ->  (..., out)
export function linear(x: Tensor, w: Tensor, b?: Tensor | null): Tensor {
  const inF = lastDim('linear', 'x', x);
  rank('linear', 'w', w, 2, '(out, in)');
  if (w.shape[1] !== inF) throw new Error(`linear: w has shape ${fmtShape(w.shape)} but x has shape ${fmtShape(x.shape)}; w must be (out, ${inF})`);
  const outF = w.shape[0];
  if (b) {
    live('linear', 'b', b);
    if (b.size !== outF || b.shape.length !== 1) throw new Error(`linear: b has shape ${fmtShape(b.shape)} but w has shape ${fmtShape(w.shape)}; b must be (${outF})`);
  }
  const N = x.size / inF;
  const rec = needsGrad(x, w, b);
  const xd = x.data, wd = w.data, bd = b ? b.data : null;
  const B = be(xd);
  const y = outBuffer(dtypeOf(xd), N * outF, rec);
  B.gemm(y, xd, wd, N, outF, inF, false, true, 1, 0);
  if (bd) B.addBias(y, y, bd, N, outF);
  return makeResult(y, [...x.shape.slice(0, -1), outF], rec, b ? [x, w, b] : [x, w], (g) => {
    const dx = gradOf(x), dw = gradOf(w), db = b ? gradOf(b) : null;
    if (dx) B.gemm(dx, g, wd, N, inF, outF, false, false, 1, 1); // (N, in) += (N, out) @ (out, in)
    if (dw) B.gemm(dw, g, xd, outF, inF, N, true, false, 1, 1); // (out, in) += (N, out)^T @ (N, in)
    if (db) B.sumRows(db, g, N, outF);
  });
}

// op(a) @ op(b), 2-D (M, K) @ (K, N) -> (M, N), or 3-D batched (P, M, K) @ (P, K, N) -> (P, M, N).
// transA: a is stored (.., K, M); transB: b is stored (.., N, K).
export function matmul(a: Tensor, b: Tensor, opts: { transA?: boolean; transB?: boolean } = {}): Tensor {
  live('matmul', 'a', a);
  live('matmul', 'b', b);
  const tA = !!opts.transA, tB = !!opts.transB;
  const r = a.shape.length;
  if ((r !== 2 && r !== 3) || b.shape.length !== r) {
    throw new Error(`matmul: a and b must both be 2-D or both 3-D, got a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)}`);
  }
  const P = r === 3 ? a.shape[0] : 1;
  if (r === 3 && b.shape[0] !== P) throw new Error(`matmul: batch of b ${fmtShape(b.shape)} differs from a ${fmtShape(a.shape)}`);
  const [a0, a1] = a.shape.slice(-2), [b0, b1] = b.shape.slice(-2);
  const M = tA ? a1 : a0, K = tA ? a0 : a1;
  const Kb = tB ? b1 : b0, N = tB ? b0 : b1;
  if (K !== Kb) {
    throw new Error(`matmul: inner dimensions differ: a ${fmtShape(a.shape)}${tA ? ' (transposed)' : ''} and b ` +
      `${fmtShape(b.shape)}${tB ? ' (transposed)' : ''}`);
  }
  const rec = needsGrad(a, b);
  const ad = a.data, bd = b.data;
  const B = be(ad);
  const c = outBuffer(dtypeOf(ad), P * M * N, rec);
  B.gemm(c, ad, bd, M, N, K, tA, tB, 1, 0, P, M * K, K * N, M * N);
  return makeResult(c, r === 3 ? [P, M, N] : [M, N], rec, [a, b], (g) => {
    const da = gradOf(a), db = gradOf(b);
    // d op(A) = dC op(B)^T;  d op(B) = op(A)^T dC, written for each storage layout
    if (da) {
      if (!tA) B.gemm(da, g, bd, M, K, N, false, !tB, 1, 1, P, M * N, K * N, M * K);
      else B.gemm(da, bd, g, K, M, N, tB, true, 1, 1, P, K * N, M * N, M * K);
    }
    if (db) {
      if (!tB) B.gemm(db, ad, g, K, N, M, !tA, false, 1, 1, P, M * K, M * N, K * N);
      else B.gemm(db, g, ad, N, K, M, true, tA, 1, 1, P, M * N, M * K, K * N);
    }
  });
}

// ---- elementwise, two inputs of the same shape

type Binary = 'add' | 'sub' | 'mul' | 'div' | 'minimum' | 'maximum';

function binary(op: Binary, a: Tensor, b: Tensor, backward: (B: Backend, g: FloatArray, ad: FloatArray, bd: FloatArray,
  out: FloatArray, n: number) => void): Tensor {
  sameShape(op, 'a', a, 'b', b);
  const rec = needsGrad(a, b);
  const ad = a.data, bd = b.data, n = a.size;
  const B = be(ad);
  const out = outBuffer(dtypeOf(ad), n, rec);
  B[op](out, ad, bd, n);
  return makeResult(out, a.shape, rec, [a, b], (g) => backward(B, g, ad, bd, out, n));
}

// da += g * x
function accMul(B: Backend, da: FloatArray, g: FloatArray, x: FloatArray, n: number): void {
  const t = tmp(dtypeOf(da), n);
  B.mul(t, g, x, n);
  B.axpy(da, 1, t, n);
  giveBuffer(t);
}

export function add(a: Tensor, b: Tensor): Tensor {
  return binary('add', a, b, (B, g, _ad, _bd, _o, n) => {
    const da = gradOf(a), db = gradOf(b);
    if (da) B.axpy(da, 1, g, n);
    if (db) B.axpy(db, 1, g, n);
  });
}

export function sub(a: Tensor, b: Tensor): Tensor {
  return binary('sub', a, b, (B, g, _ad, _bd, _o, n) => {
    const da = gradOf(a), db = gradOf(b);
    if (da) B.axpy(da, 1, g, n);
    if (db) B.axpy(db, -1, g, n);
  });
}

export function mul(a: Tensor, b: Tensor): Tensor {
  return binary('mul', a, b, (B, g, ad, bd, _o, n) => {
    const da = gradOf(a), db = gradOf(b);
    if (da) accMul(B, da, g, bd, n);
    if (db) accMul(B, db, g, ad, n);
  });
}

// d(a/b)/da = 1/b;  d(a/b)/db = -out/b
export function div(a: Tensor, b: Tensor): Tensor {
  return binary('div', a, b, (B, g, _ad, bd, out, n) => {
    const da = gradOf(a), db = gradOf(b);
    const t = tmp(dtypeOf(g), n);
    B.div(t, g, bd, n);
    if (da) B.axpy(da, 1, t, n);
    if (db) {
      B.mul(t, t, out, n);
      B.axpy(db, -1, t, n);
    }
    giveBuffer(t);
  });
}

// The gradient goes to the input the output came from: a where out == a (ties to a), b elsewhere.
function minmaxBackward(a: Tensor, b: Tensor) {
  return (B: Backend, g: FloatArray, ad: FloatArray, _bd: FloatArray, out: FloatArray, n: number) => {
    const da = gradOf(a), db = gradOf(b);
    const dt = dtypeOf(g);
    const diff = tmp(dt, n), zero = tmp(dt, n);
    B.sub(diff, ad, out, n); // 0 where the output came from a
    B.fill(zero, 0, n);
    B.where(diff, diff, zero, g, n); // g where from a, else 0
    if (da) B.axpy(da, 1, diff, n);
    if (db) {
      B.axpy(db, 1, g, n);
      B.axpy(db, -1, diff, n);
    }
    giveBuffer(diff);
    giveBuffer(zero);
  };
}

export function minimum(a: Tensor, b: Tensor): Tensor {
  return binary('minimum', a, b, minmaxBackward(a, b));
}

export function maximum(a: Tensor, b: Tensor): Tensor {
  return binary('maximum', a, b, minmaxBackward(a, b));
}

// ---- elementwise, one input

function unary(op: string, a: Tensor, forward: (B: Backend, out: FloatArray, ad: FloatArray, n: number) => void,
  backward: (B: Backend, da: FloatArray, g: FloatArray, ad: FloatArray, out: FloatArray, n: number) => void): Tensor {
  live(op, 'a', a);
  const rec = needsGrad(a);
  const ad = a.data, n = a.size;
  const B = be(ad);
  const out = outBuffer(dtypeOf(ad), n, rec);
  forward(B, out, ad, n);
  return makeResult(out, a.shape, rec, [a], (g) => {
    const da = gradOf(a);
    if (da) backward(B, da, g, ad, out, n);
  });
}

export function addScalar(a: Tensor, s: number): Tensor {
  return unary('addScalar', a, (B, o, x, n) => B.scaleShift(o, x, 1, s, n), (B, da, g, _x, _o, n) => B.axpy(da, 1, g, n));
}

export function mulScalar(a: Tensor, s: number): Tensor {
  return unary('mulScalar', a, (B, o, x, n) => B.scaleShift(o, x, s, 0, n), (B, da, g, _x, _o, n) => B.axpy(da, s, g, n));
}

export function neg(a: Tensor): Tensor {
  return unary('neg', a, (B, o, x, n) => B.scaleShift(o, x, -1, 0, n), (B, da, g, _x, _o, n) => B.axpy(da, -1, g, n));
}

export function exp(a: Tensor): Tensor {
  return unary('exp', a, (B, o, x, n) => B.exp(o, x, n), (B, da, g, _x, o, n) => accMul(B, da, g, o, n));
}

export function log(a: Tensor): Tensor {
  return unary('log', a, (B, o, x, n) => B.log(o, x, n), (B, da, g, x, _o, n) => {
    const t = tmp(dtypeOf(da), n);
    B.div(t, g, x, n);
    B.axpy(da, 1, t, n);
    giveBuffer(t);
  });
}

// sigmoid' = s (1 - s)
export function sigmoid(a: Tensor): Tensor {
  return unary('sigmoid', a, (B, o, x, n) => B.sigmoid(o, x, n), (B, da, g, _x, o, n) => {
    const t = tmp(dtypeOf(da), n);
    B.scaleShift(t, o, -1, 1, n);
    B.mul(t, t, o, n);
    accMul(B, da, g, t, n);
    giveBuffer(t);
  });
}

// d log(sigmoid(a)) / da = sigmoid(-a)
export function logSigmoid(a: Tensor): Tensor {
  return unary('logSigmoid', a, (B, o, x, n) => B.logSigmoid(o, x, n), (B, da, g, x, _o, n) => {
    const t = tmp(dtypeOf(da), n);
    B.scaleShift(t, x, -1, 0, n);
    B.sigmoid(t, t, n);
    accMul(B, da, g, t, n);
    giveBuffer(t);
  });
}

// The gradient passes where lo <= a <= hi (out == a), as in PyTorch.
export function clamp(a: Tensor, lo: number, hi: number): Tensor {
  return unary('clamp', a, (B, o, x, n) => B.clamp(o, x, lo, hi, n), (B, da, g, x, o, n) => {
    const dt = dtypeOf(da);
    const diff = tmp(dt, n), zero = tmp(dt, n);
    B.sub(diff, x, o, n);
    B.fill(zero, 0, n);
    B.where(diff, diff, zero, g, n);
    B.axpy(da, 1, diff, n);
    giveBuffer(diff);
    giveBuffer(zero);
  });
}

// cond != 0 ? a : b; cond gets no gradient.
export function where(cond: Tensor, a: Tensor, b: Tensor): Tensor {
  sameShape('where', 'a', a, 'b', b);
  sameShape('where', 'a', a, 'cond', cond);
  const rec = needsGrad(a, b);
  const cd = cond.data, ad = a.data, bd = b.data, n = a.size;
  const B = be(ad);
  const out = outBuffer(dtypeOf(ad), n, rec);
  B.where(out, cd, ad, bd, n);
  return makeResult(out, a.shape, rec, [a, b], (g) => {
    const da = gradOf(a), db = gradOf(b);
    const dt = dtypeOf(g);
    const t = tmp(dt, n), zero = tmp(dt, n);
    B.fill(zero, 0, n);
    if (da) {
      B.where(t, cd, g, zero, n);
      B.axpy(da, 1, t, n);
    }
    if (db) {
      B.where(t, cd, zero, g, n);
      B.axpy(db, 1, t, n);
    }
    giveBuffer(t);
    giveBuffer(zero);
  });
}

// ---- reductions

export function sum(a: Tensor): Tensor {
  live('sum', 'a', a);
  const rec = needsGrad(a);
  const ad = a.data, n = a.size;
  const B = be(ad);
  const out = outBuffer(dtypeOf(ad), 1, rec);
  out[0] = B.sum(ad, n);
  return makeResult(out, [], rec, [a], (g) => {
    const da = gradOf(a);
    if (da) B.scaleShift(da, da, 1, g[0], n);
  });
}

export function mean(a: Tensor): Tensor {
  live('mean', 'a', a);
  const rec = needsGrad(a);
  const ad = a.data, n = a.size;
  const B = be(ad);
  const out = outBuffer(dtypeOf(ad), 1, rec);
  out[0] = n > 0 ? B.sum(ad, n) / n : NaN;
  return makeResult(out, [], rec, [a], (g) => {
    const da = gradOf(a);
    if (da) B.scaleShift(da, da, 1, g[0] / n, n);
  });
}

// (..., C) -> (...), as a product with a ones vector so it is one gemm both ways.
export function sumLastDim(a: Tensor): Tensor {
  const C = lastDim('sumLastDim', 'a', a);
  const rec = needsGrad(a);
  const ad = a.data, N = C > 0 ? a.size / C : 0;
  const dt = dtypeOf(ad);
  const B = be(ad);
  const out = outBuffer(dt, N, rec);
  const ones = tmp(dt, C);
  B.fill(ones, 1, C);
  B.gemm(out, ad, ones, N, 1, C, false, false, 1, 0); // (N, C) @ (C, 1)
  giveBuffer(ones);
  return makeResult(out, a.shape.slice(0, -1), rec, [a], (g) => {
    const da = gradOf(a);
    if (!da) return;
    const o = tmp(dt, C);
    B.fill(o, 1, C);
    B.gemm(da, g, o, N, C, 1, false, false, 1, 1); // (N, 1) @ (1, C)
    giveBuffer(o);
  });
}

// ---- lookups

// out[i, :] = wte[ids[i], :].  wte: (V, C) -> (ids.length, C). ids must stay unchanged until backward.
export function embedding(ids: Int32Array, wte: Tensor): Tensor {
  rank('embedding', 'wte', wte, 2, '(V, C)');
  return gather('embedding', ids, wte);
}

// out[i, :] = x[rows[i], :].  x: (N, C) -> (rows.length, C)
export function gatherRows(x: Tensor, rows: Int32Array): Tensor {
  rank('gatherRows', 'x', x, 2, '(N, C)');
  return gather('gatherRows', rows, x);
}

function gather(op: string, ids: Int32Array, table: Tensor): Tensor {
  const [V, C] = table.shape;
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] < 0 || ids[i] >= V) throw new Error(`${op}: index ${ids[i]} at position ${i} is outside 0..${V - 1} of a ${fmtShape(table.shape)} table`);
  }
  const rec = needsGrad(table);
  const td = table.data, N = ids.length;
  const B = be(td);
  const out = outBuffer(dtypeOf(td), N * C, rec);
  B.embeddingForward(out, ids, td, N, C);
  return makeResult(out, [N, C], rec, [table], (g) => {
    const dt = gradOf(table);
    if (dt) B.embeddingBackward(dt, g, ids, N, C);
  });
}

// ---- normalisation over the last dimension

export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const C = lastDim('rmsnorm', 'x', x);
  rank('rmsnorm', 'w', w, 1, `(${C})`);
  if (w.size !== C) throw new Error(`rmsnorm: w has shape ${fmtShape(w.shape)} but x has shape ${fmtShape(x.shape)}; w must be (${C})`);
  const rec = needsGrad(x, w);
  const xd = x.data, wd = w.data, N = x.size / C;
  const dt = dtypeOf(xd);
  const B = be(xd);
  const out = outBuffer(dt, N * C, rec);
  const rstd = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  B.rmsnormForward(out, rstd, xd, wd, N, C, eps);
  if (!rec) giveBuffer(rstd);
  return makeResult(out, x.shape, rec, [x, w], (g) => {
    const dx = gradOf(x) ?? tmp(dt, N * C), dw = gradOf(w) ?? tmp(dt, C);
    B.rmsnormBackward(dx, dw, g, xd, wd, rstd, N, C);
    if (!x.requiresGrad) giveBuffer(dx);
    if (!w.requiresGrad) giveBuffer(dw);
  });
}

export function layernorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
  const C = lastDim('layernorm', 'x', x);
  for (const [name, p] of [['w', w], ['b', b]] as const) {
    rank('layernorm', name, p, 1, `(${C})`);
    if (p.size !== C) throw new Error(`layernorm: ${name} has shape ${fmtShape(p.shape)} but x has shape ${fmtShape(x.shape)}; ${name} must be (${C})`);
  }
  const rec = needsGrad(x, w, b);
  const xd = x.data, wd = w.data, bd = b.data, N = x.size / C;
  const dt = dtypeOf(xd);
  const B = be(xd);
  const out = outBuffer(dt, N * C, rec);
  const mu = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  const rstd = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  B.layernormForward(out, mu, rstd, xd, wd, bd, N, C, eps);
  if (!rec) {
    giveBuffer(mu);
    giveBuffer(rstd);
  }
  return makeResult(out, x.shape, rec, [x, w, b], (g) => {
    const dx = gradOf(x) ?? tmp(dt, N * C), dw = gradOf(w) ?? tmp(dt, C), db = gradOf(b) ?? tmp(dt, C);
    B.layernormBackward(dx, dw, db, g, xd, wd, mu, rstd, N, C);
    if (!x.requiresGrad) giveBuffer(dx);
    if (!w.requiresGrad) giveBuffer(dw);
    if (!b.requiresGrad) giveBuffer(db);
  });
}

// ---- rotary embedding (Su et al. 2021, RoFormer; Hugging Face Llama's rotate_half layout)

// x: (B, T, nHead, headDim); cos, sin: (maxT, headDim/2) tables; token t of batch b sits at pos0[b] + t.
export function rope(x: Tensor, cos: FloatArray, sin: FloatArray, pos0: Int32Array | null): Tensor {
  rank('rope', 'x', x, 4, '(B, T, nHead, headDim)');
  const [Bn, T, nHead, hd] = x.shape;
  if (hd % 2 !== 0) throw new Error(`rope: headDim must be even, x has shape ${fmtShape(x.shape)}`);
  if (cos.length !== sin.length || cos.length % (hd / 2) !== 0) {
    throw new Error(`rope: cos (${cos.length}) and sin (${sin.length}) must both be (maxT, ${hd / 2}) tables for x ${fmtShape(x.shape)}`);
  }
  const maxT = cos.length / (hd / 2);
  if (pos0 && pos0.length < Bn) throw new Error(`rope: pos0 has ${pos0.length} entries for batch ${Bn}`);
  for (let b = 0; b < Bn; b++) {
    const p = pos0 ? pos0[b] : 0;
    if (p < 0 || p + T > maxT) throw new Error(`rope: positions ${p}..${p + T - 1} exceed the rotary table of ${maxT} positions`);
  }
  const rec = needsGrad(x);
  const xd = x.data;
  const B = be(xd);
  const out = outBuffer(dtypeOf(xd), x.size, rec);
  B.ropeForward(out, xd, cos, sin, Bn, T, nHead, hd, pos0);
  return makeResult(out, x.shape, rec, [x], (g) => {
    const dx = gradOf(x);
    if (dx) B.ropeBackward(dx, g, cos, sin, Bn, T, nHead, hd, pos0);
  });
}

// Hugging Face Llama tables: angle(pos, i) = pos * theta^(-2i / headDim).  -> cos, sin (maxT, headDim/2)
export function ropeTables(maxT: number, headDim: number, theta = 10000): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxT * half), sin = new Float32Array(maxT * half);
  for (let p = 0; p < maxT; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(theta, (-2 * i) / headDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

// ---- attention

// Causal grouped-query attention. q: (B, T, nHead, hd); k, v: (B, Tk, nKvHead, hd) -> (B, T, nHead, hd).
// Training form: Tk == T. With opts.lens (a KV cache of Tk slots, lens[b] valid) it is inference only (no gradient).
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: { lens?: Int32Array | null; scale?: number } = {}): Tensor {
  rank('attention', 'q', q, 4, '(B, T, nHead, headDim)');
  rank('attention', 'k', k, 4, '(B, Tk, nKvHead, headDim)');
  sameShape('attention', 'k', k, 'v', v);
  const [Bn, T, nHead, hd] = q.shape;
  const [Bk, Tk, nKv, hdk] = k.shape;
  if (Bk !== Bn || hdk !== hd || Tk < T || nKv < 1 || nHead % nKv !== 0) {
    throw new Error(`attention: k has shape ${fmtShape(k.shape)} but q has shape ${fmtShape(q.shape)}; k must be ` +
      `(${Bn}, Tk >= ${T}, nKvHead dividing ${nHead}, ${hd})`);
  }
  const lens = opts.lens ?? null;
  if (lens && lens.length < Bn) throw new Error(`attention: lens has ${lens.length} entries for batch ${Bn}`);
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  const rec = needsGrad(q, k, v);
  if (rec && (lens || Tk !== T)) {
    throw new Error(`attention: gradients need the training form (Tk == T, no lens); got q ${fmtShape(q.shape)}, ` +
      `k ${fmtShape(k.shape)}${lens ? ' with lens' : ''}; run cached attention under noGrad`);
  }
  const qd = q.data, kd = k.data, vd = v.data;
  const dt = dtypeOf(qd);
  const B = be(qd);
  const out = outBuffer(dt, q.size, rec);
  const lse = rec ? outBuffer(dt, Bn * nHead * T, true) : null;
  B.attentionForward(out, lse, qd, kd, vd, Bn, T, Tk, nHead, nKv, hd, scale, lens);
  return makeResult(out, q.shape, rec, [q, k, v], (g) => {
    const dq = gradOf(q) ?? tmp(dt, q.size), dk = gradOf(k) ?? tmp(dt, k.size), dv = gradOf(v) ?? tmp(dt, v.size);
    B.attentionBackward(dq, dk, dv, g, out, lse!, qd, kd, vd, Bn, T, nHead, nKv, hd, scale);
    if (!q.requiresGrad) giveBuffer(dq);
    if (!k.requiresGrad) giveBuffer(dk);
    if (!v.requiresGrad) giveBuffer(dv);
  });
}

// ---- activations

// silu(gate) * up (Shazeer 2020, GLU Variants Improve Transformer)
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  sameShape('swiglu', 'gate', gate, 'up', up);
  const rec = needsGrad(gate, up);
  const gd = gate.data, ud = up.data, n = gate.size;
  const dt = dtypeOf(gd);
  const B = be(gd);
  const out = outBuffer(dt, n, rec);
  B.swigluForward(out, gd, ud, n);
  return makeResult(out, gate.shape, rec, [gate, up], (g) => {
    const dg = gradOf(gate) ?? tmp(dt, n), du = gradOf(up) ?? tmp(dt, n);
    B.swigluBackward(dg, du, g, gd, ud, n);
    if (!gate.requiresGrad) giveBuffer(dg);
    if (!up.requiresGrad) giveBuffer(du);
  });
}

export function gelu(x: Tensor): Tensor {
  return unary('gelu', x, (B, o, xd, n) => B.geluForward(o, xd, n), (B, dx, g, xd, _o, n) => B.geluBackward(dx, g, xd, n));
}

// Softmax over the last dimension.
export function softmax(x: Tensor): Tensor {
  const C = lastDim('softmax', 'x', x);
  const N = C > 0 ? x.size / C : 0;
  return unary('softmax', x, (B, o, xd) => B.softmaxForward(o, xd, N, C), (B, dx, g, _x, o) => B.softmaxBackward(dx, g, o, N, C));
}

// ---- losses over logits (N, V), fused with log-softmax: probabilities are never stored

function logitsArgs(op: string, logits: Tensor, targets: Int32Array): [number, number] {
  rank(op, 'logits', logits, 2, '(N, V)');
  const [N, V] = logits.shape;
  if (targets.length !== N) throw new Error(`${op}: targets has ${targets.length} entries but logits has shape ${fmtShape(logits.shape)}`);
  for (let i = 0; i < N; i++) {
    if (targets[i] >= V) throw new Error(`${op}: target ${targets[i]} at row ${i} is outside the vocabulary of ${V}`);
  }
  return [N, V];
}

// dlogits (+)= CE backward with per-row weights dl: straight into a fresh gradient buffer, else via a temporary.
function crossEntropyGrad(B: Backend, logits: Tensor, dl: FloatArray, ld: FloatArray, lse: FloatArray,
  targets: Int32Array, N: number, V: number): void {
  const dst = gradForOverwrite(logits);
  if (!dst) return;
  if (dst.fresh) {
    B.crossEntropyBackward(dst.buf, dl, ld, lse, targets, N, V);
  } else {
    const t = tmp(dtypeOf(ld), N * V);
    B.crossEntropyBackward(t, dl, ld, lse, targets, N, V);
    B.axpy(dst.buf, 1, t, N * V);
    giveBuffer(t);
  }
}

// Scalar: sum_i w_i loss_i / sum_i w_i over rows with targets[i] >= 0 (w = 1 when weights are absent); 0 when no
// row counts.
export function crossEntropy(logits: Tensor, targets: Int32Array, weights?: Float32Array | null): Tensor {
  const [N, V] = logitsArgs('crossEntropy', logits, targets);
  if (weights && weights.length !== N) throw new Error(`crossEntropy: weights has ${weights.length} entries but logits has shape ${fmtShape(logits.shape)}`);
  const rec = needsGrad(logits);
  const ld = logits.data;
  const dt = dtypeOf(ld);
  const B = be(ld);
  const losses = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  const lse = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  const wEff = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  B.crossEntropyForward(losses, lse, ld, targets, N, V);
  let denom = 0;
  for (let i = 0; i < N; i++) {
    wEff[i] = targets[i] < 0 ? 0 : weights ? weights[i] : 1;
    denom += wEff[i];
  }
  B.mul(losses, losses, wEff, N);
  const out = outBuffer(dt, 1, rec);
  out[0] = denom !== 0 ? B.sum(losses, N) / denom : 0;
  if (!rec) {
    giveBuffer(losses);
    giveBuffer(lse);
    giveBuffer(wEff);
  }
  return makeResult(out, [], rec, [logits], (g) => {
    const dl = tmp(dt, N);
    B.scaleShift(dl, wEff, denom !== 0 ? g[0] / denom : 0, 0, N);
    crossEntropyGrad(B, logits, dl, ld, lse, targets, N, V);
    giveBuffer(dl);
  });
}

// (N): log p(targets[i] | row i), 0 where targets[i] < 0.
export function tokenLogprobs(logits: Tensor, targets: Int32Array): Tensor {
  const [N, V] = logitsArgs('tokenLogprobs', logits, targets);
  const rec = needsGrad(logits);
  const ld = logits.data;
  const dt = dtypeOf(ld);
  const B = be(ld);
  const out = outBuffer(dt, N, rec);
  const lse = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  B.crossEntropyForward(out, lse, ld, targets, N, V);
  B.scaleShift(out, out, -1, 0, N);
  if (!rec) giveBuffer(lse);
  return makeResult(out, [N], rec, [logits], (g) => {
    const dl = tmp(dt, N);
    B.scaleShift(dl, g, -1, 0, N);
    crossEntropyGrad(B, logits, dl, ld, lse, targets, N, V);
    giveBuffer(dl);
  });
}
