// Supervised fine-tuning: a pretrained base model learns to answer in the chat template from demonstration dialogues.
// The loss is the cross-entropy of the ASSISTANT's tokens only (the chat template's mask), averaged over them; the
// prompt tokens are context, never targets (InstructGPT, Ouyang et al. 2022, section 3.5; nanochat `chat_sft.py`).
//
//   chatwright sft --init runs/tiny/base --data chinese-poetry --limit 5000 --out runs/tiny/sft --steps 100   # tiny: ~1 min
//   chatwright sft --init runs/full/base --data demos.jsonl --out runs/full/sft --steps 2000                  # your data
//
// Reads top to bottom like src/stages/pretrain.ts, whose nouns it shares (optimizer, schedule, metrics, checkpoint
// folder, progress line): options, demonstrations (packed into rows of T + 1 tokens, src/train/demos.ts), model and
// optimizer (or resume), the loop, then the evaluation of base and SFT model on the held-out prompts (src/stages/eval.ts).
//
// Resume is exact: the batches of step s are a pure function of (packed rows, seed, s), and the checkpoint holds the
// parameters, AdamW moments and step; a fingerprint of the packed rows guards against resuming on other data.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { getBackend, setBackend, noGrad, releaseTape, mulScalar } from '../tensor/index.js';
import { GPT } from '../model/gpt.js';
import { configFromPreset } from '../model/config.js';
import { loadModel } from '../model/checkpoint.js';
import { Tokenizer } from '../tokenizer/index.js';
import { AdamW, checkFinite, clipAndStep } from '../train/optim.js';
import { lrAt } from '../train/schedule.js';
import { filterMetrics } from '../train/metrics.js';
import { METRICS, checkTrainingOptions, mergeOptions, mfuFigures, openRun, restoreOptimizer, runLoop, type RunOptions, stepBudget, saveCheckpoint, type EvalResult, type StopReason, checkPrecision, backendLabel } from '../train/loop.js';
import {
  builtinDemos, demosToJsonl, fnv1a, isBuiltinDemos, makeBatch, packConversations, readDemos, rowsForStep,
  type Conversation, type EvalPrompt, type PackedRows, type PackReport, type SFTBatch,
} from '../train/demos.js';
import { generate } from '../generate/index.js';
import { HELDOUT_FILE, PROMPTS_FILE, promptsToJsonl, formatTable, runEval, type EvalReport } from './eval.js';

// -----------------------------------------------------------------------------------------------------------------------
// Options

export interface SFTOptions extends RunOptions {
  init: string | null;       // pretrained model folder; null: a fresh model from --preset (with a warning)
  tokenizer: string | null;  // from scratch only: the tokenizer folder
  preset: 'tiny' | 'small' | 'medium'; // from scratch only
  data: string;              // chinese-poetry, wordnet, or a JSONL file of {"messages": [...]}
  val: string | null;        // held-out JSONL; default: the built-in held-out split, or 1 in 20 dialogues of --data
  limit: number | null;      // built-in sets: corpus entries to read
  out: string;               // the checkpoint folder, e.g. runs/<name>/sft
  steps: number;
  batchSize: number;         // rows of T tokens per micro-batch
  seqLen: number | null;     // T; default: min(256, the model's context)
  gradAccum: number;
  pack: boolean;             // several dialogues per row (false: one per row, padded)
  overflow: 'truncate' | 'skip';
  evalBatches: number;       // batches of held-out rows per evaluation
  sampleEvery: number;       // greedy answer to the first held-out prompt every N steps; 0: never
  maxPrompts: number;        // evaluation prompts per task at the end
  evalAtEnd: boolean;        // evaluate base (--init) and SFT model at the end, print the table, write <out>/eval.json
  peakGflops: number;
}

const DEFAULTS: Omit<SFTOptions, 'data' | 'out'> = {
  init: null, tokenizer: null, preset: 'tiny', val: null, limit: null, steps: 300, batchSize: 8, seqLen: null, gradAccum: 1,
  pack: true, overflow: 'truncate', lr: 1e-3, minLr: 1e-4, warmup: 20, decay: 'cosine', weightDecay: 0, beta1: 0.9,
  beta2: 0.95, clip: 1.0, evalEvery: 50, evalBatches: 8, sampleEvery: 0, saveEvery: 100, maxPrompts: 50, evalAtEnd: true,
  seed: 1337, resume: true, backend: null, precision: 'fp32', timeLimit: 0, budget: 0, peakGflops: 0, logEvery: 10,
};

