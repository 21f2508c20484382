// THE SIMULATED LABELLER: a rule-based judge of poems that stands in for people in unattended runs (the demo, CI, the
// tests). It is not a person and is named as such wherever it shows: the annotator of its rankings is
// "simulated-labeller v1", the CLI says "simulated labeller", the eval table's rows say so.
//
// It judges answers to the built-in poem prompts ("写一首五言绝句，题目是《X》"), where the SFT model is weak on
// everything but the form. Four criteria, each in [0, 1], for a request of L lines of C characters with title X:
//   form        lines among the first L with exactly C Han characters, divided by max(lines written, L):
//               1 for the requested form, 3/4 for a quatrain with one bad line, 4/5 for five good lines instead of four
//   rhyme       the even lines (2nd, 4th, ... of the first L) should end in one rhyme group (rhyme.ts, 中华新韵 by the
//               pinyin of the line's last character); with n even lines and m of them ending in distinct characters of
//               the largest group: (m - 1) / (n - 1). A quatrain: 1 when lines 2 and 4 rhyme, else 0. The same
//               character twice in rhyme position counts once (重韵 is a fault). 0 with fewer than two even lines.
//   repetition  1 - 2 * r, floored at 0, where r is the share of Han characters that repeat an earlier one
//               (1 - distinct / total): 一杯同一醉，一醉一杯中 has r = 1/2 and scores 0; 静夜思 has r = 3/20, 0.7
//   title       the distinct Han characters of the title that appear in the poem, divided by min(2, their number),
//               capped at 1: using two of the title's characters (or its only one) is full marks
// score = 0.25 form + 0.30 rhyme + 0.25 repetition + 0.20 title (WEIGHTS), in [0, 1]. An answer with no Han character
// scores 0. Rhyme weighs most because SFT rarely rhymes; form least of the first three because SFT already has it.
//
// Prompts that ask for no poem get no score (null): judging free text by rules is beyond what is reasonable here, so the
// labeller ranks only poem prompts and leaves the others to people (`chatwright rank`).
//
// Disagreement between people: with noise sigma > 0 each answer's score gets independent Gaussian noise N(0, sigma^2)
// before ranking, drawn from a generator seeded by (seed, item): Thurstone's case V (Thurstone 1927), so the labeller
// prefers a over b with probability Phi((s_a - s_b) / (sigma * sqrt 2)). sigma = 0.1 flips about a quarter of the pairs
// whose scores differ by 0.1. sigma = 0 is deterministic and answers with equal scores are tied.
// Boundary: strings in, scores and rankings out; no files, no model.
import type { Message } from '../tokenizer/index.js';
import { answerForm, countHan, fnv1a, splitPoemLines, FORM_NAMES, type Reference } from '../train/demos.js';
import { Rng } from '../util/rng.js';
import { lineEndRhyme, type RhymeGroup } from './rhyme.js';
import type { Judge } from './judge.js';
import type { Ranking } from './ranking.js';
import type { SampleItem } from './items.js';
import { PreferenceConflict, PreferenceStore } from './store.js';

export const LABELLER = 'simulated-labeller v1';

export const WEIGHTS = { form: 0.25, rhyme: 0.3, repetition: 0.25, title: 0.2 } as const;

export interface PoemRequest {
  title: string;
  lines: number;
  chars: number;
}

const FORM_OF_NAME = new Map(Object.entries(FORM_NAMES).map(([k, name]) => {
  const [chars, lines] = k.split('x').map(Number);
  return [name, { chars, lines }];
}));

// What a poem prompt asks for, read from the last user message: 写一首<五言|七言><绝句|律诗>，题目是《X》. A reference
// (eval_prompts.jsonl) overrides the form. null for any other prompt.
export function poemRequest(prompt: Message[] | string, reference?: Reference): PoemRequest | null {
  const text = typeof prompt === 'string' ? prompt : [...prompt].reverse().find((m) => m.role === 'user')?.content ?? '';
  const m = /写一首(五言绝句|七言绝句|五言律诗|七言律诗)[，,]\s*题目是《([^》]+)》/.exec(text);
  if (!m) return null;
  const form = reference?.task === 'poem-form' ? { lines: reference.lines, chars: reference.chars } : FORM_OF_NAME.get(m[1])!;
  return { title: m[2], ...form };
}

export interface PoemCriteria {
  form: number;
  rhyme: number;
  repetition: number;
  title: number;
  score: number;         // the weighted sum
  rhymes: boolean;       // every even line ends in one rhyme group (at least two even lines)
  repeatRate: number;    // share of Han characters that repeat an earlier one
  rhymeGroups: (RhymeGroup | null)[]; // of the even lines' last characters, for display
}

const HAN = /\p{Script=Han}/u;
const hanChars = (s: string) => [...s].filter((c) => HAN.test(c));

export function judgePoem(answer: string, req: PoemRequest): PoemCriteria {
  const lines = splitPoemLines(answer).filter((l) => countHan(l) > 0);
  const chars = hanChars(answer);
  if (chars.length === 0) return { form: 0, rhyme: 0, repetition: 0, title: 0, score: 0, rhymes: false, repeatRate: 0, rhymeGroups: [] };

  const counts = answerForm(answer).chars;
  const good = counts.slice(0, req.lines).filter((n) => n === req.chars).length;
  const form = good / Math.max(counts.length, req.lines);

  const even = lines.slice(0, req.lines).filter((_, i) => i % 2 === 1).map(lineEndRhyme);
  const byGroup = new Map<RhymeGroup, Set<string>>();
  for (const e of even) if (e?.group) byGroup.set(e.group, (byGroup.get(e.group) ?? new Set()).add(e.char));
  const m = Math.max(0, ...[...byGroup.values()].map((s) => s.size));
  const n = even.length;
  const rhyme = n >= 2 && m >= 1 ? (m - 1) / (n - 1) : 0;

  const repeatRate = 1 - new Set(chars).size / chars.length;
  const repetition = Math.max(0, 1 - 2 * repeatRate);

  const titleChars = [...new Set(hanChars(req.title))];
  const body = new Set(chars);
  const used = titleChars.filter((c) => body.has(c)).length;
  const title = titleChars.length === 0 ? 1 : Math.min(1, used / Math.min(2, titleChars.length));

  const score = WEIGHTS.form * form + WEIGHTS.rhyme * rhyme + WEIGHTS.repetition * repetition + WEIGHTS.title * title;
  return { form, rhyme, repetition, title, score, rhymes: n >= 2 && m === n, repeatRate, rhymeGroups: even.map((e) => e?.group ?? null) };
}

