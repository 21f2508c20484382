// DPO: the policy learns the preferences directly, with no reward model and no sampling during training (Rafailov et al.
// 2023). Loss (eq. 7): -log sigmoid(beta * [(log pi(y_w|x) - log ref(y_w|x)) - (log pi(y_l|x) - log ref(y_l|x))]) on the
// summed log-probabilities of each answer's tokens; the reference is the SFT model, frozen. --loss ipo uses IPO's squared
// loss instead (src/train/preferences.ts says why one would). DPO lowers the likelihood of the rejected answers and, on
// small models, of the chosen ones too: the mass goes to tokens neither answer uses, and samples fill with junk (seen on
// our tiny test model: 6 to 43 of 48 answers with stray bytes). --sft-weight adds the SFT loss of the chosen answers
// (mean -log p per token), which holds their likelihood up: RPO (Pang et al. 2024, "Iterative Reasoning Preference
// Optimization", eq. 3; TRL's rpo_alpha).
//
//   chatwright dpo --init runs/demo/sft --data runs/demo/feedback/prefs.jsonl --out runs/demo/dpo --steps 100      # tiny
//   chatwright dpo --init runs/full/sft --data pairs.jsonl --out runs/full/dpo --steps 1000 --beta 0.1 --lr 5e-6
//
// The reference log-probabilities of every pair are computed once at the start (the reference never changes), so a
// step costs one forward and backward of the policy. Logged per step as TRL's DPOTrainer names them: the implicit reward
// margin beta * h, the preference accuracy (margin > 0), the chosen and rejected implicit rewards. Evaluated: the same on
// held-out pairs, and the KL from the reference on the policy's own answers to held-out prompts (k1 estimator: the mean
// over sampled answers of sum_t log pi - log ref; Schulman, "Approximating KL divergence", 2020).
//
// Resume is exact: the pairs of step s are a pure function of (pairs, seed, s).
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { getBackend, setBackend, releaseTape, add, mulScalar, sum, gatherRows } from '../tensor/index.js';
import type { GPT } from '../model/gpt.js';
import { loadModel } from '../model/checkpoint.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { AdamW, checkFinite, clipAndStep } from '../train/optim.js';
import { lrAt } from '../train/schedule.js';
import { filterMetrics } from '../train/metrics.js';
import { rowsForStep } from '../train/demos.js';
import { answerLogprobs, answerRow, dpoLoss, fits, logprobRows, padBatch, type AnswerRow, type DPOLoss } from '../train/preferences.js';
import {
  METRICS, checkTrainingOptions, mergeOptions, mfuFigures, openRun, restoreOptimizer, runLoop, type RunOptions, stepBudget, saveCheckpoint,
  type EvalResult, type StopReason, checkPrecision, backendLabel,
} from '../train/loop.js';
import type { PromptPreferences } from '../feedback/index.js';
import type { Message } from '../tokenizer/index.js';
import { preferenceSplit } from './reward.js';
import { klFromReference } from './rollout.js';

// -----------------------------------------------------------------------------------------------------------------------
// Options

export interface DPOOptions extends RunOptions {
  init: string;              // the SFT model: the policy's start
  ref: string | null;        // the frozen reference (default: --init)
  data: string;              // preference pairs or K-way rankings (every pair of a ranking)
  val: string | null;        // held-out preferences; default 1 in 10 prompts of --data
  out: string;
  steps: number;
  batchSize: number;         // pairs per step
  beta: number;              // strength of the pull towards the reference
  loss: DPOLoss;
  sftWeight: number;         // + this times the SFT loss of the chosen answers (RPO); 0: plain DPO / IPO
  klPrompts: number;         // held-out prompts answered by the policy for the KL estimate (0: none)
  klTokens: number;          // new tokens per answer for the KL estimate
  peakGflops: number;
}

