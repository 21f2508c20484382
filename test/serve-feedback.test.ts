// The ranking API (/v1/feedback/*) over a live server on 127.0.0.1 with a preference store: two annotators interleaved
// are handed different items; a ranking, "all bad" and a skip are on disk in rankings.jsonl when the answer arrives, in
// the store's K-way format; undo takes the last one back and hands its item back; counts per person and in all; two
// people racing for one item get one 200 and one 409; bad names, orders and verdicts are 400s naming the field;
// unknown items 404; 500 random bodies (fast-check): never a 5xx, every refusal in OpenAI's shape, the store still whole;
// a full disk is a 507 that leaves nothing behind; a server without a store, the API key and the HTTP edges as for
// every route.
// The cross-process case (a second server on the same store refused) is in serve-cli.test.ts.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs, { readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import fc from 'fast-check';
import { join } from 'node:path';
import { PreferenceStore, RANKINGS_FILE, readStore, type SampleItem } from '../src/feedback/index.js';
import type { RunningServer } from '../src/serve/server.js';
import { rankItems, serve, tempDir } from './serve-fixture.js';

const tmp = tempDir('chatwright-serve-feedback-');
const dir = join(tmp.dir, 'feedback');
const items = rankItems(5);
let store: PreferenceStore;
let srv: RunningServer;

before(async () => {
  store = PreferenceStore.open(dir, { command: 'test' });
  store.addItems(items);
  // only the first four are this server's (as with --samples): the fifth stays in the store, never handed out
  srv = await serve({ models: [], feedback: { store, among: new Set(items.slice(0, 4).map((i) => i.id)) } });
});
after(async () => {
  await srv.close();
  store.close();
  tmp.remove();
});

type Json = Record<string, any>;

async function get(path: string): Promise<{ status: number; body: Json }> {
  const r = await fetch(`${srv.url}${path}`);
  return { status: r.status, body: await r.json() as Json };
}

