// Mutation fuzzing of every file chatwright reads. For each target (a file of a seed folder made here, and the reader
// the CLI would run on it, followed by what the CLI does next: generate tokens, encode text, build batches), mutants
// of the file are made from fast-check recipes (truncations, flipped bits, huge lengths and offsets, wrong dtypes, NaN
// and Inf values, JSON values replaced, deleted and nested 100,000 deep, a folder where the file should be, ...) and
// read in a worker thread with a time limit. The outcome of each mutant is:
//   accepted  the reader and the use after it succeeded (the mutant was still a valid file, or a part nobody reads)
//   rejected  a UserError whose message or hint names the file            (what a malformed file must give)
// and the failures: unnamed (a UserError that does not name the file), crash (any other error), hang (past the time
// limit), oom (the worker ran out of memory, or the process grew past --max-rss-mb).
//
// By hand, 1,000 mutants per target (a few minutes on 2 cores):
//   node dist/test/fuzz-files.js --mutants 1000 [--seed 1] [--targets config.json,shard] [--workers 2] [--timeout 20]
// Replay one mutant: --targets NAME --index I (with the same --seed and --mutants) --verbose.
// test/fuzz-files.test.ts runs every target with a few dozen mutants.
//
// Adding a file is one entry in TARGETS: the seed file (made by makeSeeds) and the reader (run in the worker).
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { UserError } from '../src/util/errors.js';
import type { Message } from '../src/tokenizer/index.js';

// ---------------------------------------------------------------------------------------------------------------------
// Targets: which file of the seed folder is mutated, what kind of bytes it holds, and how it is read

export type Kind = 'json' | 'jsonl' | 'safetensors' | 'shard' | 'tiktoken' | 'gguf';
// restore: a folder the reader may rewrite (a checkpoint's recovery, a store's repair), put back after each mutant
export interface Target { name: string; file: string; kind: Kind; read: string; restore?: string }

// `read` names a reader in READERS (they run in the worker, which imports the library lazily)
export const TARGETS: Target[] = [
  { name: 'config.json', file: 'model/config.json', kind: 'json', read: 'model' },
  { name: 'model.safetensors', file: 'model/model.safetensors', kind: 'safetensors', read: 'model' },
  { name: 'tokenizer.json', file: 'tok/tokenizer.json', kind: 'json', read: 'tokenizer' },
  { name: 'tokenizer_config.json', file: 'model/tokenizer_config.json', kind: 'json', read: 'model' },
  { name: 'tiktoken', file: 'ranks.tiktoken', kind: 'tiktoken', read: 'tiktoken' },
  { name: 'tiktoken.json', file: 'ranks.json', kind: 'json', read: 'tiktoken-json' },
  { name: 'manifest.json', file: 'data/manifest.json', kind: 'json', read: 'shards' },
  { name: 'shard', file: 'data/train_000.bin', kind: 'shard', read: 'shards' },
  { name: 'trainer_state.json', file: 'ckpt/trainer_state.json', kind: 'json', read: 'resume', restore: 'ckpt' },
  { name: 'trainer_state.safetensors', file: 'ckpt/trainer_state.safetensors', kind: 'safetensors', read: 'resume', restore: 'ckpt' },
  { name: 'sft.jsonl', file: 'demos.jsonl', kind: 'jsonl', read: 'demos' },
  { name: 'prompts.jsonl', file: 'prompts.jsonl', kind: 'jsonl', read: 'prompts' },
  { name: 'samples.jsonl', file: 'samples.jsonl', kind: 'jsonl', read: 'samples' },
  { name: 'store items.jsonl', file: 'feedback/items.jsonl', kind: 'jsonl', read: 'store', restore: 'feedback' },
  { name: 'store rankings.jsonl', file: 'feedback/rankings.jsonl', kind: 'jsonl', read: 'store', restore: 'feedback' },
  { name: 'pairs.jsonl', file: 'pairs.jsonl', kind: 'jsonl', read: 'pairs' },
  { name: 'kway.jsonl', file: 'kway.jsonl', kind: 'jsonl', read: 'kway' },
  { name: 'model.gguf', file: 'model.gguf', kind: 'gguf', read: 'gguf' },
];

