// The reward model: a copy of the SFT model whose language-model head is replaced by a scalar head (HF
// *ForSequenceClassification, `score.weight`), trained to score answers the way the people who ranked them did.
// Loss: Bradley-Terry over all K-choose-2 pairs of a prompt in the same batch, each prompt weighted once
// (src/train/preferences.ts; InstructGPT, Ouyang et al. 2022, section 3.5 and eq. 1). The score is read at the last token
// of the answer (its <|eot|>).
//
//   chatwright reward --init runs/demo/sft --data runs/demo/feedback/prefs.jsonl --out runs/demo/rm --steps 150   # tiny
//   chatwright reward --init runs/full/sft --data my-pairs.jsonl --out runs/full/rm --steps 2000 --batch-size 16
//
// Then, as InstructGPT does before RL, the scores are normalised by a bias so that the SFT model's own answers (the
// answers of the preference data, sampled from it) average 0; the bias is saved as reward.json beside the model and
// applied by RewardModel.score. Reported: held-out pair accuracy (the share of held-out pairs scored in the people's
// order; InstructGPT's 6B reward model reached 72.4% on its labellers' held-out comparisons).
//
// Resume is exact: the prompts of step s are a pure function of (groups, seed, s); the checkpoint holds the parameters,
// the AdamW moments and the step.
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fsx.js';
import { getBackend, setBackend, releaseTape } from '../tensor/index.js';
import { GPT } from '../model/gpt.js';
import { loadModel } from '../model/checkpoint.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { REWARD_JSON, RewardModel } from '../train/reward-model.js';
import { AdamW, checkFinite, clipAndStep } from '../train/optim.js';
import { lrAt } from '../train/schedule.js';
import { filterMetrics } from '../train/metrics.js';
import { rowsForStep } from '../train/demos.js';
import {
  answerRow, bradleyTerryLoss, fits, lastTokenScores, padBatch, scoreRows, type AnswerRow,
} from '../train/preferences.js';
import {
  METRICS, checkTrainingOptions, mergeOptions, mfuFigures, openRun, restoreOptimizer, runLoop, type RunOptions, stepBudget, saveCheckpoint,
  type EvalResult, type StopReason, checkPrecision, backendLabel,
} from '../train/loop.js';
import { labellerScore, loadPreferences, splitByPrompt, type Judge, type PromptPreferences } from '../feedback/index.js';
import { sampleAnswers } from './rollout.js';

// -----------------------------------------------------------------------------------------------------------------------
// Options

export interface RewardOptions extends RunOptions {
  init: string;              // the SFT model the reward model starts from
  data: string;              // preferences: JSONL of pairs or K-way rankings, or a preference store folder
  val: string | null;        // held-out preferences; default: 1 in 10 prompts of --data, chosen by a hash of the prompt
  out: string;
  steps: number;
  batchSize: number;         // prompts per step (all pairs of each)
  margin: number;            // Bradley-Terry margin (0: plain)
  agreementPrompts: number;  // prompts the SFT model answers afresh at the end, to compare the RM with the labeller (0: none)
  peakGflops: number;
}

const DEFAULTS: Omit<RewardOptions, 'init' | 'data' | 'out'> = {
  val: null, steps: 200, batchSize: 8, margin: 0, agreementPrompts: 32, lr: 3e-4, minLr: 3e-5, warmup: 10, decay: 'cosine', weightDecay: 0,
  beta1: 0.9, beta2: 0.95, clip: 1, evalEvery: 50, saveEvery: 100, seed: 1337, resume: true, backend: null, precision: 'fp32', timeLimit: 0, budget: 0,
  peakGflops: 0, logEvery: 10,
};
const RUN_KEYS = ['precision', 'init', 'data', 'val', 'steps', 'budget', 'batchSize', 'margin', 'agreementPrompts', 'lr', 'minLr', 'warmup', 'decay', 'weightDecay', 'beta1',
  'beta2', 'clip', 'evalEvery', 'saveEvery', 'seed'] as const;

