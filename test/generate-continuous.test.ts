// Continuous batching: rows that join a running batch between steps, leave it when finished or ended from outside, and
// take over released cache slots must decode exactly as each would alone: the logits of a full forward at every step,
// and the same seeded samples. Then the Batcher over it: requests arriving at different times, one aborted mid-way, a
// reader walking away, and the queue limit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GPT } from '../src/model/gpt.js';
import type { GPTConfig } from '../src/model/config.js';
import { noGrad } from '../src/tensor/index.js';
import type { Tokenizer } from '../src/tokenizer/index.js';
import { Batcher, BusyError, Engine, generate, type EngineOptions, type GenerateResult, type StreamChunk } from '../src/generate/index.js';
import { UserError } from '../src/util/errors.js';

const V = 53;
const cfg: GPTConfig = {
  arch: 'llama', vocabSize: V, nLayer: 2, nHead: 4, nKvHead: 2, nEmbd: 32, intermediateSize: 48,
  maxSeqLen: 40, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: false,
};
const prompt = (n: number, seed: number) => Array.from({ length: n }, (_, i) => (i * 5 + seed * 11 + 2) % V);

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

test('rows join a running batch and take released slots; each decodes as alone (logits every step, seeded samples)', () => {
  const model = GPT.create(cfg, 21);
  const run = new Engine(model).open(3);
  const o = (seed: number, maxNewTokens: number): EngineOptions => ({ maxNewTokens, temperature: 0.9, topK: 20, seed });
  const want = [
    { p: prompt(4, 1), o: o(1, 6) }, // A: joins first, ends first
    { p: prompt(9, 2), o: o(2, 14) }, // B: joins after 2 steps
    { p: prompt(2, 3), o: o(3, 10) }, // C: joins after 4 steps, fills the last slot
    { p: prompt(6, 4), o: o(4, 9) }, // D: waits for A's slot
  ];
  const slotOf: number[] = [];
  const seqs: number[][] = [];
  const join = (i: number) => {
    [slotOf[i]] = run.join([want[i].p], [want[i].o]);
    seqs[i] = want[i].p.slice();
  };
  join(0);
  let worst = 0;
  const ended: number[] = [];
  for (let t = 0; t < 40 && ended.length < want.length; t++) {
    if (t === 2) join(1);
    if (t === 4) join(2);
    if (t === 4) assert.equal(run.freeSlots, 0);
    if (t > 4 && slotOf[3] === undefined && run.freeSlots > 0) join(3);
    const steps = run.step();
    seqs.forEach((seq, i) => {
      const b = slotOf[i], s = steps[b];
      if (ended.includes(i) || !s) return;
      worst = Math.max(worst, maxDiff(run.lastLogits[b]!, fullLast(model, seq)));
      seq.push(s.id);
      if (run.rows[b].finishReason !== null) {
        ended.push(i);
        assert.deepEqual(run.rows[b].ids, new Engine(model).generate([want[i].p], want[i].o)[0].ids, `row ${i} alone`);
        run.release(b);
      }
    });
  }
  assert.deepEqual(ended.sort(), [0, 1, 2, 3]);
  assert.ok(worst < 2e-4, `max |logits diff| against the full forward = ${worst}`);
  assert.equal(slotOf[3], slotOf[0], 'D took the slot A released');
  assert.equal(run.slots, 3);
});

test('a row ended from outside (a disconnect) leaves at once; the others are unaffected', () => {
  const model = GPT.create(cfg, 22);
  const run = new Engine(model).open(2);
  const oa = { maxNewTokens: 12, temperature: 0.8, seed: 7 }, ob = { maxNewTokens: 12, temperature: 0.8, seed: 8 };
  const [a, b] = run.join([prompt(5, 1), prompt(7, 2)], [oa, ob]);
  for (let i = 0; i < 3; i++) run.step();
  run.finish(a);
  assert.equal(run.active, 1);
  const steps = run.step();
  assert.equal(steps[a], null, 'the ended row takes no step');
  run.release(a);
  run.runToEnd();
  assert.equal(run.rows[a].ids.length, 3);
  assert.deepEqual(run.rows[b].ids, new Engine(model).generate([prompt(7, 2)], ob)[0].ids);
});