const DEFAULTS: Omit<DPOOptions, 'init' | 'data' | 'out'> = {
  ref: null, val: null, steps: 200, batchSize: 8, beta: 0.1, loss: 'sigmoid', sftWeight: 0, lr: 1e-4, minLr: 1e-5, warmup: 10,
  decay: 'cosine', weightDecay: 0, beta1: 0.9, beta2: 0.95, clip: 1, evalEvery: 50, klPrompts: 8, klTokens: 64, saveEvery: 100,
  seed: 1337, resume: true, backend: null, precision: 'fp32', timeLimit: 0, budget: 0, peakGflops: 0, logEvery: 10,
};
const RUN_KEYS = ['precision', 'init', 'ref', 'data', 'val', 'steps', 'budget', 'batchSize', 'beta', 'loss', 'sftWeight', 'lr', 'minLr', 'warmup', 'decay', 'weightDecay',
  'beta1', 'beta2', 'clip', 'evalEvery', 'klPrompts', 'klTokens', 'saveEvery', 'seed'] as const;

export function resolveDPOOptions(given: Partial<DPOOptions>, saved: Partial<DPOOptions> = {}): DPOOptions {
  const o = mergeOptions('dpo', DEFAULTS as DPOOptions, given, saved, ['init', 'data', 'out']);
  if (!o.init) throw new UserError('dpo: --init is required', 'start from the SFT model, e.g. --init runs/demo/sft');
  if (!o.data) throw new UserError('dpo: --data is required', 'give preference pairs (JSONL) or rank answers first (`chatwright rank`)');
  if (!o.out) throw new UserError('dpo: --out is required', 'e.g. --out runs/demo/dpo');
  checkTrainingOptions('dpo', o, { steps: o.steps, batchSize: o.batchSize, klTokens: o.klTokens });
  if (!(o.beta > 0 && Number.isFinite(o.beta))) throw new UserError(`dpo: beta must be > 0, got ${o.beta}`, 'the DPO paper uses 0.1 to 0.5');
  if (!(o.sftWeight >= 0)) throw new UserError(`dpo: sft-weight must be >= 0, got ${o.sftWeight}`);
  if (o.loss !== 'sigmoid' && o.loss !== 'ipo') throw new UserError(`dpo: loss must be sigmoid or ipo, got ${o.loss}`);
  if (!(Number.isInteger(o.klPrompts) && o.klPrompts >= 0)) throw new UserError(`dpo: kl-prompts must be an integer >= 0, got ${o.klPrompts}`);
  return o;
}

export interface DPOResult {
  step: number; trainLoss: number; stopped: StopReason;
  eval: { loss: number; accuracy: number; margin: number; kl: number | null } | null;
}

// -----------------------------------------------------------------------------------------------------------------------
// Pairs as rows, with their reference log-probabilities

interface Pairs { chosen: AnswerRow[]; rejected: AnswerRow[]; refChosen: Float64Array; refRejected: Float64Array; prompts: Message[][]; dropped: number }

function encodePairs(groups: PromptPreferences[], tok: Tokenizer, maxT: number, ref: GPT): Pairs {
  const chosen: AnswerRow[] = [], rejected: AnswerRow[] = [];
  let dropped = 0;
  for (const g of groups) {
    const rows = g.responses.map((a) => answerRow(tok, g.prompt, a));
    for (const { chosen: c, rejected: r } of g.pairs) {
      if (fits(rows[c], maxT) && fits(rows[r], maxT)) {
        chosen.push(rows[c]);
        rejected.push(rows[r]);
      } else {
        dropped++;
      }
    }
  }
  return {
    chosen, rejected, dropped, prompts: groups.map((g) => g.prompt),
    refChosen: logprobRows(ref, chosen, tok.pad), refRejected: logprobRows(ref, rejected, tok.pad),
  };
}

