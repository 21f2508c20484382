// The sampler chain, step by step, on tiny distributions whose answers are computed by hand (as llama.cpp's
// tests/test-sampling.cpp does), plus the seeded draw: determinism, resumable state, and a chi-square goodness of fit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  applyLogitBias, applyPresenceFrequency, applyRepetitionPenalty, applyTemperature, explainChain, minP, processLogits,
  resolveSampling, Sampler, softmax, topK, topN, topP,
} from '../src/generate/sampler.js';
import { Rng } from '../src/util/rng.js';
import { StopMatcher } from '../src/generate/stop.js';
import { UserError } from '../src/util/errors.js';

const P = [0.1, 0.2, 0.3, 0.4];
const logitsOf = (p: number[]) => Float32Array.from(p, (x) => Math.log(x));

function assertProbs(logits: Float32Array, expected: number[], tol = 1e-6) {
  const got = softmax(logits);
  assert.equal(got.length, expected.length);
  for (let i = 0; i < expected.length; i++)
    assert.ok(Math.abs(got[i] - expected[i]) < tol, `p[${i}] = ${got[i]}, expected ${expected[i]} (all: ${[...got]})`);
}

test('top-k 3 of {0.1, 0.2, 0.3, 0.4} renormalises to {0, 2/9, 3/9, 4/9}', () => {
  assertProbs(topK(logitsOf(P), 3), [0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9]);
  assertProbs(topK(logitsOf(P), 1), [0, 0, 0, 1]);
  assertProbs(topK(logitsOf(P), 0), P); // off
  assertProbs(topK(logitsOf(P), 10), P); // k >= V keeps all
  // ties with the k-th value: exactly k survive, lower ids first
  const tied = topK(Float32Array.from([1, 2, 2, 2, 0]), 2);
  assert.deepEqual([...tied], [-Infinity, 2, 2, -Infinity, -Infinity]);
});

test('top-k agrees with a sort-based reference on random rows with ties', () => {
  const r = new Rng(9);
  for (let trial = 0; trial < 200; trial++) {
    const V = 1 + (r.u32() % 300);
    const x = Float32Array.from({ length: V }, () => (r.u32() % 40) / 4 - (r.next() < 0.05 ? Infinity : 0));
    const k = 1 + (r.u32() % V);
    // reference: ids ordered by value descending, then id ascending; the first k survive
    const order = Array.from({ length: V }, (_, j) => j).sort((a, b) => x[b] - x[a] || a - b);
    const keep = new Set(order.slice(0, k));
    const out = topK(x, k);
    for (let j = 0; j < V; j++) assert.equal(out[j], keep.has(j) ? x[j] : -Infinity, `V ${V} k ${k} id ${j}`);
  }
});

test('top-p keeps the smallest set reaching p', () => {
  assertProbs(topP(logitsOf(P), 0.6), [0, 0, 0.3 / 0.7, 0.4 / 0.7]); // 0.4 < 0.6 <= 0.4 + 0.3
  assertProbs(topP(logitsOf(P), 0.75), [0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9]);
  assertProbs(topP(logitsOf(P), 0.3), [0, 0, 0, 1]); // the top token alone already reaches p
  assertProbs(topP(logitsOf(P), 1), P);
  // a long tail: 1000 tokens; the nucleus of p = 0.45 over {0.5, 0.3, tail} is the top token only
  const tail = new Array(998).fill(0.2 / 998);
  const q = [0.3, ...tail, 0.5];
  const out = topP(logitsOf(q), 0.45);
  assert.equal(out.filter((x) => x > -Infinity).length, 1);
  assert.ok(out[999] > -Infinity);
});

