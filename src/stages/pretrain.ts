// Pretraining: next-token prediction on token shards, from a fresh GPT (or the last checkpoint) to a base model.
//
//   chatwright pretrain --preset tiny --data runs/tiny/data --out runs/tiny/base --steps 600        # tiny: ~2 minutes
//   chatwright pretrain --preset small --data runs/full/data --out runs/full/base --time-limit 120  # full: two hours
//
// Reads top to bottom like nanoGPT's train.py: options, data, model and optimizer (or resume), then the loop: evaluate
// every --eval-every steps, sample every --sample-every, accumulate gradients over --grad-accum micro-batches, clip by
// global norm, AdamW step, log, checkpoint every --save-every and at the end.
//
// Resume is exact: the checkpoint holds the parameters, the AdamW moments and step, the data cursor and the sampler's
// RNG, so a run killed at any moment (kill -9) and resumed produces the same per-step losses as one never stopped
// (test/pretrain-resume.test.ts). Checkpoints are written whole into a temporary folder and swapped in (state.ts).
// A non-finite loss or gradient norm stops the run with a UserError BEFORE anything is saved, so the last good
// checkpoint stays as it was.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { getBackend, setBackend, noGrad, releaseTape, mulScalar } from '../tensor/index.js';
import { GPT } from '../model/gpt.js';
import { configFromPreset, PRESETS, type GPTConfig } from '../model/config.js';
import { loadModel, saveModel } from '../model/checkpoint.js';
import { Tokenizer } from '../tokenizer/index.js';
import { readManifest, loadSplit } from '../train/shards.js';
import { BatchLoader, evalBatches, type Cursor } from '../train/loader.js';
import { AdamW, checkFinite, clipAndStep } from '../train/optim.js';
import { lrAt } from '../train/schedule.js';
import { Rng } from '../util/rng.js';
import { appendMetrics, filterMetrics, readMetrics } from '../train/metrics.js';
import { lossCurveSvg } from '../train/svg.js';
import { formatDuration, ProgressLine, StepMeter, trainingGemmPeak, trainFlopsPerToken, stepLine } from '../train/progress.js';
import { hasCheckpoint, loadTrainerState, recoverCheckpointDir, saveTrainerState, writeCheckpointDir } from '../train/state.js';

// -----------------------------------------------------------------------------------------------------------------------
// Options: defaults per preset, overridden by the saved run (on resume), overridden by what the caller gives.

export interface PretrainOptions {
  preset: 'tiny' | 'small' | 'medium';
  data: string;              // shard directory (chatwright data prepare)
  out: string;               // the checkpoint folder, e.g. runs/<name>/base
  tokenizer: string | null;  // default: <data>/tokenizer
  steps: number;             // optimizer steps in total (a resumed run continues to this count)
  batchSize: number;         // sequences per micro-batch
  seqLen: number;            // tokens per sequence
  context: number | null;    // model context (maxSeqLen) of a new model; default: the preset's
  model: Partial<GPTConfig>; // overrides of the preset's architecture for a new model (nLayer, nEmbd, ...)
  gradAccum: number;         // micro-batches per optimizer step
  lr: number;                // peak learning rate
  minLr: number;             // end of the decay
  warmup: number;            // warmup steps
  decay: 'cosine' | 'linear' | 'constant';
  weightDecay: number;
  decayAll: boolean;         // weight decay on norms and embeddings too
  beta1: number;
  beta2: number;
  clip: number;              // max global gradient norm; 0: no clipping
  evalEvery: number;         // 0: never (still evaluated at the end)
  evalBatches: number;
  sampleEvery: number;       // 0: never
  sampleTokens: number;
  saveEvery: number;         // 0: only at the end
  seed: number;
  resume: boolean;           // continue from the checkpoint in --out when there is one
  backend: 'js' | 'native' | null;
  timeLimit: number;         // minutes; 0: none. Stops cleanly with a checkpoint.
  peakGflops: number;        // GEMM peak for MFU; 0: measure at start
  logEvery: number;          // progress line every N steps when stdout is not a terminal
}

