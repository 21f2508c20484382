// Every differentiable op's backward against central finite differences, in float64 on the JS backend (ggml's
// "grad" mode; tinygrad helper_test_op). The loss is sum(op(...) * R) for a fixed random R, so every output element
// carries a different upstream gradient. Inputs stay away from kinks (where, minimum/maximum, clamp) so the finite
// difference is well defined. Also: gradients accumulate into an existing .grad in place, views share gradients,
// and releaseTape() invalidates the graph.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Tensor, noGrad, releaseTape, setBackend, setDefaultDType, linear, matmul, add, sub, mul, div, minimum, maximum,
  addScalar, mulScalar, neg, exp, log, sigmoid, logSigmoid, clamp, where, sum, mean, sumLastDim, embedding, gatherRows,
  rmsnorm, residualRmsnorm, layernorm, rope, ropeTables, attention, swiglu, gelu, softmax, crossEntropy, tokenLogprobs, poolStats,
} from '../src/tensor/index.js';
import { rng } from './helpers.js';

setBackend('js');
setDefaultDType('float64');

const r = rng(7);
function rand(shape: number[], lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return Tensor.from(Array.from({ length: n }, () => lo + (hi - lo) * r()), shape, true);
}
function ints(n: number, lo: number, hi: number): Int32Array {
  return Int32Array.from({ length: n }, () => lo + Math.floor(r() * (hi - lo)));
}

// Checks d(sum(f(xs) * R))/dx for every element of every input that requires grad.
function gradcheck(name: string, xs: Tensor[], f: (...xs: Tensor[]) => Tensor, tol = 1e-6): void {
  const out0 = noGrad(() => f(...xs));
  const R = Tensor.from(Array.from({ length: out0.size }, () => r() * 2 - 1), out0.shape);
  const loss = (...a: Tensor[]) => {
    const o = f(...a);
    return o.size === 1 ? mulScalar(o.view([]), R.data[0]) : sum(mul(o, R));
  };
  for (const x of xs) x.grad = null;
  const L = loss(...xs);
  L.backward();
  releaseTape();
  const h = 1e-5;
  for (const [k, x] of xs.entries()) {
    if (!x.requiresGrad) continue;
    assert.ok(x.grad, `${name}: input ${k} got no gradient`);
    let worst = 0, at = -1, an = 0, nu = 0;
    for (let i = 0; i < x.size; i++) {
      const keep = x.data[i];
      x.data[i] = keep + h;
      const lp = noGrad(() => loss(...xs).item());
      x.data[i] = keep - h;
      const lm = noGrad(() => loss(...xs).item());
      x.data[i] = keep;
      const numeric = (lp - lm) / (2 * h);
      const analytic = x.grad!.data[i];
      const err = Math.abs(numeric - analytic) / Math.max(1, Math.abs(numeric), Math.abs(analytic));
      if (err > worst) [worst, at, an, nu] = [err, i, analytic, numeric];
    }
    assert.ok(worst <= tol, `${name}: input ${k} element ${at}: analytic ${an}, numeric ${nu} (error ${worst.toExponential(2)})`);
  }
}

test('gradcheck: matrix products', () => {
  gradcheck('linear with bias, 3-D x', [rand([2, 3, 5]), rand([4, 5]), rand([4])], (x, w, b) => linear(x, w, b));
  gradcheck('linear without bias', [rand([3, 7]), rand([2, 7])], (x, w) => linear(x, w));
  gradcheck('linear of a tensor with itself', [rand([4, 4])], (x) => linear(x, x));
  gradcheck('matmul of a tensor with itself, transposed', [rand([3, 4])], (x) => matmul(x, x, { transB: true }));
  gradcheck('linear of an intermediate', [rand([3, 5]), rand([4, 5]), rand([4, 4])], (x, w, w2) => linear(linear(x, w), w2));
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const a = rand(transA ? [4, 3] : [3, 4]), b = rand(transB ? [5, 4] : [4, 5]);
      gradcheck(`matmul 2-D transA=${transA} transB=${transB}`, [a, b], (x, y) => matmul(x, y, { transA, transB }));
      const a3 = rand(transA ? [2, 4, 3] : [2, 3, 4]), b3 = rand(transB ? [2, 5, 4] : [2, 4, 5]);
      gradcheck(`matmul 3-D transA=${transA} transB=${transB}`, [a3, b3], (x, y) => matmul(x, y, { transA, transB }));
    }
  }
});

