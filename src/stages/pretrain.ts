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
import { getBackend, setBackend, noGrad, releaseTape, mulScalar } from '../tensor/index.js';
import { GPT } from '../model/gpt.js';
import { configFromPreset, PRESETS, type GPTConfig } from '../model/config.js';
import { loadModel } from '../model/checkpoint.js';
import { Tokenizer } from '../tokenizer/index.js';
import { readManifest, openSplit, splitMemoryLimit, checkTokenIds } from '../train/shards.js';
import { BatchLoader, evalBatches, type Cursor } from '../train/loader.js';
import { AdamW, checkFinite, clipAndStep } from '../train/optim.js';
import { lrAt } from '../train/schedule.js';
import { Rng } from '../util/rng.js';
import { filterMetrics } from '../train/metrics.js';
import { METRICS, checkTrainingOptions, mergeOptions, mfuFigures, openRun, restoreOptimizer, runLoop, type RunOptions, stepBudget, saveCheckpoint, type EvalResult, type StopReason, checkPrecision, backendLabel } from '../train/loop.js';

// -----------------------------------------------------------------------------------------------------------------------
// Options: defaults per preset, overridden by the saved run (on resume), overridden by what the caller gives.

export interface PretrainOptions extends RunOptions {
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
  decayAll: boolean;         // weight decay on norms and embeddings too
  evalBatches: number;
  sampleEvery: number;       // 0: never
  sampleTokens: number;
  peakGflops: number;        // GEMM peak for MFU; 0: measure at start
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
  backend: null, precision: 'fp32', timeLimit: 0, budget: 0, peakGflops: 0, logEvery: 10,
};

// The options saved with a checkpoint and taken again on resume (unless given anew); the rest are per invocation.
const RUN_KEYS = ['precision', 'preset', 'steps', 'budget', 'batchSize', 'seqLen', 'context', 'model', 'gradAccum', 'lr', 'minLr', 'warmup', 'decay',
  'weightDecay', 'decayAll', 'beta1', 'beta2', 'clip', 'evalEvery', 'evalBatches', 'sampleEvery', 'sampleTokens',
  'saveEvery', 'seed'] as const;

export function resolveOptions(given: Partial<PretrainOptions>, saved: Partial<PretrainOptions> = {}): PretrainOptions {
  const preset = (given.preset ?? saved.preset ?? DEFAULTS.preset) as PretrainOptions['preset'];
  if (!(preset in PRESET_TRAINING)) throw new UserError(`unknown preset "${preset}"`, `choose one of: ${Object.keys(PRESETS).join(', ')}`);
  const o = mergeOptions('pretrain', { ...DEFAULTS, ...PRESET_TRAINING[preset] } as PretrainOptions, given, saved, ['data', 'out']);
  o.preset = preset;
  if (!o.data) throw new UserError('pretrain: --data is required', 'prepare shards with `chatwright data prepare` first');
  if (!o.out) throw new UserError('pretrain: --out is required', 'e.g. --out runs/tiny/base');
  checkTrainingOptions('pretrain', o, { steps: o.steps, batchSize: o.batchSize, seqLen: o.seqLen, gradAccum: o.gradAccum, evalBatches: o.evalBatches });
  return o;
}

export interface PretrainResult { step: number; trainLoss: number; valLoss: number | null; bestValLoss: number | null; stopped: StopReason }

// Test hook: CHATWRIGHT_TEST_NAN_STEP=k makes the loss of step k NaN, as a diverging run would.
const NAN_STEP = Number(process.env.CHATWRIGHT_TEST_NAN_STEP ?? -1);

