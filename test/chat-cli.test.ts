// The terminal front ends, driven as a user would: `chatwright chat` through a pipe (two turns, a reset, the commands,
// the explain view, the context window overflowing) and `chatwright generate`, each compared with the library's
// generate on the same prompt and seed. A tiny random-weight model and a tiny trained tokenizer are made in a temp dir.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset } from '../src/model/config.js';
import { saveModel } from '../src/model/checkpoint.js';
import { trainTokenizer, type Message, type Tokenizer } from '../src/tokenizer/index.js';
import { generate } from '../src/generate/index.js';
import { chatStopTokens } from '../src/cli/chat.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
let dir = '';
let model: GPT;
let tokenizer: Tokenizer;

const CORPUS = [
  'The sea was calm and the moon was bright over the quiet harbour.',
  'A small boat drifted past the lighthouse while the gulls slept.',
  '春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。',
  'What does the word harbour mean? A place on the coast where ships shelter.',
  'Hello, how are you today? I am well, thank you, and you?',
];

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'chatwright-chat-'));
  tokenizer = trainTokenizer(Array.from({ length: 20 }, (_, i) => CORPUS.map((s) => `${s} ${i}`).join('\n')), { vocabSize: 320 });
  model = GPT.create(configFromPreset('tiny', tokenizer.vocabSize, {
    nLayer: 2, nEmbd: 64, nHead: 4, nKvHead: 2, intermediateSize: 128, maxSeqLen: 96, tiedEmbeddings: false,
  }), 11);
  saveModel(dir, model, tokenizer);
});

after(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], input = ''): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { input, encoding: 'utf8', timeout: 90_000, env: { ...process.env, NO_COLOR: '1' } });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

const reply = (messages: Message[], seed: number, o: object) =>
  generate(model, tokenizer, tokenizer.renderForCompletion(messages), { maxNewTokens: 8, stopTokens: chatStopTokens(tokenizer), ...o, seed }).text;

test('chat through a pipe: two turns, /reset, /system, /temperature, then the explain view', () => {
  const input = ['hello there', 'how are you?', '/system', '/reset', '/temperature 0', '/explain on', 'the sea', ''].join('\n');
  const r = cli(['chat', '--model', dir, '--seed', '5', '--max-tokens', '8', '--system', 'be brief'], input);
  assert.equal(r.status, 0, r.stderr);
  const sys: Message = { role: 'system', content: 'be brief' };
  const o = { temperature: 0.7, topP: 0.9 };
  const r1 = reply([sys, { role: 'user', content: 'hello there' }], 5, o);
  const r2 = reply([sys, { role: 'user', content: 'hello there' }, { role: 'assistant', content: r1 },
    { role: 'user', content: 'how are you?' }], 6, o);
  const r3 = reply([sys, { role: 'user', content: 'the sea' }], 7, { temperature: 0 });
  const expectedStart = `assistant: ${r1}\nassistant: ${r2}\nassistant: `;
  assert.ok(r.stdout.startsWith(expectedStart), `stdout:\n${r.stdout}\nexpected to start with:\n${expectedStart}`);
  assert.ok(r.stdout.endsWith(`\nassistant: ${r3}\n`), `stdout ends:\n${r.stdout.slice(-200)}\nexpected reply ${JSON.stringify(r3)}`);
  // the explain view: a table per token, the drawn one marked
  const tables = r.stdout.slice(expectedStart.length).split('\n').filter((l) => l.startsWith('#'));
  assert.ok(tables.length >= 1 && tables.length <= 8, r.stdout);
  // greedy: the drawn token is the most probable, so it heads its table with the marker; with no penalties its
  // probability is the model's, exp(logprob)
  const m = /^#0 drew (.*) p=([0-9.]+) \(greedy: the most probable\)  logprob\(model\)=(-?[0-9.]+)$/.exec(tables[0]);
  assert.ok(m, tables[0]);
  assert.ok(Math.abs(Number(m[2]) - Math.exp(Number(m[3]))) < 2e-3, tables[0]);
  const firstRow = r.stdout.split('\n')[r.stdout.split('\n').indexOf(tables[0]) + 1];
  assert.ok(firstRow.startsWith(`  > ${m[1]}`), `${tables[0]}\n${firstRow}`);
  assert.match(r.stderr, /system prompt: be brief/);
  assert.match(r.stderr, /new conversation/);
  assert.match(r.stderr, /temperature = 0/);
});

