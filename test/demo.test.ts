// `chatwright demo --quick` end to end, as a user runs it (a child process, no terminal): every stage's output lands in
// its folder, the evaluation table of all five models and the chat commands are printed (on stdout; the steps on
// stderr), SFT lowers the held-out loss, and a second run skips every finished step. (How long it takes is bench
// material, not a test's: the timeout only stops a hung run.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const STEPS = ['tokenizer', 'data', 'base', 'sft', 'samples', 'ranking', 'rm', 'dpo', 'ppo', 'grpo', 'eval'];

// The timeouts only stop a hung run; how long the demo takes is measured by hand (README), not asserted here.
function chatwright(args: string[], timeoutMs: number) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

test('chatwright demo --quick runs every stage, from tokenizer to PPO and GRPO, then resumes by skipping them', { timeout: 600_000 }, () => {
  const out = join(mkdtempSync(join(tmpdir(), 'cw-demo-')), 'demo');
  try {
    const r = chatwright(['demo', '--quick', '--out', out], 540_000);
    assert.equal(r.error, undefined, `demo did not finish: ${r.error?.message}\n${r.stdout?.slice(-2000)}`);
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stderr}\n${r.stdout.slice(-2000)}`);
    // the steps as they run on stderr, the result on stdout
    STEPS.forEach((name, i) => assert.ok(r.stderr.includes(`[${i + 1}/${STEPS.length}] ${name}`), name));
    assert.ok(!r.stdout.includes('[1/') && !/step \d+\/\d+ \| loss/.test(r.stdout), `progress on stdout:\n${r.stdout}`);
    assert.match(r.stdout, /metric\s+base\s+sft\s+dpo\s+ppo\s+grpo/);
    assert.match(r.stdout, /win rate vs sft \(simulated labeller\)/);
    assert.match(r.stdout, /win rate vs sft \(reward model\)/);
    assert.ok(r.stdout.includes(`chatwright chat --model ${join(out, 'ppo')}`));
    for (const f of ['tokenizer/tokenizer.json', 'data/manifest.json', 'base/model.safetensors', 'sft/model.safetensors', 'sft/heldout.jsonl',
      'feedback/samples.jsonl', 'feedback/rankings.jsonl', 'rm/model.safetensors', 'rm/reward.json', 'dpo/model.safetensors',
      'ppo/model.safetensors', 'ppo/value/model.safetensors', 'grpo/model.safetensors', 'eval.json', 'eval.html']) {
      assert.ok(existsSync(join(out, f)), `missing ${f}`);
    }
    // the reward model's held-out accuracy, also against the simulated labeller without its noise (the figure)
    assert.match(r.stderr, /held-out pair accuracy [\d.]+% \([\d.]+% against the simulated labeller without its noise\)/);
    const rm = JSON.parse(readFileSync(join(out, 'rm', 'config.json'), 'utf8'));
    assert.deepEqual(rm.architectures, ['LlamaForSequenceClassification']);
    const report = JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8'));
    assert.deepEqual(report.models.map((m: { name: string }) => m.name), ['base', 'sft', 'dpo', 'ppo', 'grpo']);
    const [base, sft] = report.models.map((m: { metrics: { heldoutLoss: number } }) => m.metrics.heldoutLoss);
    assert.ok(Number.isFinite(base) && Number.isFinite(sft) && sft < base, `held-out SFT loss base ${base}, sft ${sft}`);
    const ppo = report.models[3].metrics;
    assert.ok(typeof ppo.klToBaseline === 'number' && ppo.winRates.length === 2, JSON.stringify(ppo));

    const again = chatwright(['demo', '--quick', '--out', out], 120_000);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stderr.match(/skipped/g)?.length, STEPS.length, again.stderr);
    assert.match(again.stdout, /metric\s+base\s+sft\s+dpo\s+ppo\s+grpo/);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
});