export async function pretrain(given: Partial<PretrainOptions> & { data: string; out: string }, print = console.log): Promise<PretrainResult> {
  // ---------------------------------------------------------------------------------------------------------------------
  // Resume or fresh start: the saved run's options are the defaults of a resumed one.
  const saved = openRun(given.out, 'pretrain', given.resume,
    { required: ['optimizerStep', 'cursor', 'rng'], defaults: DEFAULTS, resolve: (s) => resolveOptions({ data: given.data, out: given.out }, s) });
  const o = resolveOptions(given, saved ? (saved.json.options as Partial<PretrainOptions>) : {});
  if (o.backend) setBackend(o.backend);
  checkPrecision('pretrain', o.precision); // before anything slow: a clear error where bf16 cannot run
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
  const train = openSplit(o.data, 'train', manifest, splitMemoryLimit(), print); // streamed when larger than memory allows
  const val = openSplit(o.data, 'val', manifest, splitMemoryLimit(), print);
  if (train.length === 0) throw new UserError(`the training split in ${o.data} is empty`, 'prepare the data again from a non-empty corpus');
  checkTokenIds(train, manifest.vocabSize);

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
  if (saved) {
    step = restoreOptimizer(opt, saved, o.out);
    cursor = saved.json.cursor as Cursor;
    sampleRng = Rng.fromState(saved.json.rng as number[]);
    bestValLoss = (saved.json.bestValLoss as number | null) ?? null;
  } else {
    if (existsSync(join(o.out, 'trainer_state.json'))) print(`starting over (--no-resume): the checkpoint in ${o.out} is replaced at the first save`);
    filterMetrics(join(o.out, METRICS), () => false);
  }
  const loader = new BatchLoader(train, B, T, o.seed, cursor);
  const valSet = evalBatches(val, B, T, o.evalBatches);
  const mfu = mfuFigures(model, B * T, T, o.peakGflops, o.precision); // the GEMM peak of this machine at a training shape

  print(model.summary());
  print(`${saved ? `resuming ${o.out} at step ${step}` : `new run in ${o.out}`} | ${o.steps} steps of ${B} x ${T}` +
    `${o.gradAccum > 1 ? ` x ${o.gradAccum} accum` : ''} = ${tokensPerStep} tokens | train ${train.length} tokens ` +
    `(${loader.windows} sequences), val ${val.length} | backend ${backendLabel(be.name, o.precision)} | ${o.precision === 'bf16' ? 'bf16 ' : ''}GEMM peak ${mfu.peakGflops.toFixed(1)} GFLOP/s`);

  // ---------------------------------------------------------------------------------------------------------------------
  // Evaluation, sampling and checkpointing

  const evaluate = (): EvalResult | null => {
    if (valSet.length === 0) return null;
    let sum = 0, rows = 0;
    for (const b of valSet) {
      const l = noGrad(() => model.forward(b.ids, b.B, b.T, { targets: b.targets }).loss!.item());
      releaseTape();
      sum += l * b.B;
      rows += b.B;
    }
    const valLoss = sum / rows;
    bestValLoss = bestValLoss === null ? valLoss : Math.min(bestValLoss, valLoss);
    return { record: { valLoss }, line: `val loss ${valLoss.toFixed(4)}` };
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

  const save = (step: number, loss: number) => saveCheckpoint({
    out: o.out, step, loss, model, tokenizer, opt, title: `${o.preset} pretraining`,
    state: {
      stage: 'pretrain', cursor: loader.cursor, rng: sampleRng.state(), bestValLoss,
      options: Object.fromEntries(RUN_KEYS.map((k) => [k, o[k]])), data: o.data, tokensSeen: step * tokensPerStep,
    },
  });

  // ---------------------------------------------------------------------------------------------------------------------
  // The training loop: one optimizer step, gradient accumulation over gradAccum micro-batches (signals, time limit,
  // cadences and checkpoints: src/train/loop.ts)

  const schedule = { lrMax: o.lr, lrMin: o.minLr, warmup: o.warmup, total: o.steps, decay: o.decay };
  const r = await runLoop({
    stage: 'pretrain', precision: o.precision, out: o.out, step, steps: o.steps, timeLimit: o.timeLimit, evalEvery: o.evalEvery, saveEvery: o.saveEvery,
    sampleEvery: o.sampleEvery, logEvery: o.logEvery, budget: stepBudget(o, schedule), ...mfu, print, evaluate, save,
    sample: () => sample(2).map((t) => JSON.stringify(t)),
    trainStep: (step) => {
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
      return { loss, lr, tokens: tokensPerStep, record: { gradNorm } };
    },
  });
  return { step: r.step, trainLoss: r.loss, valLoss: r.eval?.valLoss ?? null, bestValLoss, stopped: r.stopped };
}
