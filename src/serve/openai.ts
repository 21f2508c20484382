// The OpenAI-compatible endpoints over the batcher: a checked request (schema.ts) becomes prompts and sampling options,
// its choices are submitted to the model's Batcher together, and their chunks become OpenAI's response objects:
// `chat.completion` / `chat.completion.chunk` and `text_completion`, with usage, logprobs and finish reasons as in the
// API reference (platform.openai.com/docs/api-reference/chat/object, /chat/streaming, /completions/object).
//
// - Seeds: choice i draws with seed + i (so n choices differ, and the same request with the same seed repeats them);
//   without a seed the server draws one and sends it back in the x-chatwright-seed header.
// - max_tokens absent: up to the context, capped by the server's limit. Prompt + max_tokens beyond the context is
//   context_length_exceeded (400), as OpenAI answers it.
// - logprobs are of the model's own distribution (before penalties, truncation and temperature), as OpenAI and vLLM
//   give them. The extension `explain: k` adds, per token, the lottery: the k most probable candidates before the
//   truncations, which step of the sampler chain cut each, and the probabilities the draw used (sampler.ts).
// - The request's time limit and its client's disconnect both abort its rows at the next decode step.
// Boundary: JSON objects in and out through a Sink; HTTP is server.ts.
import { randomBytes } from 'node:crypto';
import { UserError } from '../util/errors.js';
import { BusyError, chatStopTokens, tokenTextOf, type GenerateOptions, type GenerateResult, type StreamChunk, type TokenStep } from '../generate/index.js';
import { ApiError, parseChatRequest, parseCompletionRequest, type GenerationParams, type Limits } from './schema.js';
import type { ServedModel } from './models.js';

export interface ApiLimits extends Limits {
  maxPrompts: number; // prompts per /v1/completions request
  timeoutMs: number; // per request, queueing included
}

// Where a handler's answer goes: one JSON body, or a stream of server-sent events.
export interface Sink {
  json(status: number, body: unknown, headers?: Record<string, string>): void;
  startStream(headers?: Record<string, string>): void;
  event(data: unknown): void; // one `data: <json>` event; '[DONE]' as is
  end(): void;
}

export interface ApiContext {
  models: ServedModel[];
  limits: ApiLimits;
  fingerprint: string;
}

const now = () => Math.floor(Date.now() / 1000);
const newId = (prefix: string) => `${prefix}-${randomBytes(12).toString('hex')}`;

export function listModels(ctx: ApiContext): unknown {
  return { object: 'list', data: ctx.models.map(modelObject) };
}

export function modelObject(m: ServedModel): unknown {
  return { id: m.id, object: 'model', created: m.created, owned_by: 'chatwright', max_model_len: m.batcher.contextSize };
}

export function findModel(ctx: ApiContext, id: string | undefined): ServedModel {
  if (ctx.models.length === 0)
    throw new ApiError(404, 'this server serves no model (it was started for ranking only); start it with --model DIR', 'invalid_request_error', 'model', 'model_not_found');
  if (id === undefined) return ctx.models[0]; // OpenAI requires it; a server with models to choose from can default
  const m = ctx.models.find((x) => x.id === id);
  if (!m) throw new ApiError(404, `The model '${id}' does not exist; this server has ${ctx.models.map((x) => `'${x.id}'`).join(', ')}`,
    'invalid_request_error', 'model', 'model_not_found');
  return m;
}

// ---------------------------------------------------------------------------------------------------------------------
// the shared path: prompts -> submitted rows -> per-choice chunk streams

interface Plan {
  sm: ServedModel;
  prompts: number[][]; // one per choice
  opts: GenerateOptions[];
  seed: number;
  signal: AbortSignal; // the client left, or the time limit passed
  timedOut: () => boolean;
  release: () => void; // clears the timer; call when the request is answered
}

