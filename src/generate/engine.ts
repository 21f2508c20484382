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
// - Continuous batching (Engine.open, DecodeRun.join/release): a new prompt is prefilled into a free cache slot
//   between two steps and decodes with the running rows from the next step; a finished row's slot is released for the
//   next one (Yu et al. 2022, "Orca", iteration-level scheduling). Prefill runs whole, between decode steps, so a long
//   prompt delays the running rows by its prefill time (vLLM's chunked prefill would bound that; not done here).
// - Session: one conversation's cache kept across turns. A new prompt reuses the longest cached prefix (the cache is
//   rewound to it by setting lens, since entries past lens are never read) and prefills only the rest.
import { UserError } from '../util/errors.js';
import type { GPT, KVCache } from '../model/gpt.js';
import { MAX_TOP_LOGPROBS, Sampler, type ChainCandidate, type SamplingOptions, type TokenLogprob } from './sampler.js';

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
  chain?: ChainCandidate[]; // explain: the top before truncation, each with the step of the chain that cut it
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

// One batched decode. Drive it with step() until done; finish(b) ends a row from outside. Continuous batching: the
// cache has `slots` rows; join() prefills new prompts into free slots of a running batch, and they decode with the
// others from the next step; release(b) frees the slot of a finished row for the next joiner.
export class DecodeRun {
  readonly rows: RowResult[]; // per slot used so far (a released slot keeps its finished row until reused)
  private readonly samplers: (Sampler | null)[];
  private readonly pending: (Float32Array | null)[]; // logits (V) to sample the next token of each row from
  readonly lastLogits: (Float32Array | null)[]; // the raw logits (V) the last token of each row was drawn from
  private readonly feed: (number | null)[]; // sampled token waiting to be fed to the model
  private readonly opts: EngineOptions[];
  private readonly released = new Set<number>(); // slots free for join()
  private readonly V: number;

  constructor(
    private readonly model: GPT, readonly cache: KVCache, prompts: number[][], opts: EngineOptions[],
    cached: number[] = [], // per row: how many prompt tokens are already in the cache (a Session's reuse)
  ) {
    this.V = model.config.vocabSize;
    this.rows = [];
    this.samplers = [];
    this.pending = [];
    this.opts = [];
    this.lastLogits = [];
    this.feed = [];
    this.join(prompts, opts, cached);
  }

  get B(): number {
    return this.rows.length;
  }

  // Rows in the cache; join() fills at most freeSlots more.
  get slots(): number {
    return this.cache.batch;
  }

  get freeSlots(): number {
    return this.cache.batch - this.rows.length + this.released.size;
  }

  // Rows still decoding.
  get active(): number {
    let n = 0;
    for (let b = 0; b < this.rows.length; b++) if (this.rows[b].finishReason === null) n++;
    return n;
  }

  get done(): boolean {
    return this.rows.every((r) => r.finishReason !== null);
  }

