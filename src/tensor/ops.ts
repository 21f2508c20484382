// The autograd ops, part 1: matrix products, elementwise ops, reductions and lookups (the network layers and losses
// are in nn.ts). Each forward is one or a few Backend calls over whole arrays, and each backward is composed from
// Backend primitives that accumulate into the inputs' gradients (gradOf). No per-element work crosses the backend.
// Boundary: shapes and gradients live here; arithmetic lives in the backends; buffers come from tensor.ts.
// Conventions: row-major, the last dimension is the feature dimension; `linear` takes weights in the Hugging Face
// (out, in) layout.

import type { Backend, FloatArray } from './backend.js';
import { jsBackend } from './backend-js.js';
import { getBackend } from './registry.js';
import {
  Tensor, adoptGrad, canAdoptGrad, checkLive, dtypeOf, fmtShape, giveBuffer, gradForOverwrite, gradOf, makeResult,
  needsGrad, outBuffer, takeBuffer, type DType,
} from './tensor.js';

// float64 data (gradient checks) always runs on the JS backend; the native one takes Float32Array only.
export function be(a: FloatArray): Backend {
  return a instanceof Float64Array ? jsBackend : getBackend();
}

// ---- argument checks: errors name the op, the argument and the shapes

export function live(op: string, name: string, t: Tensor): void {
  checkLive(op, name, t);
}

export function sameShape(op: string, an: string, a: Tensor, bn: string, b: Tensor): void {
  live(op, an, a);
  live(op, bn, b);
  const ok = a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);
  if (!ok) throw new Error(`${op}: ${bn} has shape ${fmtShape(b.shape)} but ${an} has shape ${fmtShape(a.shape)}; they must match`);
  if (dtypeOf(a.data) !== dtypeOf(b.data)) throw new Error(`${op}: ${an} is ${dtypeOf(a.data)} but ${bn} is ${dtypeOf(b.data)}`);
}

export function lastDim(op: string, name: string, t: Tensor): number {
  live(op, name, t);
  if (t.shape.length < 1) throw new Error(`${op}: ${name} must have at least one dimension, got shape ${fmtShape(t.shape)}`);
  return t.shape[t.shape.length - 1];
}

export function rank(op: string, name: string, t: Tensor, r: number, meaning: string): void {
  live(op, name, t);
  if (t.shape.length !== r) throw new Error(`${op}: ${name} must be ${meaning}, got shape ${fmtShape(t.shape)}`);
}

// A temporary for a backward: from the pool, given back before the closure returns.
export function tmp(dtype: DType, n: number): FloatArray {
  return takeBuffer(dtype, n);
}

// A gradient nothing has been added to yet is written (gemm beta 0, a copy) instead of zeroed and then added to.
function beta(d: { fresh: boolean }): number {
  return d.fresh ? 0 : 1;
}

// grad(t) += alpha * g
function accumulate(B: Backend, t: Tensor, alpha: number, g: FloatArray, n: number): void {
  const d = gradForOverwrite(t);
  if (!d) return;
  if (d.fresh) B.scaleShift(d.buf, g, alpha, 0, n);
  else B.axpy(d.buf, alpha, g, n);
}

// ---- matrix products

// The precision of linear and matmul (forward and backward alike): 'fp32', or 'bf16' mixed precision, whose GEMMs
// round their inputs to bf16 and sum in float32 (Backend.gemmMixedBf16) while everything else, the parameters, their
// gradients, norms, attention, softmax and losses, stays float32 (torch.autocast's split: Micikevicius et al. 2018).
// Set per run by the training loop (src/train/loop.ts); an op's backward uses the precision its forward ran in.
export type MatmulPrecision = 'fp32' | 'bf16';
export const MATMUL_PRECISIONS: readonly MatmulPrecision[] = ['fp32', 'bf16'];
let matmulPrecision: MatmulPrecision = 'fp32';

// Sets the precision of the linear and matmul ops recorded from now on; returns the one it replaces.
export function setMatmulPrecision(p: MatmulPrecision): MatmulPrecision {
  if (!MATMUL_PRECISIONS.includes(p)) throw new Error(`setMatmulPrecision: '${String(p)}' is not one of ${MATMUL_PRECISIONS.join(', ')}`);
  const was = matmulPrecision;
  matmulPrecision = p;
  return was;
}

export function getMatmulPrecision(): MatmulPrecision {
  return matmulPrecision;
}