export async function trainDPO(given: Partial<DPOOptions> & { init: string; data: string; out: string },
  print: (line: string) => void = console.log): Promise<DPOResult> {
  // -----------------------------------------------------------------------------------------------------------------------
  // Resume or fresh start; policy, reference, preferences
  const saved = openRun(given.out, 'dpo', given.resume,
    { defaults: DEFAULTS, resolve: (s) => resolveDPOOptions({ init: given.init, data: given.data, out: given.out }, s) });
  const o = resolveDPOOptions(given, saved ? (saved.json.options as Partial<DPOOptions>) : {});
  if (o.backend) setBackend(o.backend);
  checkPrecision('dpo', o.precision); // before anything slow: a clear error where bf16 cannot run
  const be = getBackend();
  const split = preferenceSplit(o.data, o.val);

  const l = loadModel(saved ? o.out : o.init);
  if (!l.tokenizer) throw new UserError(`no tokenizer in ${saved ? o.out : o.init}`, 'the model folder needs tokenizer.json (chatwright sft saves it)');
  const model = l.model, tokenizer = l.tokenizer;
  if (model.config.scalarHead) throw new UserError(`${o.init} is a reward/value model`, 'DPO trains a language model: --init the SFT model');
  const ref = loadModel(o.ref ?? o.init).model;
  if (ref.config.vocabSize !== model.config.vocabSize || ref.config.scalarHead) {
    throw new UserError(`the reference ${o.ref ?? o.init} does not match the policy's vocabulary`, 'use the SFT model the policy started from');
  }
  const maxT = model.config.maxSeqLen;
  const train = encodePairs(split.train, tokenizer, maxT, ref), heldout = encodePairs(split.heldout, tokenizer, maxT, ref);
  const P = train.chosen.length;
  if (P === 0) throw new UserError(`no pair in ${o.data} fits the model's context of ${maxT} tokens`, 'give more pairs, or shorter ones');

  const opt = new AdamW(model, { beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  let step = 0;
  if (saved) step = restoreOptimizer(opt, saved, o.out);
  else filterMetrics(join(o.out, METRICS), () => false);
  const B = Math.min(o.batchSize, P);
  const meanLen = train.chosen.reduce((a, r) => a + r.ids.length, 0) / P;
  const mfu = mfuFigures(model, Math.round(2 * B * meanLen), Math.round(meanLen), o.peakGflops, o.precision);

  print(model.summary());
  print(`${saved ? `resuming ${o.out} at step ${step}` : `new DPO run in ${o.out} from ${o.init}`} | reference ${o.ref ?? o.init} | ` +
    `${o.steps} steps of ${B} pairs | beta ${o.beta} | loss ${o.loss}${o.sftWeight > 0 ? ` + ${o.sftWeight} x SFT loss of the chosen` : ''} | backend ${backendLabel(be.name, o.precision)}`);
  print(`preferences: ${P} pairs for training, ${heldout.chosen.length} held out` +
    `${train.dropped + heldout.dropped > 0 ? `; ${train.dropped + heldout.dropped} pairs longer than the context dropped` : ''}`);

  // -----------------------------------------------------------------------------------------------------------------------
  // Evaluation: held-out pairs, and the KL from the reference on the policy's own answers

  const pairStats = (p: Pairs) => {
    const pc = logprobRows(model, p.chosen, tokenizer.pad), pr = logprobRows(model, p.rejected, tokenizer.pad);
    let loss = 0, right = 0, margin = 0;
    for (let i = 0; i < pc.length; i++) {
      const h = pc[i] - p.refChosen[i] - (pr[i] - p.refRejected[i]);
      loss += o.loss === 'ipo' ? (h - 1 / (2 * o.beta)) ** 2 : Math.log1p(Math.exp(-Math.abs(o.beta * h))) + Math.max(0, -o.beta * h);
      right += h > 0 ? 1 : 0;
      margin += o.beta * h;
    }
    return { loss: loss / pc.length, accuracy: right / pc.length, margin: margin / pc.length };
  };
  const evaluate = (): EvalResult | null => {
    if (heldout.chosen.length === 0) return null;
    const s = pairStats(heldout);
    const kl = o.klPrompts > 0 ? klFromReference(model, ref, tokenizer, heldout.prompts.slice(0, o.klPrompts), o.klTokens, o.seed) : null;
    return {
      record: { valLoss: s.loss, valAccuracy: s.accuracy, valMargin: s.margin, ...(kl === null ? {} : { kl }) },
      line: `held-out loss ${s.loss.toFixed(4)}, accuracy ${(100 * s.accuracy).toFixed(1)}%, margin ${s.margin.toFixed(3)}` +
        `${kl === null ? '' : `, KL to reference ${kl.toFixed(3)} nats per answer`}`,
    };
  };
  const save = (step: number, loss: number) => saveCheckpoint({
    out: o.out, step, loss, model, tokenizer, opt, title: `DPO (${o.loss}, beta ${o.beta})`,
    state: { stage: 'dpo', options: Object.fromEntries(RUN_KEYS.map((k) => [k, o[k]])), pairs: P },
  });

  // -----------------------------------------------------------------------------------------------------------------------
  // The training loop: B pairs, chosen rows then rejected rows in one batch

  const schedule = { lrMax: o.lr, lrMin: o.minLr, warmup: o.warmup, total: o.steps, decay: o.decay };
  const r = await runLoop({
    stage: 'dpo', precision: o.precision, out: o.out, step, steps: o.steps, timeLimit: o.timeLimit, evalEvery: o.evalEvery, saveEvery: o.saveEvery,
    logEvery: o.logEvery, budget: stepBudget(o, schedule), ...mfu, print, evaluate, save,
    trainStep: (step) => {
      const lr = lrAt(step, schedule);
      const idx = rowsForStep(P, B, o.seed, step);
      const batch = padBatch([...idx.map((i) => train.chosen[i]), ...idx.map((i) => train.rejected[i])], tokenizer.pad);
      const refLp = Float64Array.from([...idx.map((i) => train.refChosen[i]), ...idx.map((i) => train.refRejected[i])]);
      model.zeroGrad();
      const lp = answerLogprobs(model, batch); // (2B)
      const d = dpoLoss(lp, refLp, o.beta, o.loss), margins = d.margins;
      let chosenTokens = 0;
      for (let i = 0; i < B; i++) chosenTokens += batch.answerTokens[i];
      const l = o.sftWeight > 0
        ? add(d.loss, mulScalar(sum(gatherRows(lp.view([2 * B, 1]), Int32Array.from({ length: B }, (_, i) => i))), -o.sftWeight / chosenTokens))
        : d.loss;
      const loss = l.item();
      checkFinite('loss', loss, step + 1, lr, `lower --lr (now ${o.lr}); the last checkpoint in ${o.out} is untouched`);
      let chosenReward = 0, rejectedReward = 0;
      for (let i = 0; i < B; i++) {
        chosenReward += o.beta * (lp.data[i] - refLp[i]);
        rejectedReward += o.beta * (lp.data[B + i] - refLp[B + i]);
      }
      l.backward();
      releaseTape();
      const gradNorm = clipAndStep(opt, model.gradFlat, o.clip, lr, step + 1, `lower --lr or --clip; the last checkpoint in ${o.out} is untouched`, be);
      const margin = margins.reduce((a, x) => a + x, 0) / B, accuracy = margins.filter((x) => x > 0).length / B;
      return {
        loss, lr, tokens: batch.B * batch.T,
        record: { gradNorm, margin, accuracy, chosenReward: chosenReward / B, rejectedReward: rejectedReward / B },
        show: `margin ${margin.toFixed(3)} | acc ${(100 * accuracy).toFixed(0)}%`,
      };
    },
  });
  const e = r.eval as Record<string, number> | null;
  return {
    step: r.step, trainLoss: r.loss, stopped: r.stopped,
    eval: e && { loss: e.valLoss, accuracy: e.valAccuracy, margin: e.valMargin, kl: e.kl ?? null },
  };
}
