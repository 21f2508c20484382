// The sampler: how one next-token id is chosen from a row of logits. A fixed chain of pure functions, each taking a
// logits row (V) and returning a new one, applied in this order:
//
//   1. repetition penalty   CTRL (Keskar et al. 2019, Sec. 4.1): for every token already in the context (prompt and
//                           generated), a positive logit is divided by the penalty and a negative one multiplied by it,
//                           once per distinct token (as Hugging Face's RepetitionPenaltyLogitsProcessor).
//   2. presence, frequency  OpenAI's definition (platform.openai.com/docs/advanced-usage, "frequency and presence
//                           penalties"): logit[j] -= count[j] * frequency + (count[j] > 0) * presence, counts over the
//                           GENERATED tokens only; both in [-2, 2].
//   3. logit bias           logit[j] += bias[j], bias in [-100, 100] (OpenAI's `logit_bias`).
//   4. top-k                keep the k largest logits (ties broken by lower id); 0 turns it off.
//   5. top-p (nucleus)      keep the smallest set of most probable tokens whose probability sums to at least p
//                           (Holtzman et al. 2019, Eq. 3); tokens tied with the last one kept are kept too.
//   6. min-p                keep tokens whose probability is at least minP times the top one's (Nguyen et al. 2024,
//                           "Turning Up the Heat: Min-p Sampling").
//   7. temperature          logits / T. T = 0 means argmax (greedy), the lowest id on ties.
//   8. draw                 softmax, then one uniform draw from the seeded Rng (src/util/rng.ts) through the cumulative sum.
//
// Why temperature comes after the truncations: the truncations then choose the candidate set from the model's own
// (penalised) distribution, and temperature only reshapes the odds inside that set, so a high temperature cannot let the
// long tail of junk tokens back in and top-p/min-p thresholds mean the same thing at every temperature. This is
// llama.cpp's default chain (common/common.h, `common_params_sampling::samplers`: penalties, dry, top_n_sigma, top_k,
// typical_p, top_p, min_p, xtc, temperature, then the `dist` sampler), and the order the min-p paper recommends.
// Hugging Face's `generate` applies temperature first; with temperature 1 (or no truncation) the two orders agree.
//
// Removed tokens get -Infinity. Every step keeps at least one token. The functions are pure: none writes to its input,
// and a step that changes nothing returns its input as it is (no copy). `Sampler` holds the only state (the Rng and the
// token counts) for one sequence.
// Boundary: logits and token ids; no model, no text.
import { UserError } from '../util/errors.js';
import { Rng, type RngState } from '../util/rng.js';

export interface SamplingOptions {
  temperature?: number; // [0, 2], default 1; 0 = greedy
  topK?: number; // integer >= 0, default 0 (off)
  topP?: number; // (0, 1], default 1 (off)
  minP?: number; // [0, 1], default 0 (off)
  repetitionPenalty?: number; // (0, 10], default 1 (off); CTRL suggests 1.2
  presencePenalty?: number; // [-2, 2], default 0
  frequencyPenalty?: number; // [-2, 2], default 0
  logitBias?: Record<number, number>; // token id -> [-100, 100]
  seed?: number; // safe integer, default 0
}

export type ResolvedSampling = Required<Omit<SamplingOptions, 'logitBias'>> & { logitBias: Map<number, number> };

export const SAMPLING_DEFAULTS = {
  temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, seed: 0,
} as const;

// Validate and fill in defaults. vocabSize, when given, bounds the logit_bias ids.
export function resolveSampling(opts: SamplingOptions = {}, vocabSize?: number): ResolvedSampling {
  const o = { ...SAMPLING_DEFAULTS, ...dropUndefined(opts) };
  const range = (name: string, x: number, lo: number, hi: number, loOpen = false) => {
    if (typeof x !== 'number' || !Number.isFinite(x) || (loOpen ? x <= lo : x < lo) || x > hi)
      throw new UserError(`${name} must be in ${loOpen ? '(' : '['}${lo}, ${hi}], got ${x}`, samplingHint);
  };
  range('temperature', o.temperature, 0, 2);
  range('topP', o.topP, 0, 1, true);
  range('minP', o.minP, 0, 1);
  range('repetitionPenalty', o.repetitionPenalty, 0, 10, true);
  range('presencePenalty', o.presencePenalty, -2, 2);
  range('frequencyPenalty', o.frequencyPenalty, -2, 2);
  if (!Number.isInteger(o.topK) || o.topK < 0)
    throw new UserError(`topK must be an integer >= 0 (0 turns it off), got ${o.topK}`, samplingHint);
  if (!Number.isSafeInteger(o.seed)) throw new UserError(`seed must be an integer, got ${o.seed}`, samplingHint);
  const logitBias = new Map<number, number>();
  for (const [k, v] of Object.entries(opts.logitBias ?? {})) {
    const id = Number(k);
    if (!Number.isInteger(id) || id < 0 || (vocabSize !== undefined && id >= vocabSize))
      throw new UserError(`logitBias: token id ${k} is not in [0, ${vocabSize ?? 'vocabSize'})`, samplingHint);
    range(`logitBias[${k}]`, v, -100, 100);
    logitBias.set(id, v);
  }
  return { ...o, logitBias };
}