export function resolveRewardOptions(given: Partial<RewardOptions>, saved: Partial<RewardOptions> = {}): RewardOptions {
  const o = mergeOptions('reward', DEFAULTS as RewardOptions, given, saved, ['init', 'data', 'out']);
  if (!o.init) throw new UserError('reward: --init is required', 'start the reward model from the SFT model, e.g. --init runs/demo/sft');
  if (!o.data) throw new UserError('reward: --data is required', 'rank answers first (`chatwright sample`, then `chatwright rank` or `chatwright label`)');
  if (!o.out) throw new UserError('reward: --out is required', 'e.g. --out runs/demo/rm');
  checkTrainingOptions('reward', o, { steps: o.steps, batchSize: o.batchSize });
  if (!(o.margin >= 0)) throw new UserError(`reward: margin must be >= 0, got ${o.margin}`);
  return o;
}

export interface RewardResult {
  step: number; trainLoss: number; valAccuracy: number | null; valLoss: number | null; offset: number; stopped: StopReason;
  labellerAgreement: { rate: number; pairs: number } | null;
  valLabellerAccuracy: number | null; // held-out answers ordered by the simulated labeller without noise (its poem prompts)
}

// The reward model as a judge of the eval table (src/feedback/judge.ts): its normalised score, batched.
export function rewardJudge(dir: string): Judge {
  const rm = RewardModel.load(dir);
  return { name: 'reward model', score: (prompt, answer) => rm.score([{ prompt, answer }])[0], scoreMany: (items) => rm.score(items) };
}

// -----------------------------------------------------------------------------------------------------------------------
// Batches: the prompts of a step, each answer forwarded once, every pair of each prompt

// [chosen, rejected] indexes into rows; truth: the pairs as the simulated labeller orders them without noise, when the
// prompt is one of its poem requests (held-out groups only; null otherwise)
interface EncodedGroup { rows: AnswerRow[]; pairs: [number, number][]; truth: [number, number][] | null }

function encodeGroups(groups: PromptPreferences[], tok: Tokenizer, maxT: number, withTruth = false): { encoded: EncodedGroup[]; droppedPairs: number } {
  let droppedPairs = 0;
  const encoded: EncodedGroup[] = [];
  for (const g of groups) {
    const rows = g.responses.map((a) => answerRow(tok, g.prompt, a));
    const ok = (c: number, r: number) => fits(rows[c], maxT) && fits(rows[r], maxT);
    const pairs = g.pairs.map((p): [number, number] => [p.chosen, p.rejected]).filter(([c, r]) => ok(c, r));
    droppedPairs += g.pairs.length - pairs.length;
    let truth: [number, number][] | null = null;
    const lab = withTruth ? g.responses.map((a) => labellerScore(g.prompt, a)) : [];
    if (lab.length > 0 && lab.every((x) => x !== null)) {
      truth = [];
      for (let i = 0; i < rows.length; i++) for (let j = 0; j < rows.length; j++) if (lab[i]! > lab[j]! && ok(i, j)) truth.push([i, j]);
    }
    if (pairs.length > 0) encoded.push({ rows, pairs, truth });
  }
  return { encoded, droppedPairs };
}

interface PairBatch { rows: AnswerRow[]; chosen: Int32Array; rejected: Int32Array; weights: Float32Array }

function pairBatch(groups: EncodedGroup[]): PairBatch {
  const rows: AnswerRow[] = [], chosen: number[] = [], rejected: number[] = [], weights: number[] = [];
  for (const g of groups) {
    const at = new Map<number, number>(); // answer index in the group -> row in the batch
    const rowOf = (i: number) => {
      if (!at.has(i)) { at.set(i, rows.length); rows.push(g.rows[i]); }
      return at.get(i)!;
    };
    for (const [c, r] of g.pairs) {
      chosen.push(rowOf(c));
      rejected.push(rowOf(r));
      weights.push(1 / (g.pairs.length * groups.length));
    }
  }
  return { rows, chosen: Int32Array.from(chosen), rejected: Int32Array.from(rejected), weights: Float32Array.from(weights) };
}