// The seed folder: a tiny tokenizer, model, shards, checkpoint, demonstrations and rank files, all made by chatwright.
export async function makeSeeds(root: string): Promise<void> {
  const { trainTokenizer } = await import('../src/tokenizer/index.js');
  const { formatTiktokenRanks } = await import('../src/tokenizer/tiktoken.js');
  const { GPT } = await import('../src/model/gpt.js');
  const { saveModel } = await import('../src/model/checkpoint.js');
  const { prepareData } = await import('../src/stages/data.js');
  const { pretrain } = await import('../src/stages/pretrain.js');
  const lines = ['床前明月光，疑是地上霜。举头望明月，低头思故乡。', 'The sea was calm; the moon was bright.', '春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。',
    'A cat sat on the mat and looked at the sea.', '白日依山尽，黄河入海流。欲穷千里目，更上一层楼。'];
  const docs = Array.from({ length: 40 }, (_, i) => lines[i % lines.length] + ' ' + lines[(i * 3 + 1) % lines.length]);
  const text = docs.join('\n');
  writeFileSync(join(root, 'corpus.jsonl'), docs.map((d) => JSON.stringify({ text: d })).join('\n') + '\n');
  const tok = trainTokenizer([text], { vocabSize: 300 });
  tok.save(join(root, 'tok'));
  const config = { arch: 'llama' as const, vocabSize: tok.vocabSize, nLayer: 1, nHead: 2, nKvHead: 1, nEmbd: 16, intermediateSize: 32,
    maxSeqLen: 32, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true };
  saveModel(join(root, 'model'), GPT.create(config, 1), tok);
  writeFileSync(join(root, 'ranks.tiktoken'), formatTiktokenRanks(tok.toParts().vocab.tokenBytes));
  const ranks = formatTiktokenRanks(tok.toParts().vocab.tokenBytes).trim().split('\n').map((l, i) => `! ${i} ${l.split(' ')[0]}`);
  writeFileSync(join(root, 'ranks.json'), JSON.stringify({ pat_str: tok.pattern, special_tokens: { '<|endoftext|>': tok.vocabSize }, bpe_ranks: ranks.join('\n') }));
  prepareData({ corpus: [join(root, 'corpus.jsonl')], tokenizer: join(root, 'tok'), out: join(root, 'data'), valFraction: 0.1, shardTokens: 1024 });
  await pretrain({ data: join(root, 'data'), out: join(root, 'ckpt'), model: { nLayer: 1, nEmbd: 16, nHead: 2, nKvHead: 1, intermediateSize: 32 },
    context: 32, steps: 2, batchSize: 2, seqLen: 16, evalEvery: 0, sampleEvery: 0, saveEvery: 0, peakGflops: 1, resume: false }, () => {});
  const msg = (role: Message['role'], content: string): Message => ({ role, content });
  writeFileSync(join(root, 'demos.jsonl'), [
    { messages: [msg('user', '写一首诗'), msg('assistant', '床前明月光')] },
    { messages: [msg('system', 'be brief'), msg('user', 'the sea?'), msg('assistant', 'calm')] },
    { messages: [msg('user', 'moon'), msg('assistant', 'bright'), msg('user', 'cat'), msg('assistant', 'mat')] },
  ].map((x) => JSON.stringify(x)).join('\n') + '\n');

  // the feedback files: prompts, sampled answers, a preference store ranked by two people, its export in two formats
  const { itemId, itemToJson, PreferenceStore, kwayFromRecords, exportLines, toJsonl } = await import('../src/feedback/index.js');
  const prompts: Message[][] = [[msg('user', '写一首五言绝句，题为《春晓》')], [msg('system', 'be brief'), msg('user', 'the sea?')], [msg('user', 'moon'), msg('assistant', 'bright'), msg('user', 'cat?')]];
  writeFileSync(join(root, 'prompts.jsonl'), prompts.map((m, i) => JSON.stringify(i === 1 ? { prompt: m[1].content } : { messages: m })).join('\n') + '\n');
  const answers = [['春眠不觉晓', '处处闻啼鸟', '夜来风雨声'], ['calm', 'grey and wide'], ['a cat sat', 'mat', 'the moon']];
  const items = prompts.map((prompt, i) => ({ id: itemId(prompt, answers[i]), prompt, responses: answers[i], model: 'model', sampling: { temperature: 1, seeds: answers[i].map((_, j) => j) } }));
  writeFileSync(join(root, 'samples.jsonl'), items.map((it) => JSON.stringify(itemToJson(it))).join('\n') + '\n');
  const store = PreferenceStore.open(join(root, 'feedback'));
  try {
    store.addItems(items);
    store.submit('alice', items[0].id, { verdict: 'ranked', ranking: [[2], [0, 1]] });
    store.submit('alice', items[1].id, { verdict: 'ranked', ranking: [[1], [0]] });
    store.submit('bob', items[2].id, { verdict: 'all-bad' });
    const kway = kwayFromRecords(store.records());
    writeFileSync(join(root, 'pairs.jsonl'), toJsonl(kway.flatMap((k) => exportLines(k, 'pairs'))));
    writeFileSync(join(root, 'kway.jsonl'), toJsonl(kway.flatMap((k) => exportLines(k, 'kway'))));
  } finally {
    store.close();
  }
  // the model as GGUF q8_0 (its 32-wide rows in blocks of 32, the others f32), with the tokenizer and chat template
  const { loadModel } = await import('../src/model/checkpoint.js');
  const { exportGguf } = await import('../src/model/gguf-model.js');
  const m = loadModel(join(root, 'model'));
  exportGguf(m.model, m.tokenizer!, join(root, 'model.gguf'), 'q8_0');
}

