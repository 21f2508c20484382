// A split read from its shard files on demand (ShardStream) against the same split in memory: every range of tokens
// (across blocks and shards), the batches of a loader over three epochs and after a resume from a cursor, the errors
// of a changed shard and of an id outside the vocabulary, and memory held to the block cache. Then pretraining whose
// training split is streamed (CHATWRIGHT_DATA_MEMORY_MB=0) gives the losses of the in-memory run, and resumes exactly.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, truncateSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ShardWriter, ShardStream, writeManifest, loadSplit, openSplit, checkTokenIds, encodeShard, type Manifest,
} from '../src/train/shards.js';
import { BatchLoader, evalBatches } from '../src/train/loader.js';
import { UserError } from '../src/util/errors.js';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { readPoems, poemText } from '../src/train/corpora.js';
import { prepareData } from '../src/stages/data.js';
import { pretrain } from '../src/stages/pretrain.js';
import { readMetrics } from '../src/train/metrics.js';
import { rng } from './helpers.js';

const V = 1000;
let root = '';

// a split of several shards of uneven size (documents of random length, shards of 700 tokens)
function makeData(dir: string, seed: number, dtype: 'uint16' | 'uint32' = 'uint16'): Manifest {
  const r = rng(seed), w = new ShardWriter(dir, 'train', dtype, 0, 700), v = new ShardWriter(dir, 'val', dtype, 0, 700);
  for (let d = 0; d < 60; d++) {
    const doc = Array.from({ length: 10 + Math.floor(r() * 150) }, () => 1 + Math.floor(r() * (V - 1)));
    (d % 10 === 9 ? v : w).add(doc);
  }
  w.flush();
  v.flush();
  const m: Manifest = { format: 'chatwright-shards', version: 1, vocabSize: V, bos: 0, dtype, tokenizer: null, sources: ['test'],
    valFraction: 0.1, train: w.shards, val: v.shards };
  writeManifest(dir, m);
  return m;
}

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cw-stream-'));
});
after(() => rmSync(root, { recursive: true, force: true }));

test('every range of the streamed split equals the split in memory, across blocks and shards; memory stays in the cache', () => {
  for (const dtype of ['uint16', 'uint32'] as const) {
    const dir = join(root, `ranges-${dtype}`);
    const m = makeData(dir, 1, dtype);
    assert.ok(m.train.length >= 5, `${m.train.length} shards`);
    const all = loadSplit(dir, 'train', m), s = new ShardStream(dir, 'train', m, 64, 3);
    try {
      assert.equal(s.length, all.length);
      const r = rng(2);
      for (let k = 0; k < 2000; k++) {
        const a = Math.floor(r() * all.length), n = 1 + Math.floor(r() * 300);
        assert.deepEqual([...s.subarray(a, a + n)], [...all.subarray(a, a + n)], `${dtype} [${a}, ${a + n})`);
      }
      // the shard boundaries exactly, and the end
      let at = 0;
      for (const info of m.train) {
        at += info.tokens;
        assert.deepEqual([...s.subarray(at - 5, at + 5)], [...all.subarray(at - 5, at + 5)]);
      }
      assert.deepEqual([...s.subarray(all.length - 3, all.length + 10)], [...all.subarray(all.length - 3)]);
      assert.ok(s.cachedTokens <= 3 * 64, `${s.cachedTokens} tokens cached`);
    } finally {
      s.close();
    }
  }
});

test('a loader over the stream makes the in-memory batches for three epochs, and resumes from a cursor the same', () => {
  const dir = join(root, 'loader');
  const m = makeData(dir, 3);
  const all = loadSplit(dir, 'train', m), s = new ShardStream(dir, 'train', m, 128, 4);
  const a = new BatchLoader(all, 4, 33, 7), b = new BatchLoader(s, 4, 33, 7);
  const steps = Math.ceil((3 * a.windows) / 4);
  let mid = a.cursor;
  const later: Int32Array[] = [];
  for (let i = 0; i < steps; i++) {
    const x = a.next(), y = b.next();
    assert.deepEqual(y.ids, x.ids, `step ${i}`);
    assert.deepEqual(y.targets, x.targets, `step ${i}`);
    if (i === Math.floor(steps / 2)) mid = b.cursor;
    if (i > Math.floor(steps / 2)) later.push(x.ids);
  }
  assert.ok(a.cursor.epoch >= 2);
  const resumed = new BatchLoader(new ShardStream(dir, 'train', m, 128, 4), 4, 33, 7, mid);
  for (const ids of later) assert.deepEqual(resumed.next().ids, ids);
  const ev1 = evalBatches(loadSplit(dir, 'val', m), 3, 20, 4), ev2 = evalBatches(new ShardStream(dir, 'val', m, 32, 2), 3, 20, 4);
  assert.deepEqual(ev2, ev1);
  s.close();
});

