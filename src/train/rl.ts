// The nouns of reinforcement learning from a reward: KL estimators, the per-token reward of RLHF, generalised advantage
// estimation, whitening, the adaptive KL controller, and the clipped objectives of PPO (and GRPO's KL term). Pure
// functions of numbers and Tensors, each checked against values computed by hand (test/rl.test.ts).
//
// Token conventions: an answer of n tokens has, per token t, the policy's log-probability lp[t] of the token it drew,
// the reference's ref[t], and the critic's value v[t] of the state before the token. The sequence-level score (reward
// model or a verifiable reward) arrives after the last token.
//
// Sources: InstructGPT (Ouyang et al. 2022, eq. 2: reward minus beta * log(pi/ref) per token); Ziegler et al. 2019
// ("Fine-Tuning Language Models from Human Preferences", the adaptive KL controller, section 2.2); GAE (Schulman et al.
// 2016, eq. 16); PPO (Schulman et al. 2017, eq. 7 clipped surrogate, eq. 9 value loss; the value clipping of OpenAI's
// baselines ppo2); TRL's PPOTrainer (compute_rewards, masked_whiten); the KL estimators k1, k2, k3 of Schulman's
// "Approximating KL Divergence" (2020); GRPO (Shao et al. 2024, DeepSeekMath eq. 3 and 4).
import { Tensor, sub, mul, exp, clamp, maximum, sum, mulScalar, addScalar, add } from '../tensor/index.js';

// ---------------------------------------------------------------------------------------------------------------------
// KL estimators on tokens drawn from the policy: x = log pi(y) - log ref(y)

export type KLEstimator = 'k1' | 'k2' | 'k3';

// k1 = x (unbiased, can be negative), k2 = x^2 / 2 (biased, low variance), k3 = e^-x - 1 + x (unbiased, >= 0).
export function klEstimate(kind: KLEstimator, lp: number, ref: number): number {
  const x = lp - ref;
  return kind === 'k1' ? x : kind === 'k2' ? 0.5 * x * x : Math.exp(-x) - 1 + x;
}

// ---------------------------------------------------------------------------------------------------------------------
// Rewards, advantages, returns

// r[t] = -beta * (lp[t] - ref[t]) (k1), and the score added at the last token.
export function tokenRewards(lp: ArrayLike<number>, ref: ArrayLike<number>, score: number, beta: number): Float64Array {
  const n = lp.length;
  const r = new Float64Array(n);
  for (let t = 0; t < n; t++) r[t] = -beta * (lp[t] - ref[t]);
  if (n > 0) r[n - 1] += score;
  return r;
}

// delta[t] = r[t] + gamma v[t+1] - v[t] (v[n] = 0: the answer has ended); A[t] = delta[t] + gamma lambda A[t+1];
// returns = A + v (the critic's targets).
export function gae(rewards: ArrayLike<number>, values: ArrayLike<number>, gamma: number, lambda: number): { advantages: Float64Array; returns: Float64Array } {
  const n = rewards.length;
  const advantages = new Float64Array(n), returns = new Float64Array(n);
  let next = 0;
  for (let t = n - 1; t >= 0; t--) {
    const delta = rewards[t] + gamma * (t + 1 < n ? values[t + 1] : 0) - values[t];
    next = delta + gamma * lambda * next;
    advantages[t] = next;
    returns[t] = next + values[t];
  }
  return { advantages, returns };
}

// (x - mean) / sqrt(var + 1e-8) over all values (the tokens of a whole rollout batch); shiftMean false adds the mean back.
export function whiten(x: ArrayLike<number>, shiftMean = true): Float64Array {
  const n = x.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += x[i];
  mean /= Math.max(1, n);
  let v = 0;
  for (let i = 0; i < n; i++) v += (x[i] - mean) ** 2;
  v /= Math.max(1, n - 1); // unbiased, as torch.var in TRL's masked_var
  const s = 1 / Math.sqrt(v + 1e-8);
  return Float64Array.from(x, (xi) => (xi - mean) * s + (shiftMean ? 0 : mean));
}

