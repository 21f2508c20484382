// Generation with text: the engine's token ids turned into text deltas, with stop strings. Three entry points over the
// same loop: generate (one prompt, returns the result), generateBatch (several prompts decoded together), and
// generateStream (an async iterator of deltas that yields to the event loop between tokens, so a server can flush and a
// REPL can catch Ctrl-C mid-reply). A server's many requests go through batcher.ts, which uses the same row pieces
// (RowText, textStep, resultOf) over one continuous batch.
// - Text is decoded incrementally with the tokenizer's stream decoder, which holds back the bytes of a character split
//   over tokens, so a delta never contains U+FFFD for valid UTF-8.
// - Stop strings go through StopMatcher (stop.ts): matched across token boundaries, never emitted; the row's ids keep
//   the tokens that spelled the stop string (the cache holds them), its text does not.
// - Stop tokens default to the tokenizer's end of turn and end of text.
// Boundary: token ids <-> text here; sampling is sampler.ts, the forward passes engine.ts.
import type { GPT } from '../model/gpt.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { Engine, type EngineOptions, type FinishReason, type Session, type TokenStep, type DecodeRun } from './engine.js';
import { StopMatcher } from './stop.js';

export interface GenerateOptions extends EngineOptions {
  stop?: string[]; // stop strings (up to 4 in OpenAI's API; any number here)
}

export interface GenerateResult {
  ids: number[]; // generated token ids (without a stop token)
  text: string; // decoded, cut before a stop string
  finishReason: FinishReason;
  stopToken: number | null;
  stopString: string | null;
  promptTokens: number;
  completionTokens: number;
  steps: TokenStep[]; // per generated token: id, logprob, top alternatives / explain candidates when asked
  aborted?: boolean; // ended by the caller's AbortSignal
}

export interface StreamChunk {
  delta: string; // text released by this token (may be empty while a character or a stop string is incomplete)
  step?: TokenStep; // the token drawn (absent on the final chunk); a stop token's step comes too, with an empty delta
  result?: GenerateResult; // on the final chunk only
}

// A chat reply ends at the end of its turn (the tokenizer's stop tokens: <|eot|>, <|eos|>, or generation_config.json's);
// any other special token (a new turn, a new document) also ends it.
export function chatStopTokens(t: Tokenizer): number[] {
  return [...new Set([...t.stopTokens(), t.bos, t.system, t.user, t.assistant, t.pad].filter((id) => id >= 0))];
}

export function withDefaults<O extends GenerateOptions>(tokenizer: Tokenizer, o: O): O {
  return { ...o, stopTokens: o.stopTokens ?? tokenizer.stopTokens() };
}

// Per-row text state: stream decoder + stop matcher.
export class RowText {
  private readonly decoder;
  private readonly matcher: StopMatcher;
  text = '';
  constructor(tokenizer: Tokenizer, stop: string[] | undefined) {
    this.decoder = tokenizer.streamDecoder();
    this.matcher = new StopMatcher(stop ?? []);
  }
  get stopped(): string | null {
    return this.matcher.stopped;
  }
  push(id: number): string {
    const d = this.matcher.push(this.decoder.push(id));
    this.text += d;
    return d;
  }
  flush(): string {
    const d = this.stopped === null ? this.matcher.push(this.decoder.flush()) + this.matcher.flush() : '';
    this.text += d;
    return d;
  }
}

export function resultOf(run: DecodeRun, b: number, t: RowText): GenerateResult {
  const r = run.rows[b];
  return {
    ids: r.ids, text: t.text, finishReason: r.finishReason ?? 'stop', stopToken: r.stopToken, stopString: t.stopped,
    promptTokens: r.promptTokens, completionTokens: r.ids.length, steps: r.steps,
  };
}

// One step of the batch: decode each row's token to text and end the rows whose stop string matched. texts is per
// slot of the run (a continuous batch's free slots have none).
export function textStep(run: DecodeRun, texts: (RowText | undefined)[]): { steps: (TokenStep | null)[]; deltas: string[] } {
  const steps = run.step();
  const deltas = steps.map((s, b) => {
    const t = texts[b];
    if (!s || !t || run.rows[b].stopToken === s.id) return '';
    const d = t.push(s.id);
    if (t.stopped !== null) run.finish(b, 'stop');
    return d;
  });
  return { steps, deltas };
}

// opts: shared, or one set per prompt (e.g. a seed per RL rollout).
export function generateBatch(
  model: GPT, tokenizer: Tokenizer, prompts: number[][], opts: GenerateOptions | GenerateOptions[],
): GenerateResult[] {
  const per = (Array.isArray(opts) ? opts : prompts.map(() => opts)).map((o) => withDefaults(tokenizer, o));
  const run = new Engine(model).start(prompts, per);
  const texts = prompts.map((_, b) => new RowText(tokenizer, per[b]?.stop));
  while (!run.done) textStep(run, texts);
  return texts.map((t, b) => {
    t.flush();
    return resultOf(run, b, t);
  });
}

export function generate(model: GPT, tokenizer: Tokenizer, promptIds: number[], opts: GenerateOptions): GenerateResult {
  return generateBatch(model, tokenizer, [promptIds], opts)[0];
}

// Streamed generation of one sequence. session: reuse a conversation's KV cache across turns; signal: stop early
// (the final chunk then has result.aborted).
export async function* generateStream(
  model: GPT, tokenizer: Tokenizer, promptIds: number[],
  opts: GenerateOptions & { session?: Session; signal?: AbortSignal },
): AsyncGenerator<StreamChunk, void, void> {
  const o = withDefaults(tokenizer, opts);
  const run = o.session ? o.session.start(promptIds, o) : new Engine(model).start([promptIds], o);
  const text = new RowText(tokenizer, o.stop);
  let aborted = false;
  while (!run.done) {
    if (o.signal?.aborted) {
      run.finish(0, 'stop');
      aborted = true;
      break;
    }
    const { steps, deltas } = textStep(run, [text]);
    if (steps[0]) yield { delta: deltas[0], step: steps[0] }; // a stop token's draw too (its delta is empty)
    await new Promise<void>((resolve) => setImmediate(resolve)); // let I/O and signal handlers run between tokens
  }
  const delta = text.flush();
  const result = resultOf(run, 0, text);
  if (aborted) result.aborted = true;
  yield { delta, result };
}
