// The edge of the API: a request body (parsed JSON) -> a checked, typed request, or an ApiError in OpenAI's error shape
// naming the field (`param`) and what is wrong. Nothing past this file sees unchecked input.
//
// Hand checks, not zod: the bodies are two flat objects of ~25 fields, and what matters is the error a client gets:
// OpenAI's `{"error": {"message", "type", "param", "code"}}` with `param` the exact field ("messages[2].content",
// "logit_bias.17"). A small reader per type (num/int/bool/str below) says that in one line per field; zod would add a
// dependency and a mapping of its issues to this shape, for the same checks.
//
// Semantics follow OpenAI's API reference (platform.openai.com/docs/api-reference/chat/create, /completions/create):
// unknown fields are ignored, null means absent, wrong types and out-of-range values are 400 invalid_request_error.
// Extensions as vLLM and llama.cpp's server name them: top_k (-1 or 0: off), min_p, repetition_penalty; ours: explain
// (candidates per token for the lottery view). Features we do not have (tools, images, echo, suffix, best_of > n, JSON
// response formats) are refused by name rather than ignored, so a client never gets a silently different answer.
import type { Message } from '../tokenizer/index.js';
import { MAX_TOP_LOGPROBS, type SamplingOptions } from '../generate/index.js';

export class ApiError extends Error {
  constructor(
    readonly status: number, message: string, readonly type = 'invalid_request_error',
    readonly param: string | null = null, readonly code: string | null = null,
  ) {
    super(message);
  }

