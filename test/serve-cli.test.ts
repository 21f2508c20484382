// `chatwright serve` as a user runs it: a child process on a free port (--port 0), the URL on stdout, two models named
// from their folders or NAME=DIR, the page's files found from dist/, SIGTERM closing it with exit 0; a ranking server
// (--store, --samples) as the store's one writer: a second server or `chatwright rank` on the same store is refused
// with a message naming the first; and its argument errors: exit 2 with a message and a hint, no stack trace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { existsSync, readFileSync } from 'node:fs';
import { rankItems, saveTiny, tempDir, writeSamples } from './serve-fixture.js';
import { LOCK_FILE, RANKINGS_FILE } from '../src/feedback/index.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
const tmp = tempDir('chatwright-serve-cli-');
const base = join(tmp.dir, 'poems', 'base'), sft = join(tmp.dir, 'poems', 'sft'), other = join(tmp.dir, 'other', 'sft');

before(() => {
  saveTiny(base, 61);
  saveTiny(sft, 62);
  saveTiny(other, 63);
});
after(() => tmp.remove());

async function startCli(args: string[]): Promise<{ url: string; stop(): Promise<number | null>; stderr: () => string }> {
  const child = spawn(process.execPath, [MAIN, 'serve', '--port', '0', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stderr.on('data', (d) => (err += d));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /^(http:\/\/\S+)$/m.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${err}`)));
    setTimeout(() => reject(new Error(`no URL after 60 s: ${err}`)), 60_000).unref();
  });
  return {
    url, stderr: () => err,
    stop: async () => {
      child.kill('SIGTERM');
      const [code] = await once(child, 'exit');
      return code as number | null;
    },
  };
}

test('serve two models: ids from the folders, the page and the API answer, SIGTERM exits 0', { timeout: 120_000 }, async () => {
  const s = await startCli(['--model', base, '--model', sft, '--model', `third=${other}`]);
  try {
    const models = await (await fetch(`${s.url}/v1/models`)).json() as { data: { id: string }[] };
    assert.deepEqual(models.data.map((m) => m.id), ['base', 'sft', 'third']);
    const page = await fetch(`${s.url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>chatwright<\/title>/);
    assert.equal((await fetch(`${s.url}/app.js`)).headers.get('content-type'), 'text/javascript; charset=utf-8');
    const r = await fetch(`${s.url}/v1/chat/completions`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ model: 'sft', messages: [{ role: 'user', content: '春眠' }], max_tokens: 5 }),
    });
    assert.equal(r.status, 200);
  } finally {
    assert.equal(await s.stop(), 0, s.stderr());
  }
  assert.match(s.stderr(), /POST \/v1\/chat\/completions 200/);
  assert.match(s.stderr(), /SIGTERM: closing/);
});

test('two folders of the same name are told apart by their parents', { timeout: 120_000 }, async () => {
  const s = await startCli(['--model', sft, '--model', other, '--no-log']);
  try {
    const models = await (await fetch(`${s.url}/v1/models`)).json() as { data: { id: string }[] };
    assert.deepEqual(models.data.map((m) => m.id), ['poems/sft', 'other/sft']);
  } finally {
    await s.stop();
  }
});

test('a ranking server is the store\'s one writer: a second server and `chatwright rank` are refused, naming it', { timeout: 120_000 }, async () => {
  const store = join(tmp.dir, 'feedback'), samples = join(tmp.dir, 'samples.jsonl');
  const items = rankItems(3);
  writeSamples(samples, items);
  const s = await startCli(['--store', store, '--samples', samples]);
  let stopped = false;
  try {
    assert.match(s.stderr(), /added 3 new item\(s\) from .*samples\.jsonl/);
    assert.match(s.stderr(), /ranking: 3 of 3 item\(s\) to rank/);
    assert.deepEqual(((await (await fetch(`${s.url}/v1/models`)).json()) as { data: unknown[] }).data, [], 'ranking only: no model');
    const next = await (await fetch(`${s.url}/v1/feedback/next?annotator=alice`)).json() as { item: { id: string } };
    assert.equal(next.item.id, items[0].id);
    const saved = await fetch(`${s.url}/v1/feedback/rankings`, {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ annotator: 'alice', item: next.item.id, ranking: [3, 2, 1, 0] }),
    });
    assert.equal(saved.status, 200);
    assert.equal(JSON.parse(readFileSync(join(store, RANKINGS_FILE), 'utf8')).annotator, 'alice');

    const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8', timeout: 60_000 });
    const second = cli(['serve', '--port', '0', '--store', store]);
    assert.equal(second.status, 2, second.stderr);
    assert.match(second.stderr, /the preference store .*feedback is open for writing by another process \(pid \d+ on .*, `chatwright serve`, since .*\)\nHINT: one process writes a store/);
    const rank = cli(['rank', '--store', store, '--annotator', 'bob']);
    assert.equal(rank.status, 2, rank.stderr);
    assert.match(rank.stderr, /open for writing by another process \(pid \d+ .*`chatwright serve`/);
    for (const r of [second, rank]) assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(await s.stop(), 0, s.stderr());
    stopped = true;
    assert.ok(!existsSync(join(store, LOCK_FILE)), 'the lock goes with the server');
    // now the store is free: `rank` in a terminal takes it, and sees alice's ranking (the first item is done)
    const after = spawnSync(process.execPath, [MAIN, 'rank', '--store', store, '--annotator', 'bob'], { encoding: 'utf8', input: 'q\n', timeout: 60_000 });
    assert.equal(after.status, 0, after.stderr);
    assert.match(after.stderr, /2 of 3 item\(s\) to rank/);
  } finally {
    if (!stopped) await s.stop();
  }
});

test('argument errors: exit 2, a message and a hint, no stack trace', async () => {
  const cli = (args: string[]) => spawnSync(process.execPath, [MAIN, 'serve', ...args], { encoding: 'utf8', timeout: 60_000 });
  const none = cli([]);
  assert.equal(none.status, 2);
  assert.match(none.stderr, /--model DIR is required \(or --store DIR to serve ranking only\)\nHINT:/);
  const missing = cli(['--model', join(tmp.dir, 'nope')]);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /model directory not found/);
  const clash = cli(['--model', `a=${base}`, '--model', `a=${sft}`]);
  assert.equal(clash.status, 2);
  assert.match(clash.stderr, /two models would be served as "a"/);
  const samplesOnly = cli(['--samples', join(tmp.dir, 'samples.jsonl')]);
  assert.equal(samplesOnly.status, 2);
  assert.match(samplesOnly.stderr, /--samples needs --store DIR .*\nHINT: usage: chatwright serve/);
  const runs = cli(['--model', base, '--runs', join(tmp.dir, 'no-runs')]);
  assert.equal(runs.status, 2);
  assert.match(runs.stderr, /is not a folder/);
  // a port in use
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
  const port = (blocker.address() as { port: number }).port;
  const busy = cli(['--model', base, '--port', String(port)]);
  blocker.close();
  assert.equal(busy.status, 2);
  assert.match(busy.stderr, new RegExp(`port ${port} on 127.0.0.1 is in use\\nHINT: pick another with --port`));
  for (const r of [none, missing, clash, samplesOnly, runs, busy]) assert.doesNotMatch(r.stderr, /\n\s+at /);
});
