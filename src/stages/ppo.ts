// RLHF with PPO, as InstructGPT did it (Ouyang et al. 2022, section 3.5) and TRL's PPOTrainer does it: the policy (from
// the SFT model) answers prompts, the reward model scores each answer, and PPO raises the score while a per-token KL
// penalty keeps the policy near the SFT model (the reference):
//   reward of token t = -beta * (log pi(y_t) - log ref(y_t)), plus the reward model's score at the last token
// then GAE (gamma, lambda) with a critic, whitened advantages, the clipped surrogate (0.2), the clipped value loss, an
// optional entropy bonus, and several epochs of minibatches over each rollout batch; the old log-probabilities are taken
// once per rollout batch (src/train/rl.ts has the formulas and their sources; src/stages/rollout.ts the rollouts).
//
//   chatwright ppo --init runs/demo/sft --reward runs/demo/rm --out runs/demo/ppo --steps 60                # tiny
//   chatwright ppo --init runs/full/sft --reward runs/full/rm --out runs/full/ppo --steps 500 --batch-size 64
//
// The critic is a separate model with a scalar head, initialised from the reward model (InstructGPT: "we initialize the
// value function from the RM"; TRL's PPOTrainer likewise). A shared trunk would halve the forward and backward work of
// the critic but couple its regression loss to the policy's features and need a loss weight tuned between them; with a
// separate critic each model has its own optimizer and learning rate, and the cost is measured per step (trainSeconds).
// Length and truncation: an answer that hits --max-new-tokens before its end of turn gets --truncation-penalty
// subtracted from its score (TRL's missing_eos_penalty), so the policy cannot win by rambling until cut.
// PPO-ptx (InstructGPT eq. 2's gamma term): --ptx-data SHARDS adds --ptx-coef times the pretraining loss on a batch of
// pretraining tokens to every policy minibatch, to keep what pretraining taught.
//
// Every step logs mean score, reward (score - KL penalty), KL, entropy, clip fraction, value loss, approximate KL of the
// update, answer length, and tokens/s of rollouts and of training. Resume is exact: the prompts, the rollout seeds and
// the minibatch order of step s are pure functions of (seed, s); the checkpoint holds policy, critic, both optimizers,
// the KL coefficient and the pretraining data's cursor.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { getBackend, setBackend, releaseTape, tokenLogprobs, entropy, add, mulScalar, sum, mul, Tensor } from '../tensor/index.js';
import { GPT } from '../model/gpt.js';
import { loadModel, saveModel } from '../model/checkpoint.js';
import { readSafetensors, writeSafetensors } from '../model/safetensors.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { AdamW, checkFinite, clipAndStep } from '../train/optim.js';
import { lrAt } from '../train/schedule.js';
import { filterMetrics } from '../train/metrics.js';
import { rowsForStep, epochOrder } from '../train/demos.js';
import { readManifest, loadSplit } from '../train/shards.js';
import { BatchLoader, type Cursor } from '../train/loader.js';
import { padBatch } from '../train/preferences.js';
import { AdaptiveKL, clippedPolicyLoss, clippedValueLoss, gae, tokenRewards, whiten } from '../train/rl.js';
import {
  METRICS, checkTrainingOptions, mergeOptions, openRun, restoreOptimizer, runLoop, type RunOptions, stepBudget, saveCheckpoint, type EvalResult, type StopReason, checkPrecision, backendLabel,
} from '../train/loop.js';
import { answerKL, answerSlots, evaluatePolicy, policyEvalResult, rewardSource, rlPrompts, rollouts, tempered, valuesOf, type PolicyEval, type Rollout } from './rollout.js';

// -----------------------------------------------------------------------------------------------------------------------
// Options