function plan(ctx: ApiContext, sm: ServedModel, p: GenerationParams, prompts: number[][], param: string, extra: Partial<GenerateOptions>, disconnect: AbortSignal): Plan {
  const contextSize = sm.batcher.contextSize;
  for (const ids of prompts) {
    if (ids.length === 0) throw new ApiError(400, `'${param}' is empty after tokenization`, 'invalid_request_error', param, 'invalid_value');
    const want = p.maxTokens !== undefined ? ` and ${p.maxTokens} in the completion` : '';
    if (ids.length + (p.maxTokens ?? 1) > contextSize)
      throw new ApiError(400, `This model's maximum context length is ${contextSize} tokens. However, you requested ` +
        `${ids.length + (p.maxTokens ?? 1)} tokens (${ids.length} in the ${param}${want}). Please reduce the length of the ${param}` +
        (p.maxTokens !== undefined ? ' or max_tokens.' : '.'), 'invalid_request_error', param, 'context_length_exceeded');
  }
  const V = sm.model.config.vocabSize;
  for (const k of Object.keys(p.sampling.logitBias ?? {}))
    if (Number(k) >= V) throw new ApiError(400, `'logit_bias': token id ${k} is outside the vocabulary of ${V}`, 'invalid_request_error', `logit_bias.${k}`, 'invalid_value');
  const seed = p.sampling.seed ?? Math.floor(Math.random() * 2 ** 31);
  // one signal for both ends of a request (AbortSignal.any needs Node 20.3, and a timer per request is cleared here)
  const ac = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    ac.abort();
  }, ctx.limits.timeoutMs);
  const leave = () => ac.abort();
  disconnect.addEventListener('abort', leave, { once: true });
  if (disconnect.aborted) ac.abort();
  const opts = prompts.map((ids, i): GenerateOptions => ({
    ...p.sampling, ...extra, seed: seed + i, stop: p.stop, explain: p.explain,
    maxNewTokens: p.maxTokens ?? Math.min(ctx.limits.maxTokens, contextSize - ids.length),
  }));
  const release = () => {
    clearTimeout(timer);
    disconnect.removeEventListener('abort', leave);
  };
  return { sm, prompts, opts, seed, signal: ac.signal, timedOut: () => timedOut, release };
}

function submit(pl: Plan): AsyncIterable<StreamChunk>[] {
  try {
    return pl.sm.batcher.submit(pl.prompts, pl.opts, pl.signal);
  } catch (e) {
    pl.release();
    if (e instanceof BusyError) throw new ApiError(503, `${e.message}; ${e.hint}`, 'server_error', null, 'server_overloaded');
    if (e instanceof UserError) throw new ApiError(400, e.message, 'invalid_request_error', null, 'invalid_value');
    throw e;
  }
}

function timeoutError(ctx: ApiContext): ApiError {
  return new ApiError(504, `the request ran past the server's time limit of ${ctx.limits.timeoutMs / 1000} s; ` +
    'ask for fewer tokens (max_tokens) or start the server with a longer --timeout', 'server_error', null, 'timeout');
}

// Per choice: the text, the generated steps with the text each released, and the result.
interface Choice { text: string; steps: { step: TokenStep; delta: string }[]; result: GenerateResult }

async function collect(it: AsyncIterable<StreamChunk>): Promise<Choice> {
  const c: Choice = { text: '', steps: [], result: undefined as unknown as GenerateResult };
  for await (const ch of it) {
    c.text += ch.delta;
    if (ch.step) c.steps.push({ step: ch.step, delta: ch.delta });
    else if (ch.result) c.result = ch.result;
  }
  return c;
}

