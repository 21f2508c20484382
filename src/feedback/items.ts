// The unit of preference collection: one prompt with its K sampled answers (an "item"), as `chatwright sample` writes it
// and the store, the ranking front ends and the labeller read it. One JSON object per line:
//   {"id": "...", "prompt": [{"role": "user", "content": "..."}], "responses": ["...", ...],
//    "model": "runs/demo/sft", "sampling": {"temperature": 1, ..., "maxNewTokens": 96, "seeds": [...]},
//    "reference": {"task": "poem-form", "lines": 4, "chars": 5}}
// Only prompt and responses are required, so a K-way file without rankings ({"prompt", "responses"}) is a samples file
// too; "prompt" may be a plain string (one user message). The id is a hash of the prompt and the answers, so the same
// item read from two files is one item, and a store never asks for it twice.
// Boundary: validation and identity; no files beyond reading one, no model.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { parseJsonlLog } from '../util/jsonl.js';
import { readFileChecked } from '../util/fsx.js';
import { validateConversation as validateChat, type Message, type Role } from '../tokenizer/index.js';
import type { Reference } from '../train/demos.js';

export interface SampleItem {
  id: string;
  prompt: Message[];          // ends with the user's turn
  responses: string[];        // K >= 2 answers
  model?: string;             // the model folder that wrote them
  sampling?: Record<string, unknown>; // settings and one seed per answer
  reference?: Reference;      // what an evaluation prompt is checked against (poem form), when known
  finish?: string[];          // per answer: 'stop' or 'length' (cut by the token budget)
}

export function itemId(prompt: Message[], responses: string[]): string {
  return createHash('sha256').update(JSON.stringify([prompt.map((m) => [m.role, m.content]), responses])).digest('hex').slice(0, 16);
}

const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

// A prompt as messages: a list of {role, content} ending with the user's turn, or a string (one user message).
export function promptMessages(v: unknown, where: string): Message[] {
  if (typeof v === 'string') {
    if (v.trim() === '') throw new UserError(`${where}: "prompt" is empty`);
    return [{ role: 'user', content: v }];
  }
  if (!Array.isArray(v) || v.length === 0)
    throw new UserError(`${where}: "prompt" must be a string or a list of {"role", "content"} messages`);
  const out = v.map((m, i) => {
    const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !ROLES.includes(role as Role) || typeof content !== 'string')
      throw new UserError(`${where}: prompt message ${i} must be {"role": "system"|"user"|"assistant", "content": "..."}`);
    return { role: role as Role, content };
  });
  try {
    validateChat(out, 'user');
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${where}: ${e.message}`, e.hint);
    throw e;
  }
  return out;
}

export function validateItem(v: unknown, where: string): SampleItem {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${where}: expected a JSON object`);
  const o = v as Record<string, unknown>;
  const prompt = promptMessages(o.prompt, where);
  if (!Array.isArray(o.responses) || o.responses.length < 2 || o.responses.some((r) => typeof r !== 'string'))
    throw new UserError(`${where}: "responses" must be a list of at least two answer strings`);
  const responses = o.responses as string[];
  const id = itemId(prompt, responses);
  if (o.id !== undefined && o.id !== id)
    throw new UserError(`${where}: "id" ${JSON.stringify(o.id)} does not match its prompt and responses (${id})`,
      'the line was edited after sampling; remove its "id" to accept the new content');
  const item: SampleItem = { id, prompt, responses };
  if (typeof o.model === 'string') item.model = o.model;
  if (o.sampling && typeof o.sampling === 'object') item.sampling = o.sampling as Record<string, unknown>;
  if (o.reference && typeof o.reference === 'object') item.reference = o.reference as Reference;
  if (Array.isArray(o.finish)) item.finish = o.finish.map(String);
  return item;
}

export function itemToJson(item: SampleItem): object {
  return {
    id: item.id, prompt: item.prompt, responses: item.responses,
    ...(item.model !== undefined ? { model: item.model } : {}),
    ...(item.sampling !== undefined ? { sampling: item.sampling } : {}),
    ...(item.reference !== undefined ? { reference: item.reference } : {}),
    ...(item.finish !== undefined ? { finish: item.finish } : {}),
  };
}

// A samples file. A torn last line (a sampling run killed mid-write) is left out with a notice through `warn`.
export function readSamples(path: string, warn: (s: string) => void = () => {}): SampleItem[] {
  if (!existsSync(path)) throw new UserError(`samples file not found: ${path}`, 'make one with `chatwright sample --model DIR --out FILE`');
  const log = parseJsonlLog(readFileChecked(path, 'samples file'), path);
  if (log.torn) warn(`${path}: the last line is incomplete (a run stopped while writing it); it is left out`);
  const items = log.records.map((r, i) => validateItem(r, `${path} line ${i + 1}`));
  if (items.length === 0) throw new UserError(`${path}: no samples`, 'the file is empty; run `chatwright sample` to fill it');
  return items;
}