const gemmOf = (): 'gemm' | 'gemmMixedBf16' => (matmulPrecision === 'bf16' ? 'gemmMixedBf16' : 'gemm');

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
  const B = be(xd), gemm = gemmOf();
  const y = outBuffer(dtypeOf(xd), N * outF, rec);
  B[gemm](y, xd, wd, N, outF, inF, false, true, 1, 0);
  if (bd) B.addBias(y, y, bd, N, outF);
  return makeResult(y, [...x.shape.slice(0, -1), outF], rec, b ? [x, w, b] : [x, w], (g) => {
    const dx = gradForOverwrite(x), dw = gradForOverwrite(w), db = b ? gradOf(b) : null;
    if (dx) B[gemm](dx.buf, g, wd, N, inF, outF, false, false, 1, beta(dx)); // (N, in) += (N, out) @ (out, in)
    if (dw) B[gemm](dw.buf, g, xd, outF, inF, N, true, false, 1, beta(dw)); // (out, in) += (N, out)^T @ (N, in)
    if (db) B.sumRows(db, g, N, outF);
  }, true);
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
  const B = be(ad), gemm = gemmOf();
  const c = outBuffer(dtypeOf(ad), P * M * N, rec);
  B[gemm](c, ad, bd, M, N, K, tA, tB, 1, 0, P, M * K, K * N, M * N);
  return makeResult(c, r === 3 ? [P, M, N] : [M, N], rec, [a, b], (g) => {
    const da = gradForOverwrite(a), db = gradForOverwrite(b);
    // d op(A) = dC op(B)^T;  d op(B) = op(A)^T dC, written for each storage layout
    if (da) {
      if (!tA) B[gemm](da.buf, g, bd, M, K, N, false, !tB, 1, beta(da), P, M * N, K * N, M * K);
      else B[gemm](da.buf, bd, g, K, M, N, tB, true, 1, beta(da), P, K * N, M * N, M * K);
    }
    if (db) {
      if (!tB) B[gemm](db.buf, ad, g, K, N, M, !tA, false, 1, beta(db), P, M * K, M * N, K * N);
      else B[gemm](db.buf, g, ad, N, K, M, true, tA, 1, beta(db), P, M * N, M * K, K * N);
    }
  }, true);
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

// grad(t) += alpha * g, where g is the running node's own gradient buffer, spent after this call: scaled in place and
// handed to t when t's gradient is still empty (adoptGrad), so no copy is made. Only for g read last.
function accumulateLast(B: Backend, t: Tensor, alpha: number, g: FloatArray, n: number): void {
  if (canAdoptGrad(t, g)) {
    if (alpha !== 1) B.scaleShift(g, g, alpha, 0, n);
    adoptGrad(t, g);
  } else {
    accumulate(B, t, alpha, g, n);
  }
}

// The backward of a + b, g being the sum's gradient buffer (spent): b's gradient is a copy of g, a's is g itself. The
// residual adds of every block (add, and residualRmsnorm in nn.ts).
export function addBackward(B: Backend, a: Tensor, b: Tensor, g: FloatArray, n: number): void {
  accumulate(B, b, 1, g, n);
  accumulateLast(B, a, 1, g, n);
}

export function add(a: Tensor, b: Tensor): Tensor {
  return binary('add', a, b, (B, g, _ad, _bd, _o, n) => addBackward(B, a, b, g, n));
}

export function sub(a: Tensor, b: Tensor): Tensor {
  return binary('sub', a, b, (B, g, _ad, _bd, _o, n) => {
    accumulate(B, b, -1, g, n);
    accumulateLast(B, a, 1, g, n);
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

export function unary(op: string, a: Tensor, forward: (B: Backend, out: FloatArray, ad: FloatArray, n: number) => void,
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

// y = a * s + t: grad(a) += s * g, with g handed on when possible (accumulateLast).
function affine(op: string, a: Tensor, s: number, t: number): Tensor {
  live(op, 'a', a);
  const rec = needsGrad(a);
  const ad = a.data, n = a.size;
  const B = be(ad);
  const out = outBuffer(dtypeOf(ad), n, rec);
  B.scaleShift(out, ad, s, t, n);
  return makeResult(out, a.shape, rec, [a], (g) => accumulateLast(B, a, s, g, n));
}

export function addScalar(a: Tensor, s: number): Tensor {
  return affine('addScalar', a, 1, s);
}

export function mulScalar(a: Tensor, s: number): Tensor {
  return affine('mulScalar', a, s, 0);
}

export function neg(a: Tensor): Tensor {
  return affine('neg', a, -1, 0);
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