  toJSON(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

const invalid = (param: string, message: string, code: string | null = 'invalid_value') => new ApiError(400, message, 'invalid_request_error', param, code);

export interface Limits {
  maxMessages: number; // messages per chat request
  maxN: number; // choices per request
  maxTokens: number; // new tokens per choice
}

export const MAX_EXPLAIN = 50;

// What both endpoints share once checked.
export interface GenerationParams {
  model?: string;
  n: number;
  maxTokens?: number; // absent: up to the context (capped by the server's limit)
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  sampling: SamplingOptions; // seed absent: the server draws one
  explain: number; // 0: off
}

export interface ChatRequest extends GenerationParams {
  messages: Message[];
  logprobs: boolean;
  topLogprobs: number;
}

export interface CompletionRequest extends GenerationParams {
  prompts: (string | number[])[]; // text, or token ids as given
  logprobs: number | null; // the legacy API's integer: top alternatives per token
}

// ---------------------------------------------------------------------------------------------------------------------
// field readers: undefined and null are "absent"; anything else must have the type

type Body = Record<string, unknown>;

function present(b: Body, k: string): boolean {
  return b[k] !== undefined && b[k] !== null;
}

function num(b: Body, k: string, lo: number, hi: number, o: { loOpen?: boolean; integer?: boolean; param?: string } = {}): number | undefined {
  if (!present(b, k)) return undefined;
  const v = b[k], p = o.param ?? k;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw invalid(p, `'${p}' must be a number, got ${describe(v)}`, 'invalid_type');
  if (o.integer && !Number.isInteger(v)) throw invalid(p, `'${p}' must be an integer, got ${v}`, 'invalid_type');
  if ((o.loOpen ? v <= lo : v < lo) || v > hi)
    throw invalid(p, `'${p}' must be in ${o.loOpen ? '(' : '['}${lo}, ${hi}], got ${v}`);
  return v;
}

const int = (b: Body, k: string, lo: number, hi: number) => num(b, k, lo, hi, { integer: true });

function bool(b: Body, k: string): boolean | undefined {
  if (!present(b, k)) return undefined;
  if (typeof b[k] !== 'boolean') throw invalid(k, `'${k}' must be a boolean, got ${describe(b[k])}`, 'invalid_type');
  return b[k] as boolean;
}

function str(b: Body, k: string): string | undefined {
  if (!present(b, k)) return undefined;
  if (typeof b[k] !== 'string') throw invalid(k, `'${k}' must be a string, got ${describe(b[k])}`, 'invalid_type');
  return b[k] as string;
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)})`;
  return typeof v === 'object' ? 'an object' : `${typeof v} ${String(v)}`;
}

function isObject(v: unknown): v is Body {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function refuse(b: Body, k: string, what: string, when: (v: unknown) => boolean = () => true): void {
  if (present(b, k) && when(b[k])) throw invalid(k, `'${k}': ${what} is not supported by this server`, 'unsupported_parameter');
}

// ---------------------------------------------------------------------------------------------------------------------
// the parts both endpoints share

export function requireObject(body: unknown): Body {
  if (!isObject(body)) throw new ApiError(400, `the request body must be a JSON object, got ${describe(body)}`);
  return body;
}

function stopOf(b: Body): string[] {
  if (!present(b, 'stop')) return [];
  const v = b.stop;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list) || !list.every((s) => typeof s === 'string'))
    throw invalid('stop', `'stop' must be a string or an array of up to 4 strings, got ${describe(v)}`, 'invalid_type');
  if (list.length > 4) throw invalid('stop', `'stop' takes at most 4 sequences, got ${list.length}`);
  return list.filter((s) => s.length > 0);
}

function logitBiasOf(b: Body): Record<number, number> | undefined {
  if (!present(b, 'logit_bias')) return undefined;
  if (!isObject(b.logit_bias)) throw invalid('logit_bias', `'logit_bias' must be an object of token id -> bias, got ${describe(b.logit_bias)}`, 'invalid_type');
  const out: Record<number, number> = {};
  for (const [k, v] of Object.entries(b.logit_bias)) {
    const p = `logit_bias.${k}`;
    if (!/^(0|[1-9][0-9]{0,8})$/.test(k)) throw invalid(p, `'logit_bias' keys must be token ids (non-negative integers), got ${JSON.stringify(k)}`);
    out[Number(k)] = num({ [p]: v }, p, -100, 100, { param: p }) ?? 0;
  }
  return out;
}

function common(b: Body, limits: Limits): GenerationParams {
  refuse(b, 'tools', 'tool calling', (v) => !Array.isArray(v) || v.length > 0);
  refuse(b, 'functions', 'function calling', (v) => !Array.isArray(v) || v.length > 0);
  refuse(b, 'response_format', 'a response format other than text', (v) => !(isObject(v) && v.type === 'text'));
  refuse(b, 'audio', 'audio output');
  const maxTokens = int(b, 'max_completion_tokens', 1, limits.maxTokens) ?? int(b, 'max_tokens', 1, limits.maxTokens);
  const stream = bool(b, 'stream') ?? false;
  let includeUsage = false;
  if (present(b, 'stream_options')) {
    if (!isObject(b.stream_options)) throw invalid('stream_options', `'stream_options' must be an object, got ${describe(b.stream_options)}`, 'invalid_type');
    if (!stream) throw invalid('stream_options', "'stream_options' is only allowed when 'stream' is true");
    const u = b.stream_options.include_usage;
    if (u !== undefined && u !== null && typeof u !== 'boolean')
      throw invalid('stream_options.include_usage', `'stream_options.include_usage' must be a boolean, got ${describe(u)}`, 'invalid_type');
    includeUsage = u === true;
  }
  const topK = int(b, 'top_k', -1, 1e9);
  const sampling: SamplingOptions = {
    temperature: num(b, 'temperature', 0, 2), topP: num(b, 'top_p', 0, 1, { loOpen: true }),
    topK: topK === -1 ? 0 : topK, minP: num(b, 'min_p', 0, 1),
    repetitionPenalty: num(b, 'repetition_penalty', 0, 10, { loOpen: true }),
    presencePenalty: num(b, 'presence_penalty', -2, 2), frequencyPenalty: num(b, 'frequency_penalty', -2, 2),
    logitBias: logitBiasOf(b), seed: num(b, 'seed', -(2 ** 53 - 1), 2 ** 53 - 1, { integer: true }),
  };
  return {
    model: str(b, 'model'), n: int(b, 'n', 1, limits.maxN) ?? 1, maxTokens, stop: stopOf(b), stream, includeUsage,
    sampling, explain: int(b, 'explain', 0, MAX_EXPLAIN) ?? 0,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// POST /v1/chat/completions

const ROLES: Record<string, Message['role']> = { system: 'system', developer: 'system', user: 'user', assistant: 'assistant' };

export function parseChatRequest(body: unknown, limits: Limits): ChatRequest {
  const b = requireObject(body);
  if (!present(b, 'messages')) throw invalid('messages', "'messages' is required", 'missing_required_parameter');
  if (!Array.isArray(b.messages)) throw invalid('messages', `'messages' must be an array, got ${describe(b.messages)}`, 'invalid_type');
  if (b.messages.length === 0) throw invalid('messages', "'messages' must hold at least one message");
  if (b.messages.length > limits.maxMessages)
    throw invalid('messages', `'messages' holds ${b.messages.length} messages; this server takes at most ${limits.maxMessages}`);
  const messages = b.messages.map((m, i) => messageOf(m, `messages[${i}]`));
  const p = common(b, limits);
  const logprobs = bool(b, 'logprobs') ?? false;
  const top = int(b, 'top_logprobs', 0, MAX_TOP_LOGPROBS);
  if (top !== undefined && !logprobs) throw invalid('top_logprobs', "'top_logprobs' needs 'logprobs' set to true");
  return { ...p, messages, logprobs, topLogprobs: top ?? 0 };
}

function messageOf(m: unknown, at: string): Message {
  if (!isObject(m)) throw invalid(at, `'${at}' must be an object with role and content, got ${describe(m)}`, 'invalid_type');
  if (typeof m.role !== 'string') throw invalid(`${at}.role`, `'${at}.role' must be a string, got ${describe(m.role)}`, 'invalid_type');
  const role = ROLES[m.role];
  if (!role) {
    if (m.role === 'tool' || m.role === 'function') throw invalid(`${at}.role`, `'${at}.role': ${m.role} messages are not supported by this server`, 'unsupported_parameter');
    throw invalid(`${at}.role`, `'${at}.role' must be one of system, developer, user, assistant; got ${JSON.stringify(m.role)}`);
  }
  return { role, content: contentOf(m.content, `${at}.content`) };
}

// A string, or OpenAI's array of content parts of which only text parts are supported here.
function contentOf(c: unknown, at: string): string {
  if (typeof c === 'string') return c;
  if (!Array.isArray(c)) throw invalid(at, `'${at}' must be a string or an array of text parts, got ${describe(c)}`, 'invalid_type');
  return c.map((part, i) => {
    const p = `${at}[${i}]`;
    if (!isObject(part) || typeof part.type !== 'string') throw invalid(p, `'${p}' must be a content part with a type`, 'invalid_type');
    if (part.type !== 'text') throw invalid(p, `'${p}': content of type ${JSON.stringify(part.type)} is not supported by this server (text only)`, 'unsupported_parameter');
    if (typeof part.text !== 'string') throw invalid(`${p}.text`, `'${p}.text' must be a string, got ${describe(part.text)}`, 'invalid_type');
    return part.text;
  }).join('');
}

// ---------------------------------------------------------------------------------------------------------------------
// POST /v1/completions

export function parseCompletionRequest(body: unknown, limits: Limits & { maxPrompts: number }): CompletionRequest {
  const b = requireObject(body);
  if (!present(b, 'prompt')) throw invalid('prompt', "'prompt' is required", 'missing_required_parameter');
  const prompts = promptsOf(b.prompt, limits.maxPrompts);
  refuse(b, 'suffix', 'suffix (insertion)');
  refuse(b, 'echo', 'echo', (v) => v !== false);
  const p = common(b, limits);
  refuse(b, 'best_of', 'best_of other than n', (v) => v !== p.n);
  return { ...p, maxTokens: p.maxTokens ?? 16, prompts, logprobs: int(b, 'logprobs', 0, MAX_TOP_LOGPROBS) ?? null };
}

const isIdList = (v: unknown): v is number[] => Array.isArray(v) && v.every((x) => Number.isInteger(x) && x >= 0);

function promptsOf(v: unknown, max: number): (string | number[])[] {
  let list: (string | number[])[];
  if (typeof v === 'string') list = [v];
  else if (Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string')) list = v as string[];
  else if (isIdList(v) && v.length > 0) list = [v];
  else if (Array.isArray(v) && v.length > 0 && v.every(isIdList)) list = v as number[][];
  else throw invalid('prompt', `'prompt' must be a string, an array of strings, an array of token ids or an array of such arrays, got ${describe(v)}`, 'invalid_type');
  if (list.length > max) throw invalid('prompt', `'prompt' holds ${list.length} prompts; this server takes at most ${max}`);
  return list;
}