async function post(path: string, body: unknown, base = srv.url): Promise<{ status: number; body: Json }> {
  const r = await fetch(`${base}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
  return { status: r.status, body: await r.json() as Json };
}

const next = (who: string) => get(`/v1/feedback/next?annotator=${encodeURIComponent(who)}`);
const rank = (who: string, item: string, extra: Json) => post('/v1/feedback/rankings', { annotator: who, item, ...extra });

// rankings.jsonl as it is on disk right now
function onDisk(): Json[] {
  return readFileSync(join(dir, RANKINGS_FILE), 'utf8').split('\n').filter((l) => l).map((l) => JSON.parse(l));
}

function expectError(r: { status: number; body: Json }, status: number, code: string | null, param: string | null = null): void {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.deepEqual(Object.keys(r.body.error).sort(), ['code', 'message', 'param', 'type']);
  assert.equal(r.body.error.code, code, r.body.error.message);
  assert.equal(r.body.error.param, param);
}

test('two annotators interleaved: different items, each ranking on disk before the answer, undo, counts', async () => {
  const a1 = await next('alice'), b1 = await next('bob');
  assert.equal(a1.status, 200);
  assert.equal(a1.body.object, 'feedback.item');
  assert.equal(a1.body.item.id, items[0].id);
  assert.deepEqual(a1.body.item.responses, items[0].responses);
  assert.deepEqual(a1.body.item.prompt, items[0].prompt);
  assert.equal(b1.body.item.id, items[1].id, 'bob is not handed the item alice has');
  assert.equal((await next('alice')).body.item.id, items[0].id, 'asking again: the same item');
  assert.equal(a1.body.counts.leased, 1);
  assert.equal(b1.body.counts.leased, 2);

  // bob first, then alice: each record is in the file when its answer arrives
  const rb = await rank('bob', b1.body.item.id, { ranking: [2, [0, 1], 3] });
  assert.equal(rb.status, 200, JSON.stringify(rb.body));
  assert.equal(rb.body.object, 'feedback.record');
  let disk = onDisk();
  assert.equal(disk.length, 1);
  assert.deepEqual({ ...disk[0], time: 0 }, {
    kind: 'rank', seq: 1, item: items[1].id, prompt: items[1].prompt, responses: items[1].responses, verdict: 'ranked',
    ranking: [2, [0, 1], 3], annotator: 'bob', time: 0, model: 'runs/test/sft', sampling: items[1].sampling,
  });
  assert.deepEqual(rb.body.record, { seq: 1, item: items[1].id, verdict: 'ranked', ranking: [2, [0, 1], 3], annotator: 'bob', time: disk[0].time });
  const ra = await rank('  alice ', a1.body.item.id, { verdict: 'all-bad' }); // the name is trimmed
  assert.equal(ra.status, 200);
  disk = onDisk();
  assert.equal(disk.length, 2);
  assert.deepEqual([disk[1].annotator, disk[1].verdict, disk[1].ranking], ['alice', 'all-bad', [[0, 1, 2, 3]]]);
  assert.deepEqual(ra.body.counts, {
    items: 4, done: 2, pending: 2, ranked: 1, all_bad: 1, skipped: 0, leased: 0, annotators: { bob: 1, alice: 1 }, mine: 1,
  });

  // next for both: the two items left, one each; alice skips hers, which goes back to the others
  const a2 = await next('alice'), b2 = await next('bob');
  assert.notEqual(a2.body.item.id, b2.body.item.id);
  assert.ok(![items[0].id, items[1].id, items[4].id].includes(a2.body.item.id));
  assert.equal((await rank('alice', a2.body.item.id, { verdict: 'skipped' })).status, 200);
  assert.equal(onDisk()[2].ranking.length, 0);
  assert.equal((await next('alice')).body.item, null, 'nothing left for alice: bob holds the last one, she skipped hers');

  // undo: alice's last record (the skip) is taken back, and its item is hers again
  const u = await post('/v1/feedback/undo', { annotator: 'alice' });
  assert.equal(u.status, 200);
  assert.equal(u.body.undone.seq, 3);
  assert.equal(u.body.undone.verdict, 'skipped');
  assert.deepEqual(onDisk()[3], { kind: 'undo', seq: 4, undoes: 3, annotator: 'alice', time: onDisk()[3].time });
  assert.equal((await next('alice')).body.item.id, a2.body.item.id, 'the undone item comes back to her');
  const u2 = await post('/v1/feedback/undo', { annotator: 'alice' });
  assert.equal(u2.body.undone.verdict, 'all-bad');
  assert.equal((await next('alice')).body.item.id, items[0].id);
  const c = await get('/v1/feedback/counts?annotator=alice');
  assert.equal(c.status, 200);
  assert.equal(c.body.object, 'feedback.counts');
  assert.equal(c.body.mine, 0);
  assert.equal(c.body.done, 1);
  assert.equal((await get('/v1/feedback/counts')).body.mine, undefined);
  assert.equal((await post('/v1/feedback/undo', { annotator: 'carol' })).body.undone, null, 'nothing of carol\'s to undo');

  // the store's own reading of the files agrees: bob's ranking is the one in effect
  const s = readStore(dir);
  assert.deepEqual(s.records.map((r) => [r.annotator, r.verdict]), [['bob', 'ranked']]);
});

test('conflicts: two people racing for one item get one 200 and one 409; a second verdict of one person is 409', async () => {
  const item = items[3];
  const [x, y] = await Promise.all([rank('dora', item.id, { ranking: [0, 1, 2, 3] }), rank('emil', item.id, { ranking: [3, 2, 1, 0] })]);
  const statuses = [x.status, y.status].sort();
  assert.deepEqual(statuses, [200, 409]);
  const lost = x.status === 409 ? x : y;
  expectError(lost, 409, 'already-ranked');
  const winner = x.status === 200 ? 'dora' : 'emil';
  expectError(await rank(winner, item.id, { verdict: 'skipped' }), 409, 'ranked-by-you');
  expectError(await rank('dora', 'no-such-item', { verdict: 'skipped' }), 404, 'unknown-item', 'item');
  const inEffect = readStore(dir).records.filter((r) => r.item === item.id);
  assert.equal(inEffect.length, 1, 'ranked once');
});

test('bad orders, verdicts and names: 400 naming the field, nothing written', async () => {
  const before = onDisk().length;
  const it = items[2].id;
  for (const ranking of [[0, 1, 2], [0, 1, 2, 2, 3], [0, 1, 2, 4], [0, [], 1, 2, 3], [0, 1.5, 2, 3], [-1, 0, 1, 2, 3], '3 1 2 4', {}, [[0, 1], [2, [3]]]]) {
    const r = await rank('frank', it, { ranking });
    expectError(r, 400, 'invalid_value', 'ranking');
  }
  const missing = await rank('frank', it, { ranking: [0, 1, 2] });
  assert.match(missing.body.error.message, /leaves out answer index 3/);
  expectError(await rank('frank', it, {}), 400, 'missing_required_parameter', 'ranking');
  expectError(await rank('frank', it, { verdict: 'great' }), 400, 'invalid_value', 'verdict');
  expectError(await rank('frank', it, { verdict: 'skipped', ranking: [0, 1, 2, 3] }), 400, 'invalid_value', 'ranking');
  expectError(await post('/v1/feedback/rankings', { annotator: 'frank', ranking: [0, 1, 2, 3] }), 400, 'invalid_type', 'item');
  expectError(await post('/v1/feedback/rankings', [1, 2]), 400, null);
  for (const annotator of [undefined, '', '   ', 42, 'a\nb', '<script>', 'x'.repeat(65), '-dash', 'simulated-labeller v1', 'Simulated person']) {
    const r = await post('/v1/feedback/rankings', { annotator, item: it, ranking: [0, 1, 2, 3] });
    assert.equal(r.status, 400, String(annotator));
    assert.equal(r.body.error.param, 'annotator');
  }
  expectError(await get('/v1/feedback/next'), 400, 'missing_required_parameter', 'annotator');
  expectError(await get('/v1/feedback/next?annotator=%00'), 400, 'invalid_value', 'annotator');
  assert.match((await get('/v1/feedback/next?annotator=simulated-labeller%20v1')).body.error.message, /reserved for the simulated labeller/);
  assert.equal((await next('王小明')).status, 200, 'a Chinese name is fine');
  assert.equal((await next('o.brien@example-1')).status, 200);
  assert.equal(onDisk().length, before, 'nothing written');
});

test('fuzz: 500 random submissions and undos, never a 5xx, each refusal in OpenAI\'s shape, the store still readable', async () => {
  const other = tempDir('chatwright-serve-feedback-fuzz-');
  const fdir = join(other.dir, 'fb');
  const s2 = PreferenceStore.open(fdir);
  const its = rankItems(6);
  s2.addItems(its);
  const srv2 = await serve({ models: [], feedback: { store: s2 } });
  const name = fc.oneof(fc.constantFrom('ann', 'bo', ' ann ', 'simulated-x', ''), fc.string({ maxLength: 70 }), fc.integer(), fc.constant(null));
  const index = fc.oneof(fc.integer({ min: -2, max: 5 }), fc.double(), fc.string({ maxLength: 2 }));
  const body = fc.record({
    annotator: name,
    item: fc.oneof(fc.constantFrom(...its.map((i) => i.id)), fc.string({ maxLength: 20 }), fc.integer()),
    ranking: fc.oneof(fc.array(fc.oneof(index, fc.array(index, { maxLength: 3 })), { maxLength: 6 }), fc.shuffledSubarray([0, 1, 2, 3], { minLength: 4 }),
      fc.anything()),
    verdict: fc.oneof(fc.constantFrom('ranked', 'all-bad', 'skipped'), fc.string({ maxLength: 8 }), fc.integer()),
  }, { requiredKeys: [] });
  const call = fc.oneof(
    fc.record({ path: fc.constant('/v1/feedback/rankings'), body: fc.oneof(body, fc.anything()) }),
    fc.record({ path: fc.constant('/v1/feedback/undo'), body: fc.oneof(fc.record({ annotator: name }, { requiredKeys: [] }), fc.anything()) }),
  );
  const seen = new Map<number, number>();
  try {
    await fc.assert(fc.asyncProperty(call, async ({ path, body: b }) => {
      const r = await fetch(`${srv2.url}${path}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(b) ?? 'null' });
      const json = await r.json() as Json;
      seen.set(r.status, (seen.get(r.status) ?? 0) + 1);
      assert.ok(r.status < 500, `${r.status} for ${JSON.stringify(b)}: ${JSON.stringify(json)}`);
      if (r.status === 200) assert.ok(['feedback.record', 'feedback.undo'].includes(json.object));
      else {
        assert.ok([400, 404, 409].includes(r.status), `${r.status} for ${JSON.stringify(b)}`);
        assert.deepEqual(Object.keys(json.error).sort(), ['code', 'message', 'param', 'type']);
        assert.equal(typeof json.error.message, 'string');
      }
    }), { numRuns: 500, seed: 13 });
    console.log(`# statuses: ${JSON.stringify(Object.fromEntries([...seen].sort()))}`);
    assert.ok((seen.get(200) ?? 0) > 0 && (seen.get(400) ?? 0) > 0, 'the fuzz reached both accepted and refused requests');
    const { records } = readStore(fdir);
    const ranked = records.filter((r) => r.verdict !== 'skipped').map((r) => r.item);
    assert.equal(new Set(ranked).size, ranked.length, 'no item ranked twice');
  } finally {
    await srv2.close();
    s2.close();
    other.remove();
  }
});