export interface PPOOptions extends RunOptions {
  init: string;              // the SFT model: the policy's start
  ref: string | null;        // the frozen reference of the KL penalty (default: --init)
  reward: string;            // a reward model folder, `labeller`, or a .mjs file exporting reward(prompt, answer)
  critic: string | null;     // the critic's start (default: --reward when it is a reward model, else --init)
  prompts: string;           // chinese-poetry, or a JSONL file of prompts
  limit: number | null;      // built-in prompts: poems read
  out: string;
  steps: number;             // PPO iterations: one rollout batch each
  batchSize: number;         // answers per rollout batch
  miniBatch: number;         // answers per optimizer step
  epochs: number;            // passes over each rollout batch
  maxNewTokens: number;
  temperature: number;       // the policy trained is the model at this temperature (src/stages/rollout.ts)
  truncationPenalty: number;
  klCoef: number;            // beta of the per-token KL penalty
  klTarget: number;          // > 0: the adaptive controller aims at this KL per answer (nats); 0: beta stays fixed
  klHorizon: number;
  gamma: number;
  lam: number;
  clipRange: number;
  valueClip: number;
  entCoef: number;
  ptxData: string | null;    // pretraining shards for PPO-ptx
  ptxCoef: number;
  ptxBatch: number;          // pretraining rows per minibatch
  criticLr: number;
  evalPrompts: number;
}

const DEFAULTS: Omit<PPOOptions, 'init' | 'reward' | 'out'> = {
  ref: null, critic: null, prompts: 'chinese-poetry', limit: 5000, steps: 100, batchSize: 16, miniBatch: 8, epochs: 2,
  maxNewTokens: 64, temperature: 1, truncationPenalty: 1, klCoef: 0.05, klTarget: 0, klHorizon: 10000, gamma: 1, lam: 0.95, clipRange: 0.2,
  valueClip: 0.2, entCoef: 0, ptxData: null, ptxCoef: 0, ptxBatch: 4, lr: 5e-5, criticLr: 1e-4, minLr: 5e-6, warmup: 5,
  decay: 'constant', weightDecay: 0, beta1: 0.9, beta2: 0.95, clip: 1, evalEvery: 20, evalPrompts: 16, saveEvery: 20,
  seed: 1337, resume: true, backend: null, precision: 'fp32', timeLimit: 0, budget: 0, logEvery: 1,
};
const RUN_KEYS = ['precision', 'init', 'ref', 'reward', 'critic', 'prompts', 'limit', 'steps', 'budget', 'batchSize', 'miniBatch', 'epochs', 'maxNewTokens',
  'temperature', 'truncationPenalty', 'klCoef', 'klTarget', 'klHorizon', 'gamma', 'lam', 'clipRange', 'valueClip', 'entCoef', 'ptxData', 'ptxCoef',
  'ptxBatch', 'lr', 'criticLr', 'minLr', 'warmup', 'decay', 'weightDecay', 'beta1', 'beta2', 'clip', 'evalEvery', 'evalPrompts',
  'saveEvery', 'seed'] as const;

export function resolvePPOOptions(given: Partial<PPOOptions>, saved: Partial<PPOOptions> = {}): PPOOptions {
  const o = mergeOptions('ppo', DEFAULTS as PPOOptions, given, saved, ['init', 'reward', 'out']);
  if (!o.init) throw new UserError('ppo: --init is required', 'start the policy from the SFT model, e.g. --init runs/demo/sft');
  if (!o.reward) throw new UserError('ppo: --reward is required', 'a reward model (chatwright reward), `labeller`, or a .mjs file exporting reward(prompt, answer)');
  if (!o.out) throw new UserError('ppo: --out is required', 'e.g. --out runs/demo/ppo');
  checkTrainingOptions('ppo', o, { steps: o.steps, batchSize: o.batchSize, miniBatch: o.miniBatch, epochs: o.epochs, maxNewTokens: o.maxNewTokens, ptxBatch: o.ptxBatch });
  if (o.miniBatch > o.batchSize) throw new UserError(`ppo: --mini-batch ${o.miniBatch} is larger than --batch-size ${o.batchSize}`);
  for (const k of ['klCoef', 'klTarget', 'entCoef', 'ptxCoef', 'truncationPenalty', 'criticLr'] as const) {
    if (!(o[k] >= 0 && Number.isFinite(o[k]))) throw new UserError(`ppo: ${k} must be a finite number >= 0, got ${o[k]}`);
  }
  if (!(o.temperature > 0 && o.temperature <= 2)) throw new UserError(`ppo: temperature must be in (0, 2], got ${o.temperature}`);
  for (const k of ['gamma', 'lam'] as const) if (!(o[k] >= 0 && o[k] <= 1)) throw new UserError(`ppo: ${k} must be in [0, 1], got ${o[k]}`);
  for (const k of ['clipRange', 'valueClip'] as const) if (!(o[k] > 0)) throw new UserError(`ppo: ${k} must be > 0, got ${o[k]}`);
  if (o.ptxCoef > 0 && !o.ptxData) throw new UserError('ppo: --ptx-coef needs --ptx-data', 'give the pretraining shards (chatwright data prepare)');
  return o;
}

