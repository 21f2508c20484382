// PPO and GRPO learn a toy verifiable reward (1 for an answer containing 泥融飞燕子, else 0) on a tiny model within a few
// dozen steps, and a large KL coefficient visibly holds the policy back near the reference (smaller KL, less reward);
// PPO-ptx mixes the pretraining loss in.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sft } from '../src/stages/sft.js';
import { trainPPO } from '../src/stages/ppo.js';
import { trainGRPO } from '../src/stages/grpo.js';
import { readMetrics } from '../src/train/metrics.js';
import { prepareData } from '../src/stages/data.js';
import { makeFixture, mixedDemos, poem, writePrompts, writeRewardModule } from './stage-fixture.js';

let root = '', sftDir = '', rewardFn = '', prompts = '', shards = '';
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'cw-rl-'));
  const fx = makeFixture(join(root, 'fx'));
  mixedDemos(join(root, 'demos.jsonl'));
  sftDir = join(root, 'sft');
  await sft({ init: fx.base, data: join(root, 'demos.jsonl'), out: sftDir, steps: 150, batchSize: 8, seqLen: 64, lr: 3e-3, minLr: 3e-4,
    warmup: 10, evalEvery: 0, evalAtEnd: false, peakGflops: 1, logEvery: 1000 }, () => {});
  writeRewardModule((rewardFn = join(root, 'reward.mjs')));
  writePrompts((prompts = join(root, 'prompts.jsonl')), 200);
  writeFileSync(join(root, 'poems.jsonl'), Array.from({ length: 300 }, (_, i) => JSON.stringify({ text: poem(i).messages[1].content }) + '\n').join(''));
  prepareData({ corpus: [join(root, 'poems.jsonl')], tokenizer: fx.base, out: (shards = join(root, 'data')), valFraction: 0.05 });
});
after(() => rmSync(root, { recursive: true, force: true }));

// mean of a per-step figure over the first and the last k steps of a run
const trend = (out: string, key: string, k = 5) => {
  const xs = readMetrics(join(out, 'metrics.jsonl')).filter((r) => typeof r[key] === 'number').map((r) => r[key] as number);
  const mean = (a: number[]) => a.reduce((s, x) => s + x, 0) / a.length;
  return { first: mean(xs.slice(0, k)), last: mean(xs.slice(-k)) };
};

test('PPO raises the toy reward; a large KL coefficient holds it near the reference', { timeout: 240_000 }, async () => {
  const common = { init: sftDir, reward: rewardFn, prompts, steps: 25, batchSize: 16, miniBatch: 8, epochs: 2, maxNewTokens: 32, lr: 3e-4,
    criticLr: 1e-3, evalEvery: 0, evalPrompts: 20, logEvery: 1000 };
  const free = await trainPPO({ ...common, out: join(root, 'ppo'), klCoef: 0.02 }, () => {});
  const held = await trainPPO({ ...common, out: join(root, 'ppo-held'), klCoef: 1 }, () => {});
  const f = trend(join(root, 'ppo'), 'score'), h = trend(join(root, 'ppo-held'), 'score');
  console.log(`# PPO beta 0.02: score ${f.first.toFixed(2)} -> ${f.last.toFixed(2)}, held-out ${free.eval!.score.toFixed(2)}, KL ${free.eval!.kl.toFixed(2)}; ` +
    `beta 1: score ${h.first.toFixed(2)} -> ${h.last.toFixed(2)}, held-out ${held.eval!.score.toFixed(2)}, KL ${held.eval!.kl.toFixed(2)}`);
  assert.ok(f.last > f.first + 0.25, `PPO score ${f.first} -> ${f.last}`);
  assert.ok(free.eval!.score >= 0.8, `held-out score ${free.eval!.score}`);
  assert.ok(held.eval!.kl < free.eval!.kl / 3, `KL with beta 1 (${held.eval!.kl}) vs beta 0.02 (${free.eval!.kl})`);
  assert.ok(h.last < f.last, `score with beta 1 (${h.last}) vs beta 0.02 (${f.last})`);
  for (const key of ['kl', 'entropy', 'clipFraction', 'valueLoss', 'approxKl', 'length', 'rolloutTokPerSec', 'trainTokPerSec']) {
    assert.ok(Number.isFinite(trend(join(root, 'ppo'), key).last), `metric ${key} not logged`);
  }
});