test('a full disk: 507 saying nothing was saved, the log left whole, the next ranking saved', async () => {
  const other = tempDir('chatwright-serve-feedback-full-');
  const fdir = join(other.dir, 'fb');
  const s2 = PreferenceStore.open(fdir);
  s2.addItems(rankItems(2));
  const srv2 = await serve({ models: [], feedback: { store: s2 } });
  const log = () => readFileSync(join(fdir, RANKINGS_FILE));
  // writeSync of a rank record writes half the line, then fails as a full disk does (the store's module sees the
  // replacement through syncBuiltinESMExports, as it imports writeSync from node:fs)
  const real = fs.writeSync;
  let full = false;
  (fs as any).writeSync = function (fd: number, buf: unknown, ...rest: number[]) {
    if (full && Buffer.isBuffer(buf) && buf.includes('"kind":"rank"')) {
      const [off = 0, len = buf.length - off] = rest;
      (real as Function).call(fs, fd, buf, off, Math.floor(len / 2));
      throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
    }
    return (real as Function).call(fs, fd, buf, ...rest);
  };
  syncBuiltinESMExports();
  try {
    const get2 = async () => (await (await fetch(`${srv2.url}/v1/feedback/next?annotator=gina`)).json() as Json).item;
    const it = await get2();
    assert.equal((await post('/v1/feedback/rankings', { annotator: 'gina', item: it.id, verdict: 'skipped' }, srv2.url)).status, 200);
    const before = log();
    const it2 = await get2();
    full = true;
    const r = await post('/v1/feedback/rankings', { annotator: 'gina', item: it2.id, ranking: [0, 1, 2, 3] }, srv2.url);
    full = false;
    expectError(r, 507, 'store_write_failed');
    assert.match(r.body.error.message, /\(ENOSPC\): nothing was saved/);
    assert.deepEqual(log(), before, 'the half-written line was cut off');
    assert.equal((await get2()).id, it2.id, 'the item is still hers to rank');
    assert.equal((await post('/v1/feedback/rankings', { annotator: 'gina', item: it2.id, ranking: [3, 2, 1, 0] }, srv2.url)).status, 200);
    assert.deepEqual(readStore(fdir).records.map((x) => [x.seq, x.verdict, x.ranking]), [[1, 'skipped', []], [2, 'ranked', [3, 2, 1, 0]]]);
  } finally {
    fs.writeSync = real;
    syncBuiltinESMExports();
    await srv2.close();
    s2.close();
    other.remove();
  }
});

