// A ranking of the K answers to one prompt, and the preference pairs it implies.
//
// In memory a ranking is a list of groups, best first; each group holds 0-based answer indices, and answers in one group
// are tied. Every answer appears exactly once. On disk (the K-way JSONL "ranking" field) it is a flat list best first
// where a tie is an inner list: [2, [0, 1], 3] means answer 2 is best, 0 and 1 tie, 3 is worst.
// People type it 1-based, as the answers are numbered on screen: "3 1=2 4" (also "3,1=2,4" or "3 > 1 = 2 > 4").
//
// Pairs: every answer is preferred to every answer of every later group, so a full order of K answers gives all
// K-choose-2 pairs (InstructGPT, Ouyang et al. 2022, Sec. 3.5: "K choose 2 comparisons for each prompt") and a tie gives
// no pair between the tied answers.
// Boundary: indices only; no text, no files.
import { UserError } from '../util/errors.js';

export type Ranking = number[][];

export interface PairIndex {
  chosen: number;   // answer index
  rejected: number;
}

// Each of 0..K-1 exactly once, no empty group. `where` names the ranking in errors.
export function validateRanking(r: Ranking, K: number, where: string): Ranking {
  const seen = new Set<number>();
  for (const g of r) {
    if (!Array.isArray(g) || g.length === 0) throw new UserError(`${where}: a ranking group is empty`);
    for (const i of g) {
      if (!Number.isInteger(i) || i < 0 || i >= K) throw new UserError(`${where}: answer index ${i} is not in [0, ${K})`);
      if (seen.has(i)) throw new UserError(`${where}: answer index ${i} appears twice in the ranking`);
      seen.add(i);
    }
  }
  if (seen.size !== K) {
    const missing = [...Array(K).keys()].filter((i) => !seen.has(i));
    throw new UserError(`${where}: the ranking leaves out answer index ${missing.join(', ')}`, `rank all ${K} answers (ties are allowed)`);
  }
  return r.map((g) => [...g]);
}

// Parse what a person types: 1-based answer numbers best first, `=` between tied answers.
export function parseOrder(text: string, K: number): Ranking {
  const groups = text
    .trim()
    .replace(/\s*=\s*/g, '=')
    .split(/[>,\s]+/)
    .filter((s) => s.length > 0)
    .map((g) => g.split('=').map((x) => {
      if (!/^\d+$/.test(x)) throw new UserError(`"${x}" is not an answer number`, `type the numbers 1 to ${K}, best first, e.g. ${example(K)}`);
      const n = Number(x);
      if (n < 1 || n > K) throw new UserError(`there is no answer ${n}; the answers are numbered 1 to ${K}`);
      return n - 1;
    }));
  const seen = new Set<number>();
  for (const g of groups) for (const i of g) {
    if (seen.has(i)) throw new UserError(`answer ${i + 1} appears twice`);
    seen.add(i);
  }
  const missing = [...Array(K).keys()].filter((i) => !seen.has(i)).map((i) => i + 1);
  if (missing.length) throw new UserError(`answer${missing.length > 1 ? 's' : ''} ${missing.join(', ')} missing from the order`,
    `rank all ${K} answers best first, e.g. ${example(K)}; tie two with =`);
  return groups;
}

function example(K: number): string {
  const order = [...Array(K).keys()].map((i) => i + 1).reverse();
  return order.length >= 3 ? `${order[0]} ${order[1]}=${order[2]} ${order.slice(3).join(' ')}`.trim() : order.join(' ');
}

// 1-based, as typed: "3 > 1 = 2 > 4".
export function formatOrder(r: Ranking): string {
  return r.map((g) => g.map((i) => i + 1).join(' = ')).join(' > ');
}

export function rankingToJson(r: Ranking): (number | number[])[] {
  return r.map((g) => (g.length === 1 ? g[0] : [...g]));
}

export function rankingFromJson(v: unknown, K: number, where: string): Ranking {
  if (!Array.isArray(v)) throw new UserError(`${where}: "ranking" must be a list of answer indices, best first (ties as inner lists)`);
  const r = v.map((g) => (Array.isArray(g) ? g : [g])) as number[][];
  return validateRanking(r, K, where);
}

// Every (chosen, rejected) pair the ranking implies, best answers first.
export function rankingPairs(r: Ranking): PairIndex[] {
  const out: PairIndex[] = [];
  for (let a = 0; a < r.length; a++)
    for (let b = a + 1; b < r.length; b++)
      for (const chosen of r[a]) for (const rejected of r[b]) out.push({ chosen, rejected });
  return out;
}

// All answers tied: what "all bad" is stored as (no pair: nothing to prefer).
export function allTied(K: number): Ranking {
  return [[...Array(K).keys()]];
}
