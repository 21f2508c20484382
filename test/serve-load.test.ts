// Load and faults on 127.0.0.1, bounded in count and time: 32 concurrent streaming clients of which 8 leave mid-stream
// (0 failed requests; the 24 others get exactly the library's answer; the leavers' rows stop within a few steps; the
// memory after the load is back to where it was), then 1,000 malformed or oversized requests from fast-check (each a
// 4xx in OpenAI's shape, none starts a generation, the server answers on).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import { chatStopTokens } from '../src/generate/index.js';
import { libraryChat, serve, served } from './serve-fixture.js';

const user = (content: string) => [{ role: 'user' as const, content }];

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;
const memory = () => {
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  return m.heapUsed + m.arrayBuffers;
};

test('32 concurrent streaming clients, 8 leave mid-stream: 0 failures, the others unaffected, memory back to its start', { timeout: 120_000 }, async () => {
  const sm = served('sft', 41, { slots: 32, maxQueue: 32 });
  const srv = await serve({ models: [sm] });
  // every answer runs to max_tokens (stop tokens banned), so the leavers' saved work can be counted
  const MAX = 40, LEAVE_AFTER = 5;
  const logitBias = Object.fromEntries(chatStopTokens(sm.tokenizer).map((id) => [id, -100]));
  let decodedRows = 0; // rows fed through a decode step (one token each)
  const forward = sm.model.forwardCached.bind(sm.model);
  sm.model.forwardCached = (ids, B, Tq, cache, o) => {
    if (Tq === 1) decodedRows += B;
    return forward(ids, B, Tq, cache, o);
  };

  async function client(i: number, leaves: boolean): Promise<{ text: string; chunks: number; finish: string | null }> {
    const ac = new AbortController();
    const res = await fetch(`${srv.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, signal: ac.signal,
      body: JSON.stringify({ model: 'sft', messages: user(`poem ${i}`), seed: i, max_tokens: MAX, logit_bias: logitBias, stream: true }),
    });
    assert.equal(res.status, 200, `client ${i}`);
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '', text = '', chunks = 0, finish: string | null = null;
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        for (let cut = buf.indexOf('\n\n'); cut >= 0; cut = buf.indexOf('\n\n')) {
          const data = buf.slice(6, cut);
          buf = buf.slice(cut + 2);
          if (data === '[DONE]') continue;
          const c = JSON.parse(data).choices[0];
          if (c.delta.content) {
            text += c.delta.content;
            chunks++;
          }
          finish = c.finish_reason ?? finish;
        }
        if (leaves && chunks >= LEAVE_AFTER) {
          ac.abort();
          break;
        }
      }
    } catch (e) {
      if (!(leaves && (e as Error).name === 'AbortError')) throw e;
    }
    return { text, chunks, finish };
  }

  const round = async () => {
    decodedRows = 0;
    const results = await Promise.all(Array.from({ length: 32 }, (_, i) => client(i, i % 4 === 3)));
    for (let t = 0; t < 200 && sm.batcher.stats.running + sm.batcher.stats.waiting > 0; t++) await new Promise((r) => setTimeout(r, 5));
    return results;
  };
  try {
    const first = await round();
    const decoded = decodedRows; // before the library's own runs below add to it
    const expected = first.map((_, i) => libraryChat(sm, user(`poem ${i}`), { seed: i, maxNewTokens: MAX, logitBias }));
    first.forEach((r, i) => {
      if (i % 4 === 3) assert.ok(r.chunks >= LEAVE_AFTER && expected[i].text.startsWith(r.text), `leaver ${i}`);
      else {
        assert.equal(r.text, expected[i].text, `client ${i} got the answer it gets alone`);
        assert.equal(r.finish, 'length');
      }
    });
    // the leavers' rows stopped within a few steps of the disconnect, not at max_tokens
    const stayers = expected.filter((_, i) => i % 4 !== 3).reduce((s, e) => s + e.completionTokens - 1, 0);
    const leaverRows = decoded - stayers;
    assert.ok(leaverRows < 8 * (LEAVE_AFTER + 10), `leavers decoded ${leaverRows} rows; running to the end would be ${8 * (MAX - 1)}`);
    assert.deepEqual([sm.batcher.stats.running, sm.batcher.stats.waiting], [0, 0]);

    const before = memory();
    for (let k = 0; k < 3; k++) await round();
    const after = memory();
    const grew = (after - before) / 2 ** 20;
    console.log(`# memory (heap + array buffers) before ${(before / 2 ** 20).toFixed(1)} MiB, after 3 more rounds of 32 clients ${(after / 2 ** 20).toFixed(1)} MiB; leavers decoded ${leaverRows} rows`);
    assert.ok(grew < 4, `memory grew by ${grew.toFixed(2)} MiB over 96 requests`);
  } finally {
    sm.model.forwardCached = forward;
    await srv.close();
  }
});

// ---- the fuzz

const notObject = fc.oneof(fc.integer(), fc.string({ maxLength: 20 }), fc.array(fc.integer(), { maxLength: 4 }), fc.constant(null), fc.boolean());
const wrongType = fc.oneof(fc.string({ maxLength: 8 }), fc.boolean(), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 3 }), fc.integer(), { maxKeys: 2 }));
const above = (x: number) => fc.double({ min: x + 1e-3, max: 1e9, noNaN: true });
const below = (x: number) => fc.double({ min: -1e9, max: x - 1e-3, noNaN: true });
const fraction = fc.double({ min: 0.01, max: 0.99, noNaN: true });

