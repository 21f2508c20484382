// The shared stage loop (src/train/loop.ts): every training stage stops on a REAL SIGINT or SIGTERM sent to the CLI in a
// child process, exits 130 / 143 after writing its checkpoint, and the resumed run ends with the same per-step losses
// as one never stopped. Then the loop's own rules on a fake step: the time limit, the cadences of evaluation and
// checkpoints, no save of a non-finite loss, and nothing to do past the last step.
// New stages are one row of STAGES.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { prepareData } from '../src/stages/data.js';
import { readMetrics } from '../src/train/metrics.js';
import { runLoop, exitCodeOf, mergeOptions, stepBudget, type LoopSpec } from '../src/train/loop.js';
import { cli, makeFixture, poem, runAndSignal, writePreferences, writePrompts, writeRewardModule, type StageFixture } from './stage-fixture.js';

let root = '', fx: StageFixture, data = '';
before(() => {
  root = mkdtempSync(join(tmpdir(), 'cw-loop-'));
  fx = makeFixture(join(root, 'fx'));
  const text = join(root, 'poems.jsonl');
  writeFileSync(text, Array.from({ length: 400 }, (_, i) => JSON.stringify({ text: poem(i).messages[1].content }) + '\n').join(''));
  prepareData({ corpus: [text], tokenizer: fx.base, out: (data = join(root, 'data')), valFraction: 0.05 });
  writePreferences(join(root, 'prefs.jsonl'), 40);
  writeRewardModule(join(root, 'reward.mjs'));
  writePrompts(join(root, 'prompts.jsonl'), 40);
});
after(() => rmSync(root, { recursive: true, force: true }));

const TINY = ['--n-layer', '2', '--n-embd', '64', '--n-head', '2', '--n-kv-head', '2', '--intermediate-size', '128'];
const COMMON = ['--log-every', '1', '--peak-gflops', '100', '--save-every', '4'];

// Each row: the stage's command for `steps` steps into `out`, and the signal its test sends.
const STAGES: { name: string; signal: NodeJS.Signals; args: (out: string, steps: number) => string[] }[] = [
  { name: 'pretrain', signal: 'SIGINT', args: (out, steps) => ['pretrain', '--data', data, '--out', out, ...TINY, '--steps', String(steps),
    '--batch-size', '4', '--seq-len', '32', '--warmup', '2', '--eval-every', '5', '--sample-every', '0'] },
  { name: 'sft', signal: 'SIGTERM', args: (out, steps) => ['sft', '--init', fx.base, '--data', fx.demos, '--val', fx.val, '--out', out,
    '--steps', String(steps), '--batch-size', '4', '--seq-len', '48', '--warmup', '2', '--eval-every', '5', '--no-eval'] },
  { name: 'reward', signal: 'SIGINT', args: (out, steps) => ['reward', '--init', fx.base, '--data', join(root, 'prefs.jsonl'), '--out', out,
    '--steps', String(steps), '--batch-size', '4', '--warmup', '2', '--eval-every', '5'] },
  { name: 'dpo', signal: 'SIGTERM', args: (out, steps) => ['dpo', '--init', fx.base, '--data', join(root, 'prefs.jsonl'), '--out', out,
    '--steps', String(steps), '--batch-size', '4', '--warmup', '2', '--eval-every', '5', '--kl-prompts', '2', '--kl-tokens', '8'] },
  { name: 'ppo', signal: 'SIGINT', args: (out, steps) => ['ppo', '--init', fx.base, '--reward', join(root, 'reward.mjs'), '--prompts',
    join(root, 'prompts.jsonl'), '--out', out, '--steps', String(steps), '--batch-size', '4', '--mini-batch', '2', '--max-new-tokens', '8',
    '--eval-every', '5', '--eval-prompts', '2', '--lr', '1e-3'] },
  { name: 'grpo', signal: 'SIGTERM', args: (out, steps) => ['grpo', '--init', fx.base, '--reward', join(root, 'reward.mjs'), '--prompts',
    join(root, 'prompts.jsonl'), '--out', out, '--steps', String(steps), '--batch-size', '2', '--group', '3', '--max-new-tokens', '8',
    '--eval-every', '5', '--eval-prompts', '2', '--lr', '1e-3'] },
];

const losses = (out: string) => readMetrics(join(out, 'metrics.jsonl')).filter((r) => typeof r.loss === 'number').map((r) => r.loss as number);

