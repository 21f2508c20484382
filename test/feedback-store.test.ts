// The preference store: two annotators through one writer (interleaved calls), two writing processes racing for the
// lock, a writer killed with SIGKILL between records, a torn last line, and a damaged middle line. After each: every
// acknowledged record is there, none twice, no item ranked twice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  PreferenceConflict, PreferenceStore, itemId, loadPreferences, readStore, LOCK_FILE, RANKINGS_FILE, type SampleItem,
} from '../src/feedback/index.js';

const FEEDBACK = pathToFileURL(join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'feedback', 'index.js')).href;

function items(n: number, K = 3): SampleItem[] {
  return Array.from({ length: n }, (_, i) => {
    const prompt = [{ role: 'user' as const, content: `prompt ${i}` }];
    const responses = Array.from({ length: K }, (_, j) => `answer ${i}.${j}`);
    return { id: itemId(prompt, responses), prompt, responses, model: 'm', sampling: { seeds: [1, 2, 3] } };
  });
}

function tmp(): string {
  return mkdtempSync(join(tmpdir(), 'chatwright-store-'));
}

// Every line of the log parses, seqs increase by one, and no item has two rankings in effect.
function checkLog(dir: string): void {
  const text = readFileSync(join(dir, RANKINGS_FILE), 'utf8');
  assert.ok(text === '' || text.endsWith('\n'), 'the log ends with a newline');
  const recs = text.split('\n').filter((l) => l).map((l) => JSON.parse(l));
  recs.forEach((r, i) => assert.equal(r.seq, i + 1, `seq of line ${i + 1}`));
  const ranked = readStore(dir).records.filter((r) => r.verdict !== 'skipped').map((r) => r.item);
  assert.equal(new Set(ranked).size, ranked.length, 'an item is ranked twice');
}