test('HTTP edges: wrong method 405, non-JSON 415, bad JSON 400, unknown route 404; no store: 404 saying how to get one', async () => {
  expectError(await get('/v1/feedback/rankings'), 405, 'method_not_allowed');
  const r = await fetch(`${srv.url}/v1/feedback/undo`, { method: 'POST', body: '{}', headers: { 'Content-Type': 'text/plain' } });
  assert.equal(r.status, 415);
  const bad = await fetch(`${srv.url}/v1/feedback/undo`, { method: 'POST', body: '{"annotator":', headers: { 'Content-Type': 'application/json' } });
  expectError({ status: bad.status, body: await bad.json() as Json }, 400, 'invalid_json');
  expectError(await get('/v1/feedback/everything'), 404, 'unknown_url');
  // this server serves no model: the chat API says so
  const chat = await post('/v1/chat/completions', { messages: [{ role: 'user', content: 'hi' }] });
  expectError(chat, 404, 'model_not_found', 'model');

  const plain = await serve({ models: [] });
  try {
    const n = await fetch(`${plain.url}/v1/feedback/next?annotator=alice`);
    const body = await n.json() as Json;
    expectError({ status: n.status, body }, 404, 'no_feedback_store');
    assert.match(body.error.message, /--store DIR/);
  } finally {
    await plain.close();
  }
});

test('with an API key every feedback route needs it', async () => {
  const other = tempDir('chatwright-serve-feedback-key-');
  const s2 = PreferenceStore.open(join(other.dir, 'fb'));
  s2.addItems(rankItems(2) as SampleItem[]);
  const keyed = await serve({ models: [], apiKey: 'sesame', feedback: { store: s2 } });
  try {
    for (const [method, path] of [['GET', '/v1/feedback/next?annotator=a'], ['GET', '/v1/feedback/counts'], ['POST', '/v1/feedback/rankings'], ['POST', '/v1/feedback/undo']]) {
      const r = await fetch(`${keyed.url}${path}`, { method, headers: { 'Content-Type': 'application/json' }, ...(method === 'POST' ? { body: '{}' } : {}) });
      assert.equal(r.status, 401, path);
      assert.equal(((await r.json()) as Json).error.code, 'invalid_api_key');
    }
    const ok = await fetch(`${keyed.url}/v1/feedback/next?annotator=a`, { headers: { Authorization: 'Bearer sesame' } });
    assert.equal(ok.status, 200);
  } finally {
    await keyed.close();
    s2.close();
    other.remove();
  }
});