// The readers, as the CLI runs them, each followed by the first use of what it read.
async function runReader(name: string, root: string): Promise<string> {
  if (name === 'model' || name === 'gguf') { // `chatwright generate --model DIR` or `--model FILE.gguf`
    const { loadModel } = await import('../src/model/checkpoint.js');
    const { generate } = await import('../src/generate/index.js');
    const { model, tokenizer } = loadModel(join(root, name === 'gguf' ? 'model.gguf' : 'model'));
    if (!tokenizer) return 'model without tokenizer';
    const r = generate(model, tokenizer, [tokenizer.bos >= 0 ? tokenizer.bos : 0, ...tokenizer.encode('床前')], { maxNewTokens: 4, temperature: 0 });
    return `generated ${r.ids.length} tokens`;
  }
  if (name === 'tokenizer') {
    const { Tokenizer } = await import('../src/tokenizer/index.js');
    const t = Tokenizer.load(join(root, 'tok'));
    const ids = t.encode('床前明月光 The sea <|bos|>', { allowedSpecial: 'all' });
    t.decode(ids);
    if (t.user >= 0 && t.assistant >= 0 && t.eot >= 0) t.render([{ role: 'user', content: 'hi' }, { role: 'assistant', content: '好' }]);
    return `${ids.length} ids`;
  }
  if (name === 'tiktoken' || name === 'tiktoken-json') {
    const { Tokenizer, CL100K_PATTERN } = await import('../src/tokenizer/index.js');
    const t = name === 'tiktoken' ? Tokenizer.fromTiktoken(join(root, 'ranks.tiktoken'), { pattern: CL100K_PATTERN })
      : Tokenizer.fromTiktoken(join(root, 'ranks.json'));
    return `${t.decode(t.encode('床前明月光 The sea')).length} chars`;
  }
  if (name === 'shards') {
    const { readManifest, loadSplit } = await import('../src/train/shards.js');
    const { BatchLoader, evalBatches } = await import('../src/train/loader.js');
    const dir = join(root, 'data');
    const m = readManifest(dir);
    const train = loadSplit(dir, 'train', m), val = loadSplit(dir, 'val', m);
    new BatchLoader(train, 2, 8, 1).next();
    evalBatches(val, 2, 8, 2);
    return `${train.length} + ${val.length} tokens`;
  }
  if (name === 'resume') { // `chatwright pretrain` resuming the checkpoint; its own --steps 1 is done already (at most one step)
    const { pretrain } = await import('../src/stages/pretrain.js');
    const r = await pretrain({ data: join(root, 'data'), out: join(root, 'ckpt'), steps: 1, evalBatches: 1, peakGflops: 1 }, () => {});
    return `resumed at step ${r.step}`;
  }
  if (name === 'demos') {
    const { readDemos, packConversations } = await import('../src/train/demos.js');
    const { Tokenizer } = await import('../src/tokenizer/index.js');
    const p = packConversations(readDemos(join(root, 'demos.jsonl')), Tokenizer.load(join(root, 'tok')), 32);
    return `${p.rows.length} rows`;
  }
  if (name === 'prompts') { // `chatwright sample --prompts`, `ppo --prompts`
    const { readPromptsFile } = await import('../src/feedback/index.js');
    return `${readPromptsFile(join(root, 'prompts.jsonl')).length} prompts`;
  }
  if (name === 'samples') { // `chatwright rank --samples`, `label --samples`
    const { readSamples } = await import('../src/feedback/index.js');
    return `${readSamples(join(root, 'samples.jsonl')).length} items`;
  }
  if (name === 'store') { // `chatwright rank` opening the store for writing, then `reward --data` reading its preferences
    const { PreferenceStore, readStore, kwayFromRecords, preferencesByPrompt } = await import('../src/feedback/index.js');
    const dir = join(root, 'feedback');
    const s = PreferenceStore.open(dir);
    let next: string;
    try {
      next = s.next('carol')?.id ?? 'none';
      s.counts();
    } finally {
      s.close();
    }
    const prefs = preferencesByPrompt(kwayFromRecords(readStore(dir).records));
    return `next ${next}; ${prefs.length} prompts with preferences`;
  }
  if (name === 'pairs' || name === 'kway') { // `chatwright prefs import`, `reward --data FILE`, `dpo --data FILE`
    const { readPreferenceFile, preferencesByPrompt } = await import('../src/feedback/index.js');
    return `${preferencesByPrompt(readPreferenceFile(join(root, `${name}.jsonl`))).length} prompts`;
  }
  throw new Error(`no reader ${name}`);
}

