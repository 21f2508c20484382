// The continuous batcher: many concurrent requests decoded as one batch. Requests wait in a queue; between two decode
// steps the waiting ones are prefilled into the free slots of the running batch (DecodeRun.join) and decode with the
// others from the next step; a finished row, or one whose caller aborted (a client that disconnected), leaves at once
// and frees its slot (Yu et al. 2022, "Orca: a distributed serving system for transformer-based generative models",
// iteration-level scheduling; the scheme of vLLM and llama.cpp's server slots).
//
// Each request gets an async iterator of chunks shaped like generateStream's: one per generated token (its text delta
// and TokenStep), then a final chunk with the GenerateResult. A row's output depends only on its own prompt and options
// (its own seeded Sampler; batched rows never share a cache row), so a request decodes the same tokens alone or in a
// full batch, up to float rounding of the batched matrix products.
//
// Limits: `slots` rows decode at once (the KV cache is allocated for them up front, over the whole context), and at
// most slots + maxQueue requests are held; past that submit() throws BusyError, which a server answers with 503.
// Boundary: token ids in, text deltas out, like stream.ts; no HTTP, no JSON.
import { UserError } from '../util/errors.js';
import type { GPT } from '../model/gpt.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { Engine, validateEngineOptions, type DecodeRun } from './engine.js';
import { resolveSampling } from './sampler.js';
import { RowText, resultOf, textStep, withDefaults, type GenerateOptions, type GenerateResult, type StreamChunk } from './stream.js';

export class BusyError extends UserError {}

export interface BatcherOptions {
  slots: number; // rows decoded together (the KV cache is allocated for this many)
  maxQueue: number; // requests held beyond the slots; more are refused with BusyError
}

interface Job {
  prompt: number[];
  opts: GenerateOptions;
  signal?: AbortSignal;
  out: Channel<StreamChunk>;
  slot: number | null; // its row in the run while decoding
  text: RowText | null;
  cancelled: boolean; // the reader left the iteration early
}

export class Batcher {
  private run: DecodeRun;
  private readonly waiting: Job[] = [];
  private readonly bySlot: (Job | undefined)[] = [];
  private readonly texts: (RowText | undefined)[] = [];
  private looping = false;
  private stepsTaken = 0;

  constructor(readonly model: GPT, readonly tokenizer: Tokenizer, readonly opts: BatcherOptions) {
    if (!Number.isInteger(opts.maxQueue) || opts.maxQueue < 0) throw new UserError(`maxQueue must be an integer >= 0, got ${opts.maxQueue}`);
    this.run = new Engine(model).open(opts.slots);
  }

  get contextSize(): number {
    return this.run.cache.maxT;
  }

  // Requests decoding now, requests waiting for a slot, and decode steps taken since the start.
  get stats(): { running: number; waiting: number; slots: number; steps: number } {
    return { running: this.bySlot.filter((j) => j).length, waiting: this.waiting.length, slots: this.opts.slots, steps: this.stepsTaken };
  }

  // Queue prompts (e.g. the n choices of one request; identical prompts joining together are prefilled once). Options
  // are checked here, so a bad request throws before anything is queued. Each returned iterator yields the chunks of
  // one prompt; an aborted signal ends them all with result.aborted, and so does leaving the iteration early.
  submit(prompts: number[][], opts: GenerateOptions[], signal?: AbortSignal): AsyncIterable<StreamChunk>[] {
    if (opts.length !== prompts.length) throw new UserError(`${opts.length} option sets for ${prompts.length} prompts`);
    const per = opts.map((o) => withDefaults(this.tokenizer, o));
    prompts.forEach((p, i) => {
      validateEngineOptions(per[i]);
      resolveSampling(per[i], this.model.config.vocabSize);
      if (p.length === 0) throw new UserError('the prompt is empty');
      if (p.length >= this.contextSize)
        throw new UserError(`the prompt is ${p.length} tokens; the context holds ${this.contextSize} and one is needed to answer`, 'shorten the prompt');
    });
    const { running, waiting } = this.stats;
    if (running + waiting + prompts.length > this.opts.slots + this.opts.maxQueue)
      throw new BusyError(`the server is busy: ${running} requests decoding and ${waiting} waiting (limit ${this.opts.slots} + ${this.opts.maxQueue})`,
        'retry in a moment');
    const jobs = prompts.map((prompt, i): Job => ({ prompt, opts: per[i], signal, out: new Channel(), slot: null, text: null, cancelled: false }));
    this.waiting.push(...jobs);
    if (!this.looping) {
      this.looping = true;
      setImmediate(() => void this.loop()); // after the caller's tick: requests arriving together join together
    }
    return jobs.map((j) => j.out.iterate(() => this.cancel(j)));
  }

