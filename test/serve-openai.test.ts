// The API through the official `openai` npm client against a live server (127.0.0.1, a free port) on tiny models:
// every answer is compared with what the library itself generates for the same prompt, seed and options, so the test
// checks the real model's output and not only the response's shape. Then each error as the SDK's typed error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import OpenAI from 'openai';
import { chatStopTokens, generate, logSoftmax } from '../src/generate/index.js';
import { noGrad } from '../src/tensor/index.js';
import type { RunningServer } from '../src/serve/server.js';
import type { ServedModel } from '../src/serve/models.js';
import { libraryChat, serve, served } from './serve-fixture.js';

let srv: RunningServer;
let client: OpenAI;
let sft: ServedModel, base: ServedModel;
const user = (content: string) => [{ role: 'user' as const, content }];

before(async () => {
  sft = served('sft', 31);
  base = served('base', 32);
  srv = await serve({ models: [sft, base], limits: { maxBodyBytes: 64 * 1024, maxN: 4, maxTokens: 200 } });
  client = new OpenAI({ baseURL: `${srv.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => srv.close());

test('models.list: the served models with their context', async () => {
  const list = await client.models.list();
  assert.deepEqual(list.data.map((m) => m.id), ['sft', 'base']);
  assert.equal((list.data[0] as unknown as { max_model_len: number }).max_model_len, 256);
  assert.equal((await client.models.retrieve('base')).id, 'base');
});

test('chat, not streamed: the library answer for the same seed; usage; finish reason', async () => {
  const o = { temperature: 0.9, topP: 0.95, topK: 40, seed: 7, maxNewTokens: 24, presencePenalty: 0.5, repetitionPenalty: 1.1 };
  const r = await client.chat.completions.create({
    model: 'sft', messages: [{ role: 'system', content: 'be brief' }, ...user('春眠不觉晓')], temperature: 0.9, top_p: 0.95, seed: 7,
    max_tokens: 24, presence_penalty: 0.5, ...({ top_k: 40, repetition_penalty: 1.1 } as object),
  });
  const want = libraryChat(sft, [{ role: 'system', content: 'be brief' }, ...user('春眠不觉晓')], o);
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].message.content, want.text);
  assert.equal(r.choices[0].finish_reason, want.finishReason);
  assert.deepEqual(r.usage && [r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens],
    [want.promptTokens, want.completionTokens, want.promptTokens + want.completionTokens]);
  assert.ok(want.completionTokens > 3, 'a non-trivial answer');
});

test('chat, streamed: role first, the deltas add up to the non-streamed answer, usage at the end, [DONE]', async () => {
  const req = { model: 'base', messages: user('the sea'), seed: 3, max_tokens: 30, temperature: 1 };
  const whole = await client.chat.completions.create(req);
  const stream = await client.chat.completions.create({ ...req, stream: true, stream_options: { include_usage: true } });
  let text = '', first = true, finish = null as string | null, usage = null as OpenAI.CompletionUsage | null | undefined;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (first) assert.equal(chunk.choices[0].delta.role, 'assistant');
    first = false;
    for (const c of chunk.choices) {
      text += c.delta.content ?? '';
      finish = c.finish_reason ?? finish;
    }
    if (chunk.usage) usage = chunk.usage;
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.deepEqual(usage, whole.usage);
});

test('n = 3: three choices, choice i drawn with seed + i; all different', async () => {
  const r = await client.chat.completions.create({ model: 'sft', messages: user('hello'), n: 3, seed: 100, max_tokens: 16 });
  assert.equal(r.choices.length, 3);
  r.choices.forEach((c, i) => {
    assert.equal(c.index, i);
    assert.equal(c.message.content, libraryChat(sft, user('hello'), { seed: 100 + i, maxNewTokens: 16 }).text, `choice ${i}`);
  });
  assert.equal(new Set(r.choices.map((c) => c.message.content)).size, 3);
  assert.equal(r.usage!.completion_tokens, r.choices.reduce((s, c) => s + libraryChat(sft, user('hello'), { seed: 100 + c.index, maxNewTokens: 16 }).completionTokens, 0));
  // streamed n > 1: each index's deltas add up to its choice
  const stream = await client.chat.completions.create({ model: 'sft', messages: user('hello'), n: 3, seed: 100, max_tokens: 16, stream: true });
  const texts = ['', '', ''];
  for await (const chunk of stream) for (const c of chunk.choices) texts[c.index] += c.delta.content ?? '';
  assert.deepEqual(texts, r.choices.map((c) => c.message.content));
});

test('seed: the same request twice gives the same answer; another seed, another', async () => {
  const ask = (seed: number) => client.chat.completions.create({ model: 'sft', messages: user('the moon'), seed, max_tokens: 20 }).then((r) => r.choices[0].message.content);
  const [a, b, c] = [await ask(5), await ask(5), await ask(6)];
  assert.equal(a, b);
  assert.notEqual(a, c);
  // without a seed, the server picks one and says which, so the answer can be repeated
  const raw = await client.chat.completions.create({ model: 'sft', messages: user('the moon'), max_tokens: 20 }).withResponse();
  const seed = Number(raw.response.headers.get('x-chatwright-seed'));
  assert.ok(Number.isInteger(seed));
  assert.equal(raw.data.choices[0].message.content, await ask(seed));
});

test('logprobs: the model\'s log-softmax for each token, top_logprobs sorted, bytes that spell the token', async () => {
  const r = await client.chat.completions.create({ model: 'sft', messages: user('hello'), seed: 2, max_tokens: 10, logprobs: true, top_logprobs: 3 });
  const content = r.choices[0].logprobs!.content!;
  const want = libraryChat(sft, user('hello'), { seed: 2, maxNewTokens: 10 });
  assert.equal(content.length, want.ids.length);
  // the reference: a full forward over prompt + answer so far, log-softmax at each position
  const ids = [...sft.tokenizer.renderForCompletion(user('hello')), ...want.ids];
  const V = sft.model.config.vocabSize;
  const logits = noGrad(() => sft.model.forward(Int32Array.from(ids), 1, ids.length).logits.data as Float32Array);
  content.forEach((t, i) => {
    const pos = ids.length - want.ids.length - 1 + i;
    const lp = logSoftmax(logits.subarray(pos * V, (pos + 1) * V));
    assert.ok(Math.abs(t.logprob - lp[want.ids[i]]) < 1e-4, `token ${i}: ${t.logprob} vs ${lp[want.ids[i]]}`);
    assert.deepEqual(Buffer.from(t.bytes!), Buffer.from(sft.tokenizer.tokenBytes(want.ids[i])));
    assert.equal(t.top_logprobs.length, 3);
    for (let k = 1; k < 3; k++) assert.ok(t.top_logprobs[k - 1].logprob >= t.top_logprobs[k].logprob);
    assert.ok(Math.abs(t.top_logprobs[0].logprob - Math.max(...lp)) < 1e-4);
  });
  // streamed, each chunk carries its token's entry
  const stream = await client.chat.completions.create({ model: 'sft', messages: user('hello'), seed: 2, max_tokens: 10, logprobs: true, top_logprobs: 3, stream: true });
  const streamed: number[] = [];
  for await (const chunk of stream) for (const c of chunk.choices) for (const t of c.logprobs?.content ?? []) streamed.push(t.logprob);
  assert.deepEqual(streamed, content.map((t) => t.logprob));
});

test('stop: the answer ends before the stop string, finish_reason stop; up to 4 strings', async () => {
  const free = await client.chat.completions.create({ model: 'base', messages: user('the sea'), seed: 9, max_tokens: 40, temperature: 0.5 });
  const text = free.choices[0].message.content!;
  const stop = text.slice(8, 10);
  const r = await client.chat.completions.create({ model: 'base', messages: user('the sea'), seed: 9, max_tokens: 40, temperature: 0.5, stop: ['@@@', stop] });
  assert.equal(r.choices[0].message.content, text.slice(0, text.indexOf(stop)));
  assert.equal(r.choices[0].finish_reason, 'stop');
  await assert.rejects(client.chat.completions.create({ model: 'base', messages: user('x'), stop: ['a', 'b', 'c', 'd', 'e'] }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'stop');
});

test('completions: a base model continues the text (<|bos|> + prompt), several prompts, legacy logprobs', async () => {
  const r = await client.completions.create({ model: 'base', prompt: ['The sea', '春眠'], max_tokens: 12, seed: 4, n: 2, logprobs: 2 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 4);
  const tok = base.tokenizer;
  r.choices.forEach((c, index) => {
    const p = ['The sea', '春眠'][Math.floor(index / 2)];
    const want = generate(base.model, tok, [tok.bos, ...tok.encode(p)], { maxNewTokens: 12, seed: 4 + index });
    assert.equal(c.index, index);
    assert.equal(c.text, want.text);
    assert.deepEqual(c.logprobs!.token_logprobs!.length, want.ids.length);
    assert.equal(Object.keys(c.logprobs!.top_logprobs![0]).length <= 2, true);
  });
  assert.equal(r.usage!.prompt_tokens, 2 + tok.encode('The sea').length + tok.encode('春眠').length);
  const s = await client.completions.create({ model: 'base', prompt: 'The sea', max_tokens: 12, seed: 4, stream: true });
  let text = '';
  for await (const chunk of s) text += chunk.choices[0]?.text ?? '';
  assert.equal(text, r.choices[0].text);
});

test('the explain extension: per token the candidates, the cut of each, and the drawn one', async () => {
  const res = await fetch(`${srv.url}/v1/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ model: 'sft', messages: user('hello'), seed: 1, max_tokens: 8, top_k: 5, top_p: 0.9, explain: 8 }),
  });
  const r = (await res.json()) as { choices: { message: { content: string }; explain: unknown }[] };
  const ex = r.choices[0].explain as { id: number; text: string; prob: number; candidates: { id: number; p: number; prob: number; cut: string | null }[] }[];
  assert.equal(ex.map((e) => e.text).join(''), r.choices[0].message.content);
  for (const e of ex) {
    assert.ok(e.candidates.length >= 8);
    const drawn = e.candidates.find((c) => c.id === e.id)!;
    assert.equal(drawn.cut, null);
    assert.ok(drawn.prob > 0 && Math.abs(drawn.prob - e.prob) < 1e-12);
    assert.ok(e.candidates.slice(5).every((c) => c.cut !== null), 'top-k 5 cuts the 6th candidate on');
    const kept = e.candidates.filter((c) => c.cut === null);
    assert.ok(Math.abs(kept.reduce((s, c) => s + c.prob, 0) - 1) < 1e-9, 'the kept candidates hold the whole draw');
  }
});