test('GRPO raises the toy reward; a large beta holds it near the reference', { timeout: 240_000 }, async () => {
  const common = { init: sftDir, reward: rewardFn, prompts, steps: 30, batchSize: 4, group: 6, maxNewTokens: 32, lr: 2e-4, evalEvery: 0,
    evalPrompts: 20, logEvery: 1000 };
  const free = await trainGRPO({ ...common, out: join(root, 'grpo'), beta: 0.02 }, () => {});
  const held = await trainGRPO({ ...common, out: join(root, 'grpo-held'), beta: 3 }, () => {});
  const f = trend(join(root, 'grpo'), 'score'), h = trend(join(root, 'grpo-held'), 'score');
  console.log(`# GRPO beta 0.02: score ${f.first.toFixed(2)} -> ${f.last.toFixed(2)}, held-out ${free.eval!.score.toFixed(2)}, KL ${free.eval!.kl.toFixed(2)}; ` +
    `beta 3: score ${h.first.toFixed(2)} -> ${h.last.toFixed(2)}, held-out ${held.eval!.score.toFixed(2)}, KL ${held.eval!.kl.toFixed(2)}`);
  assert.ok(f.last > f.first + 0.2, `GRPO score ${f.first} -> ${f.last}`);
  assert.ok(held.eval!.kl < free.eval!.kl, `KL with beta 3 (${held.eval!.kl}) vs beta 0.02 (${free.eval!.kl})`);
});

test('PPO-ptx: the pretraining loss on the shards is mixed into every policy update and logged', { timeout: 120_000 }, async () => {
  const common = { init: sftDir, reward: rewardFn, prompts, steps: 4, batchSize: 8, miniBatch: 4, epochs: 1, maxNewTokens: 24, lr: 3e-4,
    evalEvery: 0, evalPrompts: 0, logEvery: 1000 };
  await trainPPO({ ...common, out: join(root, 'ptx'), ptxData: shards, ptxCoef: 1, ptxBatch: 2 }, () => {});
  await trainPPO({ ...common, out: join(root, 'no-ptx') }, () => {});
  const ptx = readMetrics(join(root, 'ptx', 'metrics.jsonl')).filter((r) => r.loss !== undefined);
  assert.equal(ptx.length, 4);
  for (const r of ptx) assert.ok(typeof r.ptxLoss === 'number' && r.ptxLoss > 0 && r.ptxLoss < 20, `ptxLoss ${r.ptxLoss}`);
  assert.equal(readMetrics(join(root, 'no-ptx', 'metrics.jsonl')).find((r) => r.ptxLoss !== undefined), undefined);
  assert.ok(!readFileSync(join(root, 'ptx', 'model.safetensors')).equals(readFileSync(join(root, 'no-ptx', 'model.safetensors'))),
    'the pretraining term changed nothing');
});

test('rollout log-probabilities at a temperature are those of softmax(logits / T), at the answer tokens', async () => {
  const { loadModel } = await import('../src/model/checkpoint.js');
  const { tokenLogprobsOf, sampleAnswers } = await import('../src/stages/rollout.js');
  const { noGrad, releaseTape } = await import('../src/tensor/index.js');
  const { padBatch } = await import('../src/train/preferences.js');
  const { model, tokenizer } = loadModel(sftDir);
  const [a] = sampleAnswers(model, tokenizer!, [[{ role: 'user', content: '写一首五言绝句' }]], [5], 12, 0.5);
  const T = 0.5, lp = tokenLogprobsOf(model, [a.row], tokenizer!.pad, T)[0];
  assert.equal(lp.length, a.row.ids.length - a.row.start);
  const b = padBatch([a.row], tokenizer!.pad);
  const logits = noGrad(() => Array.from(model.forward(b.ids, 1, b.T).logits.data));
  releaseTape();
  const V = model.config.vocabSize;
  for (let i = 0; i < lp.length; i++) {
    const t = a.row.start - 1 + i, row = logits.slice(t * V, (t + 1) * V).map((x) => x / T);
    const m = Math.max(...row), z = row.reduce((s, x) => s + Math.exp(x - m), 0);
    const want = row[a.row.ids[t + 1]] - m - Math.log(z);
    assert.ok(Math.abs(lp[i] - want) < 1e-4, `token ${i}: ${lp[i]} vs ${want}`);
  }
});