// Per field, values that are wrong for it (type or range): any one of them makes a request a 400.
const badFields: Record<string, fc.Arbitrary<unknown>> = {
  temperature: fc.oneof(wrongType, above(2), below(0)),
  top_p: fc.oneof(wrongType, fc.constant(0), above(1), below(0)),
  top_k: fc.oneof(wrongType, fraction, fc.integer({ min: -1e6, max: -2 })),
  min_p: fc.oneof(wrongType, above(1), below(0)),
  repetition_penalty: fc.oneof(wrongType, fc.constant(0), above(10)),
  presence_penalty: fc.oneof(wrongType, above(2), below(-2)),
  frequency_penalty: fc.oneof(wrongType, above(2), below(-2)),
  max_tokens: fc.oneof(wrongType, fc.integer({ min: -1e6, max: 0 }), fc.integer({ min: 5000, max: 1e9 }), fraction),
  max_completion_tokens: fc.oneof(wrongType, fc.integer({ min: -1e6, max: 0 })),
  n: fc.oneof(wrongType, fc.integer({ min: -100, max: 0 }), fc.integer({ min: 9, max: 1e6 })),
  seed: fc.oneof(fc.string({ minLength: 1, maxLength: 5 }), fraction, fc.boolean()),
  stop: fc.oneof(fc.integer(), fc.array(fc.string({ maxLength: 3 }), { minLength: 5, maxLength: 8 }), fc.array(fc.integer(), { minLength: 1, maxLength: 3 })),
  logit_bias: fc.oneof(fc.string({ maxLength: 5 }), fc.array(fc.integer(), { maxLength: 2 }), fc.constant({ a: 1 }), fc.constant({ 5: 1000 }), fc.constant({ 99999: 1 }), fc.constant({ '-3': 1 })),
  stream: fc.oneof(fc.string({ maxLength: 3 }), fc.integer()),
  stream_options: fc.constant({ include_usage: true }), // without stream: true
  model: fc.oneof(fc.integer(), fc.string({ minLength: 1, maxLength: 12 }).filter((s) => s !== 'sft')),
  explain: fc.oneof(wrongType, fc.integer({ min: 51, max: 1e6 }), fc.integer({ min: -1e6, max: -1 })),
  tools: fc.constant([{ type: 'function', function: { name: 'f' } }]),
  response_format: fc.constant({ type: 'json_object' }),
};
const chatOnly: Record<string, fc.Arbitrary<unknown>> = {
  messages: fc.oneof(
    notObject, fc.constant([]),
    fc.array(fc.record({
      role: fc.oneof(fc.constantFrom('user', 'assistant', 'system', 'developer', 'tool'), fc.string({ maxLength: 6 })),
      content: fc.oneof(fc.integer(), fc.constant(null), fc.constant(''), fc.array(fc.record({ type: fc.string({ maxLength: 5 }).filter((t) => t !== 'text') }), { minLength: 1, maxLength: 2 })),
    }), { minLength: 1, maxLength: 3 }),
    fc.constant([{ role: 'assistant', content: 'hi' }]), fc.constant([{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }]),
  ),
  logprobs: fc.oneof(fc.string({ maxLength: 3 }), fc.integer()),
  top_logprobs: fc.oneof(fc.integer({ min: 0, max: 20 }), fc.integer({ min: 21, max: 1000 })), // without logprobs: true
};
const completionOnly: Record<string, fc.Arbitrary<unknown>> = {
  prompt: fc.oneof(fc.integer(), fc.constant(null), fc.constant([]), fc.constant([[]]), fc.array(fc.oneof(fc.string(), fc.integer()), { minLength: 2, maxLength: 3 }).filter((a) => a.some((x) => typeof x === 'string') && a.some((x) => typeof x === 'number')), fc.constant([1e9])),
  echo: fc.constant(true),
  suffix: fc.string({ minLength: 1, maxLength: 4 }),
  best_of: fc.integer({ min: 2, max: 5 }),
  logprobs: fc.oneof(wrongType, fc.integer({ min: 21, max: 100 })),
};

