// The pretraining stage end to end on a slice of chinese-poetry: gradient accumulation equivalence, JS vs native,
// exact resume after kill -9 of the real CLI, the bad-input errors, and the loss falling below the unigram entropy.
// Models are shrunk (2 layers, width 64) so the whole file stays within a few tens of seconds on 2 shared cores.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { spawn, spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { readPoems, poemText } from '../src/train/corpora.js';
import { prepareData } from '../src/stages/data.js';
import { pretrain, type PretrainOptions } from '../src/stages/pretrain.js';
import { readMetrics } from '../src/train/metrics.js';
import { loadSplit, readManifest, unigramEntropy } from '../src/train/shards.js';
import { readSafetensors } from '../src/model/safetensors.js';
import { bf16Unavailable, nativeAvailable, nativeUnavailableReason, setBackend } from '../src/tensor/index.js';

const CLI = join(process.cwd(), 'dist/src/cli/main.js');
let root = '', data = '', smallTok = '';
const SMALL = { nLayer: 2, nEmbd: 64, nHead: 4, nKvHead: 2, intermediateSize: 128 };
const SMALL_ARGS = ['--n-layer', '2', '--n-embd', '64', '--n-head', '4', '--n-kv-head', '2', '--intermediate-size', '128'];
const quiet = () => {};

before(() => {
  root = mkdtempSync(join(tmpdir(), 'cw-pretrain-'));
  const poems = readPoems({ simplified: true, limit: 3000 }).map(poemText);
  trainTokenizer(poems.slice(0, 800), { vocabSize: 512 }).save(join(root, 'tok'));
  trainTokenizer(poems.slice(0, 50), { vocabSize: 300 }).save((smallTok = join(root, 'tok300')));
  prepareData({ corpus: ['chinese-poetry'], limit: 3000, simplified: true, tokenizer: join(root, 'tok'), out: (data = join(root, 'data')), valFraction: 0.02 });
});
after(() => rmSync(root, { recursive: true, force: true }));

const lossesOf = (out: string) => readMetrics(join(out, 'metrics.jsonl')).filter((r) => typeof r.loss === 'number').map((r) => [r.step, r.loss as number]);
const base = (out: string): Partial<PretrainOptions> & { data: string; out: string } => ({
  data, out, model: SMALL, sampleEvery: 0, seqLen: 32, lr: 3e-3, warmup: 5, evalEvery: 0, saveEvery: 0, peakGflops: 100, logEvery: 1000, resume: false,
});

test('gradient accumulation: 1 x 8 equals 8 x 1 (losses and parameters)', async () => {
  const a = join(root, 'accum1'), b = join(root, 'accum8');
  await pretrain({ ...base(a), steps: 6, batchSize: 8, gradAccum: 1 }, quiet);
  await pretrain({ ...base(b), steps: 6, batchSize: 1, gradAccum: 8 }, quiet);
  const la = lossesOf(a), lb = lossesOf(b);
  assert.equal(la.length, 6);
  for (let i = 0; i < 6; i++) assert.ok(Math.abs(la[i][1] - lb[i][1]) < 1e-4, `step ${i + 1}: ${la[i][1]} vs ${lb[i][1]}`);
  const pa = readSafetensors(join(a, 'model.safetensors')), pb = readSafetensors(join(b, 'model.safetensors'));
  let maxDiff = 0;
  for (const [name, t] of pa) for (let i = 0; i < t.data.length; i++) maxDiff = Math.max(maxDiff, Math.abs(t.data[i] - pb.get(name)!.data[i]));
  console.log(`# accumulation 1x8 vs 8x1: max parameter difference ${maxDiff.toExponential(2)}`);
  assert.ok(maxDiff < 1e-4, `max parameter difference ${maxDiff}`);
});