test('two annotators at once through one store: different items, undo, conflicts, leases, and all of it after reopening', () => {
  const dir = tmp();
  let now = 1_000_000;
  try {
    const its = items(3);
    const s = PreferenceStore.open(dir, { now: () => now, leaseMinutes: 1 });
    assert.equal(s.addItems(its), 3);
    assert.equal(s.addItems(its), 0); // the same items again: nothing new
    const a1 = s.next('alice')!, b1 = s.next('bob')!;
    assert.equal(a1.id, its[0].id);
    assert.equal(b1.id, its[1].id, 'bob is not shown the item alice has');
    assert.equal(s.next('alice')!.id, a1.id, 'asking again gives the same item');
    s.submit('bob', b1.id, { verdict: 'ranked', ranking: [[2], [0, 1]] });
    s.submit('alice', a1.id, { verdict: 'ranked', ranking: [[0], [1], [2]] });
    assert.equal(s.counts().ranked, 2);
    // the one left goes to whoever asks first; the other gets nothing while the lease holds
    assert.equal(s.next('bob')!.id, its[2].id);
    assert.equal(s.next('alice'), null);
    // a ranked item cannot be ranked again, by the same person or another
    assert.throws(() => s.submit('bob', b1.id, { verdict: 'skipped' }), (e) => e instanceof PreferenceConflict && e.reason === 'ranked-by-you');
    assert.throws(() => s.submit('carol', b1.id, { verdict: 'ranked', ranking: [[0], [1], [2]] }),
      (e) => e instanceof PreferenceConflict && e.reason === 'already-ranked');
    assert.throws(() => s.submit('carol', 'nope', { verdict: 'skipped' }), (e) => e instanceof PreferenceConflict && e.reason === 'unknown-item');
    assert.throws(() => s.submit('alice', its[2].id, { verdict: 'ranked', ranking: [[0], [1]] }), /leaves out answer index 2/);
    // bob's lease runs out: alice gets the item
    now += 61_000;
    assert.equal(s.next('alice')!.id, its[2].id);
    // alice undoes her first ranking: her record is taken back and the item comes back to her
    const undone = s.undo('alice')!;
    assert.equal(undone.item, a1.id);
    assert.equal(s.next('alice')!.id, a1.id);
    assert.equal(s.next('bob')!.id, its[2].id, 'the item alice had on screen before her undo is free again');
    s.submit('alice', a1.id, { verdict: 'all-bad' });
    assert.equal(s.next('alice'), null, 'the last item is leased to bob');
    s.submit('bob', its[2].id, { verdict: 'skipped' });
    // a skipped item goes to someone else, never back to who skipped it
    assert.equal(s.next('alice')!.id, its[2].id);
    s.submit('alice', its[2].id, { verdict: 'skipped' });
    const c = s.counts();
    assert.deepEqual(c, { items: 3, done: 2, pending: 1, ranked: 1, allBad: 1, skipped: 2, leased: 0, annotators: { alice: 2, bob: 2 } });
    assert.equal(s.next('alice'), null);
    assert.equal(s.next('bob'), null);
    assert.equal(s.next('carol')!.id, its[2].id);
    s.close();
    // reopened from disk: the same records in effect
    const r = readStore(dir);
    assert.deepEqual(r.records.map((x) => [x.annotator, x.verdict, x.item]), [
      ['bob', 'ranked', its[1].id], ['alice', 'all-bad', its[0].id], ['bob', 'skipped', its[2].id], ['alice', 'skipped', its[2].id],
    ]);
    assert.deepEqual(r.records[0].ranking, [2, [0, 1]]);
    assert.equal(r.records[0].model, 'm');
    const s2 = PreferenceStore.open(dir);
    assert.equal(s2.undo('alice')!.verdict, 'skipped', 'undo works across sessions');
    s2.close();
    checkLog(dir);
    // the training view: bob's ranking 3 > 1 = 2 gives two pairs; all-bad none
    const prefs = loadPreferences(dir);
    assert.equal(prefs.length, 1);
    assert.equal(prefs[0].pairs.length, 2);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('repeats: an item can be asked of several people, never twice of one', () => {
  const dir = tmp();
  try {
    const s = PreferenceStore.open(dir, { repeats: 2 });
    s.addItems(items(1));
    const id = s.next('a')!.id;
    s.submit('a', id, { verdict: 'ranked', ranking: [[0], [1], [2]] });
    assert.equal(s.next('a'), null);
    assert.equal(s.next('b')!.id, id);
    s.submit('b', id, { verdict: 'ranked', ranking: [[1], [0], [2]] });
    assert.equal(s.next('c'), null);
    s.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// A child process: takes the store (retrying while it is taken), ranks up to `n` items, printing "busy" once when refused
// and "ack <seq> <item>" after each record is acknowledged.
function child(dir: string, annotator: string, n: number, pauseMs: number) {
  const code = `
    import { PreferenceStore } from ${JSON.stringify(FEEDBACK)};
    const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
    let s = null, said = false;
    while (!s) {
      try { s = PreferenceStore.open(${JSON.stringify(dir)}, { command: 'test ${annotator}' }); }
      catch (e) { if (!/open for writing by another process/.test(e.message)) throw e; if (!said) { console.log('busy'); said = true; } sleep(10); }
    }
    console.log('open');
    for (let i = 0; i < ${n}; i++) {
      const it = s.next(${JSON.stringify(annotator)});
      if (!it) break;
      const r = s.submit(${JSON.stringify(annotator)}, it.id, { verdict: 'ranked', ranking: [[2], [1], [0]] });
      console.log('ack ' + r.seq + ' ' + it.id);
      sleep(${pauseMs});
    }
    s.close();
  `;
  const p = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  p.stdout.on('data', (d) => (out += d));
  p.stderr.on('data', (d) => (err += d));
  const exited = new Promise<number | null>((resolve) => p.on('exit', (c) => resolve(c)));
  return { p, out: () => out, err: () => err, exited };
}

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('two processes racing to write: one at a time, the other waits its turn; every item ranked once', async () => {
  const dir = tmp();
  try {
    const holder = PreferenceStore.open(dir);
    holder.addItems(items(12));
    // both children find the store taken, then race for it when this process lets go
    const a = child(dir, 'a', 6, 5), b = child(dir, 'b', 6, 5);
    await until(() => a.out().includes('busy') && b.out().includes('busy'), 'both children to be refused');
    assert.throws(() => PreferenceStore.open(dir), /already open for writing in this process/);
    holder.close();
    assert.equal(await a.exited, 0, a.err());
    assert.equal(await b.exited, 0, b.err());
    const acks = [a, b].flatMap((c) => c.out().split('\n').filter((l) => l.startsWith('ack')).map((l) => l.split(' ')));
    assert.equal(acks.length, 12);
    assert.equal(new Set(acks.map((x) => x[2])).size, 12, 'an item was ranked twice');
    const recs = readStore(dir).records;
    assert.deepEqual(recs.map((r) => r.seq).sort((x, y) => x - y), acks.map((x) => Number(x[1])).sort((x, y) => x - y));
    checkLog(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a writer killed with SIGKILL between records: every acknowledged record is kept, the lock is taken over', async () => {
  const dir = tmp();
  try {
    const setup = PreferenceStore.open(dir);
    setup.addItems(items(200));
    setup.close();
    const c = child(dir, 'k', 200, 2);
    await until(() => (c.out().match(/^ack /gm) ?? []).length >= 5, 'five acknowledged records');
    c.p.kill('SIGKILL');
    await c.exited;
    const acked = c.out().split('\n').filter((l) => l.startsWith('ack')).map((l) => Number(l.split(' ')[1]));
    assert.ok(readFileSync(join(dir, LOCK_FILE), 'utf8').includes(`"pid":${c.p.pid}`), 'the dead writer left its lock');
    const s = PreferenceStore.open(dir); // its pid is dead: the lock is broken
    const have = new Set(s.records().map((r) => r.seq));
    for (const seq of acked) assert.ok(have.has(seq), `acknowledged record ${seq} was lost`);
    assert.ok(have.size >= acked.length && have.size <= acked.length + 1, `${have.size} records for ${acked.length} acks`);
    const next = s.next('after')!;
    s.submit('after', next.id, { verdict: 'ranked', ranking: [[0], [1], [2]] });
    s.close();
    checkLog(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a torn last line is left out by readers and cut off by the next writer; a damaged middle line is an error', () => {
  const dir = tmp();
  try {
    const its = items(4);
    const s = PreferenceStore.open(dir);
    s.addItems(its);
    for (const it of its.slice(0, 3)) s.submit('a', it.id, { verdict: 'ranked', ranking: [[0], [1], [2]] });
    s.close();
    const log = join(dir, RANKINGS_FILE);
    const good = readFileSync(log, 'utf8');
    appendFileSync(log, '{"kind":"rank","seq":4,"item":"' + its[3].id.slice(0, 5)); // a crash mid-write
    assert.equal(readStore(dir).records.length, 3);
    const s2 = PreferenceStore.open(dir);
    assert.match(s2.repaired.join('\n'), /cut off an incomplete last line/);
    assert.equal(readFileSync(log, 'utf8'), good);
    const r = s2.submit('a', its[3].id, { verdict: 'ranked', ranking: [[1], [0], [2]] });
    assert.equal(r.seq, 4);
    s2.close();
    checkLog(dir);
    assert.equal(readStore(dir).records.length, 4);
    // a record whose newline never made it is complete: kept, and the newline added before the next one
    writeFileSync(log, readFileSync(log, 'utf8').slice(0, -1));
    const s3 = PreferenceStore.open(dir);
    assert.equal(s3.records().length, 4);
    s3.undo('a');
    s3.close();
    checkLog(dir);
    // damage in the middle is never skipped in silence
    const lines = readFileSync(log, 'utf8').split('\n');
    lines[1] = lines[1].slice(0, 20);
    writeFileSync(log, lines.join('\n'));
    assert.throws(() => readStore(dir), /rankings\.jsonl line 2 is not valid JSON/);
    assert.throws(() => PreferenceStore.open(dir), /line 2 is not valid JSON/);
    // and a failed open leaves no lock behind
    assert.throws(() => readFileSync(join(dir, LOCK_FILE)), /ENOENT/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a lock held from another host is not broken; the message says whose it is and what to do', () => {
  const dir = tmp();
  try {
    PreferenceStore.open(dir).close();
    writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: 1, host: 'elsewhere', since: '2026-01-01T00:00:00Z', command: 'chatwright serve' }));
    assert.throws(() => PreferenceStore.open(dir), (e: Error & { hint?: string }) =>
      /open for writing by another process \(pid 1 on elsewhere, `chatwright serve`/.test(e.message) && /delete .*LOCK/.test(e.hint ?? ''));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
