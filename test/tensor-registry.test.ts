// The backend registry and the noGrad/pool boundary: CHATWRIGHT_BACKEND selects the backend (checked in child
// processes, since the choice is made once per process), a bad value is a UserError, and noGrad outputs belong to
// the caller (never pooled, never invalidated by releaseTape).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Tensor, linear, nativeAvailable, noGrad, poolStats, releaseTape, sum } from '../src/tensor/index.js';

const INDEX = fileURLToPath(new URL('../src/tensor/index.js', import.meta.url));

function child(env: Record<string, string>, code: string): { out: string; err: string; status: number | null } {
  const script = `import(${JSON.stringify(INDEX)}).then((T) => { ${code} })` +
    `.catch((e) => { console.log('threw ' + e.name + ': ' + e.message); });`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, ...env }, encoding: 'utf8',
  });
  return { out: r.stdout.trim(), err: r.stderr.trim(), status: r.status };
}

test('CHATWRIGHT_BACKEND=js selects the JS backend, silently', () => {
  const r = child({ CHATWRIGHT_BACKEND: 'js' }, 'console.log(T.getBackend().name)');
  assert.equal(r.out, 'js');
  assert.equal(r.err, '');
});

test('CHATWRIGHT_BACKEND=native selects native, or fails with a UserError naming why', () => {
  const r = child({ CHATWRIGHT_BACKEND: 'native' }, 'console.log(T.getBackend().name)');
  if (nativeAvailable()) assert.equal(r.out, 'native');
  else assert.match(r.out, /^threw UserError: the native backend is unavailable/);
});

test('an unknown CHATWRIGHT_BACKEND is a UserError', () => {
  const r = child({ CHATWRIGHT_BACKEND: 'cuda' }, 'console.log(T.getBackend().name)');
  assert.match(r.out, /^threw UserError: CHATWRIGHT_BACKEND=cuda is not a backend/);
});

test('the default is native when it loads; otherwise one line on stderr, then JS', () => {
  const r = child({ CHATWRIGHT_BACKEND: '' }, 'T.getBackend(); T.getBackend(); console.log(T.getBackend().name)');
  if (nativeAvailable()) {
    assert.equal(r.out, 'native');
    assert.equal(r.err, '');
  } else {
    assert.equal(r.out, 'js');
    assert.equal(r.err.split('\n').length, 1, `expected one line on stderr, got: ${r.err}`);
    assert.match(r.err, /native backend unavailable/);
  }
});

test('noGrad outputs belong to the caller: not pooled, not invalidated by releaseTape', () => {
  const w = Tensor.from([1, 2, 3, 4], [2, 2], true);
  const x = Tensor.from([1, -1], [1, 2]);
  const before = poolStats().liveBuffers;
  const y = noGrad(() => linear(x, w));
  assert.equal(y.requiresGrad, false);
  assert.equal(poolStats().liveBuffers, before);
  const z = linear(x, w); // recorded: pooled
  assert.ok(poolStats().liveBuffers > before);
  sum(z).backward();
  releaseTape();
  assert.deepEqual(Array.from(y.data), [1 - 2, 3 - 4]);
  assert.throws(() => z.item(), /released/);
});
