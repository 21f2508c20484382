// The engine against the reference: KV-cache decoding must give, at every step, the logits of a full forward over the
// whole sequence so far (GPT.forward, no cache), and so the same greedy tokens; also for a batch of prompts of different
// lengths, and for a conversation whose cache is reused across turns. Then the text layer: stop strings spanning two
// tokens, seeds, context limits, logprobs and streaming.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GPT } from '../src/model/gpt.js';
import type { GPTConfig } from '../src/model/config.js';
import { noGrad } from '../src/tensor/index.js';
import type { Tokenizer } from '../src/tokenizer/index.js';
import { Engine, generate, generateBatch, generateStream, argmax, logSoftmax } from '../src/generate/index.js';
import { UserError } from '../src/util/errors.js';

const V = 61;
const cfg = (arch: 'llama' | 'gpt2'): GPTConfig => ({
  arch, vocabSize: V, nLayer: 2, nHead: 4, nKvHead: arch === 'llama' ? 2 : 4, nEmbd: 32, intermediateSize: arch === 'llama' ? 48 : 128,
  maxSeqLen: 48, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: arch === 'gpt2',
});

// logits of the last position of a full forward over ids (no cache)
function fullLast(model: GPT, ids: number[]): Float32Array {
  return noGrad(() => {
    const { logits } = model.forward(Int32Array.from(ids), 1, ids.length);
    return (logits.data as Float32Array).slice((ids.length - 1) * V, ids.length * V);
  });
}

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

const TOL = 2e-4;
const prompt = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 7 + seed * 13 + 1) % V);

for (const arch of ['llama', 'gpt2'] as const) {
  test(`${arch}: KV-cache decoding gives the full-forward logits at every step and the same greedy tokens`, () => {
    const model = GPT.create(cfg(arch), 1);
    const p = prompt(5, 1);
    const run = new Engine(model).start([p], { maxNewTokens: 20, temperature: 0 });
    const seq = p.slice();
    let worst = 0;
    while (!run.done) {
      const step = run.step()[0]!;
      const ref = fullLast(model, seq);
      worst = Math.max(worst, maxDiff(run.lastLogits[0]!, ref));
      assert.equal(step.id, argmax(ref), `greedy token at position ${seq.length}`);
      seq.push(step.id);
    }
    assert.ok(worst < TOL, `max |logits diff| = ${worst}`);
    assert.equal(run.rows[0].ids.length, 20);
    assert.equal(run.rows[0].finishReason, 'length');
  });
}

test('a batch of prompts of different lengths decodes as each would alone (logits and greedy tokens)', () => {
  const model = GPT.create(cfg('llama'), 2);
  const prompts = [prompt(3, 1), prompt(11, 2), prompt(7, 3), prompt(1, 4)];
  const maxNew = [9, 4, 12, 6];
  const run = new Engine(model).start(prompts, maxNew.map((m) => ({ maxNewTokens: m, temperature: 0 })));
  const seqs = prompts.map((p) => p.slice());
  let worst = 0;
  while (!run.done) {
    const steps = run.step();
    steps.forEach((s, b) => {
      if (!s) return;
      const ref = fullLast(model, seqs[b]);
      worst = Math.max(worst, maxDiff(run.lastLogits[b]!, ref));
      assert.equal(s.id, argmax(ref), `row ${b}, position ${seqs[b].length}`);
      seqs[b].push(s.id);
    });
  }
  assert.ok(worst < TOL, `max |logits diff| = ${worst}`);
  assert.deepEqual(run.rows.map((r) => r.ids.length), maxNew);
  // each row alone gives the same tokens
  for (let b = 0; b < prompts.length; b++) {
    const alone = new Engine(model).generate([prompts[b]], { maxNewTokens: maxNew[b], temperature: 0 })[0];
    assert.deepEqual(alone.ids, run.rows[b].ids);
  }
});