test('gradcheck: elementwise', () => {
  const sh = [3, 5];
  gradcheck('add', [rand(sh), rand(sh)], add);
  gradcheck('sub', [rand(sh), rand(sh)], sub);
  gradcheck('mul', [rand(sh), rand(sh)], mul);
  gradcheck('div', [rand(sh), rand(sh, 0.5, 2)], div);
  gradcheck('mul of a tensor with itself', [rand(sh)], (x) => mul(x, x));
  gradcheck('add of a tensor with itself', [rand(sh)], (x) => add(x, x));
  gradcheck('sub of two views of one tensor', [rand([2, 6])], (x) => sub(x.view([3, 4]), x.view([3, 4])));
  // minimum/maximum: a and b at least 0.1 apart
  const a = rand(sh), b = Tensor.from(Array.from(a.data, (v, i) => v + (i % 2 ? 0.3 : -0.3)), sh, true);
  gradcheck('minimum', [a, b], minimum);
  gradcheck('maximum', [a, b], maximum);
  gradcheck('addScalar', [rand(sh)], (x) => addScalar(x, 0.7));
  gradcheck('mulScalar', [rand(sh)], (x) => mulScalar(x, -1.3));
  gradcheck('neg', [rand(sh)], neg);
  gradcheck('exp', [rand(sh, -2, 2)], exp);
  gradcheck('log', [rand(sh, 0.2, 3)], log);
  gradcheck('sigmoid', [rand(sh, -4, 4)], sigmoid);
  gradcheck('logSigmoid', [rand(sh, -6, 6)], logSigmoid);
  // clamp at [-0.5, 0.5]: values at least 0.05 from either bound
  const c = Tensor.from(Array.from({ length: 15 }, (_, i) => [-0.9, -0.3, 0.1, 0.4, 0.8][i % 5] + 0.02 * r()), sh, true);
  gradcheck('clamp', [c], (x) => clamp(x, -0.5, 0.5));
  const cond = Tensor.from(Array.from({ length: 15 }, (_, i) => i % 3 === 0 ? 0 : 1), sh);
  gradcheck('where', [rand(sh), rand(sh)], (x, y) => where(cond, x, y));
  gradcheck('gelu', [rand(sh, -3, 3)], gelu);
  gradcheck('swiglu', [rand(sh, -3, 3), rand(sh)], swiglu);
  gradcheck('softmax', [rand([4, 6], -2, 2)], softmax);
});

// add, sub, the scalar ops and rope hand their output gradient to an intermediate input instead of copying it
// (adoptGrad); these cases route the inputs through an op first, so that path runs, including an input read twice and
// an input whose gradient other readers add to afterwards (the residual stream of a block).
test('gradcheck: gradient hand-off to intermediate inputs', () => {
  const sh = [3, 5];
  const m = (x: Tensor) => mulScalar(x, 1.7);
  gradcheck('add of intermediates', [rand(sh), rand(sh)], (x, y) => add(m(x), exp(y)));
  gradcheck('sub of intermediates', [rand(sh), rand(sh)], (x, y) => sub(m(x), m(y)));
  gradcheck('add of an intermediate with itself', [rand(sh)], (x) => { const a = m(x); return add(a, a); });
  gradcheck('sub of an intermediate from itself, plus it', [rand(sh)], (x) => { const a = exp(x); return add(sub(a, a), a); });
  gradcheck('scalar chain', [rand(sh)], (x) => neg(addScalar(mulScalar(exp(x), -0.6), 0.3)));
  gradcheck('residual: x + f(x), x read again after', [rand([4, 6]), rand([6, 6])], (x, w) => {
    const h = m(x);
    const r = add(h, linear(rmsnorm(h, Tensor.from(new Array(6).fill(1), [6]), 1e-5), w));
    return mul(add(r, linear(r, w)), h);
  });
  const { cos, sin } = ropeTables(12, 6, 100);
  gradcheck('rope of an intermediate', [rand([2, 4, 3, 6])], (x) => rope(m(x), cos, sin, Int32Array.of(1, 5)));
  gradcheck('rope of an intermediate that has another reader', [rand([2, 4, 3, 6])], (x) => {
    const a = exp(x);
    return mul(rope(a, cos, sin, null), a);
  });
  gradcheck('rope of a view of a linear output', [rand([8, 6]), rand([6, 6])],
    (x, w) => rope(linear(x, w).view([2, 4, 1, 6]), cos, sin, null));
});