test('the JS and native backends agree over 20 steps', async (t) => {
  if (!nativeAvailable()) {
    t.skip(`native backend unavailable: ${nativeUnavailableReason()}`);
    return;
  }
  const j = join(root, 'js'), n = join(root, 'native');
  try {
    await pretrain({ ...base(j), steps: 20, batchSize: 4, backend: 'js' }, quiet);
    await pretrain({ ...base(n), steps: 20, batchSize: 4, backend: 'native' }, quiet);
  } finally {
    setBackend('native');
  }
  const lj = lossesOf(j), ln = lossesOf(n);
  assert.equal(lj.length, 20);
  const diffs = lj.map(([, l], i) => Math.abs(l - ln[i][1]));
  console.log(`# js vs native: max loss difference over 20 steps ${Math.max(...diffs).toExponential(2)} (first ${lj[0][1].toFixed(4)}, last ${lj[19][1].toFixed(4)})`);
  for (let i = 0; i < 20; i++) assert.ok(diffs[i] < 2e-3, `step ${i + 1}: js ${lj[i][1]} vs native ${ln[i][1]}`);
});

function cli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
}
const runArgs = (out: string, steps: number) => ['pretrain', '--data', data, '--out', out, ...SMALL_ARGS, '--steps', String(steps),
  '--batch-size', '4', '--seq-len', '32', '--warmup', '5', '--eval-every', '10', '--save-every', '5', '--peak-gflops', '100', '--log-every', '1',
  '--sample-every', '5', '--sample-tokens', '8'];
const samples = (stdout: string) => new Map(stdout.split('\n').filter((l) => / sample: /.test(l)).map((l) => [l, true]));