  private cancel(j: Job): void {
    if (!j.out.closed) j.cancelled = true;
  }

  private aborted(j: Job): boolean {
    return Boolean(j.signal?.aborted || j.cancelled);
  }

  private async loop(): Promise<void> {
    try {
      while (this.waiting.length > 0 || this.bySlot.some((j) => j)) {
        try {
          this.sweep();
          this.admit();
          if (this.run.active > 0) this.decode();
        } catch (e) {
          // a failed forward (or a bug) leaves the cache in an unknown state: every request gets the error, and the
          // batcher starts over with a fresh run instead of hanging its callers
          this.failAll(e as Error);
        }
        await new Promise<void>((resolve) => setImmediate(resolve)); // let I/O (new requests, disconnects, writes) run
      }
    } finally {
      this.looping = false;
    }
  }

  // Aborted requests leave: a waiting one is dropped from the queue, a running one ends now (its slot is freed).
  private sweep(): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const j = this.waiting[i];
      if (!this.aborted(j)) continue;
      this.waiting.splice(i, 1);
      j.out.push({ delta: '', result: emptyResult(j, true) });
      j.out.close();
    }
    this.bySlot.forEach((j, b) => {
      if (j && this.aborted(j)) {
        this.run.finish(b, 'stop');
        this.end(b, true);
      }
    });
  }

  // Waiting requests take the free slots, oldest first.
  private admit(): void {
    const n = Math.min(this.waiting.length, this.run.freeSlots);
    if (n === 0) return;
    const jobs = this.waiting.splice(0, n);
    let slots: number[];
    try {
      slots = this.run.join(jobs.map((j) => j.prompt), jobs.map((j) => j.opts));
    } catch (e) {
      for (const j of jobs) j.out.fail(e as Error);
      return;
    }
    jobs.forEach((j, i) => {
      const b = slots[i];
      j.slot = b;
      j.text = new RowText(this.tokenizer, j.opts.stop);
      this.bySlot[b] = j;
      this.texts[b] = j.text;
    });
  }

  private failAll(e: Error): void {
    for (const j of [...this.waiting, ...this.bySlot]) j?.out.fail(e);
    this.waiting.length = 0;
    this.bySlot.length = 0;
    this.texts.length = 0;
    this.run = new Engine(this.model).open(this.opts.slots);
  }

  private decode(): void {
    const { steps, deltas } = textStep(this.run, this.texts);
    this.stepsTaken++;
    steps.forEach((s, b) => {
      const j = this.bySlot[b];
      if (!j || !s) return;
      const row = this.run.rows[b];
      if (row.stopToken !== s.id) j.out.push({ delta: deltas[b], step: s });
      if (row.finishReason !== null) this.end(b, false);
    });
  }

  private end(b: number, aborted: boolean): void {
    const j = this.bySlot[b]!;
    const delta = j.text!.flush();
    const result = resultOf(this.run, b, j.text!);
    if (aborted) result.aborted = true;
    j.out.push({ delta, result });
    j.out.close();
    this.bySlot[b] = undefined;
    this.texts[b] = undefined;
    this.run.release(b);
  }
}

function emptyResult(j: Job, aborted: boolean): GenerateResult {
  return {
    ids: [], text: '', finishReason: 'stop', stopToken: null, stopString: null, promptTokens: j.prompt.length,
    completionTokens: 0, steps: [], aborted,
  };
}

// A one-reader async queue: the batcher pushes, the request's handler iterates. onLeave runs when the reader stops
// early (break, return, throw), so a consumer that walks away frees its slot.
class Channel<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | null = null;
  private error: Error | null = null;
  closed = false;

  push(x: T): void {
    this.items.push(x);
    this.notify();
  }

  close(): void {
    this.closed = true;
    this.notify();
  }

  fail(e: Error): void {
    this.error = e;
    this.close();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  async *iterate(onLeave: () => void): AsyncGenerator<T, void, void> {
    try {
      for (;;) {
        if (this.items.length > 0) yield this.items.shift()!;
        else if (this.error) throw this.error;
        else if (this.closed) return;
        else await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      onLeave();
    }
  }
}
