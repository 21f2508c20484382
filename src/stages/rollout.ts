// Rollouts, the shared half of PPO and GRPO: the policy answers prompts (batched decoding over the KV cache,
// src/generate), and every answer token gets the log-probability the policy gave it when drawn (the "old" policy of
// PPO's ratio, computed once per rollout batch) and the one the frozen reference gives it; the finished answer gets a
// score from the reward source. Also here: the reward sources (a reward model, the simulated labeller's rules, or the
// user's JS module), the RL prompts, token slots of a batch, and the KL of a policy from its reference.
//
// Temperature: the policy RL trains may be the model's distribution at a temperature T (logits / T), as TRL's PPO
// trainer does: answers are drawn at T and every log-probability (old, new and the reference's) is taken of logits / T,
// so the ratio and the KL compare the same distributions. A small model's T = 1 distribution has a long tail of junk
// that a lower T cuts.
//
// Token slots: in a right-padded batch (src/train/preferences.ts padBatch) answer token i of row b is predicted at flat
// position b*T + start - 1 + i, where start is the answer's first index in the row. Log-probabilities, values,
// advantages and weights of a minibatch are laid out on those positions, so every loss is one masked sum.
//
// Boundary: sampling, scoring and bookkeeping of answers; no optimizer, no loop (ppo.ts, grpo.ts).
import { existsSync, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { UserError } from '../util/errors.js';
import { noGrad, releaseTape, tokenLogprobs, mulScalar, type Tensor } from '../tensor/index.js';
import type { GPT } from '../model/gpt.js';
import type { Message, Tokenizer } from '../tokenizer/index.js';
import { generateBatch } from '../generate/index.js';
import { builtinDemos, readDemos } from '../train/demos.js';
import { padBatch, type AnswerBatch, type AnswerRow } from '../train/preferences.js';
import { readPromptsFile, labellerScore } from '../feedback/index.js';
import { RewardModel } from '../train/reward-model.js';
import type { EvalResult } from '../train/loop.js';

// ---------------------------------------------------------------------------------------------------------------------
// Prompts

export interface RLPrompts { train: Message[][]; heldout: Message[][]; source: string }

// 'chinese-poetry': the user turns of the built-in poem demonstrations (training split) for training, and the held-out
// split's prompts for evaluation. A JSONL file: {"messages": [...]} or {"prompt": "..."} per line; 1 in 10 held out.
export function rlPrompts(spec: string, limit: number | null, heldoutMax = 32): RLPrompts {
  if (spec === 'chinese-poetry') {
    const set = builtinDemos('chinese-poetry', { limit: limit ?? undefined, maxPrompts: heldoutMax });
    const firstTurn = (m: Message[]) => m.slice(0, m.findIndex((x) => x.role === 'assistant'));
    return { train: set.train.map((c) => firstTurn(c.messages)), heldout: set.prompts.map((p) => p.messages), source: 'chinese-poetry' };
  }
  if (!existsSync(spec)) throw new UserError(`prompts not found: ${spec}`, 'give --prompts chinese-poetry or a JSONL file of {"messages": [...]} or {"prompt": "..."}');
  const all = readPromptsFile(spec).map((p) => p.messages);
  const held = all.length >= 10 ? all.filter((_, i) => i % 10 === 9) : [];
  return { train: all.filter((_, i) => all.length < 10 || i % 10 !== 9), heldout: held.slice(0, heldoutMax), source: spec };
}

// ---------------------------------------------------------------------------------------------------------------------
// Reward sources

export interface RewardSource {
  name: string;
  score(items: { prompt: Message[]; answer: string }[]): Promise<number[]>;
}

// A reward model folder (chatwright reward), `labeller` (the simulated labeller's rules: a verifiable reward for the
// built-in poem prompts, 0 for prompts that ask no poem), or a JS module whose export `reward(prompt, answer)` returns a
// number or a promise of one (prompt: the messages, answer: the text).
export async function rewardSource(spec: string): Promise<RewardSource> {
  if (spec === 'labeller') {
    return { name: 'simulated labeller', score: async (items) => items.map((x) => labellerScore(x.prompt, x.answer) ?? 0) };
  }
  if (existsSync(spec) && statSync(spec).isDirectory()) {
    const rm = RewardModel.load(spec);
    return { name: `reward model ${spec}`, score: async (items) => rm.score(items) };
  }
  if (/\.(m?js|cjs)$/.test(spec)) {
    if (!existsSync(spec)) throw new UserError(`reward module not found: ${spec}`, 'give a .mjs file exporting reward(prompt, answer)');
    const mod = await import(pathToFileURL(isAbsolute(spec) ? spec : resolve(spec)).href);
    const fn = mod.reward ?? mod.default?.reward ?? mod.default;
    if (typeof fn !== 'function') throw new UserError(`${spec} exports no reward(prompt, answer) function`, 'export function reward(prompt, answer) { return ... }');
    return {
      name: `reward function ${spec}`,
      score: async (items) => Promise.all(items.map(async (x, i) => {
        const r = Number(await fn(x.prompt, x.answer));
        if (!Number.isFinite(r)) throw new UserError(`${spec}: reward() returned ${r} for answer ${i}`, 'return a finite number');
        return r;
      })),
    };
  }
  throw new UserError(`unknown reward source: ${spec}`, 'give a reward model folder (chatwright reward), `labeller`, or a .mjs file exporting reward(prompt, answer)');
}

// ---------------------------------------------------------------------------------------------------------------------
// Answers and their per-token numbers

export interface Rollout {
  prompt: Message[];
  row: AnswerRow; // prompt ids, answer ids, and the stop token when the answer ended by one
  text: string;
  truncated: boolean; // hit the length limit before its end of turn
  lpOld: Float32Array; // per answer token: log pi_old
  lpRef: Float32Array; // per answer token: log ref
  score: number; // the reward source's score (minus the truncation penalty)
}

// Answers to prompts[i] drawn at the temperature with seed seeds[i], at most maxNewTokens each (less near the context).
export function sampleAnswers(policy: GPT, tok: Tokenizer, prompts: Message[][], seeds: number[], maxNewTokens: number, temperature = 1):
  { row: AnswerRow; text: string; truncated: boolean }[] {
  const ids = prompts.map((p) => tok.renderForCompletion(p));
  for (const p of ids) {
    if (p.length >= policy.config.maxSeqLen) {
      throw new UserError(`a prompt of ${p.length} tokens leaves no room in the model's context of ${policy.config.maxSeqLen}`, 'give shorter prompts');
    }
  }
  const out = generateBatch(policy, tok, ids, ids.map((p, i) => ({
    maxNewTokens: Math.min(maxNewTokens, policy.config.maxSeqLen - p.length), temperature, seed: seeds[i],
  })));
  return out.map((a, i) => ({
    row: { ids: [...ids[i], ...a.ids, ...(a.stopToken !== null ? [a.stopToken] : [])], start: ids[i].length },
    text: a.text, truncated: a.finishReason === 'length',
  }));
}

// Flat positions of each row's answer tokens in a padded batch (see the header).
export function answerSlots(batch: AnswerBatch, rows: AnswerRow[]): Int32Array[] {
  return rows.map((r, b) => Int32Array.from({ length: r.ids.length - r.start }, (_, i) => b * batch.T + r.start - 1 + i));
}

// The logits at temperature T (a view when T = 1).
export function tempered(logits: Tensor, temperature: number): Tensor {
  return temperature === 1 ? logits : mulScalar(logits, 1 / temperature);
}

// Per row, per answer token: log p(token) under the model at the temperature (no gradient), in chunks of `chunk` rows.
export function tokenLogprobsOf(model: GPT, rows: AnswerRow[], pad: number, temperature = 1, chunk = 8): Float32Array[] {
  const out: Float32Array[] = [];
  for (let i = 0; i < rows.length; i += chunk) {
    const part = rows.slice(i, i + chunk), batch = padBatch(part, pad);
    noGrad(() => {
      const lp = tokenLogprobs(tempered(model.forward(batch.ids, batch.B, batch.T).logits, temperature), batch.targets).data;
      for (const s of answerSlots(batch, part)) out.push(Float32Array.from(s, (j) => lp[j]));
    });
    releaseTape();
  }
  return out;
}

// Per row, per answer token: the critic's value of the state before the token (its scalar head at the slot).
export function valuesOf(critic: GPT, rows: AnswerRow[], pad: number, chunk = 8): Float32Array[] {
  const out: Float32Array[] = [];
  for (let i = 0; i < rows.length; i += chunk) {
    const part = rows.slice(i, i + chunk), batch = padBatch(part, pad);
    noGrad(() => {
      const v = critic.forward(batch.ids, batch.B, batch.T).scores!.data;
      for (const s of answerSlots(batch, part)) out.push(Float32Array.from(s, (j) => v[j]));
    });
    releaseTape();
  }
  return out;
}

// Sample, then score and take both log-probabilities: a rollout batch.
export async function rollouts(policy: GPT, ref: GPT, tok: Tokenizer, reward: RewardSource, prompts: Message[][], seeds: number[],
  o: { maxNewTokens: number; truncationPenalty: number; temperature: number }): Promise<Rollout[]> {
  const answers = sampleAnswers(policy, tok, prompts, seeds, o.maxNewTokens, o.temperature);
  const rows = answers.map((a) => a.row);
  const lpOld = tokenLogprobsOf(policy, rows, tok.pad, o.temperature), lpRef = tokenLogprobsOf(ref, rows, tok.pad, o.temperature);
  const scores = await reward.score(answers.map((a, i) => ({ prompt: prompts[i], answer: a.text })));
  return answers.map((a, i) => ({
    prompt: prompts[i], row: a.row, text: a.text, truncated: a.truncated, lpOld: lpOld[i], lpRef: lpRef[i],
    score: scores[i] - (a.truncated ? o.truncationPenalty : 0),
  }));
}

// The KL of the policy from the reference over its own answers: the mean over answers of sum_t (log pi - log ref), k1
// (Schulman, "Approximating KL divergence", 2020: unbiased on the policy's own samples).
export function answerKL(r: Pick<Rollout, 'lpOld' | 'lpRef'>[]): number {
  let kl = 0;
  for (const x of r) for (let t = 0; t < x.lpOld.length; t++) kl += x.lpOld[t] - x.lpRef[t];
  return kl / Math.max(1, r.length);
}

// The same on fresh answers to prompts (temperature 1, seeded): what DPO and the eval table report as KL to the reference.
export function klFromReference(policy: GPT, ref: GPT, tok: Tokenizer, prompts: Message[][], maxNewTokens: number, seed: number): number {
  const fit = prompts.filter((p) => tok.renderForCompletion(p).length < policy.config.maxSeqLen);
  if (fit.length === 0) return 0;
  const rows = sampleAnswers(policy, tok, fit, fit.map((_, i) => seed + i), maxNewTokens).map((a) => a.row);
  const lpOld = tokenLogprobsOf(policy, rows, tok.pad), lpRef = tokenLogprobsOf(ref, rows, tok.pad);
  return answerKL(rows.map((_, i) => ({ lpOld: lpOld[i], lpRef: lpRef[i] })));
}

export interface PolicyEval { score: number; kl: number; length: number; sample: string }

// Prompts held out from training: mean score, KL to the reference and answer length of seeded samples.
export async function evaluatePolicy(policy: GPT, ref: GPT, tok: Tokenizer, reward: RewardSource, prompts: Message[][], seed: number,
  maxNewTokens: number, temperature = 1): Promise<PolicyEval | null> {
  if (prompts.length === 0) return null;
  const r = await rollouts(policy, ref, tok, reward, prompts, prompts.map((_, i) => seed + i), { maxNewTokens, truncationPenalty: 0, temperature });
  return {
    score: r.reduce((a, x) => a + x.score, 0) / r.length, kl: answerKL(r),
    length: r.reduce((a, x) => a + x.lpOld.length, 0) / r.length, sample: r[0].text,
  };
}

// A held-out evaluation as PPO's and GRPO's stage loops record and print it.
export function policyEvalResult(e: PolicyEval): EvalResult {
  return {
    record: { valScore: e.score, valKl: e.kl, valLength: e.length },
    line: `held-out score ${e.score.toFixed(3)}, KL to reference ${e.kl.toFixed(3)}, length ${e.length.toFixed(1)}: ${JSON.stringify(e.sample)}`,
  };
}
