// The training library on its own (no model): rng, shards, loader, schedule, AdamW and clipping against a float64
// reference written from the paper, trainer state and the crash-safe checkpoint folder, metrics, the SVG.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, existsSync, mkdirSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/util/rng.js';
import { encodeShard, readShard, ShardWriter, writeManifest, readManifest, loadSplit, unigramEntropy, dtypeFor } from '../src/train/shards.js';
import { BatchLoader, evalBatches } from '../src/train/loader.js';
import { lrAt } from '../src/train/schedule.js';
import { AdamW, clipGradNorm, paramGroups } from '../src/train/optim.js';
import { appendMetrics, readMetrics, filterMetrics } from '../src/train/metrics.js';
import { lossCurveSvg } from '../src/train/svg.js';
import { trainFlopsPerToken, formatDuration, StepMeter } from '../src/train/progress.js';
import { saveTrainerState, loadTrainerState, writeCheckpointDir, hasCheckpoint, STATE_JSON } from '../src/train/state.js';
import { jsBackend } from '../src/tensor/backend-js.js';
import { Tensor } from '../src/tensor/index.js';
import { UserError } from '../src/util/errors.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'cw-train-'));

test('rng: a restored state continues the same stream; int() is in range and roughly uniform', () => {
  const a = new Rng(42);
  for (let i = 0; i < 10; i++) a.u32();
  const b = Rng.fromState(a.state());
  for (let i = 0; i < 100; i++) assert.equal(a.next(), b.next());
  assert.notEqual(new Rng(1).u32(), new Rng(2).u32());
  const counts = new Array(10).fill(0);
  const r = new Rng(7);
  for (let i = 0; i < 100000; i++) counts[r.int(10)]++;
  // chi-square with 9 degrees of freedom: 99.9th percentile is 27.9
  const chi = counts.reduce((s, c) => s + (c - 10000) ** 2 / 10000, 0);
  assert.ok(chi < 27.9, `chi-square ${chi}`);
  let m = 0, v = 0;
  for (let i = 0; i < 20000; i++) { const x = r.normal(); m += x; v += x * x; }
  assert.ok(Math.abs(m / 20000) < 0.05 && Math.abs(v / 20000 - 1) < 0.05);
});

