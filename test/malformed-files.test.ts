// The malformed files that once hung, crashed or loaded as silent garbage (issue 15), one named case each, beside the
// mutation fuzzing of test/fuzz-files.test.ts: every one is now a UserError that names the file and the problem, and a
// model whose logits turn NaN stops generating with an error instead of emitting tokens.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UserError } from '../src/util/errors.js';
import { readJson } from '../src/util/fsx.js';
import { Tokenizer, trainTokenizer } from '../src/tokenizer/index.js';
import { GPT } from '../src/model/gpt.js';
import { loadModel, saveModel } from '../src/model/checkpoint.js';
import { readSafetensors, writeSafetensors } from '../src/model/safetensors.js';
import { generate, Sampler } from '../src/generate/index.js';
import { encodeShard, loadSplit, readManifest, writeManifest, type Manifest } from '../src/train/shards.js';
import { loadTrainerState, saveTrainerState } from '../src/train/state.js';
import { readDemos } from '../src/train/demos.js';

let root = '', tok: Tokenizer;
const CONFIG = { arch: 'llama' as const, nLayer: 1, nHead: 2, nKvHead: 1, nEmbd: 16, intermediateSize: 32, maxSeqLen: 32, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true };

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cw-malformed-'));
  tok = trainTokenizer(['the sea was calm and the moon was bright; 床前明月光，疑是地上霜。'.repeat(20)], { vocabSize: 300 });
  tok.save(join(root, 'tok'));
  saveModel(join(root, 'model'), GPT.create({ ...CONFIG, vocabSize: tok.vocabSize }, 1), tok);
});
after(() => rmSync(root, { recursive: true, force: true }));

// A fresh copy of a seed folder with one file changed; `f` returns the reader's call.
function variant(seed: string, file: string, edit: (path: string) => void): string {
  const dir = mkdtempSync(join(root, 'v-'));
  cpSync(join(root, seed), dir, { recursive: true });
  edit(join(dir, file));
  return dir;
}
const editJson = (f: (j: any) => void) => (path: string) => {
  const j = JSON.parse(readFileSync(path, 'utf8'));
  f(j);
  writeFileSync(path, JSON.stringify(j));
};
function rejects(fn: () => unknown, file: string, what: RegExp, label = ''): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UserError, `${label}: not a UserError: ${(e as Error)?.stack}`);
    assert.ok(e.message.includes(file) || e.hint?.includes(file), `${label}: "${e.message}" does not name ${file}`);
    assert.match(e.message, what, label);
    return true;
  }, label);
}

test('config.json: sizes, epsilons, rotary bases and token ids out of range are refused before anything is allocated', () => {
  const cases: [string, (j: any) => void, RegExp][] = [
    ['vocab_size 2^31', (j) => (j.vocab_size = 2 ** 31), /vocabSize 2147483648 is larger than/],
    ['max_position_embeddings 2^31', (j) => (j.max_position_embeddings = 2 ** 31), /maxSeqLen .* is larger than/],
    ['rms_norm_eps 1e308', (j) => (j.rms_norm_eps = 1e308), /normEps must be in \(0, 1\)/],
    ['rope_theta 0.5', (j) => (j.rope_theta = 0.5), /ropeTheta must be in/],
    ['eos_token_id 2^32', (j) => (j.eos_token_id = 2 ** 32), /"eos_token_id" 4294967296 is not a token id/],
    ['vocab_size 2^20 (more than the weights hold)', (j) => (j.vocab_size = 2 ** 20), /describes \d+ parameters, but .* holds only/],
    ['null', (j) => Object.keys(j).forEach((k) => delete j[k]), /model_type/],
  ];
  for (const [name, f, re] of cases) rejects(() => loadModel(variant('model', 'config.json', editJson(f))), 'config.json', re, name);
  const inf = variant('model', 'config.json', (p) => writeFileSync(p, readFileSync(p, 'utf8').replace(/"rope_theta": [\d.e+]+/, '"rope_theta": 1e999')));
  rejects(() => loadModel(inf), 'config.json', /ropeTheta must be in \(1, 1e12\], got Infinity/);
});