  // Prefill prompts into free slots (released ones first, lowest first) and return their slots. Each prompt is one
  // forward over its uncached part, alone (rows of different lengths need no padding); a prompt repeated in the call
  // (K samples of one prompt, n choices of a request) is computed once and its cache rows copied.
  join(prompts: number[][], opts: EngineOptions[], cached: number[] = []): number[] {
    if (opts.length !== prompts.length) throw new UserError(`${opts.length} option sets for ${prompts.length} prompts`);
    if (prompts.length > this.freeSlots)
      throw new UserError(`${prompts.length} prompts to join but ${this.freeSlots} of ${this.slots} cache slots are free`);
    const maxT = this.cache.maxT;
    prompts.forEach((p, i) => {
      validateEngineOptions(opts[i]);
      if (p.length === 0) throw new UserError('the prompt is empty', 'give at least one token (a base model prompt, or a chat)');
      if (p.length >= maxT)
        throw new UserError(`the prompt is ${p.length} tokens; the context holds ${maxT} and one is needed to answer`,
          'shorten the prompt');
      for (const id of p) if (!Number.isInteger(id) || id < 0 || id >= this.V)
        throw new UserError(`prompt token id ${id} is outside the vocabulary [0, ${this.V})`);
    });
    const slots: number[] = [];
    const seen = new Map<string, number>(); // prompt -> the slot that prefilled it
    prompts.forEach((p, i) => {
      const o = opts[i];
      const b = this.takeSlot();
      slots.push(b);
      this.samplers[b] = new Sampler(o, p, this.V);
      this.rows[b] = { ids: [], steps: [], finishReason: null, stopToken: null, promptTokens: p.length };
      this.opts[b] = o;
      this.feed[b] = null;
      this.lastLogits[b] = null;
      const k = Math.min(cached[i] ?? 0, p.length - 1);
      const key = k === 0 ? p.join(',') : '';
      const same = key ? seen.get(key) : undefined;
      if (same !== undefined) {
        copyCacheRow(this.cache, same, b, p.length);
        this.pending[b] = this.pending[same]!.slice();
        return;
      }
      this.cache.lens[b] = k;
      const logits = this.model.forwardCached(Int32Array.from(p.slice(k)), 1, p.length - k, this.cache, { lastOnly: true, rows: [b] });
      this.pending[b] = logits.slice(0, this.V); // (V), copied: forwardCached returns a scratch view
      if (key) seen.set(key, b);
    });
    return slots;
  }

  private takeSlot(): number {
    if (this.released.size > 0) {
      const b = Math.min(...this.released);
      this.released.delete(b);
      return b;
    }
    this.rows.push(undefined as unknown as RowResult); // filled by join
    this.samplers.push(null);
    this.pending.push(null);
    this.opts.push(undefined as unknown as EngineOptions);
    this.lastLogits.push(null);
    this.feed.push(null);
    return this.rows.length - 1;
  }

  // Give the slot of a finished row to the next join(); its row result stays readable until then.
  release(b: number): void {
    if (this.rows[b]?.finishReason === null) throw new Error(`release: row ${b} is still running; finish it first`);
    this.samplers[b] = null;
    this.pending[b] = null;
    this.lastLogits[b] = null;
    this.released.add(b);
  }

  // Feed the last sampled tokens of the running rows (one batched forward), then sample one token for each.
  // Returns, per row, the step taken (null for a row that had already finished).
  step(): (TokenStep | null)[] {
    const B = this.rows.length;
    const active: number[] = [];
    for (let b = 0; b < B; b++) if (this.rows[b].finishReason === null && this.feed[b] !== null) active.push(b);
    if (active.length > 0) {
      const ids = Int32Array.from(active, (b) => this.feed[b]!);
      const logits = this.model.forwardCached(ids, active.length, 1, this.cache, { lastOnly: true, rows: active }); // (n, 1, V)
      active.forEach((b, i) => {
        this.pending[b] = logits.slice(i * this.V, (i + 1) * this.V);
        this.feed[b] = null;
      });
    }
    const out: (TokenStep | null)[] = new Array(B).fill(null);
    for (let b = 0; b < B; b++) {
      const row = this.rows[b], logits = this.pending[b];
      if (row.finishReason !== null || logits === null) continue;
      const o = this.opts[b];
      const s = this.samplers[b]!.sample(logits, o.logprobs, o.explain ?? 0);
      this.pending[b] = null;
      this.lastLogits[b] = logits;
      const step: TokenStep = { id: s.id };
      if (s.logprob !== undefined) step.logprob = s.logprob;
      if (s.top) step.top = s.top;
      if (s.candidates) {
        step.candidates = s.candidates;
        step.prob = s.prob;
        step.chain = s.chain;
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
    this.pending[b] = null;
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

  // An empty run for continuous batching: `slots` cache rows over the whole context (or maxT positions), filled by
  // join() as requests come. The cache is allocated once here, so a server's memory does not grow with its traffic.
  open(slots: number, maxT = this.model.config.maxSeqLen): DecodeRun {
    if (!Number.isInteger(slots) || slots < 1) throw new UserError(`the batch needs at least 1 slot, got ${slots}`);
    return new DecodeRun(this.model, this.model.newKVCache(slots, maxT), [], []);
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