test('gradcheck: reductions, lookups, views', () => {
  gradcheck('sum', [rand([3, 4])], sum);
  gradcheck('mean', [rand([3, 4])], mean);
  gradcheck('sumLastDim', [rand([2, 3, 4])], sumLastDim);
  const ids = Int32Array.of(2, 0, 2, 4, 1, 2);
  gradcheck('embedding (repeated ids)', [rand([5, 3])], (w) => embedding(ids, w));
  gradcheck('gatherRows', [rand([4, 3])], (x) => gatherRows(x, Int32Array.of(3, 3, 0)));
  gradcheck('view then ops', [rand([2, 6])], (x) => mul(x.view([3, 4]), x.view([3, -1])));
});

test('gradcheck: normalisation and rope', () => {
  gradcheck('rmsnorm', [rand([3, 5]), rand([5], 0.5, 1.5)], (x, w) => rmsnorm(x, w, 1e-5));
  gradcheck('layernorm', [rand([3, 5]), rand([5]), rand([5])], (x, w, b) => layernorm(x, w, b, 1e-5));
  // both outputs read, and the sum read again after the norm's reader, as the next residual add of a block reads it
  gradcheck('residualRmsnorm', [rand([3, 5]), rand([3, 5]), rand([5], 0.5, 1.5), rand([5, 5])], (x, y, w, m) => {
    const r = residualRmsnorm(mulScalar(x, 1.3), y, w, 1e-5);
    return add(linear(r.out, m), mul(r.sum, r.sum));
  });
  const { cos, sin } = ropeTables(12, 6, 100);
  gradcheck('rope', [rand([2, 4, 3, 6])], (x) => rope(x, cos, sin, null));
  gradcheck('rope with pos0', [rand([2, 4, 3, 6])], (x) => rope(x, cos, sin, Int32Array.of(3, 8)));
});

test('gradcheck: attention (MHA, GQA, MQA)', () => {
  for (const [nHead, nKv] of [[2, 2], [4, 2], [3, 1]]) {
    const B = 2, T = 5, hd = 4;
    gradcheck(`attention nHead=${nHead} nKvHead=${nKv}`,
      [rand([B, T, nHead, hd], -2, 2), rand([B, T, nKv, hd], -2, 2), rand([B, T, nKv, hd])], (q, k, v) => attention(q, k, v));
  }
});

test('gradcheck: losses', () => {
  const targets = Int32Array.of(3, -1, 0, 6, 2, -1);
  const weights = Float32Array.of(1, 5, 0.5, 2, 0.25, 1);
  gradcheck('crossEntropy', [rand([6, 7], -3, 3)], (l) => crossEntropy(l, targets));
  gradcheck('crossEntropy with weights and ignored targets', [rand([6, 7], -3, 3)], (l) => crossEntropy(l, targets, weights));
  gradcheck('tokenLogprobs', [rand([6, 7], -3, 3)], (l) => tokenLogprobs(l, targets));
  // The only reader of a linear's output: the gradient is written over the logits themselves.
  gradcheck('crossEntropy of a linear', [rand([6, 5]), rand([7, 5])], (x, w) => crossEntropy(linear(x, w), targets, weights));
  gradcheck('tokenLogprobs of a linear', [rand([6, 5]), rand([7, 5])], (x, w) => tokenLogprobs(linear(x, w), targets));
  gradcheck('crossEntropy of a view of a matmul', [rand([6, 5]), rand([5, 7])], (x, w) => crossEntropy(matmul(x.view([2, 3, 5]).view([6, 5]), w), targets));
  // Both losses on one intermediate: the first writes its gradient fresh, the second must accumulate.
  gradcheck('crossEntropy + tokenLogprobs on one intermediate', [rand([6, 7]), rand([7, 7])], (x, w) => {
    const logits = linear(x, w);
    return add(mulScalar(crossEntropy(logits, targets, weights), 3).view([1]), sum(tokenLogprobs(logits, targets)).view([1]));
  });
});

test('loss values match direct formulas', () => {
  // crossEntropy = weighted mean of -log softmax at the target over rows with target >= 0
  const logits = rand([3, 4]), t = Int32Array.of(1, -1, 3), w = Float32Array.of(2, 7, 0.5);
  const d = logits.data;
  const lp = (row: number, j: number) => {
    let s = 0;
    for (let k = 0; k < 4; k++) s += Math.exp(d[row * 4 + k]);
    return d[row * 4 + j] - Math.log(s);
  };
  const want = -(2 * lp(0, 1) + 0.5 * lp(2, 3)) / 2.5;
  assert.ok(Math.abs(noGrad(() => crossEntropy(logits, t, w).item()) - want) < 1e-12);
  const tl = noGrad(() => tokenLogprobs(logits, t));
  assert.ok(Math.abs(tl.data[0] - lp(0, 1)) < 1e-12 && tl.data[1] === 0 && Math.abs(tl.data[2] - lp(2, 3)) < 1e-12);
});