test('top-p agrees with a full-sort reference on random rows', () => {
  const r = new Rng(10);
  for (let trial = 0; trial < 200; trial++) {
    const V = 1 + (r.u32() % 500);
    const spread = 1 + r.next() * 12;
    const x = Float32Array.from({ length: V }, () => Math.round(r.next() * spread * 8) / 8);
    const p = r.next();
    const probs = softmax(x);
    const sorted = [...probs].sort((a, b) => b - a);
    let cum = 0, cut = sorted[sorted.length - 1];
    for (const q of sorted) if ((cum += q) >= p) {
      cut = q;
      break;
    }
    const out = topP(x, p);
    for (let j = 0; j < V; j++) assert.equal(out[j], probs[j] >= cut ? x[j] : -Infinity, `V ${V} p ${p} id ${j}`);
  }
});

test('min-p keeps tokens with p >= minP * pmax', () => {
  assertProbs(minP(logitsOf(P), 0.6), [0, 0, 0.3 / 0.7, 0.4 / 0.7]); // floor 0.24
  assertProbs(minP(logitsOf(P), 0.45), [0, 0.2 / 0.9, 0.3 / 0.9, 0.4 / 0.9]); // floor 0.18 keeps 0.2
  assertProbs(minP(logitsOf(P), 0), P);
  assertProbs(minP(logitsOf(P), 1), [0, 0, 0, 1]);
});

test('temperature sharpens or flattens: p_i^(1/T) / sum', () => {
  const sq = P.map(Math.sqrt);
  const s = sq.reduce((a, b) => a + b);
  assertProbs(applyTemperature(logitsOf(P), 2), sq.map((x) => x / s)); // ~ {0.163, 0.230, 0.282, 0.325}
  const p2 = P.map((x) => x * x);
  const s2 = p2.reduce((a, b) => a + b);
  assertProbs(applyTemperature(logitsOf(P), 0.5), p2.map((x) => x / s2)); // {1/30, 4/30, 9/30, 16/30}
});

test('repetition penalty (CTRL): divide positive logits, multiply negative, once per distinct token', () => {
  const out = applyRepetitionPenalty(Float32Array.from([2, -1, 0.5, 3]), [0, 1, 1, 1], 2);
  assert.deepEqual([...out], [1, -2, 0.5, 3]);
});

test('presence and frequency penalties (OpenAI): logit -= count * frequency + presence', () => {
  const counts = new Map([[0, 2], [2, 1]]);
  const out = applyPresenceFrequency(Float32Array.from([1, 1, 1, 1]), counts, 0.5, 0.25);
  assert.deepEqual([...out], [1 - (2 * 0.25 + 0.5), 1, 1 - (0.25 + 0.5), 1]);
  // a negative penalty encourages repetition
  assert.deepEqual([...applyPresenceFrequency(Float32Array.from([0, 0]), new Map([[1, 1]]), -1, 0)], [0, 1]);
});

test('logit bias adds; -100 all but bans a token', () => {
  const out = applyLogitBias(logitsOf(P), new Map([[3, -100], [0, 1]]));
  const p = softmax(out);
  assert.ok(p[3] < 1e-40);
  const e = [0.1 * Math.E, 0.2, 0.3];
  const s = e.reduce((a, b) => a + b);
  assert.ok(Math.abs(p[0] - e[0] / s) < 1e-6);
});

test('the chain order: truncations see the untempered distribution', () => {
  // top-p 0.6 keeps {0.3, 0.4} whatever the temperature; at T = 2 they become sqrt-weighted
  const o = resolveSampling({ topP: 0.6, temperature: 2 });
  const out = processLogits(logitsOf(P), o, [], new Map());
  const a = Math.sqrt(0.3), b = Math.sqrt(0.4);
  assertProbs(out, [0, 0, a / (a + b), b / (a + b)]);
  // penalties come before truncation: banning the top token lets the third one into top-k 2
  const o2 = resolveSampling({ topK: 2, logitBias: { 3: -100 } });
  const out2 = processLogits(logitsOf(P), o2, [], new Map());
  assertProbs(out2, [0, 0.2 / 0.5, 0.3 / 0.5, 0]);
});

