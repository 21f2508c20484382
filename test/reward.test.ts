// The reward model learns a synthetic preference (answers containing the line 泥融飞燕子 are preferred) from pairs,
// to > 95% held-out pair accuracy, and its saved scores are normalised so that the training answers average 0.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainReward } from '../src/stages/reward.js';
import { RewardModel } from '../src/train/reward-model.js';
import { loadPreferences } from '../src/feedback/index.js';
import { makeFixture, poemPrompt, rand, synthAnswer, writePreferences, type StageFixture } from './stage-fixture.js';

let root = '', fx: StageFixture;
before(() => {
  root = mkdtempSync(join(tmpdir(), 'cw-reward-'));
  fx = makeFixture(join(root, 'fx'));
  writePreferences(join(root, 'prefs.jsonl'), 80);
  writePreferences(join(root, 'val.jsonl'), 12, 5000);
});
after(() => rmSync(root, { recursive: true, force: true }));

test('the reward model learns the synthetic preference: held-out pair accuracy > 95%', { timeout: 180_000 }, async () => {
  const out = join(root, 'rm');
  const r = await trainReward({
    init: fx.base, data: join(root, 'prefs.jsonl'), val: join(root, 'val.jsonl'), out, steps: 120, batchSize: 8, lr: 1e-3,
    minLr: 1e-4, warmup: 10, evalEvery: 40, peakGflops: 1, logEvery: 1000,
  }, () => {});
  console.log(`# reward model: held-out pair accuracy ${(100 * r.valAccuracy!).toFixed(1)}%, loss ${r.valLoss!.toFixed(3)}, offset ${r.offset.toFixed(3)}`);
  assert.ok(r.valAccuracy! > 0.95, `held-out accuracy ${r.valAccuracy}`);
  const cfg = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.deepEqual(cfg.architectures, ['LlamaForSequenceClassification']);
  assert.ok(existsSync(join(out, 'reward.json')) && existsSync(join(out, 'loss.svg')));

  // normalised: the training answers average 0; a fresh pair is scored in the preferred order
  const rm = RewardModel.load(out);
  const groups = loadPreferences(join(root, 'prefs.jsonl'));
  const scores = rm.score(groups.flatMap((g) => g.responses.map((answer) => ({ prompt: g.prompt, answer }))));
  const mean = scores.reduce((a, x) => a + x, 0) / scores.length;
  assert.ok(Math.abs(mean) < 1e-3, `mean normalised score ${mean}`);
  const prompt = [{ role: 'user' as const, content: poemPrompt(9999) }];
  const r2 = rand(77);
  const [good, bad] = rm.score([{ prompt, answer: synthAnswer(r2, true) }, { prompt, answer: synthAnswer(r2, false) }]);
  assert.ok(good > bad, `preferred ${good} vs other ${bad}`);
});