function fingerprint(groups: EncodedGroup[]): string {
  let h = 0x811c9dc5;
  for (const g of groups) {
    for (const r of g.rows) for (const id of r.ids) h = Math.imul(h ^ id, 0x01000193) >>> 0;
    for (const [c, r] of g.pairs) h = Math.imul(h ^ (c * 131 + r), 0x01000193) >>> 0;
  }
  return `${groups.length}:${h.toString(16)}`;
}

// The preferences to train on and those held out: --val, else 1 in 10 prompts by a hash of the prompt (stable when lines
// are added or reordered); none held out from fewer than 10 prompts.
export function preferenceSplit(data: string, val: string | null): { train: PromptPreferences[]; heldout: PromptPreferences[] } {
  const all = loadPreferences(data);
  if (val) return { train: all, heldout: loadPreferences(val) };
  return all.length >= 10 ? splitByPrompt(all, 0.1) : { train: all, heldout: [] };
}

export async function trainReward(given: Partial<RewardOptions> & { init: string; data: string; out: string },
  print: (line: string) => void = console.log): Promise<RewardResult> {
  // -----------------------------------------------------------------------------------------------------------------------
  // Resume or fresh start; the preferences
  const saved = openRun(given.out, 'reward', given.resume,
    { defaults: DEFAULTS, resolve: (s) => resolveRewardOptions({ init: given.init, data: given.data, out: given.out }, s) });
  const o = resolveRewardOptions(given, saved ? (saved.json.options as Partial<RewardOptions>) : {});
  if (o.backend) setBackend(o.backend);
  checkPrecision('reward', o.precision); // before anything slow: a clear error where bf16 cannot run
  const be = getBackend();
  const split = preferenceSplit(o.data, o.val);

  // -----------------------------------------------------------------------------------------------------------------------
  // Model: the checkpoint's (resume), or the SFT model's trunk under a new scalar head
  let model: GPT, tokenizer: Tokenizer;
  if (saved) {
    const l = loadModel(o.out);
    model = l.model;
    tokenizer = l.tokenizer!;
  } else {
    const l = loadModel(o.init);
    if (!l.tokenizer) throw new UserError(`no tokenizer in ${o.init}`, 'the SFT model folder needs tokenizer.json (chatwright sft saves it)');
    if (l.model.config.scalarHead) throw new UserError(`${o.init} is already a scalar-head model`, 'start the reward model from the SFT model');
    model = GPT.create({ ...l.model.config, scalarHead: true }, o.seed);
    const fresh = model.copyParamsFrom(l.model);
    if (fresh.join() !== 'score.weight') throw new UserError(`${o.init}: could not copy ${fresh.filter((n) => n !== 'score.weight').join(', ')}`);
    tokenizer = l.tokenizer;
  }
  const maxT = model.config.maxSeqLen;
  const train = encodeGroups(split.train, tokenizer, maxT), heldout = encodeGroups(split.heldout, tokenizer, maxT, true);
  if (train.encoded.length === 0) throw new UserError(`no training pair in ${o.data} fits the model's context of ${maxT} tokens`, 'rank more answers, or shorter ones');
  const fp = fingerprint(train.encoded);
  if (saved && saved.json.dataFingerprint !== fp) {
    throw new UserError(`the preferences differ from those the checkpoint in ${o.out} was trained on`, 'resume with the same --data and --val, or start over with --no-resume');
  }

  const opt = new AdamW(model, { beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  let step = 0;
  if (saved) step = restoreOptimizer(opt, saved, o.out);
  else filterMetrics(join(o.out, METRICS), () => false);
  const pairsOf = (g: EncodedGroup[]) => g.reduce((a, x) => a + x.pairs.length, 0);
  const meanTokens = train.encoded.reduce((a, g) => a + g.rows.reduce((b, r) => b + r.ids.length, 0) / g.rows.length, 0) / train.encoded.length;
  const mfu = mfuFigures(model, Math.round(meanTokens * o.batchSize * 2), Math.round(meanTokens), o.peakGflops, o.precision);

  print(model.summary());
  print(`${saved ? `resuming ${o.out} at step ${step}` : `new reward model in ${o.out} from ${o.init}`} | ${o.steps} steps of ` +
    `${o.batchSize} prompts | backend ${backendLabel(be.name, o.precision)}`);
  print(`preferences: ${train.encoded.length} prompts, ${pairsOf(train.encoded)} pairs for training; ${heldout.encoded.length} prompts, ` +
    `${pairsOf(heldout.encoded)} pairs held out${train.droppedPairs + heldout.droppedPairs > 0 ? `; ${train.droppedPairs + heldout.droppedPairs} pairs longer than the context dropped` : ''}`);

  // -----------------------------------------------------------------------------------------------------------------------
  // Evaluation (held-out pair accuracy and loss) and checkpoints (with the normalising bias)

  // accuracy and loss on the people's held-out pairs; truth: the accuracy on the same answers ordered by the simulated
  // labeller without its noise (where the prompts are its poem requests), the figure to hold against the labeller
  const pairAccuracy = (groups: EncodedGroup[]): { accuracy: number; loss: number; truth: number | null; truthPairs: number } | null => {
    if (groups.length === 0) return null;
    let right = 0, n = 0, loss = 0, truthRight = 0, truthPairs = 0;
    for (const g of groups) {
      const r = scoreRows(model, g.rows, tokenizer.pad);
      for (const [c, x] of g.pairs) {
        const d = r[c] - r[x];
        right += d > 0 ? 1 : d === 0 ? 0.5 : 0;
        loss += Math.log1p(Math.exp(-Math.abs(d))) + Math.max(0, -d); // -log sigmoid(d), stable
        n++;
      }
      for (const [c, x] of g.truth ?? []) {
        truthRight += r[c] > r[x] ? 1 : r[c] === r[x] ? 0.5 : 0;
        truthPairs++;
      }
    }
    return { accuracy: right / n, loss: loss / n, truth: truthPairs > 0 ? truthRight / truthPairs : null, truthPairs };
  };
  const evaluate = (): EvalResult | null => {
    const e = pairAccuracy(heldout.encoded);
    return e && {
      record: { valAccuracy: e.accuracy, valLoss: e.loss, ...(e.truth !== null ? { valLabellerAccuracy: e.truth } : {}) },
      line: `held-out pair accuracy ${(100 * e.accuracy).toFixed(1)}%, loss ${e.loss.toFixed(4)}` +
        (e.truth !== null ? `; against the simulated labeller without noise ${(100 * e.truth).toFixed(1)}% of ${e.truthPairs} pairs` : ''),
    };
  };
  // the bias that makes the SFT model's answers (every answer of the training preferences, up to 512) average 0
  const offset = (): number => {
    const rows = train.encoded.flatMap((g) => g.rows).slice(0, 512);
    const r = scoreRows(model, rows, tokenizer.pad);
    return r.reduce((a, x) => a + x, 0) / r.length;
  };
  let lastOffset = 0;
  const save = (step: number, loss: number) => {
    lastOffset = offset();
    saveCheckpoint({
      out: o.out, step, loss, model, tokenizer, opt, title: 'reward model (Bradley-Terry loss over ranked pairs)',
      state: { stage: 'reward', options: Object.fromEntries(RUN_KEYS.map((k) => [k, o[k]])), dataFingerprint: fp },
      extra: (dir) => writeJsonAtomic(join(dir, REWARD_JSON), {
        offset: lastOffset, note: 'scores minus offset average 0 over the answers of the training preferences (InstructGPT)',
      }),
    });
  };

  // -----------------------------------------------------------------------------------------------------------------------
  // The training loop: B prompts, all their pairs, one forward per answer

  const schedule = { lrMax: o.lr, lrMin: o.minLr, warmup: o.warmup, total: o.steps, decay: o.decay };
  const r = await runLoop({
    stage: 'reward', precision: o.precision, out: o.out, step, steps: o.steps, timeLimit: o.timeLimit, evalEvery: o.evalEvery, saveEvery: o.saveEvery,
    logEvery: o.logEvery, budget: stepBudget(o, schedule), ...mfu, print, evaluate, save,
    trainStep: (step) => {
      const lr = lrAt(step, schedule);
      const groups = rowsForStep(train.encoded.length, Math.min(o.batchSize, train.encoded.length), o.seed, step).map((i) => train.encoded[i]);
      const b = pairBatch(groups);
      const batch = padBatch(b.rows, tokenizer.pad);
      model.zeroGrad();
      const scores = lastTokenScores(model, batch); // (rows)
      const l = bradleyTerryLoss(scores, b.chosen, b.rejected, b.weights, o.margin);
      const loss = l.item();
      checkFinite('loss', loss, step + 1, lr, `lower --lr (now ${o.lr}); the last checkpoint in ${o.out} is untouched`);
      let right = 0, gap = 0;
      for (let p = 0; p < b.chosen.length; p++) {
        const d = scores.data[b.chosen[p]] - scores.data[b.rejected[p]];
        right += d > 0 ? 1 : 0;
        gap += d;
      }
      l.backward();
      releaseTape();
      const gradNorm = clipAndStep(opt, model.gradFlat, o.clip, lr, step + 1, `lower --lr or --clip; the last checkpoint in ${o.out} is untouched`, be);
      const accuracy = right / b.chosen.length;
      return {
        loss, lr, tokens: batch.B * batch.T, record: { gradNorm, accuracy, margin: gap / b.chosen.length, pairs: b.chosen.length },
        show: `acc ${(100 * accuracy).toFixed(0)}%`,
      };
    },
  });
  if (r.step > step) print(`reward normalisation: offset ${lastOffset.toFixed(4)} (the mean raw score of the SFT answers)`);

  // -----------------------------------------------------------------------------------------------------------------------
  // Agreement with the simulated labeller on answers neither has seen: 4 fresh answers of the SFT model to each of the
  // prompts that ask for a poem, every pair the labeller tells apart, ordered the same way by the reward model?
  let agreement: RewardResult['labellerAgreement'] = null;
  if (r.stopped === 'steps' && o.agreementPrompts > 0) {
    const prompts = [...split.heldout, ...split.train].map((g) => g.prompt).filter((p) => labellerScore(p, '') !== null).slice(0, o.agreementPrompts);
    if (prompts.length > 0) {
      const sft = loadModel(o.init).model, K = 4;
      const asked = prompts.flatMap((p) => Array.from({ length: K }, () => p));
      const answers = sampleAnswers(sft, tokenizer, asked, asked.map((_, i) => o.seed + 31 * i), 96).map((a) => a.text);
      const rm = new RewardModel(model, tokenizer, lastOffset).score(asked.map((prompt, i) => ({ prompt, answer: answers[i] })));
      const lab = asked.map((p, i) => labellerScore(p, answers[i])!);
      let agree = 0, pairs = 0;
      for (let g = 0; g < prompts.length; g++) {
        for (let i = g * K; i < (g + 1) * K; i++) for (let j = i + 1; j < (g + 1) * K; j++) {
          if (lab[i] === lab[j]) continue;
          pairs++;
          if ((lab[i] - lab[j]) * (rm[i] - rm[j]) > 0) agree++;
        }
      }
      if (pairs > 0) {
        agreement = { rate: agree / pairs, pairs };
        print(`agreement with the simulated labeller on fresh SFT answers: ${(100 * agreement.rate).toFixed(1)}% of ${pairs} pairs ` +
          `(${prompts.length} prompts x ${K} answers)`);
      }
    }
  }
  const ev = r.eval as Record<string, number> | null;
  return {
    step: r.step, trainLoss: r.loss, valAccuracy: ev?.valAccuracy ?? null, valLoss: ev?.valLoss ?? null, offset: lastOffset,
    stopped: r.stopped, labellerAgreement: agreement, valLabellerAccuracy: ev?.valLabellerAccuracy ?? null,
  };
}
