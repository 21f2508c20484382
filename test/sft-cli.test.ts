// The sft and eval commands as a user meets them: a malformed JSONL line is named with its number (exit 2, no stack
// trace), and missing arguments say what to pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 30_000 });

test('sft: a malformed line of the demonstrations is named, before any model is loaded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cw-sft-cli-'));
  try {
    const good = JSON.stringify({ messages: [{ role: 'user', content: 'q' }, { role: 'assistant', content: 'a' }] });
    const bad = JSON.stringify({ messages: [{ role: 'assistant', content: 'a' }, { role: 'user', content: 'q' }] });
    writeFileSync(join(dir, 'demos.jsonl'), `${good}\n${good}\n${bad}\n`);
    const r = cli(['sft', '--data', join(dir, 'demos.jsonl'), '--init', join(dir, 'no-such-model'), '--out', join(dir, 'sft')]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, /demos\.jsonl line 3: .*expected a user message/);
    assert.doesNotMatch(r.stderr, /\n\s+at /); // no stack trace
    writeFileSync(join(dir, 'demos.jsonl'), `${good}\n{"messages": [\n`);
    const r2 = cli(['sft', '--data', join(dir, 'demos.jsonl'), '--out', join(dir, 'sft')]);
    assert.equal(r2.status, 2);
    assert.match(r2.stderr, /line 2: not valid JSON/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('sft and eval: missing arguments are errors with a hint', () => {
  const r = cli(['sft', '--out', 'x']);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /--data is required/);
  const e = cli(['eval']);
  assert.equal(e.status, 2);
  assert.match(e.stderr, /no model given[\s\S]*HINT/);
  const h = cli(['sft', '--help']);
  assert.equal(h.status, 0);
  assert.match(h.stdout, /--init/);
});