test('shards: round trip, dtype by vocab, header checks', () => {
  const dir = tmp();
  try {
    const ids = [0, 1, 65535, 7, 300];
    writeFileSync(join(dir, 'a.bin'), encodeShard(ids, 'uint16'));
    const t = readShard(join(dir, 'a.bin'));
    assert.ok(t instanceof Uint16Array);
    assert.deepEqual([...t], ids);
    assert.equal(dtypeFor(65536), 'uint16');
    assert.equal(dtypeFor(65537), 'uint32');
    writeFileSync(join(dir, 'b.bin'), encodeShard([70000, 1], 'uint32'));
    assert.deepEqual([...readShard(join(dir, 'b.bin'))], [70000, 1]);
    assert.throws(() => encodeShard([70000], 'uint16'));
    const bytes = readFileSync(join(dir, 'a.bin'));
    writeFileSync(join(dir, 'trunc.bin'), bytes.subarray(0, bytes.length - 1));
    assert.throws(() => readShard(join(dir, 'trunc.bin')), (e) => e instanceof UserError && /not a valid token shard/.test(e.message));
    const bad = Buffer.from(bytes); bad[0] = 0x58;
    writeFileSync(join(dir, 'magic.bin'), bad);
    assert.throws(() => readShard(join(dir, 'magic.bin')), /bad magic/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('shards: writer splits into shards with a bos before each document; manifest gates loading', () => {
  const dir = tmp();
  try {
    const w = new ShardWriter(dir, 'train', 'uint16', 9, 8);
    const docs = [[1, 2, 3], [4, 5], [6, 7, 8, 1, 2, 3], [5]];
    for (const d of docs) w.add(d);
    w.flush();
    assert.ok(w.shards.length >= 2);
    assert.throws(() => readManifest(dir), (e) => e instanceof UserError && /did not complete/.test(e.message));
    writeManifest(dir, { format: 'chatwright-shards', version: 1, vocabSize: 10, bos: 9, dtype: 'uint16', tokenizer: null,
      sources: ['x'], valFraction: 0, train: w.shards, val: [] });
    const all = loadSplit(dir, 'train');
    assert.deepEqual([...all], docs.flatMap((d) => [9, ...d]));
    assert.equal(w.documents, 4);
    assert.throws(() => readManifest(join(dir, 'nope')), /data directory not found/);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('unigram entropy: ln V for a uniform stream, 0 for a constant one', () => {
  const u = new Uint16Array(4000);
  for (let i = 0; i < u.length; i++) u[i] = i % 8;
  assert.ok(Math.abs(unigramEntropy(u, 8) - Math.log(8)) < 1e-12);
  assert.equal(unigramEntropy(new Uint16Array(10).fill(3), 8), 0);
});

test('loader: windows with shifted targets, each visited once per epoch, restartable at a cursor', () => {
  const N = 1001, T = 10, B = 4;
  const tokens = new Uint16Array(N);
  for (let i = 0; i < N; i++) tokens[i] = i % 997;
  const L = new BatchLoader(tokens, B, T, 5);
  assert.equal(L.windows, 100);
  const starts = new Set<number>();
  for (let s = 0; s < 25; s++) {
    const b = L.next();
    for (let r = 0; r < B; r++) {
      const start = b.ids[r * T];
      for (let t = 0; t < T; t++) {
        assert.equal(b.ids[r * T + t], tokens[start + t]);
        assert.equal(b.targets[r * T + t], tokens[start + t + 1]);
      }
      starts.add(start);
    }
  }
  assert.equal(starts.size, 100); // one epoch, every window exactly once
  // restart at a saved cursor mid-epoch and across an epoch boundary
  const a = new BatchLoader(tokens, B, T, 5);
  for (let s = 0; s < 23; s++) a.next();
  const cur = a.cursor;
  const b = new BatchLoader(tokens, B, T, 5, cur);
  for (let s = 0; s < 10; s++) assert.deepEqual(a.next().ids, b.next().ids);
  // another seed, another order
  assert.notDeepEqual(new BatchLoader(tokens, B, T, 6).next().ids, new BatchLoader(tokens, B, T, 5).next().ids);
  assert.throws(() => new BatchLoader(new Uint16Array(5), 1, 10, 1), UserError);
  const ev = evalBatches(tokens, 3, T, 2);
  assert.equal(ev.length, 2);
  assert.deepEqual([...ev[1].ids.subarray(0, 3)], [30, 31, 32]);
});

test('schedule: warmup, cosine midpoint and end, linear', () => {
  const s = { lrMax: 1, lrMin: 0.1, warmup: 10, total: 110, decay: 'cosine' as const };
  assert.equal(lrAt(0, s), 0.1);
  assert.equal(lrAt(9, s), 1);
  assert.ok(Math.abs(lrAt(60, s) - 0.55) < 1e-12); // cos(pi/2) = 0: halfway between
  assert.ok(Math.abs(lrAt(110, s) - 0.1) < 1e-12);
  assert.ok(Math.abs(lrAt(35, { ...s, decay: 'linear' }) - (1 - 0.25 * 0.9)) < 1e-12);
  assert.equal(lrAt(50, { ...s, decay: 'constant' }), 1);
});

// A toy "model": two parameters in one flat buffer, a matrix (decays) and a norm (does not).
function toyModel() {
  const flat = new Float32Array(10), gradFlat = new Float32Array(10);
  const mk = (o: number, shape: number[]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    const t = new Tensor(flat.subarray(o, o + n), shape, true);
    t.grad = new Tensor(gradFlat.subarray(o, o + n), shape);
    return t;
  };
  const params = new Map([['w.weight', mk(0, [2, 3])], ['norm.weight', mk(6, [4])]]);
  return { params, flat, gradFlat };
}

test('AdamW: matches a float64 reference of Loshchilov & Hutter Algorithm 2 (PyTorch AdamW form) per group', () => {
  const model = toyModel();
  const rng = new Rng(3);
  for (let i = 0; i < 10; i++) model.flat[i] = rng.normal();
  const ref = Float64Array.from(model.flat), m = new Float64Array(10), v = new Float64Array(10);
  const cfg = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };
  const opt = new AdamW(model, cfg, jsBackend);
  assert.deepEqual(paramGroups(model, 0.1).map((g) => g.names), [['w.weight'], ['norm.weight']]);
  for (let step = 1; step <= 5; step++) {
    const lr = 0.01 * step;
    for (let i = 0; i < 10; i++) model.gradFlat[i] = Math.fround(rng.normal());
    opt.step(lr);
    for (let i = 0; i < 10; i++) {
      const g = model.gradFlat[i], wd = i < 6 ? 0.1 : 0;
      ref[i] -= lr * wd * ref[i];
      m[i] = 0.9 * m[i] + 0.1 * g;
      v[i] = 0.95 * v[i] + 0.05 * g * g;
      const mh = m[i] / (1 - 0.9 ** step), vh = v[i] / (1 - 0.95 ** step);
      ref[i] -= lr * mh / (Math.sqrt(vh) + 1e-8);
    }
  }
  for (let i = 0; i < 10; i++) assert.ok(Math.abs(model.flat[i] - ref[i]) < 1e-5, `param ${i}: ${model.flat[i]} vs ${ref[i]}`);
  assert.equal(opt.t, 5);
  assert.equal(paramGroups(model, 0.1, true).length, 1);
});

test('clipGradNorm: returns the norm and scales to maxNorm only when above it', () => {
  const g = Float32Array.from([3, 4, 0, 0]);
  assert.ok(Math.abs(clipGradNorm(g, 10, jsBackend) - 5) < 1e-6);
  assert.deepEqual([...g], [3, 4, 0, 0]);
  assert.ok(Math.abs(clipGradNorm(g, 1, jsBackend) - 5) < 1e-6);
  const n = Math.hypot(g[0], g[1]);
  assert.ok(Math.abs(n - 1) < 1e-5, `norm after clipping ${n}`);
});

test('StepMeter: tokens/s, MFU and an ETA from the moving average of step times (computed by hand)', () => {
  const m = new StepMeter(6e6, 100); // 6 MFLOP per token against a 100 GFLOP/s peak
  let r = m.step(2048, 0.5, 10);     // 4096 tok/s; 4096 * 6e6 / 1e11 = 0.24576; ETA 10 * 0.5
  assert.equal(r.tokPerSec, 4096);
  assert.ok(Math.abs(r.mfu - 0.24576) < 1e-12);
  assert.ok(Math.abs(r.eta - 5) < 1e-12);
  r = m.step(2048, 1.5, 4);          // average 0.9 * 0.5 + 0.1 * 1.5 = 0.6; ETA 4 * 0.6
  assert.ok(Math.abs(r.tokPerSec - 2048 / 1.5) < 1e-9);
  assert.ok(Math.abs(r.eta - 2.4) < 1e-12);
});

test('trainer state round trip; the checkpoint folder swap survives a crash between renames', () => {
  const root = tmp();
  const dir = join(root, 'base');
  try {
    const m = Float32Array.from([1, 2, 3]), v = Float32Array.from([4, 5, 6]);
    writeCheckpointDir(dir, (d) => saveTrainerState(d, { m, v }, { version: 1, step: 7, cursor: { epoch: 0, index: 3 } }));
    const s = loadTrainerState(dir)!;
    assert.deepEqual([...s.m], [1, 2, 3]);
    assert.deepEqual([...s.v], [4, 5, 6]);
    assert.equal(s.json.step, 7);
    // a writer that dies half-way leaves the old checkpoint in place
    assert.throws(() => writeCheckpointDir(dir, (d) => { writeFileSync(join(d, 'junk'), 'x'); throw new Error('killed'); }));
    assert.equal(loadTrainerState(dir)!.json.step, 7);
    // simulate a crash after `dir -> dir.old` and before `dir.tmp -> dir`
    writeCheckpointDir(dir, (d) => saveTrainerState(d, { m, v }, { version: 1, step: 8 }));
    renameSync(dir, `${dir}.old`);
    mkdirSync(`${dir}.tmp`);
    assert.ok(hasCheckpoint(dir));
    assert.equal(loadTrainerState(dir)!.json.step, 8);
    assert.ok(!existsSync(`${dir}.tmp`) && !existsSync(`${dir}.old`));
    assert.ok(existsSync(join(dir, STATE_JSON)));
    assert.equal(loadTrainerState(join(root, 'none')), null);
  } finally { rmSync(root, { recursive: true, force: true }); }
});

test('metrics: append, skip a torn line, filter', () => {
  const dir = tmp();
  try {
    const p = join(dir, 'metrics.jsonl');
    for (let s = 1; s <= 5; s++) appendMetrics(p, { step: s, loss: 10 - s });
    writeFileSync(p, readFileSync(p, 'utf8') + '{"step": 6, "lo');
    assert.equal(readMetrics(p).length, 5);
    filterMetrics(p, (r) => r.step <= 3);
    assert.deepEqual(readMetrics(p).map((r) => r.step), [1, 2, 3]);
  } finally { rmSync(dir, { recursive: true, force: true }); }
});

test('svg and progress helpers', () => {
  const svg = lossCurveSvg({ train: [[1, 5], [2, 4], [3, NaN]], val: [[2, 4.5]], title: 'a<b' });
  assert.match(svg, /^<svg[^>]+xmlns/);
  assert.match(svg, /<polyline/);
  assert.match(svg, /a&lt;b/);
  assert.ok(!svg.includes('NaN'));
  assert.equal(trainFlopsPerToken({ matmulParams: 100, nLayer: 2, nEmbd: 4, seqLen: 8 }), 600 + 6 * 2 * 4 * 8);
  assert.equal(formatDuration(75), '1m15s');
});