// ---------------------------------------------------------------------------------------------------------------------
// Mutants: a recipe is 1 to 3 operations, each with three numbers that pick positions and values in the file

export interface Op { op: string; a: number; b: number; c: number }
const OPS: Record<Kind, string[]> = {
  json: ['jsonValue', 'jsonValue', 'jsonValue', 'jsonDelete', 'jsonAdd', 'jsonDup', 'truncate', 'flipBits', 'setBytes', 'insertBytes', 'deleteRange', 'file'],
  jsonl: ['lineJson', 'lineJson', 'lineJson', 'lineEdit', 'truncate', 'flipBits', 'insertBytes', 'file'],
  tiktoken: ['lineEdit', 'rank', 'rank', 'base64', 'truncate', 'flipBits', 'setBytes', 'deleteRange', 'file'],
  safetensors: ['header', 'header', 'header', 'headerLength', 'float', 'truncate', 'flipBits', 'setBytes', 'insertBytes', 'deleteRange', 'file'],
  shard: ['field', 'field', 'token', 'token', 'truncate', 'flipBits', 'setBytes', 'insertBytes', 'deleteRange', 'file'],
  gguf: ['count', 'length', 'length', 'float', 'truncate', 'flipBits', 'setBytes', 'insertBytes', 'deleteRange', 'file'],
};
export function recipeArb(kind: Kind): fc.Arbitrary<Op[]> {
  const op = fc.record({ op: fc.constantFrom(...OPS[kind]), a: fc.nat(), b: fc.nat(), c: fc.nat() });
  return fc.array(op, { minLength: 1, maxLength: 3 });
}

const RAW = '\u0000RAW:'; // a JSON value written as raw text (not representable in JSON.stringify)
const raw = (s: string) => `${RAW}${s}\u0000`;
const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
const VALUES: unknown[] = [null, true, false, 0, -1, 1, 0.5, -0.5, 2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 53, 2 ** 64, 1e308, -1e308, 5e-324,
  raw('1e999'), raw('-1e999'), raw('NaN'), raw('Infinity'), '', 'x', 'NaN', '\u0000', 'é', 'a'.repeat(100_000), [], {}, [0], [1, 2, 3], { a: 1 },
  raw(deep(100_000)), raw(deep(300)), 'F16', 'I64', 'BF16', 'llama', 'gpt2', [0, 2 ** 40], [-1, 4]];
const FIELD_VALUES = [0n, 1n, 2n, 255n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n];
const FLOATS = [NaN, Infinity, -Infinity, 3.4e38, -3.4e38, 1e-45];

