// DPO on the synthetic preference (answers containing 泥融飞燕子 preferred): after SFT on a mix of both kinds of answers,
// DPO raises the held-out chosen-over-rejected margin and accuracy, and makes the policy write the preferred line more
// often than the reference does (with the RPO term keeping the answers clean); IPO's loss does the same.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sft } from '../src/stages/sft.js';
import { trainDPO } from '../src/stages/dpo.js';
import { loadModel } from '../src/model/checkpoint.js';
import { generateBatch } from '../src/generate/index.js';
import { demosToJsonl } from '../src/train/demos.js';
import { makeFixture, poemPrompt, rand, synthAnswer, writePreferences, PREFERRED_LINE, type StageFixture } from './stage-fixture.js';

let root = '', fx: StageFixture, sftDir = '';
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'cw-dpo-'));
  fx = makeFixture(join(root, 'fx'));
  // SFT on answers of both kinds (half contain the line), so the policy writes either and the preference has room to act
  const demos = Array.from({ length: 200 }, (_, i) => ({ messages: [
    { role: 'user' as const, content: poemPrompt(i) }, { role: 'assistant' as const, content: synthAnswer(rand(i + 3), i % 2 === 0) }] }));
  writeFileSync(join(root, 'demos.jsonl'), demosToJsonl(demos));
  sftDir = join(root, 'sft');
  await sft({ init: fx.base, data: join(root, 'demos.jsonl'), out: sftDir, steps: 150, batchSize: 8, seqLen: 64, lr: 3e-3, minLr: 3e-4,
    warmup: 10, evalEvery: 0, evalAtEnd: false, peakGflops: 1, logEvery: 1000 }, () => {});
  writePreferences(join(root, 'prefs.jsonl'), 60);
  writePreferences(join(root, 'val.jsonl'), 12, 5000);
});
after(() => rmSync(root, { recursive: true, force: true }));

// the share of sampled answers with the preferred line, and with a stray control byte or U+FFFD (junk)
function rates(dir: string): { preferred: number; junk: number } {
  const { model, tokenizer } = loadModel(dir);
  const prompts = Array.from({ length: 48 }, (_, i) => tokenizer!.renderForCompletion([{ role: 'user', content: poemPrompt(7000 + i) }]));
  const out = generateBatch(model, tokenizer!, prompts, prompts.map((_, i) => ({ maxNewTokens: 40, temperature: 1, seed: i })));
  return {
    preferred: out.filter((r) => r.text.includes(PREFERRED_LINE)).length / out.length,
    junk: out.filter((r) => /[\u0000-\u0009\u000b-\u001f\ufffd]/.test(r.text)).length / out.length,
  };
}

test('DPO raises the held-out margin and the share of preferred answers; so does IPO', { timeout: 240_000 }, async () => {
  const common = { init: sftDir, data: join(root, 'prefs.jsonl'), val: join(root, 'val.jsonl'), steps: 60, batchSize: 8, lr: 3e-4,
    minLr: 3e-5, warmup: 5, evalEvery: 0, klPrompts: 12, klTokens: 40, sftWeight: 1, peakGflops: 1, logEvery: 1000 };
  const start = await trainDPO({ ...common, out: join(root, 'dpo0'), steps: 1, lr: 1e-12, minLr: 0 }, () => {});
  const r = await trainDPO({ ...common, out: join(root, 'dpo'), beta: 0.1 }, () => {});
  const ipo = await trainDPO({ ...common, out: join(root, 'ipo'), loss: 'ipo', beta: 0.5 }, () => {});
  const before = rates(sftDir), after = rates(join(root, 'dpo'));
  console.log(`# DPO beta 0.1: held-out margin ${start.eval!.margin.toFixed(3)} -> ${r.eval!.margin.toFixed(3)}, accuracy ` +
    `${(100 * start.eval!.accuracy).toFixed(0)}% -> ${(100 * r.eval!.accuracy).toFixed(0)}%, KL ${r.eval!.kl!.toFixed(3)}; ` +
    `answers with the preferred line ${(100 * before.preferred).toFixed(0)}% -> ${(100 * after.preferred).toFixed(0)}%, with junk ` +
    `${(100 * before.junk).toFixed(0)}% -> ${(100 * after.junk).toFixed(0)}%; IPO: held-out accuracy ${(100 * ipo.eval!.accuracy).toFixed(0)}%, margin ${ipo.eval!.margin.toFixed(3)}`);
  assert.ok(r.eval!.margin > start.eval!.margin + 0.1, `held-out margin ${start.eval!.margin} -> ${r.eval!.margin}`);
  assert.ok(r.eval!.accuracy >= 0.9, `held-out accuracy ${r.eval!.accuracy}`);
  assert.ok(after.preferred > before.preferred + 0.2, `preferred answers ${before.preferred} -> ${after.preferred}`);
  assert.ok(after.junk <= 0.1, `answers with junk bytes: ${after.junk}`);
  assert.ok(r.eval!.kl! > 0 && r.eval!.kl! < 5, `KL to the reference ${r.eval!.kl}`);
  assert.ok(ipo.eval!.accuracy >= 0.9 && ipo.eval!.margin > 0.1, `IPO held-out accuracy ${ipo.eval!.accuracy}, margin ${ipo.eval!.margin}`);
});
