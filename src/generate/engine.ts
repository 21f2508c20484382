// The inference engine: prefill a prompt in one pass, then decode one token per step against a preallocated KV cache,
// for a batch of sequences of different lengths at once. The engine knows nothing about text; it sees token ids
// (nanochat `engine.py`). Stop strings, streaming and decoding to text live a layer up (stream.ts).
//
// - Prefill: each row's prompt goes through GPT.forwardCached alone (rows: [b], lastOnly), so rows of different lengths
//   need no padding; a prompt that repeats in the batch is prefilled once and its cache rows copied. Decode: every
//   unfinished row advances together, one token per forward (rows: the active ones), so a finished row costs nothing
//   and its cache stays as it was.
// - A step samples from the pending logits; the sampled token is fed to the model at the START of the next step. So a
//   caller that ends a row after seeing its token (a stop string matched) never pays for one more forward.
// - Stops: a stop token (end of turn / end of text; it ends the row and is not part of the output), maxNewTokens, and the
//   context (cache) limit. finishReason is 'stop' for the first, 'length' for the other two (OpenAI's convention).
// - Session: one conversation's cache kept across turns. A new prompt reuses the longest cached prefix (the cache is
//   rewound to it by setting lens, since entries past lens are never read) and prefills only the rest.
import { UserError } from '../util/errors.js';
import type { GPT, KVCache } from '../model/gpt.js';
import { MAX_TOP_LOGPROBS, Sampler, type SamplingOptions, type TokenLogprob } from './sampler.js';

export type FinishReason = 'stop' | 'length';

export interface EngineOptions extends SamplingOptions {
  maxNewTokens: number;
  stopTokens?: number[]; // ids that end a row (not emitted)
  logprobs?: number; // undefined: none; 0: the chosen token's log-probability; 1..20: and the top alternatives
  explain?: number; // candidates of the final sampling distribution per step (the --explain view)
}

export interface TokenStep {
  id: number;
  logprob?: number; // when logprobs was asked for (or explain)
  top?: TokenLogprob[];
  candidates?: { id: number; prob: number }[]; // explain: the top of the distribution the draw used
  prob?: number; // explain: the drawn token's probability under it
}

export interface RowResult {
  ids: number[]; // generated ids, without the stop token
  steps: TokenStep[]; // one per generated id
  finishReason: FinishReason | null; // null while the row is still running
  stopToken: number | null; // the stop token that ended it, if any
  promptTokens: number;
}

export function validateEngineOptions(o: EngineOptions): void {
  if (!Number.isInteger(o.maxNewTokens) || o.maxNewTokens < 1)
    throw new UserError(`maxNewTokens must be an integer >= 1, got ${o.maxNewTokens}`);
  const lp = o.logprobs ?? 0;
  if (!Number.isInteger(lp) || lp < 0 || lp > MAX_TOP_LOGPROBS)
    throw new UserError(`logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${lp}`);
  const ex = o.explain ?? 0;
  if (!Number.isInteger(ex) || ex < 0 || ex > 100) throw new UserError(`explain must be an integer in [0, 100], got ${ex}`);
}

// One batched decode. Drive it with step() until done; finish(b) ends a row from outside.
export class DecodeRun {
  readonly B: number;
  readonly rows: RowResult[];
  private readonly samplers: Sampler[];
  private readonly pending: (Float32Array | null)[]; // logits (V) to sample the next token of each row from
  readonly lastLogits: (Float32Array | null)[]; // the raw logits (V) the last token of each row was drawn from
  private readonly feed: (number | null)[]; // sampled token waiting to be fed to the model
  private readonly V: number;