type Json = unknown;
// the paths of the first 20,000 nodes, breadth first, 64 levels at most
function nodes(root: Json): (string | number)[][] {
  const out: (string | number)[][] = [];
  const queue: [Json, (string | number)[]][] = [[root, []]];
  for (let q = 0; q < queue.length && out.length < 20_000; q++) {
    const [v, path] = queue[q];
    out.push(path);
    if (path.length >= 64) continue;
    if (Array.isArray(v)) v.forEach((x, i) => queue.push([x, [...path, i]]));
    else if (v && typeof v === 'object') for (const k of Object.keys(v)) queue.push([(v as Record<string, Json>)[k], [...path, k]]);
  }
  return out;
}
// deeper than JSON.stringify can walk: such a text is mutated as bytes only
function tooDeep(text: string): boolean {
  let d = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '[' || c === '{') {
      if (++d > 1000) return true;
    } else if (c === ']' || c === '}') d--;
  }
  return false;
}
function setAt(root: Json, path: (string | number)[], f: (parent: any, key: string | number) => void): Json {
  if (path.length === 0) {
    const box = { v: root };
    f(box, 'v');
    return box.v;
  }
  let p: any = root;
  for (const k of path.slice(0, -1)) p = p[k];
  f(p, path[path.length - 1]);
  return root;
}
function stringify(v: Json): string {
  return (JSON.stringify(v) ?? 'null').replace(/"\\u0000RAW:((?:[^"\\]|\\.)*?)\\u0000"/g, (_, s) => JSON.parse(`"${s}"`));
}
function mutateJson(text: string, o: Op): string {
  let v: Json;
  if (tooDeep(text)) return text.slice(0, text.length - 1 - (o.b % 8));
  try {
    v = JSON.parse(text);
  } catch {
    return text + '}';
  }
  const all = nodes(v);
  const path = all[o.a % all.length];
  v = setAt(v, path, (p, k) => {
    if (o.op === 'jsonValue' || o.op === 'lineJson') p[k] = VALUES[o.b % VALUES.length];
    else if (o.op === 'jsonDelete') {
      if (Array.isArray(p)) p.splice(Number(k), 1);
      else delete p[k];
    } else if (o.op === 'jsonAdd') {
      if (Array.isArray(p[k])) p[k].push(VALUES[o.b % VALUES.length]);
      else if (p[k] && typeof p[k] === 'object') p[k][`k${o.c % 7}`] = VALUES[o.b % VALUES.length];
      else p[k] = [p[k]];
    } else if (o.op === 'jsonDup') {
      if (Array.isArray(p)) p.splice(Number(k), 0, p[k as number]);
      else if (typeof p[k] === 'number') p[k] = p[k] * [2, 1e6, -1, 65536][o.b % 4] + [0, 1, -1][o.c % 3];
      else p[k] = [p[k], p[k]];
    }
  });
  return stringify(v);
}

function bytesOp(buf: Buffer, o: Op): Buffer {
  const n = buf.length;
  switch (o.op) {
    case 'truncate': return buf.subarray(0, n ? o.a % n : 0);
    case 'flipBits': {
      const b = Buffer.from(buf);
      for (let i = 0; i <= o.c % 8 && n; i++) b[(o.a + i * 7919) % n] ^= 1 << ((o.b + i) % 8);
      return b;
    }
    case 'setBytes': {
      const b = Buffer.from(buf);
      for (let i = 0; i <= o.c % 8 && n; i++) b[(o.a + i) % n] = (o.b >>> (i % 4) * 8) & 0xff;
      return b;
    }
    case 'insertBytes': {
      const at = n ? o.a % (n + 1) : 0;
      const junk = Buffer.from(Array.from({ length: 1 + (o.c % 16) }, (_, i) => (o.b * (i + 1)) & 0xff));
      return Buffer.concat([buf.subarray(0, at), junk, buf.subarray(at)]);
    }
    case 'deleteRange': {
      const at = n ? o.a % n : 0;
      return Buffer.concat([buf.subarray(0, at), buf.subarray(Math.min(n, at + 1 + (o.b % 64)))]);
    }
  }
  return buf;
}

// The safetensors header as JSON (to mutate its dtypes, shapes, offsets) and back, the data buffer kept.
function safetensorsOp(buf: Buffer, o: Op): Buffer {
  const hl = buf.length >= 8 ? Number(buf.readBigUInt64LE(0)) : -1;
  if (hl < 0 || 8 + hl > buf.length) return bytesOp(buf, { ...o, op: 'flipBits' });
  const header = buf.subarray(8, 8 + hl).toString('utf8'), data = buf.subarray(8 + hl);
  if (o.op === 'header') {
    const ops = ['jsonValue', 'jsonValue', 'jsonDelete', 'jsonAdd', 'jsonDup'];
    const h = Buffer.from(mutateJson(header, { ...o, op: ops[o.c % ops.length] }));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    return Buffer.concat([len, h, data]);
  }
  if (o.op === 'headerLength') { // the 8-byte header length: huge, zero, or just off the real one
    const b = Buffer.from(buf);
    const near = BigInt(Math.max(0, hl + (o.c % 17) - 8));
    b.writeBigUInt64LE(o.b % 2 ? near : FIELD_VALUES[o.b % FIELD_VALUES.length], 0);
    return b;
  }
  if (o.op === 'float') {
    const b = Buffer.from(buf);
    const floats = Math.floor(data.length / 4);
    if (floats) b.writeFloatLE(FLOATS[o.b % FLOATS.length], 8 + hl + 4 * (o.a % floats));
    return b;
  }
  return bytesOp(buf, o);
}

