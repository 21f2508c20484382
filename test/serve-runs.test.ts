// The runs folder through the server: what is listed, the metrics (all, then only what is new), the eval reports, and
// that no request reaches a file outside the folder: encoded "..", absolute paths, symbolic links to the outside (as a
// run and as a stage) and NUL bytes all answer 404 and never the file's content.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listRuns } from '../src/serve/runs.js';
import type { RunningServer } from '../src/serve/server.js';
import { serve, served, tempDir } from './serve-fixture.js';

const tmp = tempDir('chatwright-runs-');
const root = join(tmp.dir, 'runs');
let srv: RunningServer;
const SECRET = 'SECRET-do-not-serve';

before(async () => {
  const w = (path: string, text: string) => {
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(path, text);
  };
  const lines = (n: number, f: (i: number) => object) => Array.from({ length: n }, (_, i) => JSON.stringify(f(i)) + '\n').join('');
  w(join(root, 'demo', 'base', 'metrics.jsonl'), lines(10, (i) => ({ step: i + 1, loss: 5 - i / 10 })) + '{"step": 11, "lo'); // a torn last line
  w(join(root, 'demo', 'sft', 'metrics.jsonl'), lines(4, (i) => ({ step: i + 1, loss: 2 - i / 10 })));
  w(join(root, 'demo', 'sft', 'eval.json'), JSON.stringify({ models: [{ name: 'sft', dir: 'x', metrics: { heldoutLoss: 1.5 } }] }));
  mkdirSync(join(root, 'empty', 'tokenizer'), { recursive: true });
  w(join(tmp.dir, 'outside', 'secret', 'metrics.jsonl'), JSON.stringify({ step: 1, loss: 0, note: SECRET }) + '\n');
  w(join(tmp.dir, 'outside', 'eval.json'), JSON.stringify({ note: SECRET }));
  symlinkSync(join(tmp.dir, 'outside'), join(root, 'link'));
  symlinkSync(join(tmp.dir, 'outside', 'secret'), join(root, 'demo', 'evil'));
  srv = await serve({ models: [served('sft', 51)], runsDir: root });
});

after(async () => {
  await srv.close();
  tmp.remove();
});

const get = async (path: string) => {
  const res = await fetch(srv.url + path);
  return { status: res.status, text: await res.text() };
};

test('the listing: runs with metrics or eval, their stages in pipeline order; links and empty runs left out', async () => {
  const runs = listRuns(root);
  assert.deepEqual(runs.map((r) => [r.id, r.stages.map((s) => [s.name, s.metrics, s.eval])]),
    [['demo', [['base', true, false], ['sft', true, true]]]]);
  const r = await get('/api/runs');
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.text).runs.map((x: { id: string }) => x.id), ['demo']);
});

test('metrics: every record (a torn last line skipped), then only the new ones with since', async () => {
  const all = JSON.parse((await get('/api/runs/demo/metrics?stage=base')).text);
  assert.equal(all.total, 10);
  assert.deepEqual(all.records.map((r: { step: number }) => r.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  appendFileSync(join(root, 'demo', 'sft', 'metrics.jsonl'), JSON.stringify({ step: 5, valLoss: 1.7 }) + '\n');
  const fresh = JSON.parse((await get('/api/runs/demo/metrics?stage=sft&since=4')).text);
  assert.deepEqual(fresh, { records: [{ step: 5, valLoss: 1.7 }], total: 5 });
  assert.equal((await get('/api/runs/demo/metrics?stage=sft&since=-1')).status, 400);
  assert.equal((await get('/api/runs/demo/metrics')).status, 400);
});

test('eval: a stage\'s eval.json; none at the run level is a 404', async () => {
  const r = await get('/api/runs/demo/eval?stage=sft');
  assert.equal(JSON.parse(r.text).models[0].metrics.heldoutLoss, 1.5);
  assert.equal((await get('/api/runs/demo/eval')).status, 404);
});

test('no request reaches outside the runs folder', async () => {
  const attempts = [
    '/api/runs/..%2Foutside/metrics?stage=secret', '/api/runs/demo/metrics?stage=..%2F..%2Foutside%2Fsecret',
    '/api/runs/link/metrics?stage=secret', '/api/runs/demo/metrics?stage=evil', '/api/runs/%2e%2e/metrics?stage=outside',
    `/api/runs/${encodeURIComponent(join(tmp.dir, 'outside'))}/metrics?stage=secret`, '/api/runs/link/eval',
    '/api/runs/demo/eval?stage=..%2F..%2Foutside', '/api/runs/demo%00/metrics?stage=base', '/api/runs/%E0%A4%A/eval',
    '/api/runs/demo/metrics/../../../outside/eval.json', '/api/runs/../../outside/eval.json',
  ];
  for (const a of attempts) {
    const r = await get(a);
    assert.ok(r.status === 404 || r.status === 400, `${a} -> ${r.status}`);
    assert.ok(!r.text.includes(SECRET), `${a} leaked the file`);
    assert.ok(JSON.parse(r.text).error.message, `${a}: an error in OpenAI's shape`);
  }
});

test('a server without a runs folder says so', async () => {
  const bare = await serve({ models: [served('sft', 52)] });
  try {
    const res = await fetch(`${bare.url}/api/runs`);
    assert.equal(res.status, 404);
    assert.match(((await res.json()) as { error: { message: string } }).error.message, /--runs DIR/);
  } finally {
    await bare.close();
  }
});
