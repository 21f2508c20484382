// `chatwright demo --quick` end to end, as a user runs it (a child process, no terminal): every stage's output lands in
// its folder, the evaluation table and the chat commands are printed (on stdout; the steps on stderr), SFT lowers the
// held-out loss, and a second run skips every finished step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));

// The timeouts only stop a hung run; how long the demo takes is measured by hand (README), not asserted here.
function chatwright(args: string[], timeoutMs: number) {
  return spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: timeoutMs, stdio: ['ignore', 'pipe', 'pipe'] });
}

test('chatwright demo --quick runs every stage, then resumes by skipping them', { timeout: 900_000 }, () => {
  const out = join(mkdtempSync(join(tmpdir(), 'cw-demo-')), 'demo');
  try {
    const r = chatwright(['demo', '--quick', '--out', out], 600_000);
    assert.equal(r.error, undefined, `demo did not finish: ${r.error?.message}\n${r.stdout?.slice(-2000)}`);
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stderr}\n${r.stdout.slice(-2000)}`);
    // the steps as they run on stderr, the result on stdout
    for (const step of ['[1/5] tokenizer', '[2/5] data', '[3/5] base', '[4/5] sft', '[5/5] eval']) assert.ok(r.stderr.includes(step), step);
    assert.ok(!r.stdout.includes('[1/5]') && !/step \d+\/\d+ \| loss/.test(r.stdout), `progress on stdout:\n${r.stdout}`);
    assert.match(r.stdout, /metric\s+base\s+sft/);
    assert.ok(r.stdout.includes(`chatwright chat --model ${join(out, 'sft')}`));
    assert.ok(r.stdout.includes(`chatwright chat --model ${join(out, 'base')}`));
    for (const f of ['tokenizer/tokenizer.json', 'data/manifest.json', 'base/model.safetensors', 'base/config.json',
      'sft/model.safetensors', 'sft/tokenizer.json', 'sft/heldout.jsonl', 'sft/metrics.jsonl', 'eval.json']) {
      assert.ok(existsSync(join(out, f)), `missing ${f}`);
    }
    const report = JSON.parse(readFileSync(join(out, 'eval.json'), 'utf8'));
    assert.deepEqual(report.models.map((m: { name: string }) => m.name), ['base', 'sft']);
    const [base, sft] = report.models.map((m: { metrics: { heldoutLoss: number } }) => m.metrics.heldoutLoss);
    assert.ok(Number.isFinite(base) && Number.isFinite(sft) && sft < base, `held-out SFT loss base ${base}, sft ${sft}`);
    assert.ok(report.models[1].samples.length > 0);

    const again = chatwright(['demo', '--quick', '--out', out], 240_000);
    assert.equal(again.status, 0, again.stderr);
    assert.equal(again.stderr.match(/skipped/g)?.length, 5, again.stderr);
    assert.match(again.stdout, /metric\s+base\s+sft/);
  } finally {
    rmSync(join(out, '..'), { recursive: true, force: true });
  }
});