for (const s of STAGES) {
  test(`${s.name}: a real ${s.signal} stops it with exit ${exitCodeOf(s.signal as 'SIGINT')} after a checkpoint; the resumed run matches an uninterrupted one`, async () => {
    const steps = 14, whole = join(root, `${s.name}-whole`), cut = join(root, `${s.name}-cut`);
    const r0 = cli([...s.args(whole, steps), ...COMMON]);
    assert.equal(r0.status, 0, r0.stderr + r0.stdout);

    // 150 ms after every step (test hook) so the signal lands mid-run on any machine
    const r = await runAndSignal([...s.args(cut, steps), ...COMMON], new RegExp(`step 3/${steps}`), s.signal, { CHATWRIGHT_TEST_STEP_MS: '150' });
    assert.ok(r.sent, `the run ended before step 3:\n${r.output}`);
    assert.equal(r.code, s.signal === 'SIGINT' ? 130 : 143, r.output);
    assert.match(r.output, new RegExp(`stopped at step (\\d+) \\(${s.signal}\\)`));
    const stoppedAt = Number(r.output.match(/stopped at step (\d+)/)![1]);
    const state = JSON.parse(readFileSync(join(cut, 'trainer_state.json'), 'utf8'));
    assert.equal(state.step, stoppedAt, 'the checkpoint is not at the step the run stopped');
    assert.ok(stoppedAt >= 3 && stoppedAt < steps, `stopped at ${stoppedAt}`);
    assert.equal(losses(cut).length, stoppedAt);

    const r2 = cli([...s.args(cut, steps), ...COMMON]);
    assert.equal(r2.status, 0, r2.stderr + r2.stdout);
    assert.match(r2.stdout + r2.stderr, new RegExp(`resuming .* at step ${stoppedAt}`));
    assert.deepEqual(losses(cut), losses(whole));
    assert.ok(readFileSync(join(cut, 'model.safetensors')).equals(readFileSync(join(whole, 'model.safetensors'))), 'final weights differ');
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// The loop's rules on a fake step

function fakeSpec(out: string, over: Partial<LoopSpec> & { saves: number[]; evals: number[] }): LoopSpec {
  return {
    stage: 'fake', out, step: 0, steps: 10, timeLimit: 0, evalEvery: 0, saveEvery: 0, logEvery: 1000, print: () => {},
    trainStep: (step) => ({ loss: 1 / (step + 1), tokens: 8, lr: 0.1 }),
    evaluate: (step) => { over.evals.push(step); return { record: { valLoss: step }, line: `val ${step}` }; },
    save: (step) => { over.saves.push(step); },
    ...over,
  };
}

test('runLoop: evaluation before steps 0, 4, 8 and at the end; checkpoints at 3, 6, 9 and the end', async () => {
  const saves: number[] = [], evals: number[] = [];
  const r = await runLoop(fakeSpec(join(root, 'fake1'), { saves, evals, evalEvery: 4, saveEvery: 3 }));
  assert.deepEqual(evals, [0, 4, 8, 10]);
  assert.deepEqual(saves, [3, 6, 9, 10]);
  assert.equal(r.stopped, 'steps');
  assert.equal(r.step, 10);
  assert.equal(r.loss, 1 / 10);
  const recs = readMetrics(join(root, 'fake1', 'metrics.jsonl'));
  assert.deepEqual(recs.filter((x) => x.loss !== undefined).map((x) => x.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  assert.deepEqual(recs.filter((x) => x.valLoss !== undefined).map((x) => x.step), [0, 4, 8, 10]);
});

test('runLoop: the time limit stops cleanly with a checkpoint; a run at its last step trains nothing', async () => {
  const saves: number[] = [], evals: number[] = [];
  const slow = async () => { await new Promise((r) => setTimeout(r, 40)); return { loss: 1, tokens: 1, lr: 0 }; };
  const r = await runLoop(fakeSpec(join(root, 'fake2'), { saves, evals, steps: 1000, timeLimit: 0.2 / 60, trainStep: slow }));
  assert.equal(r.stopped, 'time');
  assert.ok(r.step >= 2 && r.step < 50, `stopped at ${r.step}`);
  assert.deepEqual(saves, [r.step]);

  const lines: string[] = [];
  const r2 = await runLoop(fakeSpec(join(root, 'fake3'), { saves: [], evals: [], step: 10, steps: 10, print: (l) => lines.push(l) }));
  assert.equal(r2.step, 10);
  assert.match(lines.join('\n'), /already at step 10 of 10: nothing to train/);
});

test('runLoop: a stage that asks for a stop between the parts of a step sees it through LoopControl', async () => {
  let sawStopping = false;
  const saves: number[] = [];
  const r = await runLoop(fakeSpec(join(root, 'fake4'), {
    saves, evals: [], steps: 100, timeLimit: 0.05 / 60,
    trainStep: async (_step, loop) => {
      await new Promise((res) => setTimeout(res, 10));
      await loop.yield();
      if (loop.stopping) sawStopping = true;
      return { loss: 0.5, tokens: 1, lr: 0 };
    },
  }));
  assert.ok(sawStopping, 'LoopControl.stopping never turned true');
  assert.equal(r.stopped, 'time');
});

test('runLoop: a wall-clock budget sets the step count from the measured speed; a resumed run keeps it', async () => {
  let told = 0;
  const schedule = { total: 1000 };
  const o = { budget: 0.5, steps: 1000 };
  const slow = async () => { await new Promise((r) => setTimeout(r, 25)); return { loss: 1, tokens: 1, lr: 0 }; };
  const r = await runLoop(fakeSpec(join(root, 'fake5'), { saves: [], evals: [], steps: 1000, trainStep: slow,
    budget: { ...stepBudget(o, schedule)!, onSteps: (n) => { told = n; stepBudget(o, schedule)!.onSteps(n); } } }));
  assert.ok(told >= 8 && told <= 21, `${told} steps of ~25 ms for a budget of 0.5 s`);
  assert.equal(r.step, told);
  assert.equal(o.steps, told);
  assert.equal(schedule.total, told);
  // a run resumed before it calibrated (killed in its first steps) calibrates from where it resumed
  let told2 = 0;
  const o2 = { budget: 0.5, steps: 1000 }, schedule2 = { total: 1000 };
  const r2 = await runLoop(fakeSpec(join(root, 'fake6'), { saves: [], evals: [], step: 2, steps: 1000, trainStep: slow,
    budget: { ...stepBudget(o2, schedule2)!, onSteps: (n) => { told2 = n; } } }));
  assert.ok(told2 >= 8 && told2 <= 21 && r2.step === told2, `resumed at step 2: ${told2} steps, stopped at ${r2.step}`);
  // resumed with the same budget: the measured count stands; with another budget the given one does
  assert.equal(mergeOptions('x', { budget: 0, steps: 1 }, { budget: 0.5, steps: 1000 }, { budget: 0.5, steps: told }).steps, told);
  assert.equal(mergeOptions('x', { budget: 0, steps: 1 }, { budget: 9, steps: 1000 }, { budget: 0.5, steps: told }).steps, 1000);
});