test('chat: the oldest turns are dropped when the context overflows, the system prompt stays, the user is told', () => {
  const long = 'What does the word harbour mean today';
  const input = Array.from({ length: 6 }, (_, i) => `${long} ${i}`).join('\n') + '\n';
  const r = cli(['chat', '--model', dir, '--seed', '1', '--max-tokens', '8', '--temperature', '0', '--system', 'be brief'], input);
  assert.equal(r.status, 0, r.stderr);
  assert.equal((r.stdout.match(/assistant: /g) ?? []).length, 6, r.stdout);
  assert.match(r.stderr, /outgrew the context window \(96 tokens\): dropped the oldest \d+ turn\(s\); the system prompt stays/);
  // a message longer than the window is refused, and the REPL goes on
  const r2 = cli(['chat', '--model', dir, '--max-tokens', '8'], `${'harbour '.repeat(200)}\nhello\n`);
  assert.equal(r2.status, 0, r2.stderr);
  assert.match(r2.stderr, /too long for the context window/);
  assert.equal((r2.stdout.match(/assistant: /g) ?? []).length, 1);
});

test('generate: continuation with --json equals the library result; bad options are clear errors', () => {
  const r = cli(['generate', '--model', dir, '--prompt', 'The sea', '--max-tokens', '6', '--seed', '3', '--top-k', '20', '--json', '--logprobs', '2']);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  const ref = generate(model, tokenizer, [tokenizer.bos, ...tokenizer.encode('The sea')], { maxNewTokens: 6, seed: 3, topK: 20, temperature: 1 });
  assert.deepEqual(j.ids, ref.ids);
  assert.equal(j.text, ref.text);
  assert.equal(j.finish_reason, ref.finishReason);
  assert.equal(j.logprobs[0].top.length, 2);
  const streamed = cli(['generate', '--model', dir, '--prompt', 'The sea', '--max-tokens', '6', '--seed', '3', '--top-k', '20']);
  assert.equal(streamed.stdout, `The sea${ref.text}\n`);
  const bad = cli(['generate', '--model', dir, '--prompt', 'x', '--temperature', '3']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--temperature must be at most 2/);
  const noModel = cli(['generate', '--model', join(dir, 'nope'), '--prompt', 'x']);
  assert.match(noModel.stderr, /model directory not found/);
});

test('generate and chat --dtype q8_0 / bf16: the library result with the same inference weights; an unknown dtype is exit 2', () => {
  const prompt = [tokenizer.bos, ...tokenizer.encode('The sea')];
  try {
    for (const dtype of ['q8_0', 'bf16'] as const) {
      model.setInferenceDtype(dtype);
      const ref = generate(model, tokenizer, prompt, { maxNewTokens: 6, seed: 3, temperature: 0 });
      const r = cli(['generate', '--model', dir, '--prompt', 'The sea', '--max-tokens', '6', '--temperature', '0', '--json', '--dtype', dtype]);
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).ids, ref.ids, dtype);
      assert.match(r.stderr, new RegExp(`weights in ${dtype}: [0-9.]+ MiB read per token`));
      const chat = reply([{ role: 'user', content: 'hello there' }], 1, { temperature: 0 });
      const c = cli(['chat', '--model', dir, '--max-tokens', '8', '--temperature', '0', '--dtype', dtype], 'hello there\n');
      assert.equal(c.status, 0, c.stderr);
      assert.equal(c.stdout, `assistant: ${chat}\n`, dtype);
    }
  } finally {
    model.setInferenceDtype('f32');
  }
  const bad = cli(['generate', '--model', dir, '--prompt', 'x', '--dtype', 'q4_0']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--dtype must be one of f32, bf16, q8_0, got "q4_0"/);
});