const samplingHint = 'see `chatwright generate --help` for the sampling options and their ranges';

function dropUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

// ---------------------------------------------------------------------------------------------------------------------
// the chain, one pure function per step

export function applyRepetitionPenalty(logits: Float32Array, context: ArrayLike<number>, penalty: number): Float32Array {
  if (penalty === 1) return logits;
  const out = logits.slice();
  const seen = new Set<number>();
  for (let i = 0; i < context.length; i++) {
    const j = context[i];
    if (seen.has(j) || j < 0 || j >= out.length) continue;
    seen.add(j);
    out[j] = logits[j] > 0 ? logits[j] / penalty : logits[j] * penalty;
  }
  return out;
}

// counts: token id -> times it was generated so far
export function applyPresenceFrequency(
  logits: Float32Array, counts: ReadonlyMap<number, number>, presence: number, frequency: number,
): Float32Array {
  if (presence === 0 && frequency === 0) return logits;
  const out = logits.slice();
  for (const [j, c] of counts) if (c > 0 && j >= 0 && j < out.length) out[j] -= c * frequency + presence;
  return out;
}

export function applyLogitBias(logits: Float32Array, bias: ReadonlyMap<number, number>): Float32Array {
  if (bias.size === 0) return logits;
  const out = logits.slice();
  for (const [j, b] of bias) if (j >= 0 && j < out.length) out[j] += b;
  return out;
}

export function topK(logits: Float32Array, k: number): Float32Array {
  const V = logits.length;
  if (k <= 0 || k >= V) return logits;
  const kth = kthLargest(logits.slice(), k);
  const out = logits.slice();
  let above = 0;
  for (let j = 0; j < V; j++) if (logits[j] > kth) above++;
  let tiesLeft = k - above; // admit ties with the k-th value in id order
  for (let j = 0; j < V; j++) {
    if (logits[j] > kth) continue;
    if (logits[j] === kth && tiesLeft > 0) tiesLeft--;
    else out[j] = -Infinity;
  }
  return out;
}

// The k-th largest value (k >= 1) by quickselect (Hoare's FIND, median-of-three pivot); reorders a. O(n) on average.
function kthLargest(a: Float32Array, k: number): number {
  let lo = 0, hi = a.length - 1;
  const want = k - 1; // index in descending order
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const x = a[lo], y = a[mid], z = a[hi];
    const pivot = x < y ? (y < z ? y : x < z ? z : x) : x < z ? x : y < z ? z : y;
    let i = lo, j = hi;
    while (i <= j) {
      while (a[i] > pivot) i++;
      while (a[j] < pivot) j--;
      if (i <= j) {
        const t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
      }
    }
    if (want <= j) hi = j;
    else if (want >= i) lo = i;
    else return a[want];
  }
  return a[want];
}

export function topP(logits: Float32Array, p: number): Float32Array {
  if (p >= 1) return logits;
  const out = logits.slice();
  const probs = softmax(logits);
  // Collect the candidates above a threshold, lowering it until they hold mass >= p: the nucleus is then inside them,
  // since they are exactly the most probable tokens. This sorts a few hundred values instead of the whole vocabulary.
  let pmax = 0;
  for (let j = 0; j < probs.length; j++) if (probs[j] > pmax) pmax = probs[j];
  let thr = pmax / 64;
  let n = 0;
  for (;;) {
    n = 0;
    let mass = 0;
    for (let j = 0; j < probs.length; j++) if (probs[j] >= thr) {
      n++;
      mass += probs[j];
    }
    if (mass >= p || thr === 0) break;
    thr = thr < 1e-300 ? 0 : thr / 64;
  }
  const cand = new Float64Array(n);
  for (let j = 0, i = 0; j < probs.length; j++) if (probs[j] >= thr) cand[i++] = probs[j];
  cand.sort(); // ascending, typed (native) sort; walk it from the top
  let cum = 0;
  let cut = cand[0];
  for (let i = n - 1; i >= 0; i--) {
    cum += cand[i];
    if (cum >= p) {
      cut = cand[i];
      break;
    }
  }
  for (let j = 0; j < out.length; j++) if (probs[j] < cut) out[j] = -Infinity;
  return out;
}