export interface PPOResult { step: number; stopped: StopReason; eval: { score: number; kl: number; length: number } | null }

// The critic beside the policy's checkpoint: value/model.safetensors (+ config) and value/optimizer.safetensors.
const CRITIC_DIR = 'value';

export async function trainPPO(given: Partial<PPOOptions> & { init: string; reward: string; out: string },
  print: (line: string) => void = console.log): Promise<PPOResult> {
  // -----------------------------------------------------------------------------------------------------------------------
  // Resume or fresh start; policy, reference, critic, reward, prompts
  const saved = openRun(given.out, 'ppo', given.resume,
    { required: ['klCoef'], defaults: DEFAULTS, resolve: (s) => resolvePPOOptions({ init: given.init, reward: given.reward, out: given.out }, s) });
  const o = resolvePPOOptions(given, saved ? (saved.json.options as Partial<PPOOptions>) : {});
  if (o.backend) setBackend(o.backend);
  checkPrecision('ppo', o.precision); // before anything slow: a clear error where bf16 cannot run
  const be = getBackend();
  const reward = await rewardSource(o.reward);
  const prompts = rlPrompts(o.prompts, o.limit, o.evalPrompts);
  if (prompts.train.length === 0) throw new UserError(`no training prompts in ${o.prompts}`);

  const l = loadModel(saved ? o.out : o.init);
  if (!l.tokenizer) throw new UserError(`no tokenizer in ${saved ? o.out : o.init}`, 'the SFT model folder needs tokenizer.json');
  const policy = l.model, tok: Tokenizer = l.tokenizer;
  if (policy.config.scalarHead) throw new UserError(`${o.init} is a reward/value model`, 'PPO trains a language model: --init the SFT model');
  const ref = loadModel(o.ref ?? o.init).model;
  let critic: GPT;
  if (saved) {
    critic = loadModel(join(o.out, CRITIC_DIR)).model;
  } else {
    const from = o.critic ?? (existsSync(join(o.reward, 'config.json')) ? o.reward : o.init);
    const src = loadModel(from).model;
    critic = GPT.create({ ...src.config, scalarHead: true }, o.seed + 7);
    const missed = critic.copyParamsFrom(src).filter((n) => n !== 'score.weight');
    if (missed.length) throw new UserError(`the critic could not start from ${from}: ${missed.join(', ')} did not match`);
    if (critic.config.vocabSize !== policy.config.vocabSize) throw new UserError(`the critic's start ${from} has another vocabulary than the policy`);
  }

  const opt = new AdamW(policy, { beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  const criticOpt = new AdamW(critic, { beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  const kl = new AdaptiveKL(o.klCoef, o.klTarget, o.klHorizon);
  let step = 0;
  let ptxCursor: Cursor = { epoch: 0, index: 0 };
  if (saved) {
    step = restoreOptimizer(opt, saved, o.out);
    const m = readSafetensors(join(o.out, CRITIC_DIR, 'optimizer.safetensors'));
    criticOpt.m.set(m.get('exp_avg')!.data);
    criticOpt.v.set(m.get('exp_avg_sq')!.data);
    criticOpt.t = opt.t;
    kl.coef = saved.json.klCoef as number;
    ptxCursor = (saved.json.ptxCursor as Cursor | undefined) ?? ptxCursor;
  } else {
    filterMetrics(join(o.out, METRICS), () => false);
  }
  let ptx: BatchLoader | null = null;
  if (o.ptxCoef > 0 && o.ptxData) {
    const manifest = readManifest(o.ptxData);
    if (manifest.vocabSize !== policy.config.vocabSize) throw new UserError(`--ptx-data ${o.ptxData} was made with another vocabulary (${manifest.vocabSize})`);
    ptx = new BatchLoader(loadSplit(o.ptxData, 'train', manifest), o.ptxBatch, Math.min(128, policy.config.maxSeqLen), o.seed, ptxCursor);
  }

  print(policy.summary());
  print(`${saved ? `resuming ${o.out} at step ${step}` : `new PPO run in ${o.out} from ${o.init}`} | reward: ${reward.name} | critic ` +
    `${saved ? 'resumed' : `from ${o.critic ?? (existsSync(join(o.reward, 'config.json')) ? o.reward : o.init)}`} | ${o.steps} steps of ${o.batchSize} answers ` +
    `(${o.epochs} epochs of minibatches of ${o.miniBatch}) | KL beta ${kl.coef}${o.klTarget > 0 ? ` adaptive to ${o.klTarget} nats` : ''} | backend ${backendLabel(be.name, o.precision)}`);
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
    out: o.out, step, loss, model: policy, tokenizer: tok, opt, title: 'PPO: mean score of the rollouts (line) and of held-out answers (dots)', curve: { train: 'score', val: 'valScore' }, moreParams: [critic.flat],
    state: { stage: 'ppo', options: Object.fromEntries(RUN_KEYS.map((k) => [k, o[k]])), klCoef: kl.coef, ptxCursor: ptx?.cursor ?? null },
    extra: (dir) => {
      mkdirSync(join(dir, CRITIC_DIR), { recursive: true });
      saveModel(join(dir, CRITIC_DIR), critic);
      writeSafetensors(join(dir, CRITIC_DIR, 'optimizer.safetensors'), new Map([
        ['exp_avg', { shape: [criticOpt.m.length], data: criticOpt.m }], ['exp_avg_sq', { shape: [criticOpt.v.length], data: criticOpt.v }],
      ]));
    },
  });

  // -----------------------------------------------------------------------------------------------------------------------
  // One PPO step: rollouts, advantages, then epochs of minibatches for the policy and the critic

  const schedule = { lrMax: o.lr, lrMin: o.minLr, warmup: o.warmup, total: o.steps, decay: o.decay };
  const trainStep = async (step: number, loop: { yield(): Promise<void> }) => {
    const lr = lrAt(step, schedule), criticLr = (o.criticLr * lr) / o.lr;

    // ---- rollouts (seeded by step, so a resumed run draws the same answers)
    const t0 = performance.now();
    const which = rowsForStep(prompts.train.length, o.batchSize, o.seed, step);
    const batch = await rollouts(policy, ref, tok, reward, which.map((i) => prompts.train[i]),
      which.map((_, i) => (o.seed * 1_000_003 + step * o.batchSize + i) >>> 0), o);
    const values = valuesOf(critic, batch.map((r) => r.row), tok.pad);
    const rolloutSeconds = (performance.now() - t0) / 1000;
    const answerTokens = batch.reduce((a, r) => a + r.lpOld.length, 0);
    await loop.yield();

    // ---- per-token rewards, GAE, whitened advantages over the whole batch
    const adv: Float64Array[] = [], ret: Float64Array[] = [];
    for (let i = 0; i < batch.length; i++) {
      const g = gae(tokenRewards(batch[i].lpOld, batch[i].lpRef, batch[i].score, kl.coef), values[i], o.gamma, o.lam);
      adv.push(g.advantages);
      ret.push(g.returns);
    }
    const white = whiten(adv.flatMap((a) => Array.from(a)));
    let k = 0;
    const advW = adv.map((a) => Float32Array.from(a, () => white[k++]));

    // ---- epochs of minibatches
    const t1 = performance.now();
    let policyLoss = 0, valueLoss = 0, clipFrac = 0, vClipFrac = 0, approxKl = 0, ent = 0, ptxLoss = 0, updates = 0, gradNorm = 0;
    for (let e = 0; e < o.epochs; e++) {
      const order = epochOrder(batch.length, o.seed + 17 * step, e);
      for (let s = 0; s + o.miniBatch <= batch.length; s += o.miniBatch) {
        const idx = Array.from(order.subarray(s, s + o.miniBatch));
        const rows = idx.map((i) => batch[i].row);
        const b = padBatch(rows, tok.pad);
        const slots = answerSlots(b, rows);
        const N = b.B * b.T, nTok = slots.reduce((a, x) => a + x.length, 0);
        const w = new Float32Array(N), lpOld = new Float32Array(N), A = new Float32Array(N), vOld = new Float32Array(N), R = new Float32Array(N);
        slots.forEach((sl, j) => sl.forEach((p, t) => {
          const i = idx[j];
          w[p] = 1 / nTok; lpOld[p] = batch[i].lpOld[t]; A[p] = advW[i][t]; vOld[p] = values[i][t]; R[p] = ret[i][t];
        }));

        // policy
        policy.zeroGrad();
        const { logits } = policy.forward(b.ids, b.B, b.T);
        const lg = tempered(logits, o.temperature);
        const lp = tokenLogprobs(lg, b.targets);
        const pl = clippedPolicyLoss(lp, lpOld, A, w, o.clipRange);
        const H = entropy(lg);
        let hMean = 0;
        for (let p = 0; p < N; p++) hMean += w[p] * H.data[p];
        let loss = o.entCoef > 0 ? add(pl.loss, mulScalar(sum(mul(H, Tensor.from(w, [N]))), -o.entCoef)) : pl.loss;
        if (ptx) {
          const pb = ptx.next();
          const lm = policy.forward(pb.ids, pb.B, pb.T, { targets: pb.targets }).loss!;
          ptxLoss += lm.item();
          loss = add(loss, mulScalar(lm, o.ptxCoef));
        }
        checkFinite('loss', loss.item(), step + 1, lr, `lower --lr (now ${o.lr}); the last checkpoint in ${o.out} is untouched`);
        policyLoss += pl.loss.item(); // read before the tape (and its buffers) is released
        loss.backward();
        releaseTape();
        gradNorm += clipAndStep(opt, policy.gradFlat, o.clip, lr, step + 1, `lower --lr or --clip; the last checkpoint in ${o.out} is untouched`, be);

        // critic
        critic.zeroGrad();
        const v = critic.forward(b.ids, b.B, b.T).scores!;
        const vl = clippedValueLoss(v, vOld, R, w, o.valueClip);
        checkFinite('loss', vl.loss.item(), step + 1, criticLr, `lower --critic-lr (now ${o.criticLr})`);
        valueLoss += vl.loss.item();
        vl.loss.backward();
        releaseTape();
        clipAndStep(criticOpt, critic.gradFlat, o.clip, criticLr, step + 1, 'lower --critic-lr or --clip', be);

        clipFrac += pl.clipFraction; approxKl += pl.approxKl; vClipFrac += vl.clipFraction; ent += hMean;
        updates++;
      }
      await loop.yield();
    }
    const trainSeconds = (performance.now() - t1) / 1000;

    // ---- the KL controller, and the step's figures
    const stepKl = answerKL(batch);
    if (o.klTarget > 0) kl.update(stepKl, batch.length);
    const meanScore = batch.reduce((a, r) => a + r.score, 0) / batch.length;
    const u = Math.max(1, updates);
    return {
      loss: policyLoss / u, lr, tokens: answerTokens * o.epochs,
      record: {
        score: meanScore, reward: meanScore - kl.coef * stepKl, kl: stepKl, klCoef: kl.coef, entropy: ent / u, clipFraction: clipFrac / u,
        valueLoss: valueLoss / u, valueClipFraction: vClipFrac / u, approxKl: approxKl / u, gradNorm: gradNorm / u,
        length: answerTokens / batch.length, truncated: batch.filter((r: Rollout) => r.truncated).length / batch.length,
        rolloutTokPerSec: Math.round(answerTokens / rolloutSeconds), trainTokPerSec: Math.round((answerTokens * o.epochs) / trainSeconds),
        rolloutSeconds: +rolloutSeconds.toFixed(3), trainSeconds: +trainSeconds.toFixed(3), ...(ptx ? { ptxLoss: ptxLoss / u } : {}),
      },
      show: `score ${meanScore.toFixed(3)} | KL ${stepKl.toFixed(3)} | len ${(answerTokens / batch.length).toFixed(0)}`,
    };
  };

  const r = await runLoop({
    stage: 'ppo', precision: o.precision, out: o.out, step, steps: o.steps, timeLimit: o.timeLimit, evalEvery: o.evalEvery, saveEvery: o.saveEvery,
    logEvery: o.logEvery, budget: stepBudget(o, schedule), print, evaluate, save, trainStep,
  });
  return { step: r.step, stopped: r.stopped, eval: lastEval };
}