function shardOp(buf: Buffer, o: Op): Buffer {
  const b = Buffer.from(buf);
  if (o.op === 'field' && b.length >= 32) {
    const at = [8, 12, 16, 16, 24][o.a % 5];
    const v = FIELD_VALUES[o.b % FIELD_VALUES.length];
    if (at === 16 || at === 24) b.writeBigUInt64LE(v % 2n ** 64n, at);
    else b.writeUInt32LE(Number(v % 2n ** 32n), at);
    return b;
  }
  if (o.op === 'token' && b.length > 34) {
    const width = b.readUInt32LE(12) === 4 ? 4 : 2;
    const count = Math.floor((b.length - 32) / width);
    const at = 32 + width * (o.a % count);
    const v = [300, 65535, 4096, 299, 2 ** 31][o.b % 5];
    if (width === 2) b.writeUInt16LE(v & 0xffff, at);
    else b.writeUInt32LE(v >>> 0, at);
    return b;
  }
  return bytesOp(buf, o);
}

// GGUF: the header's counts (tensors at byte 8, metadata pairs at 16), a u64 anywhere in the metadata and tensor infos
// (string and array lengths, dimensions, offsets; written at any byte, as the fields are packed), or a float in the data
function ggufOp(buf: Buffer, o: Op): Buffer {
  const b = Buffer.from(buf);
  const v = FIELD_VALUES[o.b % FIELD_VALUES.length];
  if (o.op === 'count' && b.length >= 24) {
    const at = o.a % 2 ? 8 : 16;
    b.writeBigUInt64LE(o.c % 2 ? v : BigInt.asUintN(64, b.readBigUInt64LE(at) + BigInt(o.c % 5) - 2n), at);
  } else if (o.op === 'length' && b.length >= 32) b.writeBigUInt64LE(v, 24 + (o.a % Math.min(b.length - 32, 4096)));
  else if (o.op === 'float' && b.length >= 8) b.writeFloatLE(FLOATS[o.b % FLOATS.length], b.length - 4 - (o.a % Math.floor(b.length / 2)));
  else return bytesOp(buf, o);
  return b;
}

function linesOp(text: string, o: Op, kind: Kind): string {
  const lines = text.split('\n');
  const i = o.a % lines.length;
  if (o.op === 'lineJson') lines[i] = mutateJson(lines[i], o);
  else if (o.op === 'lineEdit') {
    const what = o.b % 6;
    if (what === 0) lines.splice(i, 1);
    else if (what === 1) lines.splice(i, 0, lines[i]);
    else if (what === 2) lines[i] = lines[(i + 1) % lines.length];
    else if (what === 3) lines[i] = ['', '{}', 'x', deep(100_000), 'a'.repeat(200_000), '[]', 'null', '=== 1'][o.c % 8];
    else if (what === 4) lines[i] = lines[i].replace(' ', '');
    else lines[i] = lines[i] + ' ' + lines[i];
  } else if (o.op === 'rank') {
    const sp = lines[i].lastIndexOf(' ');
    lines[i] = lines[i].slice(0, sp + 1) + ['-1', '1.5', '4294967296', '1e308', 'NaN', '0', '99999999', '', 'x', String(o.c % 400)][o.b % 10];
  } else if (o.op === 'base64') {
    lines[i] = ['!!', '', 'ÿ', '====', 'QUJD'.repeat(1000)][o.b % 5] + lines[i].slice(lines[i].indexOf(' '));
  }
  return lines.join('\n');
}

// Writes the mutant of `seed` made by `recipe` at `path` (or a folder, or nothing, for the 'file' operation).
export function writeMutant(path: string, seed: Buffer, kind: Kind, recipe: Op[]): void {
  let buf = seed;
  for (const o of recipe) {
    if (o.op === 'file') {
      rmSync(path, { recursive: true, force: true });
      const what = o.a % 3;
      if (what === 0) mkdirSync(path); // a folder where the file should be
      else if (what === 1) writeFileSync(path, '');
      return; // what === 2: the file is missing
    }
    if (kind === 'safetensors') buf = safetensorsOp(buf, o);
    else if (kind === 'shard') buf = shardOp(buf, o);
    else if (kind === 'gguf') buf = ggufOp(buf, o);
    else if (['truncate', 'flipBits', 'setBytes', 'insertBytes', 'deleteRange'].includes(o.op)) buf = bytesOp(buf, o);
    else if (kind === 'json') buf = Buffer.from(mutateJson(buf.toString('utf8'), o));
    else buf = Buffer.from(linesOp(buf.toString('utf8'), o, kind));
  }
  rmSync(path, { recursive: true, force: true });
  writeFileSync(path, buf);
}

