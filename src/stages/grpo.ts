// GRPO: group relative policy optimisation (Shao et al. 2024, DeepSeekMath, section 4.1; the RL stage of DeepSeek-R1 and
// of nanochat). No critic: each prompt is answered G times, and an answer's advantage is its reward standardised within
// its group, (r - mean) / std, on every token of it. The loss is PPO's clipped surrogate plus the KL to the reference as
// a term of the loss (k3, unbiased and >= 0), averaged per answer and then over answers (DeepSeekMath eq. 3):
//   J = mean_i 1/|o_i| sum_t [ min(ratio A_i, clip(ratio, 1 - eps, 1 + eps) A_i) - beta k3(pi || ref) ]
// Rewards come from a reward model, or from a verifiable function: `--reward labeller` (the simulated labeller's rules for
// the built-in poems: form, rhyme, repetition, the title's characters), or the user's JS module exporting
// reward(prompt, answer).
//
//   chatwright grpo --init runs/demo/sft --reward labeller --out runs/demo/grpo --steps 40                  # tiny
//   chatwright grpo --init runs/full/sft --reward runs/full/rm --out runs/full/grpo --group 16 --steps 500
//
// --iterations > 1 reuses each batch of answers for several updates (the ratio then moves away from 1 and the clip
// matters); at 1 each batch is used once and the objective is the group-normalised policy gradient with a KL term.
// Resume is exact: prompts, seeds and the order of work of step s are pure functions of (seed, s).
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { getBackend, setBackend, releaseTape, tokenLogprobs, entropy, add, mulScalar } from '../tensor/index.js';
import { loadModel } from '../model/checkpoint.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { AdamW, checkFinite, clipAndStep } from '../train/optim.js';
import { lrAt } from '../train/schedule.js';
import { filterMetrics } from '../train/metrics.js';
import { rowsForStep } from '../train/demos.js';
import { padBatch } from '../train/preferences.js';
import { clippedPolicyLoss, groupAdvantages, klPenalty } from '../train/rl.js';
import {
  METRICS, checkTrainingOptions, mergeOptions, openRun, restoreOptimizer, runLoop, type RunOptions, stepBudget, saveCheckpoint, type EvalResult, type StopReason, checkPrecision, backendLabel,
} from '../train/loop.js';
import { answerKL, answerSlots, evaluatePolicy, policyEvalResult, rewardSource, rlPrompts, rollouts, tempered, type PolicyEval } from './rollout.js';

// -----------------------------------------------------------------------------------------------------------------------
// Options

export interface GRPOOptions extends RunOptions {
  init: string;
  ref: string | null;
  reward: string;            // a reward model folder, `labeller`, or a .mjs file exporting reward(prompt, answer)
  prompts: string;
  limit: number | null;
  out: string;
  steps: number;
  batchSize: number;         // prompts per step
  group: number;             // answers per prompt (G)
  iterations: number;        // updates per batch of answers (mu)
  miniBatch: number;         // answers per forward/backward (gradients accumulate over the batch)
  maxNewTokens: number;
  temperature: number;       // the policy trained is the model at this temperature (src/stages/rollout.ts)
  truncationPenalty: number;
  beta: number;              // weight of the KL term
  clipRange: number;
  evalPrompts: number;
}

const DEFAULTS: Omit<GRPOOptions, 'init' | 'reward' | 'out'> = {
  ref: null, prompts: 'chinese-poetry', limit: 5000, steps: 100, batchSize: 4, group: 8, iterations: 1, miniBatch: 16,
  maxNewTokens: 64, temperature: 1, truncationPenalty: 1, beta: 0.04, clipRange: 0.2, lr: 5e-5, minLr: 5e-6, warmup: 5, decay: 'constant',
  weightDecay: 0, beta1: 0.9, beta2: 0.95, clip: 1, evalEvery: 20, evalPrompts: 16, saveEvery: 20, seed: 1337, resume: true,
  backend: null, precision: 'fp32', timeLimit: 0, budget: 0, logEvery: 1,
};
const RUN_KEYS = ['precision', 'init', 'ref', 'reward', 'prompts', 'limit', 'steps', 'budget', 'batchSize', 'group', 'iterations', 'miniBatch', 'maxNewTokens',
  'temperature', 'truncationPenalty', 'beta', 'clipRange', 'lr', 'minLr', 'warmup', 'decay', 'weightDecay', 'beta1', 'beta2', 'clip', 'evalEvery',
  'evalPrompts', 'saveEvery', 'seed'] as const;