// GRPO's advantage of each answer of a group: (r - mean) / (std + 1e-4) within the group (population std, as
// DeepSeekMath's outcome supervision; 0 for a group whose rewards are all equal).
export function groupAdvantages(rewards: ArrayLike<number>): Float64Array {
  const n = rewards.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += rewards[i];
  mean /= n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (rewards[i] - mean) ** 2;
  const std = Math.sqrt(v / n);
  return Float64Array.from(rewards, (r) => (r - mean) / (std + 1e-4));
}

// Ziegler et al. 2019: beta <- beta * (1 + clip(KL / target - 1, -0.2, 0.2) * n / horizon), n the answers of the batch.
export class AdaptiveKL {
  constructor(public coef: number, readonly target: number, readonly horizon: number) {}
  update(kl: number, n: number): number {
    const err = Math.max(-0.2, Math.min(0.2, kl / this.target - 1));
    this.coef *= 1 + (err * n) / this.horizon;
    return this.coef;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The clipped objectives, as Tensors over the N token slots of a minibatch. weights[i] is each token's share of the
// mean (0 on slots that are not answer tokens), so sum(weights) = 1 makes the loss a mean over tokens.

export interface PolicyLoss { loss: Tensor; clipFraction: number; approxKl: number }

// PPO eq. 7: mean over tokens of max(-A ratio, -A clip(ratio, 1 - eps, 1 + eps)), ratio = exp(lp - lpOld).
// clipFraction: the share of tokens where the clipped term is the larger one. approxKl: the mean of k3 between the old
// and the new policy (how far this update has moved it).
export function clippedPolicyLoss(lp: Tensor, lpOld: Float32Array, adv: Float32Array, weights: Float32Array, eps: number): PolicyLoss {
  const N = lp.size;
  const ratio = exp(sub(lp, Tensor.from(lpOld, [N]))); // (N)
  const negAdv = Tensor.from(adv.map((a) => -a), [N]);
  const pg = maximum(mul(negAdv, ratio), mul(negAdv, clamp(ratio, 1 - eps, 1 + eps)));
  const loss = sum(mul(pg, Tensor.from(weights, [N])));
  let clipped = 0, kl = 0, W = 0;
  for (let i = 0; i < N; i++) {
    if (weights[i] === 0) continue;
    const r = ratio.data[i], a = -adv[i];
    clipped += weights[i] * (a * Math.min(Math.max(r, 1 - eps), 1 + eps) > a * r ? 1 : 0); // the clip binds (TRL's pg_clipfrac)
    kl += weights[i] * klEstimate('k3', lpOld[i], lp.data[i]); // x = log old - log new
    W += weights[i];
  }
  return { loss, clipFraction: W > 0 ? clipped / W : 0, approxKl: W > 0 ? kl / W : 0 };
}

// PPO eq. 9 with ppo2's clipping: 0.5 * mean over tokens of max((v - R)^2, (vOld + clip(v - vOld, -eps, eps) - R)^2).
export function clippedValueLoss(v: Tensor, vOld: Float32Array, returns: Float32Array, weights: Float32Array, eps: number): { loss: Tensor; clipFraction: number } {
  const N = v.size;
  const R = Tensor.from(returns, [N]), old = Tensor.from(vOld, [N]);
  const d1 = sub(v, R);
  const d2 = sub(add(clamp(sub(v, old), -eps, eps), old), R);
  const loss = mulScalar(sum(mul(maximum(mul(d1, d1), mul(d2, d2)), Tensor.from(weights, [N]))), 0.5);
  let clipped = 0, W = 0;
  for (let i = 0; i < N; i++) {
    if (weights[i] === 0) continue;
    clipped += weights[i] * (d2.data[i] ** 2 > d1.data[i] ** 2 ? 1 : 0); // the clip binds (TRL's vf_clipfrac)
    W += weights[i];
  }
  return { loss, clipFraction: W > 0 ? clipped / W : 0 };
}

// GRPO's KL term in the loss (DeepSeekMath eq. 4): mean over tokens of k3 = ref/pi - log(ref/pi) - 1, differentiable
// in the policy's log-probabilities lp.
export function klPenalty(lp: Tensor, ref: Float32Array, weights: Float32Array): Tensor {
  const N = lp.size;
  const x = sub(Tensor.from(ref, [N]), lp); // log ref - log pi
  return sum(mul(addScalar(sub(exp(x), x), -1), Tensor.from(weights, [N])));
}