test('join beyond the free slots and release of a running row are refused', () => {
  const model = GPT.create(cfg, 23);
  const run = new Engine(model).open(1);
  const [a] = run.join([prompt(3, 1)], [{ maxNewTokens: 4 }]);
  assert.throws(() => run.join([prompt(3, 2)], [{ maxNewTokens: 4 }]), (e: unknown) => e instanceof UserError && /0 of 1 cache slots are free/.test(e.message));
  assert.throws(() => run.release(a), /still running/);
  assert.throws(() => run.join([prompt(40, 2)], [{ maxNewTokens: 4 }]), UserError);
});

// ---- the Batcher

function stubTokenizer(): Tokenizer {
  const pieces = Array.from({ length: V }, (_, i) => String.fromCharCode(97 + (i % 26)) + (i % 4 === 0 ? ' ' : ''));
  return {
    vocabSize: V, eos: V - 1, eot: V - 2, bos: V - 3,
    decode: (ids: ArrayLike<number>) => Array.from(ids, (i) => pieces[i]).join(''),
    streamDecoder: () => ({ push: (id: number) => pieces[id], flush: () => '' }),
  } as unknown as Tokenizer;
}

async function collect(it: AsyncIterable<StreamChunk>, onChunk?: (n: number) => void): Promise<{ text: string; result: GenerateResult; n: number }> {
  let text = '', n = 0, result: GenerateResult | undefined;
  for await (const c of it) {
    text += c.delta;
    if (c.result) result = c.result;
    else onChunk?.(++n);
  }
  return { text, result: result!, n };
}

const tick = () => new Promise<void>((r) => setImmediate(r));

test('Batcher: requests arriving at different times each get what generate() gives alone; an abort ends only its own', { timeout: 30_000 }, async () => {
  const model = GPT.create(cfg, 24);
  const tok = stubTokenizer();
  const batcher = new Batcher(model, tok, { slots: 3, maxQueue: 2 });
  const o = (seed: number) => ({ maxNewTokens: 10, temperature: 1, seed, stopTokens: [] as number[], stop: ['zz'] });
  const first = collect(batcher.submit([prompt(5, 1)], [o(1)])[0]);
  for (let i = 0; i < 3; i++) await tick(); // the first is decoding when the next two arrive
  const stepsBefore = batcher.stats.steps;
  assert.ok(stepsBefore >= 1, 'the first request was decoding');
  const [second, third] = batcher.submit([prompt(8, 2), prompt(8, 2)], [o(2), o(3)]).map((it) => collect(it));
  const ac = new AbortController();
  const aborted = collect(batcher.submit([prompt(3, 4)], [o(4)], ac.signal)[0], (n) => n === 2 && ac.abort());
  const [r1, r2, r3, r4] = await Promise.all([first, second, third, aborted]);
  for (const [r, p, seed] of [[r1, prompt(5, 1), 1], [r2, prompt(8, 2), 2], [r3, prompt(8, 2), 3]] as const) {
    const alone = generate(model, tok, [...p], o(seed));
    assert.equal(r.text, alone.text);
    assert.deepEqual(r.result.ids, alone.ids);
    assert.equal(r.result.finishReason, alone.finishReason);
  }
  assert.equal(r4.result.aborted, true);
  assert.equal(r4.n, 2);
  assert.deepEqual(r4.result.ids, generate(model, tok, prompt(3, 4), o(4)).ids.slice(0, 2));
  assert.deepEqual(batcher.stats, { running: 0, waiting: 0, slots: 3, steps: batcher.stats.steps });
});

test('Batcher: a full queue refuses with BusyError; a reader that walks away frees its slot', { timeout: 30_000 }, async () => {
  const model = GPT.create(cfg, 25);
  const batcher = new Batcher(model, stubTokenizer(), { slots: 1, maxQueue: 1 });
  const o = { maxNewTokens: 30, temperature: 1, seed: 1, stopTokens: [] as number[] };
  const [a, b] = batcher.submit([prompt(4, 1), prompt(4, 2)], [o, o]);
  assert.throws(() => batcher.submit([prompt(4, 3)], [o]), BusyError);
  assert.throws(() => batcher.submit([prompt(4, 3)], [{ ...o, temperature: 3 }]), /temperature/);
  let n = 0;
  for await (const c of a) if (c.step && ++n === 3) break; // the reader leaves after 3 tokens
  const rb = await collect(b);
  assert.equal(rb.result.ids.length, 30, 'the waiting request got the slot and ran to its end');
  assert.deepEqual({ ...batcher.stats, steps: 0 }, { running: 0, waiting: 0, slots: 1, steps: 0 });
});