// Saved with a checkpoint and taken again on resume unless given anew.
const RUN_KEYS = ['precision', 'init', 'tokenizer', 'preset', 'data', 'val', 'limit', 'steps', 'budget', 'batchSize', 'seqLen', 'gradAccum', 'pack',
  'overflow', 'lr', 'minLr', 'warmup', 'decay', 'weightDecay', 'beta1', 'beta2', 'clip', 'evalEvery', 'evalBatches',
  'sampleEvery', 'saveEvery', 'maxPrompts', 'seed'] as const;

export function resolveSFTOptions(given: Partial<SFTOptions>, saved: Partial<SFTOptions> = {}): SFTOptions {
  const o = mergeOptions('sft', DEFAULTS as SFTOptions, given, saved, ['data', 'out']);
  if (!o.data) throw new UserError('sft: --data is required', 'use --data chinese-poetry, wordnet, or a JSONL file of {"messages": [...]}');
  if (!o.out) throw new UserError('sft: --out is required', 'e.g. --out runs/tiny/sft');
  checkTrainingOptions('sft', o, { steps: o.steps, batchSize: o.batchSize, gradAccum: o.gradAccum, evalBatches: o.evalBatches });
  if (o.overflow !== 'truncate' && o.overflow !== 'skip') throw new UserError(`sft: overflow must be truncate or skip, got ${o.overflow}`);
  return o;
}

export interface SFTResult {
  step: number; trainLoss: number; valLoss: number | null; stopped: StopReason;
  data: { train: PackReport; heldout: PackReport | null };
  eval: EvalReport | null;
}

// The demonstrations: train dialogues, held-out dialogues, held-out prompts with references.
export function loadDemonstrations(o: Pick<SFTOptions, 'data' | 'val' | 'limit' | 'maxPrompts'>): { train: Conversation[]; heldout: Conversation[]; prompts: EvalPrompt[] } {
  if (isBuiltinDemos(o.data)) {
    const set = builtinDemos(o.data, { limit: o.limit ?? undefined, maxPrompts: o.maxPrompts });
    return { train: set.train, heldout: o.val ? readDemos(o.val) : set.heldout, prompts: o.val ? [] : set.prompts };
  }
  const all = readDemos(o.data);
  if (o.val) return { train: all, heldout: readDemos(o.val), prompts: [] };
  // 1 in 20 dialogues held out, chosen by a hash of the dialogue (stable when lines are added or reordered)
  if (all.length < 20) return { train: all, heldout: [], prompts: [] };
  const held = (c: Conversation) => fnv1a(JSON.stringify(c.messages)) % 20 === 0;
  return { train: all.filter((c) => !held(c)), heldout: all.filter(held), prompts: [] };
}

function fingerprint(p: PackedRows): string {
  let h = 0x811c9dc5;
  for (const r of p.rows) for (let t = 0; t < r.len; t++) h = Math.imul(h ^ (r.ids[t] * 2 + r.mask[t]), 0x01000193) >>> 0;
  return `${p.rows.length}:${p.T}:${h.toString(16)}`;
}

function describe(report: PackReport, T: number): string {
  return `${report.conversations} dialogues -> ${report.rows} rows of ${T + 1} tokens (${(100 * report.fill).toFixed(0)}% filled, ` +
    `${report.assistantTokens} assistant tokens); ${report.truncated} truncated, ${report.skipped} skipped (longer than the context)`;
}