test('temperature 0 is argmax (after penalties), lowest id on ties', () => {
  const s = new Sampler({ temperature: 0 });
  assert.equal(s.sample(logitsOf(P)).id, 3);
  assert.equal(new Sampler({ temperature: 0 }).sample(Float32Array.from([1, 5, 5, 2])).id, 1);
  const s2 = new Sampler({ temperature: 0, logitBias: { 3: -10 } });
  assert.equal(s2.sample(logitsOf(P)).id, 2);
});

test('parameters outside their range are UserErrors naming the parameter', () => {
  const bad: [object, RegExp][] = [
    [{ temperature: -0.1 }, /temperature/], [{ temperature: 2.5 }, /temperature/], [{ topP: 0 }, /topP/],
    [{ topP: 1.1 }, /topP/], [{ minP: -0.1 }, /minP/], [{ topK: 1.5 }, /topK/], [{ topK: -1 }, /topK/],
    [{ presencePenalty: 3 }, /presencePenalty/], [{ frequencyPenalty: -2.5 }, /frequencyPenalty/],
    [{ repetitionPenalty: 0 }, /repetitionPenalty/], [{ logitBias: { 1: 101 } }, /logitBias/],
    [{ logitBias: { 7: 1 } }, /logitBias/], [{ seed: 1.5 }, /seed/], [{ temperature: NaN }, /temperature/],
  ];
  for (const [opts, re] of bad)
    assert.throws(() => resolveSampling(opts, 4), (e: unknown) => e instanceof UserError && re.test(e.message), JSON.stringify(opts));
  assert.doesNotThrow(() => resolveSampling({ temperature: 0, topP: 1, minP: 1, topK: 0, presencePenalty: -2 }, 4));
});

test('same seed, same tokens; another seed, other tokens; state resumes the stream', () => {
  const logits = logitsOf(new Array(50).fill(1 / 50));
  const run = (seed: number, n = 40) => {
    const s = new Sampler({ seed });
    return Array.from({ length: n }, () => s.sample(logits).id);
  };
  assert.deepEqual(run(7), run(7));
  assert.notDeepEqual(run(7), run(8));
  const r = new Rng(123);
  for (let i = 0; i < 10; i++) r.next();
  const st = r.state();
  const a = Array.from({ length: 5 }, () => r.u32());
  const r2 = new Rng(0);
  r2.setState(st);
  assert.deepEqual(Array.from({ length: 5 }, () => r2.u32()), a);
});

test('xoshiro128** matches the reference C output for a fixed state', () => {
  // the first five outputs of the reference C (https://prng.di.unimi.it/xoshiro128starstar.c), compiled and run from
  // the state s = {1, 2, 3, 4}
  const r = new Rng(0);
  r.setState([1, 2, 3, 4]);
  assert.deepEqual(Array.from({ length: 5 }, () => r.u32()), [11520, 0, 5927040, 70819200, 2031721883]);
});

function chiSquare(counts: number[], probs: number[], n: number): number {
  return counts.reduce((acc, c, i) => acc + (c - n * probs[i]) ** 2 / (n * probs[i]), 0);
}

test('100,000 seeded draws pass a chi-square test (df 3, p = 0.001 critical value 16.27)', () => {
  const n = 100_000;
  for (const [opts, expected] of [
    [{ seed: 1 }, P],
    [{ seed: 2, temperature: 0.5 }, P.map((x) => (x * x) / 0.3)],
  ] as const) {
    const s = new Sampler(opts);
    const counts = [0, 0, 0, 0];
    const logits = logitsOf(P);
    for (let i = 0; i < n; i++) counts[s.sample(logits).id]++;
    const chi2 = chiSquare(counts, [...expected], n);
    assert.ok(chi2 < 16.27, `chi2 = ${chi2.toFixed(2)}, counts ${counts}, expected ${expected.map((p) => p * n)}`);
  }
  // and a wrong distribution is rejected by the same test (the test can fail)
  const counts = [0, 0, 0, 0];
  const s = new Sampler({ seed: 3 });
  for (let i = 0; i < n; i++) counts[s.sample(logitsOf([0.12, 0.2, 0.3, 0.38])).id]++;
  assert.ok(chiSquare(counts, P, n) > 16.27);
});