test('backward accumulates into an existing .grad in place; views of a flat gradient buffer work', () => {
  const flat = new Float64Array(12), gradFlat = new Float64Array(12);
  for (let i = 0; i < 12; i++) flat[i] = Math.sin(i + 1);
  const w = new Tensor(flat.subarray(0, 8), [2, 4], true);
  const b = new Tensor(flat.subarray(8, 10), [2], true);
  w.grad = new Tensor(gradFlat.subarray(0, 8), [2, 4]);
  b.grad = new Tensor(gradFlat.subarray(8, 10), [2]);
  const x = Tensor.from([1, 2, 3, 4, -1, 0.5, 2, 1], [2, 4]);
  const step = () => {
    const L = sum(mul(linear(x, w, b), linear(x, w, b)));
    L.backward();
    releaseTape();
  };
  step();
  const once = gradFlat.slice();
  assert.ok(once.some((v) => v !== 0));
  step();
  for (let i = 0; i < 12; i++) assert.ok(Math.abs(gradFlat[i] - 2 * once[i]) < 1e-12, `element ${i} did not accumulate`);
  assert.equal(w.grad.data.buffer, gradFlat.buffer); // still the caller's buffer
  w.zeroGrad();
  assert.ok(gradFlat.subarray(0, 8).every((v) => v === 0));
});

test('releaseTape invalidates the graph and a warm step allocates nothing', () => {
  const w = rand([8, 8]), x = Tensor.from(Array.from({ length: 24 }, (_, i) => Math.cos(i)), [3, 8]);
  const step = () => {
    const h = rmsnorm(linear(x, w), Tensor.from(new Array(8).fill(1), [8]), 1e-5);
    const L = crossEntropy(h, Int32Array.of(1, 2, -1));
    L.backward();
    const v = L.item();
    releaseTape();
    return { h, v };
  };
  const { h } = step();
  assert.throws(() => h.item(), /released by releaseTape/);
  assert.throws(() => add(h, h), /released by releaseTape/);
  step();
  const before = poolStats().freshAllocations;
  step();
  step();
  // Only the Tensor.from call of each step allocates (caller-owned inputs); the graph's buffers are pooled.
  assert.equal(poolStats().freshAllocations - before, 2);
});

test('the logits a loss overwrites with their gradient are invalidated, views and detached copies included', () => {
  const x = rand([4, 3]), w = rand([5, 3]);
  const logits = linear(x, w);
  const v = logits.view([20]), d = logits.detach();
  const L = crossEntropy(logits, Int32Array.of(0, 1, 2, 3));
  const keep = Array.from(logits.data);
  L.backward();
  for (const t of [logits, v, d]) assert.throws(() => sum(t), /reused it for its gradient/);
  releaseTape();
  // with a second reader the logits are kept intact until releaseTape
  const logits2 = linear(x, w);
  const L2 = add(crossEntropy(logits2, Int32Array.of(0, 1, 2, 3)).view([1]), sum(logits2).view([1]));
  mulScalar(L2.view([]), 1).backward();
  assert.deepEqual(Array.from(logits2.data), keep);
  releaseTape();
});

test('shape errors name the op, the argument and both shapes', () => {
  assert.throws(() => add(rand([2, 3]), rand([3, 2])), /add: b has shape \[3, 2\] but a has shape \[2, 3\]/);
  assert.throws(() => linear(rand([2, 3]), rand([4, 5])), /linear: w has shape \[4, 5\] but x has shape \[2, 3\]/);
  assert.throws(() => matmul(rand([2, 3]), rand([4, 5])), /matmul: inner dimensions differ: a \[2, 3\] and b \[4, 5\]/);
  assert.throws(() => rmsnorm(rand([2, 3]), rand([4]), 1e-5), /rmsnorm: w has shape \[4\] but x has shape \[2, 3\]/);
  assert.throws(() => attention(rand([1, 2, 4, 2]), rand([1, 2, 3, 2]), rand([1, 2, 3, 2])), /attention: k has shape/);
  assert.throws(() => crossEntropy(rand([2, 3]), Int32Array.of(1)), /crossEntropy: targets has 1 entries but logits has shape \[2, 3\]/);
});
