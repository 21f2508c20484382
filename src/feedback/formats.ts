// Preference data in the formats people already have, and the view the training stages read.
//
// Formats (one JSON object per line; `prefs export --format` names in brackets):
//   K-way [kway]           {"prompt", "responses": [K strings], "ranking": [2, [0, 1], 3]}  best first, ties as inner
//                          lists of 0-based indices (ranking.ts); optional "all_bad": true, "annotator", "model"
//   TRL pairs [pairs]      {"prompt": [{"role": "user", "content"}], "chosen": [{"role": "assistant", "content"}],
//                          "rejected": [...]}  TRL's conversational preference format
//   plain pairs [pairs-plain] {"prompt": "...", "chosen": "...", "rejected": "..."}  TRL's standard format; a
//                          single-turn prompt is the user's text, a longer one an HH transcript (below)
//   Anthropic HH [hh]      {"chosen": "\n\nHuman: ...\n\nAssistant: ...", "rejected": "..."}  the hh-rlhf release:
//                          whole transcripts, the prompt implicit (everything before the last "Assistant:")
// Reading also takes TRL's conversational implicit-prompt pairs ({"chosen": [messages], "rejected": [messages]}, the
// prompt being the shared messages before the last) and a plain prompt with a string pair (TRL's sentiment set mixes them).
// A K-way ranking gives all its pairs (ranking.ts); a pair is a K-way ranking of two. HH transcripts have no system
// turn, so a prompt with one is refused there.
//
// The training stages call loadPreferences(path) (a store folder or any of these files) and get, per prompt, the
// distinct answers and the (chosen, rejected) pairs between them, every pair people gave, repeated ones too (two
// annotators agreeing count twice, as in InstructGPT's data).
// Boundary: records and lines; reading a file at most. No model.
import { existsSync, statSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { parseJsonlLog } from '../util/jsonl.js';
import { readFileChecked } from '../util/fsx.js';
import type { Message } from '../tokenizer/index.js';
import { fnv1a } from '../train/demos.js';
import { promptMessages } from './items.js';
import { allTied, rankingFromJson, rankingPairs, rankingToJson, type PairIndex, type Ranking } from './ranking.js';
import { isStore, readStore, type RankRecord } from './store.js';

export const EXPORT_FORMATS = ['kway', 'pairs', 'pairs-plain', 'hh'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

export interface KWay {
  prompt: Message[];
  responses: string[];
  ranking: Ranking;
  allBad?: boolean;
  annotator?: string;
  model?: string;
}

export interface PromptPreferences {
  prompt: Message[];
  responses: string[];   // distinct answers to this prompt
  pairs: PairIndex[];    // indices into responses, chosen over rejected
}

export interface PreferencePair {
  prompt: Message[];
  chosen: string;
  rejected: string;
}

// ---------------------------------------------------------------------------------------------------------------------
// Store records -> K-way (skipped records carry no preference and are left out)

export function kwayFromRecords(records: RankRecord[]): KWay[] {
  return records.filter((r) => r.verdict !== 'skipped').map((r) => ({
    prompt: r.prompt, responses: r.responses, ranking: rankingFromJson(r.ranking, r.responses.length, `record ${r.seq}`),
    ...(r.verdict === 'all-bad' ? { allBad: true } : {}), annotator: r.annotator, ...(r.model ? { model: r.model } : {}),
  }));
}

// ---------------------------------------------------------------------------------------------------------------------
// Writing

const HH_HUMAN = '\n\nHuman: ';
const HH_ASSISTANT = '\n\nAssistant:';

// "\n\nHuman: q\n\nAssistant: a\n\nHuman: q2\n\nAssistant:" (the prompt part of an hh-rlhf transcript)
export function hhTranscript(prompt: Message[]): string {
  if (prompt.some((m) => m.role === 'system'))
    throw new UserError('the Anthropic-HH format has no system turn; this prompt has a system message', 'export as --format pairs or kway');
  return prompt.map((m) => (m.role === 'user' ? `${HH_HUMAN}${m.content}` : `${HH_ASSISTANT} ${m.content}`)).join('') + HH_ASSISTANT;
}

const single = (p: Message[]) => p.length === 1 && p[0].role === 'user';

export function pairsOfKWay(k: KWay): PreferencePair[] {
  return rankingPairs(k.ranking).map(({ chosen, rejected }) => ({ prompt: k.prompt, chosen: k.responses[chosen], rejected: k.responses[rejected] }));
}

// One record as the lines of a format (a K-way record gives one K-way line or all its pairs).
export function exportLines(k: KWay, format: ExportFormat): object[] {
  if (format === 'kway') {
    return [{
      prompt: k.prompt, responses: k.responses, ranking: rankingToJson(k.ranking), ...(k.allBad ? { all_bad: true } : {}),
      ...(k.annotator ? { annotator: k.annotator } : {}), ...(k.model ? { model: k.model } : {}),
    }];
  }
  return pairsOfKWay(k).map((p) => {
    if (format === 'pairs')
      return { prompt: p.prompt, chosen: [{ role: 'assistant', content: p.chosen }], rejected: [{ role: 'assistant', content: p.rejected }] };
    if (format === 'pairs-plain')
      return single(p.prompt) ? { prompt: p.prompt[0].content, chosen: p.chosen, rejected: p.rejected }
        : { prompt: hhTranscript(p.prompt), chosen: ` ${p.chosen}`, rejected: ` ${p.rejected}` };
    const t = hhTranscript(p.prompt);
    return { chosen: `${t} ${p.chosen}`, rejected: `${t} ${p.rejected}` };
  });
}

export function toJsonl(rows: object[]): string {
  return rows.map((r) => JSON.stringify(r)).join('\n') + (rows.length ? '\n' : '');
}

// ---------------------------------------------------------------------------------------------------------------------
// Reading

// An hh-rlhf transcript -> messages; the last turn must be the assistant's when `answer` is asked for.
export function parseHH(text: string, where: string): Message[] {
  const parts = text.split(/\n\n(Human|Assistant):[ ]?/);
  if (parts.length < 3 || parts[0].trim() !== '')
    throw new UserError(`${where}: not an Anthropic-HH transcript (expected "\\n\\nHuman: ...\\n\\nAssistant: ...")`);
  const out: Message[] = [];
  for (let i = 1; i < parts.length; i += 2) out.push({ role: parts[i] === 'Human' ? 'user' : 'assistant', content: parts[i + 1] });
  return out;
}

function answerText(v: unknown, where: string, field: string): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && v.length === 1 && v[0]?.role === 'assistant' && typeof v[0].content === 'string') return v[0].content;
  throw new UserError(`${where}: "${field}" must be a string or one {"role": "assistant", "content"} message`);
}