test('resume after kill -9 reproduces the uninterrupted losses exactly', async () => {
  const full = join(root, 'full'), killed = join(root, 'killed');
  const r = cli(runArgs(full, 60));
  assert.equal(r.status, 0, r.stderr);

  // run again, SIGKILL it once a line for step 12 appears (after the step-10 checkpoint, long before step 60)
  const child = spawn(process.execPath, [CLI, ...runArgs(killed, 60)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let seen = '';
  const code = await new Promise<number | string | null>((resolve) => {
    child.stderr.on('data', (d) => { // progress is on stderr
      seen += d;
      if (/step 12\/60/.test(seen)) child.kill('SIGKILL');
    });
    child.on('exit', (c, sig) => resolve(sig ?? c));
  });
  assert.equal(code, 'SIGKILL', `the run was not killed mid-way:\n${seen}`);
  const st = JSON.parse(readFileSync(join(killed, 'trainer_state.json'), 'utf8'));
  assert.ok(st.step >= 10 && st.step < 60, `checkpoint step ${st.step}`);

  const r2 = cli(runArgs(killed, 60));
  assert.equal(r2.status, 0, r2.stderr);
  assert.match(r2.stderr, new RegExp(`resuming .* at step ${st.step}`));
  // the sampler's RNG resumes too: every sample the resumed run prints, the uninterrupted run printed
  const sa = samples(r.stderr), sb = samples(r2.stderr);
  assert.ok(sb.size >= 8, r2.stderr);
  assert.equal(r.stdout + r2.stdout, '', 'pretrain prints progress on stderr only');
  for (const line of sb.keys()) assert.ok(sa.has(line), `sample not in the uninterrupted run: ${line}`);
  const a = lossesOf(full), b = lossesOf(killed);
  assert.equal(a.length, 60);
  assert.deepEqual(b, a); // exactly the same numbers, one record per step
  const va = readMetrics(join(full, 'metrics.jsonl')).filter((x) => 'valLoss' in x);
  const vb = readMetrics(join(killed, 'metrics.jsonl')).filter((x) => 'valLoss' in x);
  assert.deepEqual(vb, va);
  assert.ok(existsSync(join(killed, 'loss.svg')));
});

test('bad input: clear errors, non-zero exit, the good checkpoint untouched', () => {
  const expectError = (r: ReturnType<typeof cli>, re: RegExp) => {
    assert.equal(r.status, 2, `exit ${r.status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
    assert.match(r.stderr, re);
    assert.ok(!/\n\s+at /.test(r.stderr), 'a stack trace was printed');
  };
  expectError(cli(['pretrain', '--data', join(root, 'no-such-dir'), '--out', join(root, 'x')]), /data directory not found[\s\S]*HINT/);
  const empty = join(root, 'empty.txt');
  writeFileSync(empty, '');
  expectError(cli(['data', 'prepare', '--corpus', empty, '--tokenizer', join(root, 'tok'), '--out', join(root, 'd2')]), /has no documents/);
  expectError(cli(['data', 'prepare', '--corpus', join(root, 'missing.txt'), '--tokenizer', join(root, 'tok'), '--out', join(root, 'd2')]), /corpus not found/);
  expectError(cli(['pretrain', '--data', data, '--out', join(root, 'x'), '--tokenizer', smallTok]), /vocabulary mismatch.*300.*512/);
  expectError(cli(['pretrain', '--data', data, '--out', join(root, 'x'), '--seq-len', '512']), /--seq-len 512 is longer than the model's context of 256/);

  // a NaN loss (test hook) after the last checkpoint: exit 2 and the checkpoint keeps its bytes
  const dir = join(root, 'full'); // 60 steps, from the resume test (or made here)
  if (!existsSync(join(dir, 'trainer_state.json'))) assert.equal(cli(runArgs(dir, 60)).status, 0);
  const hash = (f: string) => createHash('sha256').update(readFileSync(join(dir, f))).digest('hex');
  const files = ['model.safetensors', 'trainer_state.json', 'trainer_state.safetensors', 'config.json'];
  const before = files.map(hash);
  expectError(cli(runArgs(dir, 70), { CHATWRIGHT_TEST_NAN_STEP: '63' }), /loss became NaN at step 63/);
  assert.deepEqual(files.map(hash), before);
  assert.equal(JSON.parse(readFileSync(join(dir, 'trainer_state.json'), 'utf8')).step, 60);
});

test('the loss falls below the unigram entropy of the corpus', async () => {
  const out = join(root, 'learn');
  const m = readManifest(data);
  const h = unigramEntropy(loadSplit(data, 'train', m), m.vocabSize);
  const r = await pretrain({ ...base(out), steps: 200, batchSize: 8, seqLen: 64, lr: 1e-2, minLr: 1e-3, warmup: 20, evalBatches: 8 }, quiet);
  console.log(`# unigram entropy ${h.toFixed(3)} nats; validation loss after 200 steps ${r.valLoss!.toFixed(3)} nats`);
  assert.ok(r.valLoss! < h - 0.4, `val loss ${r.valLoss} vs unigram entropy ${h}`);
});

test('bf16 mixed precision: a run stopped and resumed keeps its precision and gives the uninterrupted losses', async (t) => {
  const why = bf16Unavailable();
  if (why) { t.skip(`bf16 training cannot run here: ${why}`); return; }
  const run = (out: string, steps: number, precision?: 'fp32' | 'bf16', resume = false) =>
    pretrain({ ...base(out), steps, batchSize: 4, decay: 'constant', precision, resume }, quiet);
  const whole = join(root, 'bf16-whole'), split = join(root, 'bf16-split'), fp32 = join(root, 'bf16-fp32');
  await run(whole, 8, 'bf16');
  await run(split, 4, 'bf16');
  await run(split, 8, undefined, true); // no --precision given: the checkpoint's
  await run(fp32, 8, 'fp32');
  const state = JSON.parse(readFileSync(join(split, 'trainer_state.json'), 'utf8'));
  assert.equal(state.options.precision, 'bf16');
  assert.deepEqual(lossesOf(split), lossesOf(whole));
  const d = Math.max(...lossesOf(whole).map(([, l], i) => Math.abs(l - lossesOf(fp32)[i][1])));
  assert.ok(d > 0 && d < 0.05, `bf16 vs fp32 losses differ by at most ${d}: expected a small, non-zero difference`);
});