test('openSplit streams only past the memory limit; a changed shard and an id outside the vocabulary are clear errors', () => {
  const dir = join(root, 'errors');
  const m = makeData(dir, 4);
  assert.ok(!(openSplit(dir, 'train', m, 1e9) instanceof ShardStream));
  const lines: string[] = [];
  const s = openSplit(dir, 'train', m, 0, (l) => lines.push(l));
  assert.ok(s instanceof ShardStream);
  assert.match(lines[0], /the train split \(.* MiB in \d+ shards\) is larger than the 0 MiB allowed in memory/);
  checkTokenIds(loadSplit(dir, 'train', m), V);

  // an id outside the vocabulary: named with its shard and position, when its block is read
  const bad = join(root, 'bad-id');
  const mb = makeData(bad, 5);
  const ids = loadSplit(bad, 'train', { ...mb, train: [mb.train[1]] });
  ids[17] = V + 3;
  writeFileSync(join(bad, mb.train[1].file), encodeShard(ids, 'uint16'));
  assert.throws(() => checkTokenIds(loadSplit(bad, 'train', mb), V), (e) => e instanceof UserError && /token id 1003/.test(e.message));
  const st = new ShardStream(bad, 'train', mb, 64, 2);
  assert.throws(() => st.subarray(0, st.length), (e) => e instanceof UserError && e.message.includes(`shard ${mb.train[1].file} holds token id 1003 at position 17`));
  st.close();

  // a shard cut short after the manifest was written: the header check at open names the file
  const p = join(dir, m.train[2].file);
  truncateSync(p, statSync(p).size - 2);
  assert.throws(() => new ShardStream(dir, 'train', m), (e) => e instanceof UserError && e.message.includes(m.train[2].file) &&
    /not a valid token shard/.test(e.message));
  const raw = readFileSync(p);
  raw[0] = 0x58;
  writeFileSync(p, raw);
  assert.throws(() => new ShardStream(dir, 'train', m), /bad magic/);
});

test('pretraining with the training split streamed (CHATWRIGHT_DATA_MEMORY_MB=0): the in-memory losses, and an exact resume', async () => {
  const dir = join(root, 'pre');
  const poems = readPoems({ simplified: true, limit: 1500 }).map(poemText);
  trainTokenizer(poems.slice(0, 400), { vocabSize: 400 }).save(join(dir, 'tok'));
  prepareData({ corpus: ['chinese-poetry'], limit: 1500, simplified: true, tokenizer: join(dir, 'tok'), out: join(dir, 'data'), valFraction: 0.05,
    shardTokens: 4096 });
  const opts = (out: string, steps: number) => ({
    data: join(dir, 'data'), out, model: { nLayer: 1, nEmbd: 32, nHead: 2, nKvHead: 1, intermediateSize: 64 }, steps, batchSize: 4,
    seqLen: 32, sampleEvery: 0, evalEvery: 5, evalBatches: 2, saveEvery: 0, peakGflops: 100, logEvery: 1000, lr: 3e-3, warmup: 2,
  });
  const losses = (out: string) => readMetrics(join(out, 'metrics.jsonl')).map((r) => [r.step, r.loss ?? r.valLoss]);
  const before = process.env.CHATWRIGHT_DATA_MEMORY_MB;
  const lines: string[] = [];
  try {
    await pretrain({ ...opts(join(dir, 'mem'), 12), resume: false }, () => {});
    process.env.CHATWRIGHT_DATA_MEMORY_MB = '0';
    await pretrain({ ...opts(join(dir, 'stream'), 12), resume: false }, (l) => lines.push(l));
    // stopped by its time limit after its first steps (with a checkpoint), then resumed to the end
    const first = await pretrain({ ...opts(join(dir, 'stream2'), 12), resume: false, timeLimit: 1e-9 }, () => {});
    assert.equal(first.stopped, 'time');
    assert.ok(first.step < 12);
    await pretrain({ ...opts(join(dir, 'stream2'), 12), resume: true }, () => {});
  } finally {
    if (before === undefined) delete process.env.CHATWRIGHT_DATA_MEMORY_MB;
    else process.env.CHATWRIGHT_DATA_MEMORY_MB = before;
  }
  assert.ok(lines.some((l) => /the train split .* reading it from the shards as training goes/.test(l)), lines.join('\n'));
  assert.deepEqual(losses(join(dir, 'stream')), losses(join(dir, 'mem')));
  assert.deepEqual(losses(join(dir, 'stream2')), losses(join(dir, 'mem')));
});