test('a prompt repeated in a batch is prefilled once; each row still samples on its own (K rollouts of one prompt)', () => {
  const model = GPT.create(cfg('llama'), 9);
  const calls: number[] = [];
  const orig = model.forwardCached.bind(model);
  model.forwardCached = (ids, B, Tq, cache, opts) => {
    calls.push(Tq);
    return orig(ids, B, Tq, cache, opts);
  };
  const p = prompt(8, 1), q = prompt(5, 2);
  const prompts = [p, p, q, p];
  const opts = prompts.map((_, b) => ({ maxNewTokens: 7, temperature: 1, seed: 100 + b }));
  const run = new Engine(model).start(prompts, opts);
  assert.deepEqual(calls, [8, 5], 'two prefills: p once, q once');
  const rows = run.runToEnd();
  model.forwardCached = orig;
  for (let b = 0; b < prompts.length; b++)
    assert.deepEqual(rows[b].ids, new Engine(model).generate([prompts[b]], opts[b])[0].ids, `row ${b}`);
  assert.notDeepEqual(rows[0].ids, rows[1].ids); // different seeds, different samples
});

test('a stop token ends its row only (not emitted, finishReason stop); the others go on', () => {
  const model = GPT.create(cfg('llama'), 3);
  const prompts = [prompt(4, 5), prompt(6, 6)];
  const free = new Engine(model).generate(prompts, { maxNewTokens: 10, temperature: 0 });
  const stopId = free[0].ids[3];
  const firstAt = free[0].ids.indexOf(stopId);
  const res = new Engine(model).generate(prompts, [
    { maxNewTokens: 10, temperature: 0, stopTokens: [stopId] }, { maxNewTokens: 10, temperature: 0 },
  ]);
  assert.deepEqual(res[0].ids, free[0].ids.slice(0, firstAt));
  assert.equal(res[0].finishReason, 'stop');
  assert.equal(res[0].stopToken, stopId);
  assert.deepEqual(res[1].ids, free[1].ids);
});

test('a session reuses the cache across turns: only the new tokens are prefilled, the logits match', () => {
  const model = GPT.create(cfg('llama'), 4);
  const calls: number[] = [];
  const orig = model.forwardCached.bind(model);
  model.forwardCached = (ids, B, Tq, cache, opts) => {
    calls.push(B * Tq);
    return orig(ids, B, Tq, cache, opts);
  };
  const session = new Engine(model).session();
  const p1 = prompt(9, 7);
  const r1 = session.start(p1, { maxNewTokens: 5, temperature: 0 }).runToEnd()[0];
  const p2 = [...p1, ...r1.ids, 3, 4, 5];
  assert.equal(session.reusable(p2), p1.length + r1.ids.length - 1); // the last token drawn was never fed
  calls.length = 0;
  const run = session.start(p2, { maxNewTokens: 6, temperature: 0 });
  const seq = p2.slice();
  let worst = 0;
  while (!run.done) {
    const s = run.step()[0]!;
    const ref = fullLast(model, seq);
    worst = Math.max(worst, maxDiff(run.lastLogits[0]!, ref));
    assert.equal(s.id, argmax(ref));
    seq.push(s.id);
  }
  assert.ok(worst < TOL, `max |logits diff| = ${worst}`);
  assert.equal(calls[0], 4, `prefill of turn 2 fed ${calls[0]} tokens; expected 4 (the last reply token + 3 new)`);
  // a changed prefix is recomputed from where it differs
  const p3 = [p1[0], (p1[1] + 1) % V, ...p1.slice(2)];
  assert.equal(session.reusable(p3), 1);
  calls.length = 0;
  const r3 = session.start(p3, { maxNewTokens: 3, temperature: 0 }).runToEnd()[0];
  assert.equal(calls[0], p3.length - 1);
  assert.deepEqual(r3.ids, new Engine(model).generate([p3], { maxNewTokens: 3, temperature: 0 })[0].ids);
});

test('context limit: generation stops with "length" at the model context; a too-long prompt is a UserError', () => {
  const model = GPT.create(cfg('llama'), 5);
  const r = new Engine(model).generate([prompt(44, 1)], { maxNewTokens: 100, temperature: 0 })[0];
  assert.equal(r.ids.length, 48 - 44);
  assert.equal(r.finishReason, 'length');
  assert.throws(() => new Engine(model).start([prompt(48, 1)], { maxNewTokens: 1 }), UserError);
  assert.throws(() => new Engine(model).start([[]], { maxNewTokens: 1 }), UserError);
  assert.throws(() => new Engine(model).start([[V]], { maxNewTokens: 1 }), UserError);
  assert.throws(() => new Engine(model).start([[1]], { maxNewTokens: 1, logprobs: 21 }), UserError);
});