  constructor(
    private readonly model: GPT, readonly cache: KVCache, prompts: number[][], private readonly opts: EngineOptions[],
    cached: number[] = [], // per row: how many prompt tokens are already in the cache (a Session's reuse)
  ) {
    this.B = prompts.length;
    this.V = model.config.vocabSize;
    const maxT = cache.maxT;
    this.samplers = [];
    this.rows = [];
    this.pending = [];
    this.lastLogits = new Array(this.B).fill(null);
    this.feed = new Array(this.B).fill(null);
    const seen = new Map<string, number>(); // prompt -> the row that prefilled it
    for (let b = 0; b < this.B; b++) {
      const p = prompts[b], o = opts[b];
      validateEngineOptions(o);
      if (p.length === 0) throw new UserError('the prompt is empty', 'give at least one token (a base model prompt, or a chat)');
      if (p.length >= maxT)
        throw new UserError(`the prompt is ${p.length} tokens; the context holds ${maxT} and one is needed to answer`,
          'shorten the prompt');
      for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= this.V)
        throw new UserError(`prompt token id ${id} is outside the vocabulary [0, ${this.V})`);
      this.samplers.push(new Sampler(o, p, this.V));
      this.rows.push({ ids: [], steps: [], finishReason: null, stopToken: null, promptTokens: p.length });
      // prefill: one forward over the uncached part of the prompt; a prompt repeated in the batch (K samples of one
      // prompt, as in RL rollouts) is computed once and its cache rows copied
      const k = Math.min(cached[b] ?? 0, p.length - 1);
      const key = k === 0 ? p.join(',') : '';
      const same = key ? seen.get(key) : undefined;
      if (same !== undefined) {
        copyCacheRow(cache, same, b, p.length);
        this.pending.push(this.pending[same]!.slice());
        continue;
      }
      cache.lens[b] = k;
      const logits = model.forwardCached(Int32Array.from(p.slice(k)), 1, p.length - k, cache, { lastOnly: true, rows: [b] });
      this.pending.push(logits.slice(0, this.V)); // (V), copied: forwardCached returns a scratch view
      if (key) seen.set(key, b);
    }
  }

  get done(): boolean {
    return this.rows.every((r) => r.finishReason !== null);
  }

  // Feed the last sampled tokens of the running rows (one batched forward), then sample one token for each.
  // Returns, per row, the step taken (null for a row that had already finished).
  step(): (TokenStep | null)[] {
    const active: number[] = [];
    for (let b = 0; b < this.B; b++) if (this.rows[b].finishReason === null && this.feed[b] !== null) active.push(b);
    if (active.length > 0) {
      const ids = Int32Array.from(active, (b) => this.feed[b]!);
      const logits = this.model.forwardCached(ids, active.length, 1, this.cache, { lastOnly: true, rows: active }); // (n, 1, V)
      active.forEach((b, i) => {
        this.pending[b] = logits.slice(i * this.V, (i + 1) * this.V);
        this.feed[b] = null;
      });
    }
    const out: (TokenStep | null)[] = new Array(this.B).fill(null);
    for (let b = 0; b < this.B; b++) {
      const row = this.rows[b], logits = this.pending[b];
      if (row.finishReason !== null || logits === null) continue;
      const o = this.opts[b];
      const s = this.samplers[b].sample(logits, o.logprobs, o.explain ?? 0);
      this.pending[b] = null;
      this.lastLogits[b] = logits;
      const step: TokenStep = { id: s.id };
      if (s.logprob !== undefined) step.logprob = s.logprob;
      if (s.top) step.top = s.top;
      if (s.candidates) {
        step.candidates = s.candidates;
        step.prob = s.prob;
      }
      out[b] = step;
      if (o.stopTokens?.includes(s.id)) {
        row.finishReason = 'stop';
        row.stopToken = s.id;
        continue;
      }
      row.ids.push(s.id);
      row.steps.push(step);
      // the token sits at position lens[b]; sampling another needs it fed, so room for one more position
      if (row.ids.length >= o.maxNewTokens || this.cache.lens[b] + 1 >= this.cache.maxT) row.finishReason = 'length';
      else this.feed[b] = s.id;
    }
    return out;
  }

  finish(b: number, reason: FinishReason = 'stop'): void {
    if (this.rows[b].finishReason === null) this.rows[b].finishReason = reason;
    this.feed[b] = null;
  }

  // Run every row to its end.
  runToEnd(): RowResult[] {
    while (!this.done) this.step();
    return this.rows;
  }
}

// Copy the first n positions of cache row `from` to row `to` (KVCache layout per layer: (batch, maxT, kvDim)).
function copyCacheRow(cache: KVCache, from: number, to: number, n: number): void {
  for (const buf of [...cache.k, ...cache.v]) {
    const kvDim = buf.length / (cache.batch * cache.maxT);
    buf.copyWithin(to * cache.maxT * kvDim, from * cache.maxT * kvDim, (from * cache.maxT + n) * kvDim);
  }
  cache.lens[to] = n;
}

export class Engine {
  constructor(readonly model: GPT) {}

  // A batched run over prompts of any lengths; opts is shared or one per prompt. The cache holds the longest
  // prompt + maxNewTokens, capped at the model context.
  start(prompts: number[][], opts: EngineOptions | EngineOptions[]): DecodeRun {
    if (prompts.length === 0) throw new UserError('no prompts to generate from');
    const per = Array.isArray(opts) ? opts : prompts.map(() => opts);
    if (per.length !== prompts.length) throw new UserError(`${per.length} option sets for ${prompts.length} prompts`);
    const need = Math.max(...prompts.map((p, b) => p.length + per[b].maxNewTokens));
    const maxT = Math.min(need, this.model.config.maxSeqLen);
    return new DecodeRun(this.model, this.model.newKVCache(prompts.length, maxT), prompts, per);
  }

  generate(prompts: number[][], opts: EngineOptions | EngineOptions[]): RowResult[] {
    return this.start(prompts, opts).runToEnd();
  }

  session(): Session {
    return new Session(this.model);
  }
}

// One conversation: a batch-1 cache over the whole context, reused across turns when the prompt extends what it holds.
export class Session {
  readonly cache: KVCache;
  private ids: number[] = []; // the tokens whose keys/values are in the cache, in order
  private run: DecodeRun | null = null;
  private runPrompt: number[] = [];

  constructor(readonly model: GPT) {
    this.cache = model.newKVCache(1, model.config.maxSeqLen);
  }

  get contextSize(): number {
    return this.cache.maxT;
  }

  // How many leading tokens of `prompt` the cache can reuse.
  reusable(prompt: number[]): number {
    this.sync();
    let k = 0;
    while (k < prompt.length && k < this.ids.length && prompt[k] === this.ids[k]) k++;
    return k;
  }

  start(prompt: number[], opts: EngineOptions): DecodeRun {
    const k = this.reusable(prompt);
    this.run = new DecodeRun(this.model, this.cache, [prompt], [opts], [k]);
    this.runPrompt = prompt.slice();
    return this.run;
  }

  reset(): void {
    this.sync();
    this.ids = [];
    this.run = null;
    this.cache.reset();
  }

  // What the cache holds after the last run: its prompt and every generated token that was fed back.
  private sync(): void {
    if (!this.run) return;
    const n = this.cache.lens[0];
    this.ids = [...this.runPrompt, ...this.run.rows[0].ids].slice(0, n);
    this.run = null;
  }
}