const MAX_BODY = 8 * 1024;
type Req = { method: string; path: string; type: string; body: string; want: number[] };
const json = 'application/json';
const chatPath = '/v1/chat/completions', complPath = '/v1/completions';
const validChat = { model: 'sft', messages: [{ role: 'user', content: 'hi' }], max_tokens: 4 };
const validCompl = { model: 'sft', prompt: 'hi', max_tokens: 4 };
const badField = (valid: object, fields: Record<string, fc.Arbitrary<unknown>>) =>
  fc.constantFrom(...Object.keys(fields)).chain((k) => fields[k].map((v) => ({ ...valid, [k]: v })));

const requests: fc.Arbitrary<Req> = fc.oneof(
  badField(validChat, { ...badFields, ...chatOnly }).map((b) => ({ method: 'POST', path: chatPath, type: json, body: JSON.stringify(b), want: [400, 404] })),
  badField(validCompl, { ...badFields, ...completionOnly }).map((b) => ({ method: 'POST', path: complPath, type: json, body: JSON.stringify(b), want: [400, 404] })),
  fc.tuple(fc.constantFrom(chatPath, complPath), notObject).map(([path, b]) => ({ method: 'POST', path, type: json, body: JSON.stringify(b), want: [400] })),
  fc.tuple(fc.constantFrom(chatPath, complPath), fc.dictionary(fc.string({ maxLength: 8 }).filter((k) => k !== 'messages' && k !== 'prompt'), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 4 }))
    .map(([path, b]) => ({ method: 'POST', path, type: json, body: JSON.stringify(b), want: [400] })),
  fc.tuple(fc.constantFrom(chatPath, complPath), fc.string({ maxLength: 40 }).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } }))
    .map(([path, body]) => ({ method: 'POST', path, type: json, body, want: [400] })),
  fc.tuple(fc.constantFrom(chatPath, complPath), fc.integer({ min: MAX_BODY + 1, max: 4 * MAX_BODY }))
    .map(([path, n]) => ({ method: 'POST', path, type: json, body: JSON.stringify({ ...validChat, messages: [{ role: 'user', content: 'x'.repeat(n) }] }), want: [413] })),
  fc.tuple(fc.constantFrom(chatPath, complPath), fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', ''))
    .map(([path, type]) => ({ method: 'POST', path, type, body: JSON.stringify(validChat), want: [415] })),
  fc.tuple(fc.constantFrom('GET', 'PUT', 'DELETE', 'PATCH'), fc.constantFrom(chatPath, complPath))
    .map(([method, path]) => ({ method, path, type: json, body: '', want: [405] })),
  fc.tuple(fc.constantFrom('GET', 'POST'), fc.webSegment().filter((s) => s !== 'models' && s !== 'chat' && s !== 'completions'))
    .map(([method, seg]) => ({ method, path: `/v1/${seg}/x`, type: json, body: '', want: [404] })),
);

test('1,000 malformed or oversized requests: each a 4xx in OpenAI\'s shape, no generation started, the server answers on', { timeout: 120_000 }, async () => {
  const sm = served('sft', 42, { slots: 2, maxQueue: 2 });
  const srv = await serve({ models: [sm], limits: { maxBodyBytes: MAX_BODY, maxTokens: 200 } });
  const seen = new Map<number, number>();
  try {
    await fc.assert(fc.asyncProperty(requests, async (r) => {
      const res = await fetch(srv.url + r.path, {
        method: r.method, headers: r.type ? { 'Content-Type': r.type } : {}, body: r.method === 'GET' ? undefined : r.body,
      });
      const text = await res.text();
      seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
      assert.ok(r.want.includes(res.status), `${r.method} ${r.path} ${r.body.slice(0, 200)} -> ${res.status} ${text.slice(0, 300)}`);
      const b = JSON.parse(text);
      assert.deepEqual(Object.keys(b), ['error']);
      assert.equal(typeof b.error.message, 'string');
      assert.equal(typeof b.error.type, 'string');
      assert.ok(b.error.param === null || typeof b.error.param === 'string');
      assert.ok(b.error.code === null || typeof b.error.code === 'string');
    }), { numRuns: 1000 });
    console.log(`# statuses: ${[...seen].sort().map(([s, n]) => `${s} x${n}`).join(', ')}`);
    assert.equal(sm.batcher.stats.steps, 0, 'no malformed request reached the model');
    const health = await fetch(`${srv.url}/health`);
    assert.equal(health.status, 200);
    const ok = await fetch(`${srv.url}${chatPath}`, { method: 'POST', headers: { 'Content-Type': json }, body: JSON.stringify(validChat) });
    assert.equal(ok.status, 200);
  } finally {
    await srv.close();
  }
});