test('logprobs: raw log-softmax of the chosen token and the top-n', () => {
  const s = new Sampler({ temperature: 0 });
  const r = s.sample(logitsOf(P), 2, 3);
  assert.equal(r.id, 3);
  assert.ok(Math.abs(r.logprob! - Math.log(0.4)) < 1e-6);
  assert.deepEqual(r.top!.map((t) => t.id), [3, 2]);
  assert.ok(Math.abs(r.top![1].logprob - Math.log(0.3)) < 1e-6);
  assert.deepEqual(r.candidates!.map((c) => c.id), [3, 2, 1]);
  assert.deepEqual(topN([5, 1, 5, 7], 3).map((t) => t.id), [3, 0, 2]);
});

test('stop strings split over deltas are found and not emitted; false starts are released', () => {
  const m = new StopMatcher(['</s>', '\n\nUser:']);
  let out = '';
  for (const d of ['Hello <', '/', 's', '>tail']) out += m.push(d);
  assert.equal(out, 'Hello ');
  assert.equal(m.stopped, '</s>');
  assert.equal(m.flush(), '');
  const m2 = new StopMatcher(['</s>']);
  assert.equal(m2.push('a <'), 'a ');
  assert.equal(m2.push('b'), '<b');
  assert.equal(m2.push('<'), '');
  assert.equal(m2.flush(), '<');
  assert.equal(m2.stopped, null);
  const m3 = new StopMatcher(['\n\nUser:']);
  assert.equal(m3.push('ok\n'), 'ok');
  assert.equal(m3.push('\nUse'), '');
  assert.equal(m3.push('r: hi'), '');
  assert.equal(m3.stopped, '\n\nUser:');
});

test('explainChain: which step cut each candidate of {0.1, 0.2, 0.3, 0.4}, and the odds in the draw', () => {
  const o = resolveSampling({ topK: 3, topP: 0.6, minP: 0.8, temperature: 1 });
  // top-k 3 drops 0.1; top-p 0.6 over {2/9, 3/9, 4/9} keeps {4/9, 3/9}; min-p 0.8 drops 3/9 (0.75 of the top)
  const chain = explainChain(logitsOf(P), o, [], new Map(), 4, 3);
  assert.deepEqual(chain.map((c) => [c.id, c.cut]), [[3, null], [2, 'min-p'], [1, 'top-p'], [0, 'top-k']]);
  chain.forEach((c) => assert.ok(Math.abs(c.p - P[c.id]) < 1e-6, `p of ${c.id}`));
  assert.deepEqual(chain.map((c) => c.prob), [1, 0, 0, 0]);
  // without min-p, temperature 2 reshapes the odds of the two left: sqrt(0.4) : sqrt(0.3)
  const hot = explainChain(logitsOf(P), resolveSampling({ topK: 3, topP: 0.6, temperature: 2 }), [], new Map(), 2, 0);
  const want = Math.sqrt(0.4) / (Math.sqrt(0.4) + Math.sqrt(0.3));
  assert.ok(Math.abs(hot[0].prob - want) < 1e-6 && Math.abs(hot[1].prob - (1 - want)) < 1e-6, JSON.stringify(hot));
  assert.deepEqual(hot.map((c) => c.id), [3, 2, 0], 'the drawn token (0) is appended when not in the top n');
  assert.equal(hot[2].cut, 'top-k');
  // greedy: the argmax stays, the rest are cut by it
  const g = explainChain(logitsOf(P), resolveSampling({ temperature: 0 }), [], new Map(), 2, 3);
  assert.deepEqual(g.map((c) => [c.id, c.prob, c.cut]), [[3, 1, null], [2, 0, 'greedy']]);
  // the sampler gives the same chain with its step
  const r = new Sampler({ topK: 3, topP: 0.6, minP: 0.8, seed: 1 }).sample(logitsOf(P), undefined, 4);
  assert.deepEqual(r.chain, chain);
});