export function resolveGRPOOptions(given: Partial<GRPOOptions>, saved: Partial<GRPOOptions> = {}): GRPOOptions {
  const o = mergeOptions('grpo', DEFAULTS as GRPOOptions, given, saved, ['init', 'reward', 'out']);
  if (!o.init) throw new UserError('grpo: --init is required', 'start the policy from the SFT model, e.g. --init runs/demo/sft');
  if (!o.reward) throw new UserError('grpo: --reward is required', 'a reward model (chatwright reward), `labeller`, or a .mjs file exporting reward(prompt, answer)');
  if (!o.out) throw new UserError('grpo: --out is required', 'e.g. --out runs/demo/grpo');
  checkTrainingOptions('grpo', o, { steps: o.steps, batchSize: o.batchSize, iterations: o.iterations, miniBatch: o.miniBatch, maxNewTokens: o.maxNewTokens });
  if (!(Number.isInteger(o.group) && o.group >= 2)) throw new UserError(`grpo: group must be an integer >= 2, got ${o.group}`, 'a group of one answer has no relative advantage');
  for (const k of ['beta', 'truncationPenalty'] as const) if (!(o[k] >= 0 && Number.isFinite(o[k]))) throw new UserError(`grpo: ${k} must be a finite number >= 0, got ${o[k]}`);
  if (!(o.temperature > 0 && o.temperature <= 2)) throw new UserError(`grpo: temperature must be in (0, 2], got ${o.temperature}`);
  if (!(o.clipRange > 0)) throw new UserError(`grpo: clip-range must be > 0, got ${o.clipRange}`);
  return o;
}

export interface GRPOResult { step: number; stopped: StopReason; eval: { score: number; kl: number; length: number } | null }