// The labeller's score of an answer to a prompt, or null when the prompt asks for no poem.
export function labellerScore(prompt: Message[], answer: string, reference?: Reference): number | null {
  const req = poemRequest(prompt, reference);
  return req ? judgePoem(answer, req).score : null;
}

export const simulatedLabeller: Judge = { name: 'simulated labeller', score: (prompt, answer) => labellerScore(prompt, answer) };

export interface LabelOptions {
  noise?: number;  // sigma of the Thurstone noise on scores (0: none)
  seed?: number;
}

export interface Labelled {
  ranking: Ranking;
  scores: number[];  // noise-free, one per answer
  noisy: number[];   // what was ranked
}

// Rank one item's answers by score (best first); null when its prompt asks for no poem. itemId seeds the noise, so the
// same item, seed and noise always get the same ranking.
export function labellerRanking(item: { id: string; prompt: Message[]; responses: string[]; reference?: Reference },
  opts: LabelOptions = {}): Labelled | null {
  const req = poemRequest(item.prompt, item.reference);
  if (!req) return null;
  const sigma = opts.noise ?? 0;
  const rng = new Rng(fnv1a(`${opts.seed ?? 0}:${item.id}`));
  const scores = item.responses.map((a) => judgePoem(a, req).score);
  const noisy = scores.map((s) => (sigma > 0 ? s + sigma * rng.normal() : s));
  // groups of equal (rounded) score, best first: equal scores tie only without noise
  const key = (x: number) => Math.round(x * 1e9);
  const order = [...noisy.keys()].sort((a, b) => noisy[b] - noisy[a] || a - b);
  const ranking: Ranking = [];
  for (const i of order) {
    const last = ranking[ranking.length - 1];
    if (last && key(noisy[last[0]]) === key(noisy[i])) last.push(i);
    else ranking.push([i]);
  }
  return { ranking, scores, noisy };
}

// ---------------------------------------------------------------------------------------------------------------------
// Ranking a samples file into a store by the simulated labeller (`chatwright label`, the demo): each poem item ranked
// once (an item already ranked is left alone), with the headroom figures of the answers: their mean score and the mean
// of the best of each item's K (noise-free scores).

export interface LabelSummary {
  annotator: string; store: string; noise: number; seed: number; items: number; ranked: number; alreadyRanked: number;
  notPoemPrompts: number; answers: number; meanScore: number | null; bestOfKMeanScore: number | null;
  criteria: { form: number | null; rhyme: number | null; repetition: number | null; title: number | null; rhymeRate: number | null; repeatedCharRate: number | null };
  weights: typeof WEIGHTS;
}

export function labelSamples(items: SampleItem[], storeDir: string, opts: { noise: number; seed: number; warn?: (s: string) => void }): LabelSummary {
  const store = PreferenceStore.open(storeDir, { command: 'chatwright label' });
  let ranked = 0, notPoems = 0, already = 0, answers = 0, sum = 0, bestSum = 0, judged = 0;
  const crit = { form: 0, rhyme: 0, repetition: 0, title: 0, rhymes: 0, repeatRate: 0 };
  try {
    for (const r of store.repaired) opts.warn?.(r);
    store.addItems(items);
    for (const item of items) {
      const req = poemRequest(item.prompt, item.reference);
      const l = labellerRanking(item, { noise: opts.noise, seed: opts.seed });
      if (!req || !l) {
        notPoems++;
        continue;
      }
      judged++;
      bestSum += Math.max(...l.scores);
      for (const ans of item.responses) {
        const c = judgePoem(ans, req);
        answers++;
        sum += c.score;
        crit.form += c.form; crit.rhyme += c.rhyme; crit.repetition += c.repetition; crit.title += c.title;
        crit.rhymes += c.rhymes ? 1 : 0; crit.repeatRate += c.repeatRate;
      }
      try {
        store.submit(LABELLER, item.id, { verdict: 'ranked', ranking: l.ranking }, {
          labeller: LABELLER, noise: opts.noise, seed: opts.seed, scores: l.scores.map((s) => Number(s.toFixed(4))),
        });
        ranked++;
      } catch (e) {
        if (!(e instanceof PreferenceConflict)) throw e;
        already++;
      }
    }
  } finally {
    store.close();
  }
  const mean = (x: number) => (answers ? x / answers : null);
  return {
    annotator: LABELLER, store: storeDir, noise: opts.noise, seed: opts.seed, items: items.length, ranked, alreadyRanked: already,
    notPoemPrompts: notPoems, answers, meanScore: mean(sum), bestOfKMeanScore: judged ? bestSum / judged : null,
    criteria: { form: mean(crit.form), rhyme: mean(crit.rhyme), repetition: mean(crit.repetition), title: mean(crit.title),
      rhymeRate: mean(crit.rhymes), repeatedCharRate: mean(crit.repeatRate) },
    weights: WEIGHTS,
  };
}