// Implicit prompt: the shared messages before each side's last (assistant) message.
function splitImplicit(chosen: Message[], rejected: Message[], where: string): { prompt: Message[]; chosen: string; rejected: string } {
  const c = chosen[chosen.length - 1], r = rejected[rejected.length - 1];
  if (c?.role !== 'assistant' || r?.role !== 'assistant') throw new UserError(`${where}: "chosen" and "rejected" must end with the assistant's answer`);
  const prompt = chosen.slice(0, -1);
  if (JSON.stringify(prompt) !== JSON.stringify(rejected.slice(0, -1)))
    throw new UserError(`${where}: "chosen" and "rejected" do not share the conversation before their last answer`);
  return { prompt: promptMessages(prompt, where), chosen: c.content, rejected: r.content };
}

const asMessages = (v: unknown[], where: string): Message[] => v.map((m, i) => {
  const { role, content } = (m ?? {}) as { role?: unknown; content?: unknown };
  if (typeof role !== 'string' || typeof content !== 'string') throw new UserError(`${where}: message ${i} must be {"role", "content"}`);
  return { role: role as Message['role'], content };
});

// One line of any supported format -> a K-way record.
export function parsePreferenceLine(v: unknown, where: string): KWay {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new UserError(`${where}: expected a JSON object`);
  const o = v as Record<string, unknown>;
  const extra = { ...(typeof o.annotator === 'string' ? { annotator: o.annotator } : {}), ...(typeof o.model === 'string' ? { model: o.model } : {}) };
  if ('responses' in o) {
    if (!Array.isArray(o.responses) || o.responses.length < 2 || o.responses.some((r) => typeof r !== 'string'))
      throw new UserError(`${where}: "responses" must be a list of at least two strings`);
    const responses = o.responses as string[];
    const prompt = plainOrMessages(o.prompt, where);
    if (o.all_bad === true) return { prompt, responses, ranking: allTied(responses.length), allBad: true, ...extra };
    return { prompt, responses, ranking: rankingFromJson(o.ranking, responses.length, where), ...extra };
  }
  if (!('chosen' in o) || !('rejected' in o))
    throw new UserError(`${where}: neither a K-way record ("responses", "ranking") nor a pair ("chosen", "rejected")`,
      'see `chatwright prefs --help` for the formats');
  let pair: { prompt: Message[]; chosen: string; rejected: string };
  if ('prompt' in o) {
    const plain = typeof o.prompt === 'string' && o.prompt.startsWith(HH_HUMAN);
    pair = {
      prompt: plainOrMessages(o.prompt, where),
      chosen: answerText(o.chosen, where, 'chosen'), rejected: answerText(o.rejected, where, 'rejected'),
    };
    if (plain) pair = { ...pair, chosen: pair.chosen.replace(/^ /, ''), rejected: pair.rejected.replace(/^ /, '') };
  } else if (Array.isArray(o.chosen) && Array.isArray(o.rejected)) {
    pair = splitImplicit(asMessages(o.chosen, where), asMessages(o.rejected, where), where);
  } else if (typeof o.chosen === 'string' && typeof o.rejected === 'string') {
    pair = splitImplicit(parseHH(o.chosen, `${where} "chosen"`), parseHH(o.rejected, `${where} "rejected"`), where);
  } else throw new UserError(`${where}: "chosen" and "rejected" must both be strings or both lists of messages`);
  return { prompt: pair.prompt, responses: [pair.chosen, pair.rejected], ranking: [[0], [1]], ...extra };
}