export async function sft(given: Partial<SFTOptions> & { data: string; out: string }, print = console.log): Promise<SFTResult> {
  // ---------------------------------------------------------------------------------------------------------------------
  // Resume or fresh start
  const saved = openRun(given.out, 'sft', given.resume,
    { required: ['optimizerStep'], defaults: DEFAULTS, resolve: (s) => resolveSFTOptions({ data: given.data, out: given.out }, s) });
  const o = resolveSFTOptions(given, saved ? (saved.json.options as Partial<SFTOptions>) : {});
  if (o.backend) setBackend(o.backend);
  checkPrecision('sft', o.precision); // before anything slow: a clear error where bf16 cannot run
  const be = getBackend();

  // the demonstrations are read and checked first: a malformed line fails before any model is loaded
  const demos = loadDemonstrations(o);

  // ---------------------------------------------------------------------------------------------------------------------
  // Model and tokenizer: the checkpoint's (resume), the pretrained one (--init), or a fresh one (warned)
  let model: GPT;
  let tokenizer: Tokenizer;
  if (saved) {
    const l = loadModel(o.out);
    model = l.model;
    tokenizer = l.tokenizer!;
  } else if (o.init) {
    const l = loadModel(o.init);
    if (!l.tokenizer) throw new UserError(`no tokenizer in ${o.init}`, 'the base model folder needs tokenizer.json (chatwright pretrain saves it)');
    model = l.model;
    tokenizer = l.tokenizer;
  } else {
    if (!o.tokenizer || !existsSync(join(o.tokenizer, 'tokenizer.json')))
      throw new UserError('sft from scratch needs --tokenizer DIR', 'better: start from a pretrained model with --init runs/<name>/base');
    print('warning: no --init given: fine-tuning a randomly initialised model. It will learn the format, not the language; ' +
      'pretrain first (`chatwright pretrain`) and pass --init');
    tokenizer = Tokenizer.load(o.tokenizer);
    model = GPT.create(configFromPreset(o.preset, tokenizer.vocabSize), o.seed);
  }
  const cfg = model.config;
  if (cfg.vocabSize < tokenizer.vocabSize) throw new UserError(`the model's vocabulary (${cfg.vocabSize}) is smaller than its tokenizer's (${tokenizer.vocabSize})`);
  const T = Math.min(o.seqLen ?? 256, cfg.maxSeqLen);
  if (o.seqLen && o.seqLen > cfg.maxSeqLen) print(`note: --seq-len ${o.seqLen} is longer than the model's context; using ${T}`);
  const B = o.batchSize;

  // ---------------------------------------------------------------------------------------------------------------------
  // Demonstrations: packed into rows of T + 1 tokens; overlong dialogues counted, never dropped silently
  const packed = packConversations(demos.train, tokenizer, T, { pack: o.pack, overflow: o.overflow });
  if (packed.rows.length === 0) throw new UserError(`no training dialogue fits a context of ${T} tokens`, 'raise --seq-len or shorten the dialogues');
  const heldPacked = demos.heldout.length ? packConversations(demos.heldout, tokenizer, T, { pack: true, overflow: o.overflow }) : null;
  const heldBatches: { batch: SFTBatch; rows: number; weight: number }[] = [];
  if (heldPacked) {
    for (let i = 0; i < heldPacked.rows.length && heldBatches.length < o.evalBatches; i += B) {
      const which = Array.from({ length: Math.min(B, heldPacked.rows.length - i) }, (_, j) => i + j);
      const batch = makeBatch(heldPacked, which);
      heldBatches.push({ batch, rows: which.length, weight: batch.weights.reduce((a, w) => a + w, 0) });
    }
  }
  const fp = fingerprint(packed);
  if (saved && saved.json.dataFingerprint !== fp) {
    throw new UserError(`the demonstrations differ from those the checkpoint in ${o.out} was trained on`,
      'resume with the same --data, --limit and --seq-len, or start over with --no-resume');
  }
  // the held-out set travels with the model, so `chatwright eval` scores exactly what SFT did not train on
  writeFileAtomic(join(o.out, HELDOUT_FILE), demos.heldout.length ? demosToJsonl(demos.heldout) : '');
  writeFileAtomic(join(o.out, PROMPTS_FILE), promptsToJsonl(demos.prompts));

  // ---------------------------------------------------------------------------------------------------------------------
  // Optimizer and state
  const opt = new AdamW(model, { beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  let step = 0;
  if (saved) step = restoreOptimizer(opt, saved, o.out);
  else filterMetrics(join(o.out, METRICS), () => false);
  const mfu = mfuFigures(model, B * T, T, o.peakGflops, o.precision);

  print(model.summary());
  print(`${saved ? `resuming ${o.out} at step ${step}` : `new SFT run in ${o.out} from ${o.init ?? 'scratch'}`} | ${o.steps} steps of ` +
    `${B} x ${T}${o.gradAccum > 1 ? ` x ${o.gradAccum} accum` : ''} | backend ${backendLabel(be.name, o.precision)}`);
  print(`train: ${describe(packed.report, T)}`);
  if (heldPacked) print(`held-out: ${describe(heldPacked.report, T)}; ${demos.prompts.length} evaluation prompts`);

  // ---------------------------------------------------------------------------------------------------------------------
  // Evaluation (held-out loss over all assistant tokens), sampling, checkpointing

  const evaluate = (): EvalResult | null => {
    let sum = 0, weight = 0;
    for (const h of heldBatches) {
      if (h.weight === 0) continue;
      const l = noGrad(() => model.forward(h.batch.ids, h.rows, T, { targets: h.batch.targets, weights: h.batch.weights }).loss!.item());
      releaseTape();
      sum += l * h.weight;
      weight += h.weight;
    }
    if (weight === 0) return null;
    return { record: { valLoss: sum / weight }, line: `held-out loss ${(sum / weight).toFixed(4)}` };
  };

  const sampleAnswer = (): string | null => {
    if (demos.prompts.length === 0) return null;
    const p = demos.prompts[0];
    const ids = tokenizer.renderForCompletion(p.messages);
    const room = cfg.maxSeqLen - ids.length;
    if (room < 1) return null;
    return `${p.messages[p.messages.length - 1].content} -> ${JSON.stringify(generate(model, tokenizer, ids, { maxNewTokens: Math.min(room, 64), temperature: 0 }).text)}`;
  };

  const save = (step: number, loss: number) => saveCheckpoint({
    out: o.out, step, loss, model, tokenizer, opt, title: 'supervised fine-tuning (assistant tokens)', carry: [HELDOUT_FILE, PROMPTS_FILE],
    state: {
      stage: 'sft', options: Object.fromEntries(RUN_KEYS.map((k) => [k, o[k]])),
      dataFingerprint: fp, dataReport: { train: packed.report, heldout: heldPacked?.report ?? null },
    },
  });

  // ---------------------------------------------------------------------------------------------------------------------
  // The training loop (signals, time limit, cadences and checkpoints: src/train/loop.ts). The loss of a step is the mean
  // over ALL its assistant tokens, so each micro-batch's mean is weighted by its share of them (not 1 / gradAccum as in
  // pretraining, where every row counts T tokens).

  const schedule = { lrMax: o.lr, lrMin: o.minLr, warmup: o.warmup, total: o.steps, decay: o.decay };
  const r = await runLoop({
    stage: 'sft', precision: o.precision, out: o.out, step, steps: o.steps, timeLimit: o.timeLimit, evalEvery: o.evalEvery, saveEvery: o.saveEvery,
    sampleEvery: o.sampleEvery, logEvery: o.logEvery, budget: stepBudget(o, schedule), ...mfu, print, evaluate, save,
    sample: () => { const s = sampleAnswer(); return s ? [s] : []; },
    trainStep: (step) => {
      const lr = lrAt(step, schedule);
      const micro: SFTBatch[] = [];
      for (let k = 0; k < o.gradAccum; k++) micro.push(makeBatch(packed, rowsForStep(packed.rows.length, B, o.seed, step * o.gradAccum + k)));
      const w = micro.map((b) => b.weights.reduce((a, x) => a + x, 0));
      const W = w.reduce((a, x) => a + x, 0);
      model.zeroGrad();
      let loss = 0;
      for (let k = 0; k < micro.length; k++) {
        if (w[k] === 0) continue;
        const l = model.forward(micro[k].ids, B, T, { targets: micro[k].targets, weights: micro[k].weights }).loss!;
        const value = l.item();
        checkFinite('loss', value, step + 1, lr, `lower --lr (now ${o.lr}) or raise --warmup; the last checkpoint in ${o.out} is untouched`);
        loss += (value * w[k]) / W;
        (micro.length > 1 ? mulScalar(l, w[k] / W) : l).backward();
        releaseTape();
      }
      const gradNorm = clipAndStep(opt, model.gradFlat, o.clip, lr, step + 1, `lower --lr or --clip; the last checkpoint in ${o.out} is untouched`, be);
      return { loss, lr, tokens: B * T * o.gradAccum, record: { gradNorm, assistantTokens: W } };
    },
  });
  step = r.step;
  const stopped = r.stopped;

  // ---------------------------------------------------------------------------------------------------------------------
  // Evaluation: base model (same chat template) against the SFT model on the held-out prompts
  let report: EvalReport | null = null;
  if (o.evalAtEnd && stopped === 'steps' && (demos.heldout.length > 0 || demos.prompts.length > 0)) {
    const models = [...(o.init ? [{ name: 'base', dir: o.init }] : []), { name: 'sft', dir: o.out }];
    report = runEval({ models, data: o.out, maxPrompts: o.maxPrompts, out: join(o.out, 'eval.json'), log: print });
    print(formatTable(report));
    print(`wrote ${join(o.out, 'eval.json')}`);
  }
  return { step, trainLoss: r.loss, valLoss: r.eval?.valLoss ?? null, stopped, data: { train: packed.report, heldout: heldPacked?.report ?? null }, eval: report };
}