test('a folder where a file should be, and JSON nested 100,000 deep, are errors naming the file', () => {
  const asDir = (p: string) => {
    rmSync(p);
    mkdirSync(p);
  };
  rejects(() => loadModel(variant('model', 'config.json', asDir)), 'config.json', /is a folder, not a file/);
  rejects(() => loadModel(variant('model', 'model.safetensors', asDir)), 'model.safetensors', /is a folder, not a file/);
  rejects(() => Tokenizer.load(variant('tok', 'tokenizer.json', asDir)), 'tokenizer.json', /is a folder, not a file/);
  const demos = join(root, 'demos-dir.jsonl');
  mkdirSync(demos);
  rejects(() => readDemos(demos), 'demos-dir.jsonl', /is a folder, not a file/);
  const deep = join(root, 'deep.json');
  writeFileSync(deep, '['.repeat(100_000) + ']'.repeat(100_000));
  rejects(() => readJson(deep, 'x'), 'deep.json', /nested deeper than 256 levels/);
});

test('tokenizer.json: huge, colliding and duplicate ids are refused at once (a huge added-token id used to hang)', () => {
  const t0 = performance.now();
  const added = (id: number, content = '<|extra|>') => editJson((j) => j.added_tokens.push({ id, content, special: true }));
  rejects(() => Tokenizer.load(variant('tok', 'tokenizer.json', added(2 ** 32))), 'tokenizer.json', /has id 4294967296/);
  rejects(() => Tokenizer.load(variant('tok', 'tokenizer.json', added(1e308))), 'tokenizer.json', /has id 1e\+308/);
  rejects(() => Tokenizer.load(variant('tok', 'tokenizer.json', added(65))), 'tokenizer.json', /the id of the ordinary token "A"/);
  rejects(() => Tokenizer.load(variant('tok', 'tokenizer.json', added(tok.bos))), 'tokenizer.json', /share id/);
  rejects(() => Tokenizer.load(variant('tok', 'tokenizer.json', editJson((j) => (j.model.vocab['Ā'] = j.model.vocab['A'])))), 'tokenizer.json', /share id 65/);
  assert.ok(performance.now() - t0 < 30_000); // (a guard against the old hang only; the time is not what is tested)
});

test('weights: a NaN, an Inf or an absurd value is named with its tensor at load; NaN logits stop generation', () => {
  for (const [v, re] of [[NaN, /holds NaN at index 5/], [Infinity, /holds Infinity/], [3e38, /holds 3\.0*\d*e\+38/]] as const) {
    const dir = variant('model', 'model.safetensors', (p) => {
      const t = readSafetensors(p);
      t.get('model.layers.0.mlp.up_proj.weight')!.data[5] = v;
      writeSafetensors(p, t);
    });
    rejects(() => loadModel(dir), 'model.safetensors', re);
    assert.match(String((() => { try { loadModel(dir); } catch (e) { return (e as Error).message; } })()), /model\.layers\.0\.mlp\.up_proj\.weight/);
  }
  // logits NaN from a model made in memory (no file check on the way): an error, no token emitted
  const { model, tokenizer } = loadModel(join(root, 'model'));
  model.flat[model.offsetOf('model.norm.weight')] = NaN;
  assert.throws(() => generate(model, tokenizer!, [tokenizer!.bos, 5, 6], { maxNewTokens: 4, temperature: 0.8, seed: 1 }),
    (e: unknown) => e instanceof UserError && /the model produced a logit of NaN/.test(e.message));
  assert.throws(() => new Sampler({ seed: 1 }).sample(Float32Array.of(0, 1, Infinity)), /logit of Infinity \(token 2\)/);
  assert.equal(new Sampler({ seed: 1 }).sample(Float32Array.of(-Infinity, 1, 0)).id >= 1, true); // a banned token is fine
});