// A plain prompt is the user's message, unless it is an HH transcript ending with "Assistant:".
function plainOrMessages(v: unknown, where: string): Message[] {
  if (typeof v === 'string' && v.startsWith(HH_HUMAN) && v.endsWith(HH_ASSISTANT)) {
    const turns = parseHH(v, where);
    const last = turns.pop()!;
    if (last.role !== 'assistant' || last.content !== '') throw new UserError(`${where}: the HH prompt must end with "Assistant:"`);
    return promptMessages(turns, where);
  }
  return promptMessages(v, where);
}

export function parsePreferences(text: string | Buffer, name: string): KWay[] {
  const log = parseJsonlLog(Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8'), name);
  if (log.torn) throw new UserError(`${name}: the last line is incomplete`, 'the file was cut short; fix or remove its last line');
  return log.records.map((r, i) => parsePreferenceLine(r, `${name} record ${i + 1}`));
}

export function readPreferenceFile(path: string): KWay[] {
  if (!existsSync(path)) throw new UserError(`preference file not found: ${path}`);
  return parsePreferences(readFileChecked(path, 'preference file'), path);
}

// ---------------------------------------------------------------------------------------------------------------------
// The training view

const promptKey = (p: Message[]) => JSON.stringify(p.map((m) => [m.role, m.content]));

// Group records by prompt: the distinct answers and every pair between them, in the order the prompts first appear.
export function preferencesByPrompt(records: KWay[]): PromptPreferences[] {
  const byPrompt = new Map<string, { p: PromptPreferences; index: Map<string, number> }>();
  for (const k of records) {
    const key = promptKey(k.prompt);
    let g = byPrompt.get(key);
    if (!g) byPrompt.set(key, (g = { p: { prompt: k.prompt, responses: [], pairs: [] }, index: new Map() }));
    const idx = k.responses.map((r) => {
      let i = g!.index.get(r);
      if (i === undefined) {
        i = g!.p.responses.length;
        g!.p.responses.push(r);
        g!.index.set(r, i);
      }
      return i;
    });
    for (const { chosen, rejected } of rankingPairs(k.ranking))
      if (idx[chosen] !== idx[rejected]) g.p.pairs.push({ chosen: idx[chosen], rejected: idx[rejected] });
  }
  return [...byPrompt.values()].map((g) => g.p).filter((p) => p.pairs.length > 0);
}

export function pairsOf(p: PromptPreferences): PreferencePair[] {
  return p.pairs.map(({ chosen, rejected }) => ({ prompt: p.prompt, chosen: p.responses[chosen], rejected: p.responses[rejected] }));
}

// Preferences from a store folder or a file of any supported format.
export function loadPreferences(path: string): PromptPreferences[] {
  if (!existsSync(path)) throw new UserError(`preferences not found: ${path}`, 'give a store folder (chatwright rank / label) or a JSONL file of pairs or K-way rankings');
  const kway = statSync(path).isDirectory()
    ? (isStore(path) ? kwayFromRecords(readStore(path).records) : (() => { throw new UserError(`${path} is a folder but not a preference store`); })())
    : readPreferenceFile(path);
  const prefs = preferencesByPrompt(kway);
  if (prefs.length === 0) throw new UserError(`${path}: no preferences (no ranking with two answers in different places)`,
    'rank some samples first: `chatwright rank` or `chatwright label`');
  return prefs;
}

// A held-out split by prompt (a stable hash of the prompt), so no prompt's pairs are on both sides.
export function splitByPrompt(prefs: PromptPreferences[], heldout: number, seed = 0): { train: PromptPreferences[]; heldout: PromptPreferences[] } {
  const train: PromptPreferences[] = [];
  const held: PromptPreferences[] = [];
  for (const p of prefs) (fnv1a(`${seed}:${promptKey(p.prompt)}`) / 2 ** 32 < heldout ? held : train).push(p);
  return { train, heldout: held };
}