function usageOf(promptTokens: number, results: GenerateResult[]) {
  const completion = results.reduce((s, r) => s + r.completionTokens, 0);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

// ---- per-token views: OpenAI's logprobs (chat and legacy), and the explain extension

function tokenViews(sm: ServedModel) {
  const tok = sm.tokenizer;
  const show = tokenTextOf(tok);
  const bytes = (id: number) => Array.from(tok.tokenBytes(id));
  const token = (id: number) => tok.decode([id]);
  return {
    chatLogprob: (s: TokenStep) => ({
      token: token(s.id), logprob: s.logprob ?? null, bytes: bytes(s.id),
      top_logprobs: (s.top ?? []).map((t) => ({ token: token(t.id), logprob: t.logprob, bytes: bytes(t.id) })),
    }),
    explain: (s: TokenStep, delta: string) => ({
      id: s.id, token: show(s.id), bytes: bytes(s.id), text: delta, logprob: s.logprob ?? null, prob: s.prob ?? null,
      candidates: (s.chain ?? []).map((c) => ({ id: c.id, token: show(c.id), bytes: bytes(c.id), p: c.p, prob: c.prob, cut: c.cut })),
    }),
    legacyLogprobs: (steps: { step: TokenStep; delta: string }[], offset0: number) => {
      let offset = offset0;
      const out = { tokens: [] as string[], token_logprobs: [] as (number | null)[], top_logprobs: [] as Record<string, number>[], text_offset: [] as number[] };
      for (const { step, delta } of steps) {
        out.tokens.push(token(step.id));
        out.token_logprobs.push(step.logprob ?? null);
        out.top_logprobs.push(Object.fromEntries((step.top ?? []).map((t) => [token(t.id), t.logprob])));
        out.text_offset.push(offset);
        offset += delta.length;
      }
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// POST /v1/chat/completions

export async function chatCompletions(ctx: ApiContext, body: unknown, sink: Sink, disconnect: AbortSignal): Promise<void> {
  const req = parseChatRequest(body, ctx.limits);
  const sm = findModel(ctx, req.model);
  let ids: number[];
  try {
    ids = sm.tokenizer.renderForCompletion(req.messages);
  } catch (e) {
    if (e instanceof UserError) throw new ApiError(400, e.message + (e.hint ? ` (${e.hint})` : ''), 'invalid_request_error', 'messages', 'invalid_value');
    throw e;
  }
  const pl = plan(ctx, sm, req, Array.from({ length: req.n }, () => ids), 'messages', {
    stopTokens: chatStopTokens(sm.tokenizer), logprobs: req.logprobs ? req.topLogprobs : undefined,
  }, disconnect);
  const streams = submit(pl);
  try {
    const id = newId('chatcmpl'), created = now(), view = tokenViews(sm);
    const headers = { 'x-chatwright-seed': String(pl.seed) };
    const head = { id, object: 'chat.completion.chunk', created, model: sm.id, system_fingerprint: ctx.fingerprint };

    if (!req.stream) {
      const choices = await Promise.all(streams.map(collect));
      if (choices.some((c) => c.result.aborted)) {
        if (pl.timedOut()) throw timeoutError(ctx);
        return; // the client left; nobody to answer
      }
      sink.json(200, {
        id, object: 'chat.completion', created, model: sm.id, system_fingerprint: ctx.fingerprint,
        choices: choices.map((c, index) => ({
          index, message: { role: 'assistant', content: c.text, refusal: null },
          logprobs: req.logprobs ? { content: c.steps.map((s) => view.chatLogprob(s.step)), refusal: null } : null,
          finish_reason: c.result.finishReason,
          ...(req.explain > 0 ? { explain: c.steps.map((s) => view.explain(s.step, s.delta)) } : {}),
        })),
        usage: usageOf(ids.length, choices.map((c) => c.result)),
      }, headers);
      return;
    }

    sink.startStream(headers);
    const usageField = req.includeUsage ? { usage: null } : {};
    const send = (choice: Record<string, unknown>) => sink.event({ ...head, choices: [{ logprobs: null, finish_reason: null, ...choice }], ...usageField });
    const results = await Promise.all(streams.map(async (it, index) => {
      send({ index, delta: { role: 'assistant', content: '' } });
      let result: GenerateResult | undefined;
      for await (const ch of it) {
        if (ch.step) {
          if (ch.delta === '' && !req.logprobs && req.explain === 0) continue;
          send({
            index, delta: { content: ch.delta },
            logprobs: req.logprobs ? { content: [view.chatLogprob(ch.step)], refusal: null } : null,
            ...(req.explain > 0 ? { explain: [view.explain(ch.step, ch.delta)] } : {}),
          });
        } else if (ch.result) {
          result = ch.result;
          if (result.aborted) break;
          if (ch.delta) send({ index, delta: { content: ch.delta } });
          send({ index, delta: {}, finish_reason: result.finishReason });
        }
      }
      return result!;
    }));
    if (results.some((r) => r.aborted)) {
      if (pl.timedOut()) sink.event(timeoutError(ctx).toJSON());
      sink.end();
      return;
    }
    if (req.includeUsage) sink.event({ ...head, choices: [], usage: usageOf(ids.length, results) });
    sink.event('[DONE]');
    sink.end();
  } finally {
    pl.release();
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// POST /v1/completions: prompts are continued as a base model would (text gets <|bos|> first, as in pretraining;
// token ids are taken as given). Choice index = prompt index * n + i.

export async function completions(ctx: ApiContext, body: unknown, sink: Sink, disconnect: AbortSignal): Promise<void> {
  const req = parseCompletionRequest(body, ctx.limits);
  const sm = findModel(ctx, req.model);
  const V = sm.model.config.vocabSize;
  const encoded = req.prompts.map((p, i) => {
    if (typeof p === 'string') return [sm.tokenizer.bos, ...sm.tokenizer.encode(p)].filter((id) => id >= 0);
    const bad = p.find((id) => id >= V);
    if (bad !== undefined) throw new ApiError(400, `'prompt': token id ${bad} is outside the vocabulary of ${V}`, 'invalid_request_error', req.prompts.length > 1 ? `prompt[${i}]` : 'prompt', 'invalid_value');
    return p;
  });
  const rows = encoded.flatMap((ids) => Array.from({ length: req.n }, () => ids));
  const pl = plan(ctx, sm, req, rows, 'prompt', { logprobs: req.logprobs ?? undefined }, disconnect);
  const streams = submit(pl);
  try {
    const id = newId('cmpl'), created = now(), view = tokenViews(sm);
    const headers = { 'x-chatwright-seed': String(pl.seed) };
    const head = { id, object: 'text_completion', created, model: sm.id, system_fingerprint: ctx.fingerprint };
    const promptTokens = encoded.reduce((s, p) => s + p.length, 0);

    if (!req.stream) {
      const choices = await Promise.all(streams.map(collect));
      if (choices.some((c) => c.result.aborted)) {
        if (pl.timedOut()) throw timeoutError(ctx);
        return;
      }
      sink.json(200, {
        ...head,
        choices: choices.map((c, index) => ({
          text: c.text, index, logprobs: req.logprobs !== null ? view.legacyLogprobs(c.steps, 0) : null,
          finish_reason: c.result.finishReason,
          ...(req.explain > 0 ? { explain: c.steps.map((s) => view.explain(s.step, s.delta)) } : {}),
        })),
        usage: usageOf(promptTokens, choices.map((c) => c.result)),
      }, headers);
      return;
    }

    sink.startStream(headers);
    const usageField = req.includeUsage ? { usage: null } : {};
    const send = (choice: Record<string, unknown>) => sink.event({ ...head, choices: [{ logprobs: null, finish_reason: null, ...choice }], ...usageField });
    const results = await Promise.all(streams.map(async (it, index) => {
      let result: GenerateResult | undefined;
      let offset = 0;
      for await (const ch of it) {
        if (ch.step) {
          if (ch.delta === '' && req.logprobs === null && req.explain === 0) continue;
          send({
            index, text: ch.delta, logprobs: req.logprobs !== null ? view.legacyLogprobs([{ step: ch.step, delta: ch.delta }], offset) : null,
            ...(req.explain > 0 ? { explain: [view.explain(ch.step, ch.delta)] } : {}),
          });
          offset += ch.delta.length;
        } else if (ch.result) {
          result = ch.result;
          if (result.aborted) break;
          send({ index, text: ch.delta, finish_reason: result.finishReason });
        }
      }
      return result!;
    }));
    if (results.some((r) => r.aborted)) {
      if (pl.timedOut()) sink.event(timeoutError(ctx).toJSON());
      sink.end();
      return;
    }
    if (req.includeUsage) sink.event({ ...head, choices: [], usage: usageOf(promptTokens, results) });
    sink.event('[DONE]');
    sink.end();
  } finally {
    pl.release();
  }
}
