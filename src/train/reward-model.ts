// The reward model as a noun: a scalar-head GPT and the bias that normalises its scores (reward.json), scoring answers to
// prompts. Trained by src/stages/reward.ts; used by PPO and GRPO (src/stages/rollout.ts) and by the eval table.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readJson } from '../util/fsx.js';
import type { GPT } from '../model/gpt.js';
import { loadModel } from '../model/checkpoint.js';
import type { Message, Tokenizer } from '../tokenizer/index.js';
import { answerRow, scoreRows, type AnswerRow } from './preferences.js';

export const REWARD_JSON = 'reward.json';

export class RewardModel {
  constructor(readonly model: GPT, readonly tokenizer: Tokenizer, readonly offset: number) {}

  static load(dir: string): RewardModel {
    const { model, tokenizer } = loadModel(dir);
    if (!model.config.scalarHead) throw new UserError(`${dir} is not a reward model (it has a language-model head)`, 'train one with `chatwright reward`');
    if (!tokenizer) throw new UserError(`no tokenizer in ${dir}`, 'a reward model folder needs tokenizer.json (chatwright reward saves it)');
    const norm = existsSync(join(dir, REWARD_JSON)) ? readJson(join(dir, REWARD_JSON), 'reward normalisation') : { offset: 0 };
    if (!Number.isFinite(norm.offset)) throw new UserError(`${join(dir, REWARD_JSON)}: offset must be a finite number`, 'train the reward model again');
    return new RewardModel(model, tokenizer, norm.offset);
  }

  // Normalised scores of answers to prompts (one per row).
  score(items: { prompt: Message[]; answer: string }[]): number[] {
    const rows = items.map((x) => answerRow(this.tokenizer, x.prompt, x.answer));
    const raw = scoreRows(this.model, rows.map((r) => clip(r, this.model.config.maxSeqLen)), this.tokenizer.pad);
    return Array.from(raw, (r) => r - this.offset);
  }
}

// A row longer than the context keeps its end (the answer and its <|eot|>) and loses the start of its prompt.
function clip(r: AnswerRow, maxT: number): AnswerRow {
  if (r.ids.length <= maxT) return r;
  const cut = r.ids.length - maxT;
  return { ids: r.ids.slice(cut), start: Math.max(0, r.start - cut) };
}
