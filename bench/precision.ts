// Does bf16 mixed precision train as well as fp32? The demo's pretraining (tiny preset, vocabulary 4,096 on 20,000 poems,
// 16 x 128 tokens a step, lr 3e-3 -> 3e-4 cosine, warmup 50: src/stages/demo.ts, the full plan) for a fixed number of
// steps, in fp32 and with --precision bf16, same seed, same data order; and again with the next seed (--seeds), so the
// bf16 - fp32 difference of each seed can be judged against the difference between the two fp32 runs (the noise of
// the initialisation and the data order).
//
//   npx tsc -p . && node dist/bench/precision.js                       # 2 seeds x 1,000 steps x 2 precisions
//   node dist/bench/precision.js --steps 200 --poems 5000 --vocab 1024 --seeds 1 --out /tmp/cw-precision
//
// Printed: the held-out loss of each run at every evaluation (each run evaluates at its own precision), the final
// held-out loss of each bf16-trained model evaluated again in fp32, the mean training loss of the last 50 steps, the
// tokens/s (a shared machine's: not a benchmark), and the differences. Needs a CPU with AVX512_BF16 (the bf16 runs
// refuse to start elsewhere).
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { readPoems, poemText } from '../src/train/corpora.js';
import { prepareData } from '../src/stages/data.js';
import { pretrain } from '../src/stages/pretrain.js';
import { readMetrics } from '../src/train/metrics.js';
import { openSplit, readManifest } from '../src/train/shards.js';
import { evalBatches } from '../src/train/loader.js';
import { loadModel } from '../src/model/checkpoint.js';
import { noGrad, releaseTape, type MatmulPrecision } from '../src/tensor/index.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const steps = Number(arg('steps', '1000')), poems = Number(arg('poems', '20000')), vocab = Number(arg('vocab', '4096'));
const tokPoems = Number(arg('tok-poems', '5000')), seed = Number(arg('seed', '1337'));
const evalEvery = Number(arg('eval-every', '100')), nEval = Number(arg('eval-batches', '20'));
const seeds = Math.max(1, Number(arg('seeds', '2')) | 0);
const root = arg('out', join(tmpdir(), 'chatwright-precision'));
rmSync(root, { recursive: true, force: true });
mkdirSync(root, { recursive: true });

// ---- the demo's tokenizer and data
const tok = trainTokenizer(readPoems({ simplified: true, limit: tokPoems }).map(poemText), { vocabSize: vocab });
tok.save(join(root, 'tokenizer'));
const data = join(root, 'data');
prepareData({ corpus: ['chinese-poetry'], limit: poems, simplified: true, tokenizer: join(root, 'tokenizer'), out: data, valFraction: 0.02 });
console.log(`tokenizer ${tok.vocabSize} tokens (${tokPoems} poems), data from ${poems} poems`);

// ---- the runs: the demo's pretraining settings, a fixed step count
interface Run { name: string; precision: MatmulPrecision; seed: number; out: string; seconds: number }
const runs: Run[] = [];
for (let k = 0; k < seeds; k++) {
  for (const precision of ['fp32', 'bf16'] as const) {
    runs.push({ name: `${precision} seed ${seed + k}`, precision, seed: seed + k, out: join(root, `${precision}-${seed + k}`), seconds: 0 });
  }
}
const B = 16, T = 128;
for (const r of runs) {
  const t0 = performance.now();
  await pretrain({
    preset: 'tiny', data, out: r.out, steps, batchSize: B, seqLen: T, lr: 3e-3, minLr: 3e-4, warmup: 50, evalEvery,
    evalBatches: nEval, saveEvery: 0, sampleEvery: 0, seed: r.seed, resume: false, precision: r.precision, logEvery: 100,
  }, () => {});
  r.seconds = (performance.now() - t0) / 1000;
  console.log(`${r.name}: ${steps} steps in ${r.seconds.toFixed(0)} s`);
}

// ---- the curves
const valCurve = (r: Run) => new Map(readMetrics(join(r.out, 'metrics.jsonl')).filter((x) => typeof x.valLoss === 'number')
  .map((x) => [x.step, x.valLoss as number]));
const trainTail = (r: Run) => {
  const l = readMetrics(join(r.out, 'metrics.jsonl')).filter((x) => typeof x.loss === 'number').slice(-50).map((x) => x.loss as number);
  return l.reduce((a, b) => a + b, 0) / l.length;
};
const tokPerSec = (r: Run) => {
  const t = readMetrics(join(r.out, 'metrics.jsonl')).filter((x) => typeof x.tokPerSec === 'number').map((x) => x.tokPerSec as number).sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
};
const curves = runs.map(valCurve);
// runs[2k] is fp32 and runs[2k + 1] bf16 of seed k
const cols = [...runs.map((r) => r.name), ...Array.from({ length: seeds }, (_, k) => `bf16 - fp32 (${seed + k})`),
  ...(seeds > 1 ? ['fp32 seed diff'] : [])];
console.log(`\nheld-out loss (nats; ${nEval} batches of ${B} x ${T}), each run at its own precision`);
console.log(['step', ...cols].map((c) => c.padStart(19)).join(''));
for (const step of curves[0].keys()) {
  const v = curves.map((c) => c.get(step) ?? NaN);
  const diffs = Array.from({ length: seeds }, (_, k) => v[2 * k + 1] - v[2 * k]);
  console.log([String(step), ...v.map((x) => x.toFixed(4)), ...diffs.map((x) => x.toFixed(4)), ...(seeds > 1 ? [(v[2] - v[0]).toFixed(4)] : [])]
    .map((c) => c.padStart(19)).join(''));
}

// ---- the bf16-trained models evaluated in fp32 (the checkpoint holds float32 master weights)
const val = openSplit(data, 'val', readManifest(data), Infinity, () => {});
const batches = evalBatches(val, B, T, nEval);
const valLossFp32 = (dir: string) => {
  const model = loadModel(dir).model;
  let sum = 0, rows = 0;
  for (const b of batches) {
    sum += noGrad(() => model.forward(b.ids, b.B, b.T, { targets: b.targets }).loss!.item()) * b.B;
    releaseTape();
    rows += b.B;
  }
  return sum / rows;
};
const final = curves.map((c) => c.get(steps) ?? NaN);
console.log(`\nfinal held-out loss after ${steps} steps:`);
for (let k = 0; k < seeds; k++) {
  const f32 = final[2 * k], bf16 = final[2 * k + 1], bf16InFp32 = valLossFp32(runs[2 * k + 1].out);
  console.log(`  seed ${seed + k}: fp32 ${f32.toFixed(4)}, bf16 ${bf16.toFixed(4)} (bf16 - fp32 ${(bf16 - f32).toFixed(4)}); the bf16 ` +
    `model evaluated in fp32 ${bf16InFp32.toFixed(4)} (${(bf16InFp32 - f32).toFixed(4)})`);
}
if (seeds > 1) console.log(`  noise: fp32 seed ${seed + 1} - fp32 seed ${seed} = ${(final[2] - final[0]).toFixed(4)}`);
console.log(`training loss, mean of the last 50 steps: ${runs.map((r) => `${r.name} ${trainTail(r).toFixed(4)}`).join(', ')}`);
console.log(`tokens/s (median step; a shared machine, not a benchmark): ${runs.map((r) => `${r.name} ${tokPerSec(r)}`).join(', ')}`);
