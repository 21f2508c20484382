// A judge scores an answer to a prompt; comparing two models' answers to the same prompts by a judge gives a win rate.
// The simulated labeller (labeller.ts) is one judge; a reward model is another (a scalar score, any range): anything
// with this shape can sit in the evaluation table.
// Boundary: no model loading, no files.
import type { Message } from '../tokenizer/index.js';

export interface Judge {
  name: string;  // shown in the table: "simulated labeller", "reward model runs/demo/rm"
  // higher is better; null when the judge has no opinion on this prompt (the labeller on a prompt that asks no poem)
  score(prompt: Message[], answer: string): number | null;
  // several answers at once, for judges that batch (a reward model); defaults to score() one by one
  scoreMany?(items: { prompt: Message[]; answer: string }[]): (number | null)[];
}

export function scoreAll(judge: Judge, items: { prompt: Message[]; answer: string }[]): (number | null)[] {
  return judge.scoreMany ? judge.scoreMany(items) : items.map((x) => judge.score(x.prompt, x.answer));
}

// Share of prompts where answer a beats answer b under the judge, a tie counting half (the convention of AlpacaEval and
// of the DPO paper's win rates). Prompts the judge has no opinion on are left out; null when none is left.
export function winRate(judge: Judge, prompts: Message[][], answersA: string[], answersB: string[]): { rate: number | null; n: number } {
  if (answersA.length !== prompts.length || answersB.length !== prompts.length)
    throw new Error(`winRate: ${prompts.length} prompts but ${answersA.length} and ${answersB.length} answers`);
  const a = scoreAll(judge, prompts.map((prompt, i) => ({ prompt, answer: answersA[i] })));
  const b = scoreAll(judge, prompts.map((prompt, i) => ({ prompt, answer: answersB[i] })));
  let wins = 0;
  let n = 0;
  for (let i = 0; i < prompts.length; i++) {
    const x = a[i], y = b[i];
    if (x === null || y === null) continue;
    n++;
    wins += x > y ? 1 : x === y ? 0.5 : 0;
  }
  return { rate: n > 0 ? wins / n : null, n };
}
