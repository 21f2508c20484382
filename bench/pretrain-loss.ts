// Does pretraining learn? The tiny preset on chinese-poetry for five minutes of training, against the corpus's unigram
// entropy (the loss of a model that knows token frequencies and nothing else), both in nats.
//
//   npx tsc -p . && node dist/bench/pretrain-loss.js                      # 5 minutes of training, ~6 minutes in all
//   node dist/bench/pretrain-loss.js --minutes 2 --poems 10000 --vocab 1024 --out /tmp/cw-loss
//
// Steps: train a tokenizer on the first --tok-poems poems, prepare shards from --poems poems (simplified characters),
// time a few steps to size the run (1.3 x the steps that seem to fit, so a busy machine's slow probe does not end the run
// early; the time limit stops it cleanly with a checkpoint), train, print both figures.
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { trainTokenizer } from '../src/tokenizer/index.js';
import { readPoems, poemText } from '../src/train/corpora.js';
import { prepareData } from '../src/stages/data.js';
import { pretrain } from '../src/stages/pretrain.js';
import { readMetrics } from '../src/train/metrics.js';
import { loadSplit, readManifest, unigramEntropy } from '../src/train/shards.js';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}
const minutes = Number(arg('minutes', '5')), poems = Number(arg('poems', '20000')), vocab = Number(arg('vocab', '2048'));
const tokPoems = Number(arg('tok-poems', '4000'));
const root = arg('out', join(tmpdir(), 'chatwright-pretrain-loss'));
rmSync(root, { recursive: true, force: true });
mkdirSync(root, { recursive: true });

let t = performance.now();
const lap = () => { const s = ((performance.now() - t) / 1000).toFixed(1); t = performance.now(); return s; };
const tok = trainTokenizer(readPoems({ simplified: true, limit: tokPoems }).map(poemText), { vocabSize: vocab });
tok.save(join(root, 'tokenizer'));
console.log(`tokenizer: ${tok.vocabSize} tokens from ${tokPoems} poems (${lap()}s)`);
const m = prepareData({ corpus: ['chinese-poetry'], limit: poems, simplified: true, tokenizer: join(root, 'tokenizer'), out: join(root, 'data'), valFraction: 0.02 });
const train = loadSplit(join(root, 'data'), 'train', m), val = loadSplit(join(root, 'data'), 'val', readManifest(join(root, 'data')));
const hTrain = unigramEntropy(train, m.vocabSize), hVal = unigramEntropy(val, m.vocabSize);
console.log(`data: ${train.length} train / ${val.length} val tokens (${lap()}s); unigram entropy ${hTrain.toFixed(3)} nats (train), ${hVal.toFixed(3)} (val)`);

// size the run: 16 timed steps, then about as many steps as fit in the time limit
const probe = await pretrain({ preset: 'tiny', data: join(root, 'data'), out: join(root, 'probe'), steps: 16, evalEvery: 0, saveEvery: 0, resume: false, logEvery: 1000 }, () => {});
const rec = readMetrics(join(root, 'probe', 'metrics.jsonl')).filter((x) => typeof x.loss === 'number');
const stepSec = (rec[rec.length - 1].time as number - (rec[1].time as number)) / (rec.length - 2); // skip the first step
lap();
const steps = Math.max(50, Math.ceil(((minutes * 60) / stepSec) * 1.3));
console.log(`probe: ~${stepSec.toFixed(2)} s/step (first loss ${probe.trainLoss.toFixed(3)}); training ${steps} steps with a ${minutes}-minute limit`);

const r = await pretrain({
  preset: 'tiny', data: join(root, 'data'), out: join(root, 'base'), steps, warmup: Math.min(100, Math.floor(steps / 10)),
  evalEvery: Math.max(25, Math.floor(steps / 10)), evalBatches: 20, saveEvery: 0, timeLimit: minutes, resume: false,
  logEvery: 25, sampleEvery: 0,
});
console.log(`\nRESULT tiny preset, ${r.step} steps in ${lap()}s: validation loss ${r.valLoss!.toFixed(3)} nats vs unigram entropy ` +
  `${hVal.toFixed(3)} nats (val split; train split ${hTrain.toFixed(3)}): ${(hVal - r.valLoss!).toFixed(3)} nats below`);
console.log(`loss curve: ${join(root, 'base', 'loss.svg')}`);