// ---------------------------------------------------------------------------------------------------------------------
// The worker: its own copy of the seed folder; per mutant, write it, read it, restore the seed file

export type Outcome = 'accepted' | 'rejected' | 'unnamed' | 'crash' | 'hang' | 'oom' | 'harness';
export interface Result { target: string; index: number; outcome: Outcome; detail: string; recipe: Op[] }

if (!isMainThread && workerData?.fuzzFiles) {
  const { seedDir } = workerData as { seedDir: string };
  const root = mkdtempSync(join(tmpdir(), 'cw-fuzz-w-'));
  cpSync(seedDir, root, { recursive: true });
  parentPort!.on('message', async (m: { target: Target; recipe: Op[]; index: number } | 'exit') => {
    if (m === 'exit') {
      rmSync(root, { recursive: true, force: true });
      process.exit(0);
    }
    const path = join(root, m.target.file);
    const seed = readFileSync(join(seedDir, m.target.file));
    let outcome: Outcome, detail: string;
    try {
      try {
        writeMutant(path, seed, m.target.kind, m.recipe);
      } catch (e) {
        throw Object.assign(new Error(`the harness could not make the mutant: ${(e as Error).stack}`), { harness: true });
      }
      detail = await runReader(m.target.read, root);
      outcome = 'accepted';
    } catch (e) {
      const err = e as Error & { hint?: string; harness?: boolean };
      const text = `${err.message}${err.hint ? ` HINT: ${err.hint}` : ''}`;
      if (err.harness) outcome = 'harness';
      else if (e instanceof UserError) outcome = text.includes(basename(m.target.file)) ? 'rejected' : 'unnamed';
      else outcome = 'crash';
      // where a crash came from: the first frames of its stack inside chatwright
      const at = outcome === 'crash' ? ' ' + (err.stack ?? '').split('\n').filter((l) => /dist\/src\//.test(l)).slice(0, 3).map((l) => l.trim()).join(' ') : '';
      detail = `${err.name}: ${text}`.slice(0, 400) + at;
    } finally {
      rmSync(path, { recursive: true, force: true });
      writeFileSync(path, seed);
      // a reader may rewrite its folder (a checkpoint's recovery of .tmp / .old, a store cutting a torn line): put the seed's back
      if (m.target.restore) {
        rmSync(join(root, m.target.restore), { recursive: true, force: true });
        cpSync(join(seedDir, m.target.restore), join(root, m.target.restore), { recursive: true });
      }
    }
    parentPort!.postMessage({ outcome: outcome!, detail: detail!, rss: process.memoryUsage().rss });
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// The driver: a pool of workers, each mutant under a time limit

export interface FuzzOptions { mutants: number; seed: number; targets?: string[]; workers?: number; timeoutMs?: number; maxRssMb?: number; index?: number; onResult?: (r: Result) => void }

export async function fuzzFiles(o: FuzzOptions): Promise<Result[]> {
  const seedDir = mkdtempSync(join(tmpdir(), 'cw-fuzz-seed-'));
  try {
    await makeSeeds(seedDir);
    const targets = TARGETS.filter((t) => !o.targets || o.targets.includes(t.name));
    if (o.targets) for (const n of o.targets) if (!TARGETS.some((t) => t.name === n)) throw new Error(`no target ${n}; targets: ${TARGETS.map((t) => t.name).join(', ')}`);
    // index -1: the seed file itself, which every reader must accept (else the mutants prove nothing)
    const jobs: { target: Target; index: number; recipe: Op[] }[] = targets.map((target) => ({ target, index: -1, recipe: [] }));
    for (const target of targets) {
      const recipes = fc.sample(recipeArb(target.kind), { seed: o.seed * 1000 + TARGETS.indexOf(target), numRuns: o.mutants });
      recipes.forEach((recipe, index) => { if (o.index === undefined || o.index === index) jobs.push({ target, index, recipe }); });
    }
    const results: Result[] = [];
    const timeoutMs = o.timeoutMs ?? 20_000, maxRss = (o.maxRssMb ?? 3000) * 1e6;
    const spawn = () => new Worker(fileURLToPath(import.meta.url), { workerData: { fuzzFiles: true, seedDir }, resourceLimits: { maxOldGenerationSizeMb: 1536 } });
    const runOne = (w: Worker, job: (typeof jobs)[number]) => new Promise<{ outcome: Outcome; detail: string; dead: boolean }>((resolve) => {
      const timer = setTimeout(() => done({ outcome: 'hang', detail: `no answer within ${timeoutMs / 1000} s`, dead: true }), timeoutMs);
      const onMsg = (m: { outcome: Outcome; detail: string; rss: number }) =>
        done(m.rss > maxRss ? { outcome: 'oom', detail: `rss ${(m.rss / 1e6).toFixed(0)} MB after: ${m.detail}`, dead: true } : { ...m, dead: false });
      const onErr = (e: Error & { code?: string }) =>
        done({ outcome: e.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'oom' : 'crash', detail: `worker died: ${e.message}`, dead: true });
      const onExit = (code: number) => done({ outcome: 'crash', detail: `worker exited with ${code}`, dead: true });
      function done(r: { outcome: Outcome; detail: string; dead: boolean }) {
        clearTimeout(timer);
        w.off('message', onMsg).off('error', onErr).off('exit', onExit);
        resolve(r);
      }
      w.on('message', onMsg).on('error', onErr).on('exit', onExit);
      w.postMessage({ target: job.target, recipe: job.recipe, index: job.index });
    });
    let next = 0;
    await Promise.all(Array.from({ length: Math.max(1, o.workers ?? 1) }, async () => {
      let w = spawn();
      for (let j = next++; j < jobs.length; j = next++) {
        const job = jobs[j];
        const r = await runOne(w, job);
        const res: Result = { target: job.target.name, index: job.index, outcome: r.outcome, detail: r.detail, recipe: job.recipe };
        results.push(res);
        o.onResult?.(res);
        if (r.dead) {
          await w.terminate();
          w = spawn();
        }
      }
      w.postMessage('exit');
    }));
    const seeds = results.filter((r) => r.index === -1 && r.outcome !== 'accepted');
    if (seeds.length) throw new Error(`the seed files themselves are not read: ${seeds.map((r) => `${r.target}: ${r.detail}`).join('; ')}`);
    return results.filter((r) => r.index >= 0);
  } finally {
    rmSync(seedDir, { recursive: true, force: true });
  }
}

// 'harness': the harness itself failed to make a mutant (a bug here, not in chatwright; must be 0 too)
export const FAILURES: Outcome[] = ['unnamed', 'crash', 'hang', 'oom', 'harness'];

export function summarize(results: Result[]): string {
  const rows = [['target', 'mutants', 'accepted', 'rejected', ...FAILURES]];
  for (const t of TARGETS) {
    const rs = results.filter((r) => r.target === t.name);
    if (!rs.length) continue;
    const n = (x: Outcome) => String(rs.filter((r) => r.outcome === x).length);
    rows.push([t.name, String(rs.length), n('accepted'), n('rejected'), ...FAILURES.map(n)]);
  }
  const w = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ')).join('\n');
}

// ---------------------------------------------------------------------------------------------------------------------
// By hand: node dist/test/fuzz-files.js --mutants 1000

if (isMainThread && process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : undefined;
  };
  const verbose = process.argv.includes('--verbose');
  const t0 = performance.now();
  let done = 0;
  const results = await fuzzFiles({
    mutants: Number(arg('mutants') ?? 100), seed: Number(arg('seed') ?? 1), targets: arg('targets')?.split(','),
    workers: Number(arg('workers') ?? 2), timeoutMs: 1000 * Number(arg('timeout') ?? 20), maxRssMb: Number(arg('max-rss-mb') ?? 3000),
    index: arg('index') === undefined ? undefined : Number(arg('index')),
    onResult: (r) => {
      if (r.index < 0) return;
      done++;
      if (verbose || FAILURES.includes(r.outcome)) console.log(`${r.target} #${r.index} ${r.outcome}: ${r.detail}\n  recipe ${JSON.stringify(r.recipe)}`);
      else if (done % 200 === 0) process.stderr.write(`${done} mutants, ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
    },
  });
  console.log(`\n${summarize(results)}\n${results.length} mutants in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  process.exitCode = results.some((r) => FAILURES.includes(r.outcome)) ? 1 : 0;
}