export async function trainGRPO(given: Partial<GRPOOptions> & { init: string; reward: string; out: string },
  print: (line: string) => void = console.log): Promise<GRPOResult> {
  // -----------------------------------------------------------------------------------------------------------------------
  // Resume or fresh start; policy, reference, reward, prompts
  const saved = openRun(given.out, 'grpo', given.resume,
    { defaults: DEFAULTS, resolve: (s) => resolveGRPOOptions({ init: given.init, reward: given.reward, out: given.out }, s) });
  const o = resolveGRPOOptions(given, saved ? (saved.json.options as Partial<GRPOOptions>) : {});
  if (o.backend) setBackend(o.backend);
  checkPrecision('grpo', o.precision); // before anything slow: a clear error where bf16 cannot run
  const be = getBackend();
  const reward = await rewardSource(o.reward);
  const prompts = rlPrompts(o.prompts, o.limit, o.evalPrompts);
  if (prompts.train.length === 0) throw new UserError(`no training prompts in ${o.prompts}`);
  const l = loadModel(saved ? o.out : o.init);
  if (!l.tokenizer) throw new UserError(`no tokenizer in ${saved ? o.out : o.init}`, 'the SFT model folder needs tokenizer.json');
  const policy = l.model, tok: Tokenizer = l.tokenizer;
  if (policy.config.scalarHead) throw new UserError(`${o.init} is a reward/value model`, 'GRPO trains a language model: --init the SFT model');
  const ref = loadModel(o.ref ?? o.init).model;

  const opt = new AdamW(policy, { beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  let step = 0;
  if (saved) step = restoreOptimizer(opt, saved, o.out);
  else filterMetrics(join(o.out, METRICS), () => false);

  print(policy.summary());
  print(`${saved ? `resuming ${o.out} at step ${step}` : `new GRPO run in ${o.out} from ${o.init}`} | reward: ${reward.name} | ` +
    `${o.steps} steps of ${o.batchSize} prompts x ${o.group} answers | beta ${o.beta} | backend ${backendLabel(be.name, o.precision)}`);
  print(`prompts: ${prompts.train.length} for training, ${prompts.heldout.length} held out (${prompts.source})`);

  // -----------------------------------------------------------------------------------------------------------------------
  // Evaluation and checkpoints

  let lastEval: PolicyEval | null = null;
  const evaluate = async (): Promise<EvalResult | null> => {
    const e = await evaluatePolicy(policy, ref, tok, reward, prompts.heldout, o.seed + 999_983, o.maxNewTokens, o.temperature);
    if (e) lastEval = e;
    return e && policyEvalResult(e);
  };
  const save = (step: number, loss: number) => saveCheckpoint({
    out: o.out, step, loss, model: policy, tokenizer: tok, opt, title: 'GRPO: mean reward of the groups (line) and of held-out answers (dots)', curve: { train: 'score', val: 'valScore' },
    state: { stage: 'grpo', options: Object.fromEntries(RUN_KEYS.map((k) => [k, o[k]])) },
  });

  // -----------------------------------------------------------------------------------------------------------------------
  // One step: G answers to each of B prompts, group advantages, `iterations` updates over them

  const schedule = { lrMax: o.lr, lrMin: o.minLr, warmup: o.warmup, total: o.steps, decay: o.decay };
  const trainStep = async (step: number, loop: { yield(): Promise<void> }) => {
    const lr = lrAt(step, schedule);
    const t0 = performance.now();
    const which = rowsForStep(prompts.train.length, o.batchSize, o.seed, step);
    const groupPrompts = which.flatMap((i) => Array.from({ length: o.group }, () => prompts.train[i]));
    const batch = await rollouts(policy, ref, tok, reward, groupPrompts,
      groupPrompts.map((_, i) => (o.seed * 1_000_003 + step * o.batchSize * o.group + i) >>> 0), o);
    const rolloutSeconds = (performance.now() - t0) / 1000;
    const A = new Float64Array(batch.length);
    let flat = 0, spread = 0;
    for (let g = 0; g < o.batchSize; g++) {
      const scores = batch.slice(g * o.group, (g + 1) * o.group).map((r) => r.score);
      A.set(groupAdvantages(scores), g * o.group);
      const mean = scores.reduce((a, x) => a + x, 0) / scores.length;
      const sd = Math.sqrt(scores.reduce((a, x) => a + (x - mean) ** 2, 0) / scores.length);
      spread += sd;
      if (sd === 0) flat++;
    }
    const answerTokens = batch.reduce((a, r) => a + r.lpOld.length, 0);
    await loop.yield();

    // ---- updates: each answer's tokens weigh 1 / (|o_i| * answers), gradients accumulated over minibatches
    const t1 = performance.now();
    let loss = 0, clipFrac = 0, approxKl = 0, klTerm = 0, ent = 0, gradNorm = 0;
    for (let it = 0; it < o.iterations; it++) {
      policy.zeroGrad();
      for (let s = 0; s < batch.length; s += o.miniBatch) {
        const part = batch.slice(s, s + o.miniBatch);
        const rows = part.map((r) => r.row);
        const b = padBatch(rows, tok.pad);
        const N = b.B * b.T;
        const w = new Float32Array(N), lpOld = new Float32Array(N), lpRef = new Float32Array(N), adv = new Float32Array(N);
        answerSlots(b, rows).forEach((sl, j) => sl.forEach((p, t) => {
          w[p] = 1 / (sl.length * batch.length); lpOld[p] = part[j].lpOld[t]; lpRef[p] = part[j].lpRef[t]; adv[p] = A[s + j];
        }));
        const { logits } = policy.forward(b.ids, b.B, b.T);
        const lg = tempered(logits, o.temperature);
        const lp = tokenLogprobs(lg, b.targets);
        const pl = clippedPolicyLoss(lp, lpOld, adv, w, o.clipRange);
        const kt = klPenalty(lp, lpRef, w);
        const H = entropy(lg);
        for (let p = 0; p < N; p++) ent += (w[p] * H.data[p]) / o.iterations;
        const l = o.beta > 0 ? add(pl.loss, mulScalar(kt, o.beta)) : pl.loss;
        const value = l.item();
        checkFinite('loss', value, step + 1, lr, `lower --lr (now ${o.lr}); the last checkpoint in ${o.out} is untouched`);
        loss += value / o.iterations;
        klTerm += kt.item() / o.iterations;
        const share = part.length / batch.length; // each minibatch's figures weigh its share of the answers
        clipFrac += (pl.clipFraction * share) / o.iterations;
        approxKl += (pl.approxKl * share) / o.iterations;
        l.backward();
        releaseTape();
      }
      gradNorm += clipAndStep(opt, policy.gradFlat, o.clip, lr, step + 1, `lower --lr or --clip; the last checkpoint in ${o.out} is untouched`, be) / o.iterations;
      await loop.yield();
    }
    const trainSeconds = (performance.now() - t1) / 1000;
    const meanScore = batch.reduce((a, r) => a + r.score, 0) / batch.length;
    return {
      loss, lr, tokens: answerTokens * o.iterations,
      record: {
        score: meanScore, groupStd: spread / o.batchSize, flatGroups: flat / o.batchSize, kl: answerKL(batch), klTerm, entropy: ent,
        clipFraction: clipFrac, approxKl, gradNorm, length: answerTokens / batch.length,
        truncated: batch.filter((r) => r.truncated).length / batch.length,
        rolloutTokPerSec: Math.round(answerTokens / rolloutSeconds), trainTokPerSec: Math.round((answerTokens * o.iterations) / trainSeconds),
        rolloutSeconds: +rolloutSeconds.toFixed(3), trainSeconds: +trainSeconds.toFixed(3),
      },
      show: `score ${meanScore.toFixed(3)} | KL ${answerKL(batch).toFixed(3)} | len ${(answerTokens / batch.length).toFixed(0)}`,
    };
  };

  const r = await runLoop({
    stage: 'grpo', precision: o.precision, out: o.out, step, steps: o.steps, timeLimit: o.timeLimit, evalEvery: o.evalEvery, saveEvery: o.saveEvery,
    logEvery: o.logEvery, budget: stepBudget(o, schedule), print, evaluate, save, trainStep,
  });
  return { step: r.step, stopped: r.stopped, eval: lastEval };
}