export function minP(logits: Float32Array, m: number): Float32Array {
  if (m <= 0) return logits;
  const out = logits.slice();
  // p_j >= m * p_max  <=>  logit_j >= logit_max + log(m): no softmax needed
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) if (logits[j] > max) max = logits[j];
  const floor = max + Math.log(m);
  for (let j = 0; j < out.length; j++) if (logits[j] < floor) out[j] = -Infinity;
  return out;
}

export function applyTemperature(logits: Float32Array, t: number): Float32Array {
  if (t <= 0) throw new RangeError(`applyTemperature: temperature must be > 0 (0 is the greedy path of draw), got ${t}`);
  if (t === 1) return logits;
  const out = logits.slice();
  for (let j = 0; j < out.length; j++) out[j] = logits[j] / t;
  return out;
}

// softmax in float64; -Infinity logits get probability 0
export function softmax(logits: ArrayLike<number>): Float64Array {
  const n = logits.length;
  const p = new Float64Array(n);
  let max = -Infinity;
  for (let j = 0; j < n; j++) if (logits[j] > max) max = logits[j];
  let sum = 0;
  for (let j = 0; j < n; j++) {
    const e = logits[j] === -Infinity ? 0 : Math.exp(logits[j] - max);
    p[j] = e;
    sum += e;
  }
  for (let j = 0; j < n; j++) p[j] /= sum;
  return p;
}

export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let j = 1; j < x.length; j++) if (x[j] > x[best]) best = j;
  return best;
}

// One draw from softmax(logits) with a uniform u in [0, 1).
export function drawFromLogits(logits: Float32Array, u: number): number {
  const p = softmax(logits);
  let cum = 0;
  let last = 0;
  for (let j = 0; j < p.length; j++) {
    if (p[j] === 0) continue;
    cum += p[j];
    last = j;
    if (u < cum) return j;
  }
  return last; // u within rounding of 1
}

// Steps 1-7 as one pure function: the logits the draw sees (temperature 0 leaves them untempered).
export function processLogits(
  logits: Float32Array, o: ResolvedSampling, context: ArrayLike<number>, counts: ReadonlyMap<number, number>,
): Float32Array {
  let x = applyRepetitionPenalty(logits, context, o.repetitionPenalty);
  x = applyPresenceFrequency(x, counts, o.presencePenalty, o.frequencyPenalty);
  if (o.logitBias.size > 0) x = applyLogitBias(x, o.logitBias);
  if (o.temperature === 0) return x; // greedy: truncations cannot change the argmax
  x = topK(x, o.topK);
  x = topP(x, o.topP);
  x = minP(x, o.minP);
  return applyTemperature(x, o.temperature);
}

// ---------------------------------------------------------------------------------------------------------------------
// log-probabilities for the API (`logprobs`): of the model's raw distribution, before penalties, truncation and
// temperature (what the model believes; vLLM's default and OpenAI's behaviour)

export interface TokenLogprob { id: number; logprob: number }

export function logSumExp(logits: ArrayLike<number>): number {
  let max = -Infinity;
  for (let j = 0; j < logits.length; j++) if (logits[j] > max) max = logits[j];
  let sum = 0;
  for (let j = 0; j < logits.length; j++) sum += Math.exp(logits[j] - max);
  return max + Math.log(sum);
}

export function logSoftmax(logits: ArrayLike<number>): Float64Array {
  const lse = logSumExp(logits);
  const out = new Float64Array(logits.length);
  for (let j = 0; j < logits.length; j++) out[j] = logits[j] - lse;
  return out;
}

// The n largest entries of x, descending (ids ascending on ties).
export function topN(x: ArrayLike<number>, n: number): TokenLogprob[] {
  const best: TokenLogprob[] = [];
  for (let j = 0; j < x.length; j++) {
    const v = x[j];
    if (best.length === n && !(v > best[n - 1].logprob)) continue;
    let i = best.length === n ? n - 1 : best.length;
    if (best.length < n) best.push({ id: j, logprob: v });
    while (i > 0 && best[i - 1].logprob < v) {
      best[i] = best[i - 1];
      i--;
    }
    best[i] = { id: j, logprob: v };
  }
  return best;
}

export const MAX_TOP_LOGPROBS = 20;