test('unknown fields are ignored, null means absent; max_completion_tokens and the developer role as OpenAI has them', async () => {
  const r = await client.chat.completions.create({
    model: 'sft', messages: [{ role: 'developer', content: 'be brief' }, ...user('hi')], max_completion_tokens: 6, seed: 8,
    temperature: null, user: 'someone', metadata: { a: 'b' }, ...({ some_future_field: [1, 2] } as object),
  });
  const want = libraryChat(sft, [{ role: 'system', content: 'be brief' }, ...user('hi')], { seed: 8, maxNewTokens: 6 });
  assert.equal(r.choices[0].message.content, want.text);
  assert.equal(r.usage!.completion_tokens, want.completionTokens);
});

test('errors arrive as the SDK\'s typed errors, in OpenAI\'s shape', async () => {
  const bad = (body: object) => client.chat.completions.create({ model: 'sft', messages: user('hi'), ...body } as never);
  await assert.rejects(bad({ temperature: 'hot' }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'temperature' && e.type === 'invalid_request_error');
  await assert.rejects(bad({ top_p: 0 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'top_p');
  await assert.rejects(bad({ messages: [{ role: 'assistant', content: 'hi' }] }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'messages');
  await assert.rejects(bad({ messages: [{ role: 'user', content: 5 }] }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'messages[0].content');
  await assert.rejects(bad({ top_logprobs: 2 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'top_logprobs');
  await assert.rejects(bad({ logit_bias: { 99999: 5 } }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'logit_bias.99999');
  await assert.rejects(bad({ n: 5 }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.param === 'n');
  await assert.rejects(bad({ tools: [{ type: 'function', function: { name: 'f' } }] }), (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === 'unsupported_parameter');
  await assert.rejects(bad({ messages: user('long '.repeat(300)), max_tokens: 10 }),
    (e: unknown) => e instanceof OpenAI.BadRequestError && e.code === 'context_length_exceeded' && /maximum context length is 256/.test(e.message));
  await assert.rejects(bad({ model: 'gpt-4o' }), (e: unknown) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  await assert.rejects(bad({ messages: user('x'.repeat(70_000)) }), (e: unknown) => e instanceof OpenAI.APIError && e.status === 413 && e.code === 'request_too_large');
});

test('401 with a wrong or missing key on every route but /health; the right key works', async () => {
  const keyed = await serve({ models: [sft], apiKey: 'sesame' });
  try {
    const wrong = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'open', maxRetries: 0 });
    await assert.rejects(wrong.models.list(), (e: unknown) => e instanceof OpenAI.AuthenticationError && e.code === 'invalid_api_key');
    await assert.rejects(wrong.chat.completions.create({ model: 'sft', messages: user('hi') }), OpenAI.AuthenticationError);
    assert.equal((await fetch(`${keyed.url}/api/runs`)).status, 401);
    assert.equal((await fetch(`${keyed.url}/health`)).status, 200);
    const right = new OpenAI({ baseURL: `${keyed.url}/v1`, apiKey: 'sesame', maxRetries: 0 });
    assert.equal((await right.chat.completions.create({ model: 'sft', messages: user('hi'), max_tokens: 3 })).choices.length, 1);
  } finally {
    await keyed.close();
  }
});

test('503 when the queue is full; 504 (and an error event in a stream) past the time limit', async () => {
  // the stop tokens are banned, so each answer runs to max_tokens and cannot end before the limit bites
  const noStop = Object.fromEntries(chatStopTokens(sft.tokenizer).map((id) => [id, -100]));
  const small = await serve({ models: [served('sft', 31, { slots: 1, maxQueue: 0 })], limits: { timeoutMs: 60_000 } });
  try {
    const c = new OpenAI({ baseURL: `${small.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const long = await c.chat.completions.create({ model: 'sft', messages: user('hi'), max_tokens: 240, stream: true, logit_bias: noStop });
    const it = long[Symbol.asyncIterator]();
    await it.next(); // decoding now: the one slot is taken
    await assert.rejects(c.chat.completions.create({ model: 'sft', messages: user('hi') }),
      (e: unknown) => e instanceof OpenAI.InternalServerError && e.status === 503 && e.code === 'server_overloaded');
    long.controller.abort();
  } finally {
    await small.close();
  }
  const slow = await serve({ models: [served('sft', 31)], limits: { timeoutMs: 1 } });
  try {
    const c = new OpenAI({ baseURL: `${slow.url}/v1`, apiKey: 'x', maxRetries: 0 });
    await assert.rejects(c.chat.completions.create({ model: 'sft', messages: user('hi'), max_tokens: 200, logit_bias: noStop }),
      (e: unknown) => e instanceof OpenAI.APIError && e.status === 504 && e.code === 'timeout');
    const s = await c.chat.completions.create({ model: 'sft', messages: user('hi'), max_tokens: 200, stream: true, logit_bias: noStop });
    await assert.rejects((async () => {
      for await (const _ of s) { /* the error event ends it */ }
    })(), (e: unknown) => e instanceof OpenAI.APIError && /time limit/.test(e.message));
  } finally {
    await slow.close();
  }
});

test('HTTP edges: unknown URL 404, wrong method 405, non-JSON content type 415, bad JSON 400, all in OpenAI\'s shape', async () => {
  const check = async (res: Response, status: number, code: string) => {
    assert.equal(res.status, status);
    const b = (await res.json()) as { error: Record<string, unknown> };
    assert.deepEqual(Object.keys(b.error).sort(), ['code', 'message', 'param', 'type']);
    assert.equal(b.error.code, code);
  };
  await check(await fetch(`${srv.url}/v1/embeddings`, { method: 'POST' }), 404, 'unknown_url');
  await check(await fetch(`${srv.url}/v1/chat/completions`), 405, 'method_not_allowed');
  await check(await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'text/plain' } }), 415, 'unsupported_media_type');
  await check(await fetch(`${srv.url}/v1/chat/completions`, { method: 'POST', body: '{"messages": [', headers: { 'Content-Type': 'application/json' } }), 400, 'invalid_json');
  // a page on another name that resolves to 127.0.0.1 (DNS rebinding) is refused (fetch cannot set Host; node:http can)
  const rebound = await new Promise<{ status: number; body: string }>((resolve, reject) => {
    const u = new URL(srv.url);
    http.get({ host: u.hostname, port: u.port, path: '/v1/models', headers: { Host: 'evil.example' } }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d)).on('end', () => resolve({ status: res.statusCode!, body }));
    }).on('error', reject);
  });
  assert.equal(rebound.status, 403);
  assert.equal(JSON.parse(rebound.body).error.code, 'forbidden_host');
  assert.equal((await fetch(`${srv.url}/v1/models`, { method: 'OPTIONS' })).headers.get('access-control-allow-origin'), null, 'no CORS unless asked');
});