export const PRESET_TRAINING: Record<PretrainOptions['preset'], Partial<PretrainOptions>> = {
  tiny: { batchSize: 16, seqLen: 128, lr: 3e-3, minLr: 3e-4, warmup: 50, steps: 1000 },
  small: { batchSize: 8, seqLen: 256, lr: 1e-3, minLr: 1e-4, warmup: 100, steps: 5000 },
  medium: { batchSize: 4, seqLen: 512, lr: 6e-4, minLr: 6e-5, warmup: 200, steps: 10000 },
};

const DEFAULTS: Omit<PretrainOptions, 'data' | 'out'> = {
  preset: 'tiny', tokenizer: null, steps: 1000, batchSize: 16, seqLen: 128, context: null, model: {}, gradAccum: 1, lr: 3e-3,
  minLr: 3e-4, warmup: 50, decay: 'cosine', weightDecay: 0.1, decayAll: false, beta1: 0.9, beta2: 0.95, clip: 1.0,
  evalEvery: 100, evalBatches: 20, sampleEvery: 200, sampleTokens: 64, saveEvery: 250, seed: 1337, resume: true,
  backend: null, timeLimit: 0, peakGflops: 0, logEvery: 10,
};

// The options saved with a checkpoint and taken again on resume (unless given anew); the rest are per invocation.
const RUN_KEYS = ['preset', 'steps', 'batchSize', 'seqLen', 'context', 'model', 'gradAccum', 'lr', 'minLr', 'warmup', 'decay',
  'weightDecay', 'decayAll', 'beta1', 'beta2', 'clip', 'evalEvery', 'evalBatches', 'sampleEvery', 'sampleTokens',
  'saveEvery', 'seed'] as const;