// A NaN or +Infinity among the model's logits has no probability to draw from: softmax turns the whole row into NaN and
// the draw into an arbitrary id. Stop with an error instead of emitting it (-Infinity is a banned token, which is fine).
export function checkLogits(logits: Float32Array): void {
  for (let j = 0; j < logits.length; j++) {
    const v = logits[j];
    if (v !== v || v === Infinity) {
      throw new UserError(`the model produced a logit of ${v} (token ${j}); generation stopped instead of drawing from it`,
        'the weights overflow float32 or are corrupt; use another checkpoint (loading checks that every weight is finite)');
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Sampler: the chain plus the per-sequence state (rng, the context for the repetition penalty, generated-token counts)

export interface SampleResult {
  id: number;
  logprob?: number; // log p(id) under the raw model distribution (when logprobs was given, or explain)
  top?: TokenLogprob[]; // top-n of the raw distribution
  candidates?: { id: number; prob: number }[]; // explain: top-n of the distribution the draw used
  prob?: number; // explain: the drawn token's probability under that distribution
  chain?: ChainCandidate[]; // explain: the top-n before the truncations, each with the step that cut it
}

// One candidate of the lottery, seen through the chain: p is its probability after the penalties and bias at
// temperature 1 (what the truncations choose from), prob its probability in the draw, and cut the step that removed it
// (null when it stayed in the draw). 'greedy': temperature 0 keeps only the argmax.
export type CutBy = 'top-k' | 'top-p' | 'min-p' | 'greedy';
export interface ChainCandidate { id: number; p: number; prob: number; cut: CutBy | null }

// The chain replayed step by step for the n most probable tokens before truncation (the explain view of the API and the
// web page's lottery). The drawn token is appended when it is not among them. Pure; costs a few passes over V, so it
// runs only when explain is asked for.
export function explainChain(
  logits: Float32Array, o: ResolvedSampling, context: ArrayLike<number>, counts: ReadonlyMap<number, number>,
  n: number, drawn: number,
): ChainCandidate[] {
  let x = applyRepetitionPenalty(logits, context, o.repetitionPenalty);
  x = applyPresenceFrequency(x, counts, o.presencePenalty, o.frequencyPenalty);
  if (o.logitBias.size > 0) x = applyLogitBias(x, o.logitBias);
  const before = softmax(x);
  const ids = topN(before, n).map((c) => c.id);
  if (!ids.includes(drawn)) ids.push(drawn);
  if (o.temperature === 0) {
    const best = argmax(x);
    return ids.map((id) => ({ id, p: before[id], prob: id === best ? 1 : 0, cut: id === best ? null : 'greedy' as const }));
  }
  const k = topK(x, o.topK), pp = topP(k, o.topP), m = minP(pp, o.minP);
  const final = softmax(applyTemperature(m, o.temperature));
  const cutOf = (id: number): CutBy | null =>
    k[id] === -Infinity ? 'top-k' : pp[id] === -Infinity ? 'top-p' : m[id] === -Infinity ? 'min-p' : null;
  return ids.map((id) => ({ id, p: before[id], prob: final[id], cut: cutOf(id) }));
}

export class Sampler {
  readonly opts: ResolvedSampling;
  readonly rng: Rng;
  private context: number[];
  private counts = new Map<number, number>();

  constructor(opts: SamplingOptions, prompt: ArrayLike<number> = [], vocabSize?: number) {
    this.opts = resolveSampling(opts, vocabSize);
    this.rng = new Rng(this.opts.seed);
    this.context = Array.from(prompt);
  }

  // Choose the next token from one logits row (V). logprobs: undefined = none (saves a pass of V exps), 0 = the chosen
  // token's, n = and the top n alternatives (<= 20); explain: how many candidates of the final distribution to return.
  sample(logits: Float32Array, logprobs?: number, explain = 0): SampleResult {
    checkLogits(logits);
    const x = processLogits(logits, this.opts, this.context, this.counts);
    const id = this.opts.temperature === 0 ? argmax(x) : drawFromLogits(x, this.rng.next());
    const res: SampleResult = { id };
    if (logprobs !== undefined && logprobs > 0) {
      const lp = logSoftmax(logits);
      res.logprob = lp[id];
      res.top = topN(lp, Math.min(logprobs, MAX_TOP_LOGPROBS));
    } else if (logprobs !== undefined || explain > 0) res.logprob = logits[id] - logSumExp(logits);
    if (explain > 0) {
      // greedy: show the penalised distribution at temperature 1, of which the argmax was taken
      const final = softmax(x);
      res.candidates = topN(final, explain).map((c) => ({ id: c.id, prob: c.logprob }));
      res.prob = final[id];
      res.chain = explainChain(logits, this.opts, this.context, this.counts, explain, id);
    }
    this.accept(id);
    return res;
  }

  // Record a token as generated (sample calls it; call it yourself for tokens forced from outside).
  accept(id: number): void {
    this.context.push(id);
    this.counts.set(id, (this.counts.get(id) ?? 0) + 1);
  }

  getRngState(): RngState {
    return this.rng.state();
  }
}