test('shards and manifest: wrong types, paths out of the folder, sizes that do not match, ids past the vocabulary', () => {
  const data = join(root, 'data');
  mkdirSync(data);
  writeFileSync(join(data, 'train_000.bin'), encodeShard([1, 2, 3, 4, 5, 6, 7, 8], 'uint16'));
  writeFileSync(join(data, 'val_000.bin'), encodeShard([1, 2, 3, 299], 'uint16'));
  const m: Manifest = { format: 'chatwright-shards', version: 1, vocabSize: 300, bos: 1, dtype: 'uint16', tokenizer: null, sources: [], valFraction: 0.1,
    train: [{ file: 'train_000.bin', tokens: 8, documents: 1 }], val: [{ file: 'val_000.bin', tokens: 4, documents: 1 }] };
  writeManifest(data, m);
  assert.equal(loadSplit(data, 'train').length, 8);
  const cases: [Partial<Manifest> | ((x: Manifest) => void), RegExp][] = [
    [(x) => ((x.train[0] as any).tokens = 'x'), /train\[0\]\.tokens "x" is not a count/],
    [(x) => (x.train[0].file = '../../etc/passwd'), /is not a shard file name/],
    [(x) => (x.train[0].tokens = 2 ** 40), /train_000\.bin is 48 bytes; manifest\.json says 1099511627776 tokens/],
    [{ vocabSize: 2 ** 31 }, /dtype "uint16" does not hold a vocabulary of 2147483648/],
    [{ train: [] }, /lists no training tokens/],
  ];
  for (const [c, re] of cases) {
    const x = structuredClone(m);
    if (typeof c === 'function') c(x);
    else Object.assign(x, c);
    writeManifest(data, x);
    rejects(() => loadSplit(data, 'train', readManifest(data)), 'manifest.json', re);
  }
  writeManifest(data, { ...m, vocabSize: 299 });
  rejects(() => loadSplit(data, 'val'), 'val_000.bin', /holds token id 299 at position 3, outside the vocabulary of 299/);
});

test('trainer state: a negative step, a non-finite RNG word, a broken cursor or options, NaN moments', () => {
  const good = { version: 1, step: 4, optimizerStep: 4, rng: [1, 2, 3, 4], cursor: { epoch: 0, index: 3 }, bestValLoss: null, options: { steps: 10, lr: 0.001, model: { nLayer: 1 } } };
  const write = (json: object, m = new Float32Array(4), v = new Float32Array(4)) => {
    const dir = mkdtempSync(join(root, 'ckpt-'));
    saveTrainerState(dir, { m, v }, json as any);
    if (typeof (json as any).step === 'string') writeFileSync(join(dir, 'trainer_state.json'), JSON.stringify(json));
    return dir;
  };
  assert.equal(loadTrainerState(write(good))!.json.step, 4);
  const raw = (dir: string, text: string) => (writeFileSync(join(dir, 'trainer_state.json'), text), dir);
  const cases: [string, RegExp][] = [
    [JSON.stringify({ ...good, step: -1 }), /step -1 is not a whole number >= 0/],
    [JSON.stringify(good).replace('[1,2,3,4]', '[1,2,3,1e999]'), /rng \[1,2,3,null\] is not four uint32 words/],
    [JSON.stringify({ ...good, rng: [0, 0, 0, 0] }), /rng \[0,0,0,0\] is not four uint32 words/],
    [JSON.stringify({ ...good, cursor: { epoch: 0 } }), /cursor .* is not \{epoch, index\}/],
    [JSON.stringify({ ...good, options: { steps: -1 } }), /options\.steps is -1/],
    [JSON.stringify({ ...good, options: { model: { nLayer: [1] } } }), /options\.model\.nLayer is an array/],
  ];
  for (const [text, re] of cases) rejects(() => loadTrainerState(raw(write(good), text)), 'trainer_state.json', re);
  rejects(() => loadTrainerState(write(good), { required: ['dataFingerprint'] }), 'trainer_state.json', /"dataFingerprint" is missing/);
  rejects(() => loadTrainerState(write(good), { defaults: { lr: 0.003 }, resolve: () => { throw new UserError('lr is off'); } }), 'trainer_state.json', /the saved options: lr is off/);
  rejects(() => loadTrainerState(write({ ...good, options: { lr: 'x' } }), { defaults: { lr: 0.003 } }), 'trainer_state.json', /options\.lr is "x", not a number/);
  const v = new Float32Array(4);
  v[2] = NaN;
  rejects(() => loadTrainerState(write(good, new Float32Array(4), v)), 'trainer_state.safetensors', /exp_avg_sq holds NaN at index 2/);
});