test('same seed, same tokens (alone or in a batch); the chosen logprob is the full forward log-softmax', () => {
  const model = GPT.create(cfg('llama'), 6);
  const p = prompt(5, 2);
  const o = { maxNewTokens: 15, temperature: 1, seed: 42, logprobs: 3 };
  const a = new Engine(model).generate([p], o)[0];
  const b = new Engine(model).generate([p], o)[0];
  assert.deepEqual(a.ids, b.ids);
  const batched = new Engine(model).generate([prompt(9, 3), p], o)[1];
  assert.deepEqual(batched.ids, a.ids);
  const other = new Engine(model).generate([p], { ...o, seed: 43 })[0];
  assert.notDeepEqual(other.ids, a.ids);
  const seq = p.slice();
  for (let i = 0; i < a.ids.length; i++) {
    const lp = logSoftmax(fullLast(model, seq));
    assert.ok(Math.abs(a.steps[i].logprob! - lp[a.ids[i]]) < TOL);
    assert.equal(a.steps[i].top!.length, 3);
    assert.equal(a.steps[i].top![0].id, argmax(lp));
    seq.push(a.ids[i]);
  }
});

// A stand-in tokenizer: token i is a 2-3 character piece, so a stop string can straddle two tokens.
function stubTokenizer(): Tokenizer {
  const pieces = Array.from({ length: V }, (_, i) => String.fromCharCode(97 + (i % 26)) + String.fromCharCode(65 + ((i * 7) % 26)) + (i % 3 === 0 ? '.' : ''));
  return {
    vocabSize: V, eos: V - 1, eot: V - 2, bos: V - 3,
    decode: (ids: ArrayLike<number>) => Array.from(ids, (i) => pieces[i]).join(''),
    streamDecoder: () => ({ push: (id: number) => pieces[id], flush: () => '' }),
  } as unknown as Tokenizer;
}

test('stop strings spanning two tokens are found and cut; the text stops there', () => {
  const model = GPT.create(cfg('llama'), 7);
  const tok = stubTokenizer();
  const p = prompt(4, 8);
  const free = generate(model, tok, p, { maxNewTokens: 12, temperature: 0, stopTokens: [] });
  assert.equal(free.text, tok.decode(free.ids));
  // the last character of token 4 and the first of token 5
  const before = tok.decode(free.ids.slice(0, 5));
  const stop = before.slice(-1) + tok.decode([free.ids[5]]).slice(0, 1);
  const at = free.text.indexOf(stop);
  const r = generate(model, tok, p, { maxNewTokens: 12, temperature: 0, stopTokens: [], stop: ['zzz', stop] });
  assert.equal(r.text, free.text.slice(0, at));
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.stopString, stop);
  // generation stopped at the token that completed the stop string
  let n = 0;
  while (tok.decode(free.ids.slice(0, n)).length < at + stop.length) n++;
  assert.deepEqual(r.ids, free.ids.slice(0, n));
  // batched rows keep their own stop state
  const rs = generateBatch(model, tok, [p, prompt(6, 9)], { maxNewTokens: 12, temperature: 0, stopTokens: [], stop: [stop] });
  assert.equal(rs[0].text, r.text);
});

test('generateStream: the deltas add up to the text of generate with the same seed; abort stops early', async () => {
  const model = GPT.create(cfg('llama'), 8);
  const tok = stubTokenizer();
  const p = prompt(3, 1);
  const o = { maxNewTokens: 10, temperature: 0.9, seed: 5, stopTokens: [], stop: ['qQ'] };
  const ref = generate(model, tok, p, o);
  let text = '';
  let final;
  for await (const c of generateStream(model, tok, p, o)) {
    text += c.delta;
    if (c.result) final = c.result;
  }
  assert.equal(text, ref.text);
  assert.deepEqual(final!.ids, ref.ids);
  const ac = new AbortController();
  let n = 0;
  for await (const c of generateStream(model, tok, p, { ...o, stop: [], signal: ac.signal })) {
    if (c.step && ++n === 2) ac.abort();
    if (c.result) final = c.result;
  }
  assert.equal(final!.aborted, true);
  assert.equal(final!.ids.length, 2);
});