export function resolveOptions(given: Partial<PretrainOptions>, saved: Partial<PretrainOptions> = {}): PretrainOptions {
  for (const k of Object.keys(given)) if (!(k in DEFAULTS) && k !== 'data' && k !== 'out') throw new Error(`unknown pretrain option ${k}`);
  const defined = (o: Partial<PretrainOptions>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const preset = (given.preset ?? saved.preset ?? DEFAULTS.preset) as PretrainOptions['preset'];
  if (!(preset in PRESET_TRAINING)) throw new UserError(`unknown preset "${preset}"`, `choose one of: ${Object.keys(PRESETS).join(', ')}`);
  const o = { ...DEFAULTS, ...PRESET_TRAINING[preset], ...defined(saved), ...defined(given), preset } as PretrainOptions;
  if (!o.data) throw new UserError('pretrain: --data is required', 'prepare shards with `chatwright data prepare` first');
  if (!o.out) throw new UserError('pretrain: --out is required', 'e.g. --out runs/tiny/base');
  const pos = ['steps', 'batchSize', 'seqLen', 'gradAccum', 'evalBatches'] as const;
  for (const k of pos) if (!(Number.isInteger(o[k]) && o[k] >= 1)) throw new UserError(`pretrain: ${k} must be a positive integer, got ${o[k]}`);
  if (!(o.lr > 0 && o.minLr >= 0 && o.minLr <= o.lr)) throw new UserError(`pretrain: need 0 <= min-lr <= lr and lr > 0, got lr ${o.lr}, min-lr ${o.minLr}`);
  if (!['cosine', 'linear', 'constant'].includes(o.decay)) throw new UserError(`pretrain: decay must be cosine, linear or constant, got ${o.decay}`);
  return o;
}

export interface PretrainResult { step: number; trainLoss: number; valLoss: number | null; bestValLoss: number | null; stopped: 'steps' | 'time' | 'signal' }

// Test hook: CHATWRIGHT_TEST_NAN_STEP=k makes the loss of step k NaN, as a diverging run would.
const NAN_STEP = Number(process.env.CHATWRIGHT_TEST_NAN_STEP ?? -1);

export async function pretrain(given: Partial<PretrainOptions> & { data: string; out: string }, print = console.log): Promise<PretrainResult> {
  // ---------------------------------------------------------------------------------------------------------------------
  // Resume or fresh start: the saved run's options are the defaults of a resumed one.
  recoverCheckpointDir(given.out);
  const resuming = given.resume !== false && hasCheckpoint(given.out);
  const saved = resuming ? loadTrainerState(given.out, { required: ['optimizerStep', 'cursor', 'rng'], defaults: DEFAULTS, resolve: (s) => resolveOptions({ data: given.data, out: given.out }, s) })! : null;
  const o = resolveOptions(given, saved ? (saved.json.options as Partial<PretrainOptions>) : {});
  if (o.backend) setBackend(o.backend);
  const be = getBackend();

  // ---------------------------------------------------------------------------------------------------------------------
  // Data and tokenizer
  const manifest = readManifest(o.data);
  const tokDir = o.tokenizer ?? join(o.data, manifest.tokenizer ?? 'tokenizer');
  if (!existsSync(join(tokDir, 'tokenizer.json'))) {
    throw new UserError(`tokenizer not found: ${tokDir}`, 'pass --tokenizer DIR (the one the data was prepared with)');
  }
  const tokenizer = Tokenizer.load(tokDir);
  if (tokenizer.vocabSize !== manifest.vocabSize) {
    throw new UserError(`vocabulary mismatch: the tokenizer in ${tokDir} has ${tokenizer.vocabSize} tokens, the data in ${o.data} was made with ${manifest.vocabSize}`,
      'use the tokenizer the data was prepared with, or prepare the data again with this one');
  }
  const train = loadSplit(o.data, 'train', manifest);
  const val = loadSplit(o.data, 'val', manifest);
  if (train.length === 0) throw new UserError(`the training split in ${o.data} is empty`, 'prepare the data again from a non-empty corpus');
  let maxId = 0;
  for (let i = 0; i < train.length; i++) if (train[i] > maxId) maxId = train[i];
  if (maxId >= manifest.vocabSize) {
    throw new UserError(`the shards hold token id ${maxId}, outside the vocabulary of ${manifest.vocabSize}`, 'prepare the data again');
  }

  // ---------------------------------------------------------------------------------------------------------------------
  // Model and optimizer (a fresh model from the preset, or the checkpoint's)
  let model: GPT;
  if (saved) {
    model = loadModel(o.out).model;
  } else {
    const overrides: Partial<GPTConfig> = { ...o.model, ...(o.context ? { maxSeqLen: o.context } : {}) };
    model = GPT.create(configFromPreset(o.preset, manifest.vocabSize, overrides), o.seed);
  }
  const cfg = model.config;
  if (cfg.vocabSize !== manifest.vocabSize) {
    throw new UserError(`vocabulary mismatch: the model in ${o.out} has ${cfg.vocabSize} tokens, the data in ${o.data} ${manifest.vocabSize}`,
      'point --data at shards made with the model\'s tokenizer, or start a new run in another --out folder');
  }
  if (o.seqLen > cfg.maxSeqLen) {
    throw new UserError(`${given.seqLen === undefined && saved ? `the saved seqLen ${o.seqLen} (${join(o.out, 'trainer_state.json')})` : `--seq-len ${o.seqLen}`} is longer than the model's context of ${cfg.maxSeqLen} tokens`,
      `use --seq-len ${cfg.maxSeqLen} or less${saved ? '' : ', or raise --context'}`);
  }
  const B = o.batchSize, T = o.seqLen, tokensPerStep = B * T * o.gradAccum;
  const opt = new AdamW(model, { beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay, decayAll: o.decayAll });
  let step = 0;
  let cursor: Cursor = { epoch: 0, index: 0 };
  let sampleRng = new Rng(o.seed + 1);
  let bestValLoss: number | null = null;
  const metricsPath = join(o.out, 'metrics.jsonl');
  if (saved) {
    if (saved.m.length !== model.flat.length) throw new UserError(`${o.out}: optimizer state does not match the model`, 'start over with --no-resume');
    opt.m.set(saved.m);
    opt.v.set(saved.v);
    opt.t = saved.json.optimizerStep as number;
    step = saved.json.step;
    cursor = saved.json.cursor as Cursor;
    sampleRng = Rng.fromState(saved.json.rng as number[]);
    bestValLoss = (saved.json.bestValLoss as number | null) ?? null;
    // records past the checkpoint belong to the lost part of the run; the evaluation at the checkpoint's step runs again
    filterMetrics(metricsPath, (r) => r.step < step || (r.step === step && r.loss !== undefined));
  } else {
    if (existsSync(join(o.out, 'trainer_state.json'))) print(`starting over (--no-resume): the checkpoint in ${o.out} is replaced at the first save`);
    filterMetrics(metricsPath, () => false);
  }
  const loader = new BatchLoader(train, B, T, o.seed, cursor);
  const valSet = evalBatches(val, B, T, o.evalBatches);

  // MFU denominator: the GEMM peak of this machine and backend at a training shape, measured once
  const matmulParams = model.layout.filter((p) => p.kind === 'matrix').reduce((a, p) => a + p.size, 0) +
    (cfg.tiedEmbeddings && !cfg.scalarHead ? cfg.vocabSize * cfg.nEmbd : 0);
  const flopsPerToken = trainFlopsPerToken({ matmulParams, nLayer: cfg.nLayer, nEmbd: cfg.nEmbd, seqLen: T });
  const peak = o.peakGflops > 0 ? o.peakGflops : trainingGemmPeak(be, B * T, cfg.nEmbd, cfg.intermediateSize);

  print(model.summary());
  print(`${saved ? `resuming ${o.out} at step ${step}` : `new run in ${o.out}`} | ${o.steps} steps of ${B} x ${T}` +
    `${o.gradAccum > 1 ? ` x ${o.gradAccum} accum` : ''} = ${tokensPerStep} tokens | train ${train.length} tokens ` +
    `(${loader.windows} sequences), val ${val.length} | backend ${be.name} | GEMM peak ${peak.toFixed(1)} GFLOP/s`);

  // ---------------------------------------------------------------------------------------------------------------------
  // Evaluation, sampling and checkpointing

  const evaluate = (): number | null => {
    if (valSet.length === 0) return null;
    let sum = 0, rows = 0;
    for (const b of valSet) {
      const l = noGrad(() => model.forward(b.ids, b.B, b.T, { targets: b.targets }).loss!.item());
      releaseTape();
      sum += l * b.B;
      rows += b.B;
    }
    return sum / rows;
  };

  // A plain temperature sampler from <|bos|> over the KV cache (the full sampler chain is src/generate/).
  const sample = (n: number, temperature = 0.8): string[] => {
    const out: string[] = [];
    const maxT = Math.min(cfg.maxSeqLen, o.sampleTokens + 1);
    const V = cfg.vocabSize;
    for (let s = 0; s < n; s++) {
      const cache = model.newKVCache(1, maxT);
      const ids: number[] = [];
      let next = tokenizer.bos;
      for (let t = 0; t + 1 < maxT; t++) {
        const logits = model.forwardCached(Int32Array.of(next), 1, 1, cache, { lastOnly: true }); // (1, 1, V)
        let max = -Infinity;
        for (let v = 0; v < V; v++) max = Math.max(max, logits[v]);
        let z = 0;
        const p = new Float64Array(V);
        for (let v = 0; v < V; v++) z += p[v] = Math.exp((logits[v] - max) / temperature);
        let r = sampleRng.next() * z;
        next = V - 1;
        for (let v = 0; v < V; v++) if ((r -= p[v]) <= 0) { next = v; break; }
        if (next === tokenizer.bos || next === tokenizer.eos) break;
        ids.push(next);
      }
      out.push(tokenizer.decode(ids));
    }
    return out;
  };

  const save = (lastLoss: number) => {
    // never replace a good checkpoint with a broken one
    const sq = be.sumSquares(model.flat, model.flat.length);
    if (!Number.isFinite(lastLoss) || !Number.isFinite(sq)) {
      throw new UserError(`not saving step ${step}: the parameters or the loss are not finite`, 'lower --lr or raise --warmup');
    }
    const records = readMetrics(metricsPath);
    const svg = lossCurveSvg({
      title: `${o.preset} pretraining`,
      train: records.filter((r) => typeof r.loss === 'number').map((r) => [r.step, r.loss as number]),
      val: records.filter((r) => typeof r.valLoss === 'number').map((r) => [r.step, r.valLoss as number]),
    });
    writeCheckpointDir(o.out, (dir) => {
      saveModel(dir, model, tokenizer);
      writeFileAtomic(join(dir, 'loss.svg'), svg);
      saveTrainerState(dir, opt, {
        version: 1, step, optimizerStep: opt.t, cursor: loader.cursor, rng: sampleRng.state(), bestValLoss,
        options: Object.fromEntries(RUN_KEYS.map((k) => [k, o[k]])), data: o.data, tokensSeen: step * tokensPerStep,
      });
    }, ['metrics.jsonl']);
  };

  // ---------------------------------------------------------------------------------------------------------------------
  // The training loop

  let stopSignal = false;
  const onSignal = () => { stopSignal = true; };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const progress = new ProgressLine(process.stderr, o.logEvery, print);
  const t0 = performance.now();
  let lastLoss = NaN, lastVal: number | null = null;
  const meter = new StepMeter(flopsPerToken, peak);
  let stopped: PretrainResult['stopped'] = 'steps';
  const schedule = { lrMax: o.lr, lrMin: o.minLr, warmup: o.warmup, total: o.steps, decay: o.decay };
  try {
    while (step < o.steps) {
      if (o.evalEvery > 0 && step % o.evalEvery === 0 && valSet.length > 0) {
        lastVal = evaluate();
        if (lastVal !== null) {
          bestValLoss = bestValLoss === null ? lastVal : Math.min(bestValLoss, lastVal);
          appendMetrics(metricsPath, { step, valLoss: lastVal });
          progress.log(`step ${step}: val loss ${lastVal.toFixed(4)}`);
        }
      }
      if (o.sampleEvery > 0 && step > 0 && step % o.sampleEvery === 0) {
        for (const s of sample(2)) progress.log(`step ${step} sample: ${JSON.stringify(s)}`);
      }

      // ---- one optimizer step: gradient accumulation over gradAccum micro-batches
      const ts = performance.now();
      const lr = lrAt(step, schedule);
      model.zeroGrad();
      let loss = 0;
      for (let micro = 0; micro < o.gradAccum; micro++) {
        const b = loader.next();
        const l = model.forward(b.ids, B, T, { targets: b.targets }).loss!;
        const value = step + 1 === NAN_STEP ? NaN : l.item();
        checkFinite('loss', value, step + 1, lr, `lower --lr (now ${o.lr}) or raise --warmup; the last checkpoint in ${o.out} is untouched`);
        loss += value / o.gradAccum;
        (o.gradAccum > 1 ? mulScalar(l, 1 / o.gradAccum) : l).backward();
        releaseTape();
      }
      const gradNorm = clipAndStep(opt, model.gradFlat, o.clip, lr, step + 1, `lower --lr or --clip; the last checkpoint in ${o.out} is untouched`, be);
      step++;
      lastLoss = loss;

      // ---- log
      const dt = (performance.now() - ts) / 1000;
      const { tokPerSec, mfu, eta } = meter.step(tokensPerStep, dt, o.steps - step);
      appendMetrics(metricsPath, { step, loss, lr, gradNorm, tokPerSec: Math.round(tokPerSec), mfu: +mfu.toFixed(4), time: +((performance.now() - t0) / 1000).toFixed(3) });
      progress.update(stepLine('', step, o.steps, loss, lr, tokPerSec, mfu, dt, eta), step === o.steps);

      // ---- checkpoint, time limit, signals (yield to the event loop once a step so SIGINT/SIGTERM handlers can run)
      await new Promise<void>((resolve) => setImmediate(resolve));
      const outOfTime = o.timeLimit > 0 && (performance.now() - t0) / 60000 >= o.timeLimit;
      if (outOfTime) stopped = 'time';
      if (stopSignal) stopped = 'signal';
      if (step === o.steps || outOfTime || stopSignal) break;
      if (o.saveEvery > 0 && step % o.saveEvery === 0) save(lastLoss);
    }

    // ---- the end: final evaluation and checkpoint
    progress.done();
    if (valSet.length > 0 && step > 0) {
      lastVal = evaluate();
      if (lastVal !== null) {
        bestValLoss = bestValLoss === null ? lastVal : Math.min(bestValLoss, lastVal);
        appendMetrics(metricsPath, { step, valLoss: lastVal });
        print(`step ${step}: val loss ${lastVal.toFixed(4)}`);
      }
    }
    if (step > 0 && Number.isFinite(lastLoss)) save(lastLoss);
    if (stopped !== 'steps') print(`stopped at step ${step} (${stopped === 'time' ? 'time limit' : 'signal'}); resume with the same command`);
    print(`saved ${o.out} (step ${step}, ${formatDuration((performance.now() - t0) / 1000)})`);
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
  return { step, trainLoss: lastLoss, valLoss: lastVal, bestValLoss, stopped };
}
