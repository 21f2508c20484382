// What bf16 and q8_0 weights cost in quality, on a trained model and its held-out text: the held-out loss (nats per
// token) of each dtype beside float32, the share of held-out positions whose top-1 next token matches float32's, and
// greedy continuations of held-out prompts: how many tokens each produces before it first parts from float32's.
//
//   npm run demo -- --quick && npx tsc -p . && node dist/bench/quality.js          # the demo's base model and data
//   node dist/bench/quality.js --model runs/poems/base --data runs/poems/data --tokens 65536 --prompts 32
//
// Every dtype runs the same KV-cache forward (GPT.forwardCached) on the same windows; only the matrices' storage
// differs (GPT.setInferenceDtype). Windows of --seq tokens (default: the model context, at most 512) from the start of
// the validation split.
import { existsSync } from 'node:fs';
import { loadModel } from '../src/model/checkpoint.js';
import { loadSplit } from '../src/train/shards.js';
import { getBackend } from '../src/tensor/index.js';
import { nativeControls } from '../src/tensor/backend-native.js';
import type { WeightDtype } from '../src/tensor/quant.js';
import { Engine } from '../src/generate/index.js';

const argv = process.argv.slice(2);
const arg = (name: string, def: string) => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : def;
};
const modelDir = arg('model', 'runs/demo/base'), dataDir = arg('data', 'runs/demo/data');
const TOKENS = Number(arg('tokens', '32768')), PROMPTS = Number(arg('prompts', '16')), NEW = Number(arg('new', '48'));
if (!existsSync(modelDir) || !existsSync(dataDir)) {
  console.error(`no trained model at ${modelDir} or no data at ${dataDir}\nHINT: run \`npm run demo -- --quick\` first, ` +
    'or pass --model DIR --data DIR (a model and the data prepared with its tokenizer)');
  process.exit(2);
}

const { model } = loadModel(modelDir);
const V = model.config.vocabSize, T = Number(arg('seq', String(Math.min(512, model.config.maxSeqLen))));
const val = loadSplit(dataDir, 'val');
const windows = Math.min(Math.floor((val.length - 1) / T), Math.ceil(TOKENS / T));
if (windows < 1) throw new Error(`the validation split has ${val.length} tokens, fewer than one window of ${T}`);
const be = getBackend();
console.log(`${modelDir} (${(model.numParams() / 1e6).toFixed(1)}M parameters), held-out text of ${dataDir}: ` +
  `${windows} windows of ${T} tokens; backend ${be.name}${be.name === 'native' ? ` (${nativeControls.cpuLevelName()})` : ''}`);

interface Result { loss: number; top1: Int32Array; greedy: number[][] }

function evaluate(dtype: WeightDtype): Result {
  model.setInferenceDtype(dtype);
  let nll = 0, n = 0;
  const top1 = new Int32Array(windows * T);
  for (let w = 0; w < windows; w++) {
    const ids = Int32Array.from(val.subarray(w * T, w * T + T));
    const logits = model.forwardCached(ids, 1, T, model.newKVCache(1, T)); // (T, V)
    for (let t = 0; t < T; t++) {
      const row = logits.subarray(t * V, (t + 1) * V), target = val[w * T + t + 1];
      let max = -Infinity, arg = 0;
      for (let v = 0; v < V; v++) if (row[v] > max) { max = row[v]; arg = v; }
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
      nll += max + Math.log(sum) - row[target];
      n++;
      top1[w * T + t] = arg;
    }
  }
  // greedy continuations of held-out prompts: 32 tokens from evenly spaced places in the split
  const prompts = Array.from({ length: PROMPTS }, (_, i) => {
    const o = Math.floor((i * (val.length - 64)) / PROMPTS);
    return Array.from(val.subarray(o, o + 32));
  });
  const greedy = new Engine(model).generate(prompts, { maxNewTokens: NEW, temperature: 0, stopTokens: [] }).map((r) => r.ids);
  return { loss: nll / n, top1, greedy };
}

const ref = evaluate('f32');
console.log(`\n${'weights'.padEnd(8)} ${'held-out loss'.padStart(14)} ${'vs f32'.padStart(9)} ${'top-1 = f32'.padStart(12)} ` +
  `${'greedy = f32 (tokens before parting, median / min)'.padStart(52)}`);
const rows: Record<string, unknown>[] = [];
for (const dtype of ['f32', 'bf16', 'q8_0'] as const) {
  const r = dtype === 'f32' ? ref : evaluate(dtype);
  let agree = 0;
  for (let k = 0; k < r.top1.length; k++) if (r.top1[k] === ref.top1[k]) agree++;
  const parted = r.greedy.map((g, i) => {
    let k = 0;
    while (k < g.length && g[k] === ref.greedy[i][k]) k++;
    return k;
  });
  const sorted = [...parted].sort((a, b) => a - b), whole = parted.filter((k) => k === NEW).length;
  console.log(`${dtype.padEnd(8)} ${r.loss.toFixed(4).padStart(14)} ${((r.loss - ref.loss >= 0 ? '+' : '') + (r.loss - ref.loss).toFixed(4)).padStart(9)} ` +
    `${(100 * agree / r.top1.length).toFixed(2).padStart(11)}% ${`${sorted[sorted.length >> 1]} / ${sorted[0]} of ${NEW}; ${whole} of ${PROMPTS} identical`.padStart(52)}`);
  rows.push({ dtype, loss: +r.loss.toFixed(5), dLoss: +(r.loss - ref.loss).toFixed(5), top1Agreement: +(agree / r.top1.length).toFixed(5),
    greedySameTokens: parted, greedyIdentical: whole });
}
console.log(JSON.stringify({ model: modelDir, data: dataDir, windows, T, prompts: PROMPTS, newTokens: NEW, results: rows }));
