// Evaluation of chat models on held-out prompts: the held-out SFT loss (mean over assistant tokens, the SFT objective),
// and checks of greedy answers against references: for poems, the share of answers in the requested form (number of lines
// and Han characters per line) and the share naming the right author; for definitions, token F1 against the gloss.
// Base and SFT models get the same chat template, so the table shows what fine-tuning adds. The poems are also judged
// by the simulated labeller (src/feedback/labeller.ts: a rule-based judge, not a person): its mean score, how often the
// even lines rhyme, how many characters repeat, and the win rate of each model's answer against a baseline model's
// answer to the same prompt. Win rates are computed for every judge in `judges` (a Judge scores (prompt, answer); a
// reward model can be one), so the table reads base | SFT | DPO | PPO for any list of models.
//
//   chatwright eval --base runs/demo/base --sft runs/demo/sft              (held-out set saved by `chatwright sft`)
//   chatwright eval --sft runs/demo/sft --data chinese-poetry --limit 2000 (rebuild a built-in set)
//   chatwright eval --model runs/demo/sft --model dpo=runs/demo/dpo --baseline sft
//
// Boundary: metrics are pure functions of strings (top of the file); the runner loads models, renders prompts with the
// tokenizer and decodes with src/generate. It never trains.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { parseJson, readFileChecked, writeFileAtomic, writeJsonAtomic } from '../util/fsx.js';
import { klFromReference } from './rollout.js';
import { evalHtml } from './eval-report.js';
import { noGrad, releaseTape } from '../tensor/index.js';
import type { GPT } from '../model/gpt.js';
import { loadModel } from '../model/checkpoint.js';
import { validateConversation as validateChat, type Message, type Tokenizer } from '../tokenizer/index.js';
import { chatStopTokens, generateBatch } from '../generate/index.js';
import { judgePoem, poemRequest, simulatedLabeller, winRate, type Judge } from '../feedback/index.js';
import {
  answerForm, formMatches, PROMPTS_FILE, builtinDemos, isBuiltinDemos, makeBatch, packConversations, parseDemos, readDemos,
  type Conversation, type EvalPrompt, type Reference,
} from '../train/demos.js';

// ---------------------------------------------------------------------------------------------------------------------
// Metrics: pure functions

// The form checks live with the poems (src/train/demos.ts), where the simulated labeller (src/feedback) reads them too.
export { answerForm, formMatches };

// True when the answer names the author (the author's name appears in it).
export function authorMatches(text: string, author: string): boolean {
  return author.length > 0 && text.includes(author);
}

// SQuAD-style token F1 (Rajpurkar et al. 2016, the official evaluate-v1.1.py): lower-case, drop punctuation and the
// articles a/an/the, split on white space; F1 of the bag-of-tokens overlap.
export function normalizeTokens(s: string): string[] {
  return s
    .toLowerCase()
    .replace(/[\p{P}\p{S}]/gu, ' ')
    .split(/\s+/)
    .filter((w) => w.length > 0 && w !== 'a' && w !== 'an' && w !== 'the');
}

export function tokenF1(prediction: string, reference: string): number {
  const p = normalizeTokens(prediction);
  const r = normalizeTokens(reference);
  if (p.length === 0 || r.length === 0) return p.length === r.length ? 1 : 0;
  const counts = new Map<string, number>();
  for (const w of r) counts.set(w, (counts.get(w) ?? 0) + 1);
  let common = 0;
  for (const w of p) {
    const c = counts.get(w) ?? 0;
    if (c > 0) {
      common++;
      counts.set(w, c - 1);
    }
  }
  if (common === 0) return 0;
  const precision = common / p.length;
  const recall = common / r.length;
  return (2 * precision * recall) / (precision + recall);
}

// Score of one answer against its reference, in [0, 1].
export function score(answer: string, ref: Reference): number {
  if (ref.task === 'poem-form') return formMatches(answer, ref.lines, ref.chars) ? 1 : 0;
  if (ref.task === 'author') return authorMatches(answer, ref.author) ? 1 : 0;
  return tokenF1(answer, ref.gloss);
}

// ---------------------------------------------------------------------------------------------------------------------
// The evaluation set: held-out dialogues (loss) and prompts with references (generation)

export interface EvalSet {
  heldout: Conversation[];
  prompts: EvalPrompt[];
}

export const HELDOUT_FILE = 'heldout.jsonl';
export { PROMPTS_FILE };

export function promptsToJsonl(prompts: EvalPrompt[]): string {
  return prompts.map((p) => JSON.stringify(p)).join('\n') + (prompts.length ? '\n' : '');
}

export function parsePrompts(text: string, name: string): EvalPrompt[] {
  const out: EvalPrompt[] = [];
  text.split('\n').forEach((line, i) => {
    if (!line.trim()) return;
    const where = `${name} line ${i + 1}`;
    const v = parseJson(line, where);
    const messages = Array.isArray(v?.messages) ? v.messages : null;
    if (!messages) throw new UserError(`${where}: missing "messages"`, 'each line is {"messages": [...], "reference": {"task": ...}}');
    try {
      validateChat(messages, 'user');  // prompts end with the user's turn
    } catch (e) {
      if (e instanceof UserError) throw new UserError(`${where}: ${e.message}`, e.hint);
      throw e;
    }
    const ref = v.reference as Reference;
    if (!ref || !['poem-form', 'author', 'gloss'].includes(ref.task))
      throw new UserError(`${where}: "reference.task" must be poem-form, author or gloss`);
    const count = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
    if (ref.task === 'poem-form' ? !(count(ref.lines) && count(ref.chars))
      : ref.task === 'author' ? typeof ref.author !== 'string' : typeof ref.gloss !== 'string') {
      throw new UserError(`${where}: reference ${JSON.stringify(ref)} lacks its fields (poem-form: lines, chars; author: author; gloss: gloss)`);
    }
    out.push({ messages: messages.map((m: Message) => ({ role: m.role, content: m.content })), reference: ref });
  });
  return out;
}

// The set an SFT run saved beside its model (so `eval` sees exactly the held-out split SFT did not train on), a built-in
// set, or a JSONL file of dialogues (held-out loss only).
export function loadEvalSet(opts: { data?: string; sftDir?: string; limit?: number; maxPrompts?: number }): EvalSet {
  if (opts.data && isBuiltinDemos(opts.data)) {
    const s = builtinDemos(opts.data, { limit: opts.limit, maxPrompts: opts.maxPrompts });
    return { heldout: s.heldout, prompts: s.prompts };
  }
  if (opts.data) {
    if (existsSync(join(opts.data, HELDOUT_FILE))) return readEvalDir(opts.data);
    return { heldout: readDemos(opts.data), prompts: [] };
  }
  if (opts.sftDir && existsSync(join(opts.sftDir, HELDOUT_FILE))) return readEvalDir(opts.sftDir);
  throw new UserError('no evaluation data', 'give --data (chinese-poetry, wordnet, a .jsonl file) or --sft with a model trained by `chatwright sft`');
}

function readEvalDir(dir: string): EvalSet {
  const text = readFileChecked(join(dir, HELDOUT_FILE), 'held-out dialogues').toString('utf8');
  const heldout = text.trim() ? parseDemos(text, join(dir, HELDOUT_FILE)) : [];
  const pf = join(dir, PROMPTS_FILE);
  const prompts = existsSync(pf) ? parsePrompts(readFileChecked(pf, 'evaluation prompts').toString('utf8'), pf) : [];
  return { heldout, prompts };
}

// ---------------------------------------------------------------------------------------------------------------------
// Held-out loss: the SFT objective on unseen dialogues, averaged over all their assistant tokens

export function heldoutLoss(model: GPT, tokenizer: Tokenizer, convs: Conversation[], opts: { T?: number; batchSize?: number } = {}): number {
  if (convs.length === 0) return NaN;
  const T = Math.min(opts.T ?? model.config.maxSeqLen, model.config.maxSeqLen);
  const B = opts.batchSize ?? 8;
  const packed = packConversations(convs, tokenizer, T, { pack: true });
  let sum = 0;
  let weight = 0;
  for (let i = 0; i < packed.rows.length; i += B) {
    const which: number[] = [];
    for (let j = i; j < Math.min(i + B, packed.rows.length); j++) which.push(j);
    const batch = makeBatch(packed, which);
    let w = 0;
    for (let k = 0; k < batch.weights.length; k++) w += batch.weights[k];
    if (w === 0) continue;
    const loss = noGrad(() => model.forward(batch.ids, which.length, T, { targets: batch.targets, weights: batch.weights }).loss!.item());
    releaseTape();
    sum += loss * w;
    weight += w;
  }
  return weight > 0 ? sum / weight : NaN;
}

// ---------------------------------------------------------------------------------------------------------------------
// Generation metrics: answers to the held-out prompts (greedy, or sampled at a temperature with a seed per prompt)

export interface EvalSample {
  prompt: string;
  promptIndex: number;   // into the evaluation set's prompts
  answer: string;
  reference: Reference;
  score: number;
  labeller?: { score: number; form: number; rhyme: number; repetition: number; title: number; rhymes: boolean; repeatRate: number };
}

export interface WinRate {
  judge: string;
  baseline: string;      // model name
  rate: number | null;   // share of prompts won against the baseline's answer, ties half
  n: number;             // prompts the judge scored
}

export interface ModelMetrics {
  heldoutLoss: number | null;
  poemForm: number | null;   // share of answers in the requested form
  author: number | null;     // share of answers naming the right author
  glossF1: number | null;    // mean token F1 against the gloss
  labeller: number | null;   // mean simulated-labeller score of the poems
  rhymeRate: number | null;  // share of poems whose even lines all rhyme (the labeller's rule)
  repeatRate: number | null; // mean share of a poem's characters that repeat an earlier one
  winRates: WinRate[];       // against the baseline model, one per judge (filled by runEval)
  klToBaseline?: number | null; // KL(model || baseline) per answer on its own sampled answers (nats; filled by runEval)
  counts: { heldout: number; poemForm: number; author: number; gloss: number; labelled?: number };
}

const MAX_NEW: Record<Reference['task'], number> = { 'poem-form': 96, author: 32, gloss: 64 };

export function evaluateModel(
  model: GPT,
  tokenizer: Tokenizer,
  set: EvalSet,
  opts: { T?: number; maxNewTokens?: number; batchSize?: number; temperature?: number; seed?: number; onProgress?: (done: number, total: number) => void } = {},
): { metrics: ModelMetrics; samples: EvalSample[] } {
  const samples: EvalSample[] = [];
  const total = set.prompts.length + 1;
  const loss = set.heldout.length ? heldoutLoss(model, tokenizer, set.heldout, { T: opts.T }) : null;
  opts.onProgress?.(1, total);
  // answers decoded in batches of prompts of one task (one answer budget per batch); an answer ends as a chat reply
  // does: at the end of its turn or at any other special token (a base model's bos, its end of document, used to run on
  // into a new poem)
  const batch = opts.batchSize ?? 16;
  const stopTokens = chatStopTokens(tokenizer);
  const byTask = new Map<Reference['task'], EvalPrompt[]>();
  for (const p of set.prompts) byTask.set(p.reference.task, [...(byTask.get(p.reference.task) ?? []), p]);
  let done = 1;
  for (const [task, prompts] of byTask) {
    for (let i = 0; i < prompts.length; i += batch) {
      const group = prompts.slice(i, i + batch);
      const ids = group.map((p) => tokenizer.renderForCompletion(p.messages));
      const longest = Math.max(...ids.map((x) => x.length));
      const room = model.config.maxSeqLen - longest;
      const maxNewTokens = Math.min(room, opts.maxNewTokens ?? MAX_NEW[task]);
      const answers = maxNewTokens >= 1
        ? generateBatch(model, tokenizer, ids, group.map((p) => ({
          maxNewTokens, temperature: opts.temperature ?? 0, seed: (opts.seed ?? 0) + set.prompts.indexOf(p), stopTokens,
        }))).map((r) => r.text)
        : group.map(() => '');
      group.forEach((p, j) => {
        const s: EvalSample = {
          prompt: p.messages[p.messages.length - 1].content, promptIndex: set.prompts.indexOf(p), answer: answers[j],
          reference: p.reference, score: score(answers[j], p.reference),
        };
        const req = task === 'poem-form' ? poemRequest(p.messages, p.reference) : null;
        if (req) {
          const c = judgePoem(answers[j], req);
          s.labeller = { score: c.score, form: c.form, rhyme: c.rhyme, repetition: c.repetition, title: c.title, rhymes: c.rhymes, repeatRate: c.repeatRate };
        }
        samples.push(s);
      });
      done += group.length;
      opts.onProgress?.(done, total);
    }
  }
  const mean = (task: Reference['task']) => {
    const s = samples.filter((x) => x.reference.task === task);
    return s.length ? s.reduce((a, x) => a + x.score, 0) / s.length : null;
  };
  const count = (task: Reference['task']) => samples.filter((x) => x.reference.task === task).length;
  const judged = samples.filter((x) => x.labeller);
  const meanOf = (f: (l: NonNullable<EvalSample['labeller']>) => number) =>
    judged.length ? judged.reduce((a, x) => a + f(x.labeller!), 0) / judged.length : null;
  return {
    metrics: {
      heldoutLoss: loss === null || Number.isNaN(loss) ? null : loss,
      poemForm: mean('poem-form'),
      author: mean('author'),
      glossF1: mean('gloss'),
      labeller: meanOf((l) => l.score),
      rhymeRate: meanOf((l) => (l.rhymes ? 1 : 0)),
      repeatRate: meanOf((l) => l.repeatRate),
      winRates: [],
      counts: { heldout: set.heldout.length, poemForm: count('poem-form'), author: count('author'), gloss: count('gloss'), labelled: judged.length },
    },
    samples,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// The table: one column per model

export interface EvalReport {
  models: { name: string; dir: string; metrics: ModelMetrics; samples: EvalSample[] }[];
  decoding?: { temperature: number; seed: number }; // how the judged answers were drawn (temperature 0: greedy)
  notes?: string[];          // what a reader should not miss in the table (reward hacking)
}

export function formatTable(report: EvalReport): string {
  const names = report.models.map((m) => m.name);
  const rows: [string, (m: ModelMetrics) => string][] = [];
  const first = report.models[0]?.metrics;
  const pct = (x: number | null) => (x === null ? '-' : `${(100 * x).toFixed(1)}%`);
  if (first?.heldoutLoss !== undefined && report.models.some((m) => m.metrics.heldoutLoss !== null))
    rows.push([`held-out SFT loss (${first.counts.heldout} dialogues)`, (m) => (m.heldoutLoss === null ? '-' : m.heldoutLoss.toFixed(3))]);
  if (first && first.counts.poemForm > 0) rows.push([`poems in the requested form (${first.counts.poemForm})`, (m) => pct(m.poemForm)]);
  if (first && first.counts.author > 0) rows.push([`correct author (${first.counts.author})`, (m) => pct(m.author)]);
  if (first && first.counts.gloss > 0) rows.push([`definition token F1 (${first.counts.gloss})`, (m) => (m.glossF1 === null ? '-' : m.glossF1.toFixed(3))]);
  if (first && (first.counts.labelled ?? 0) > 0) {
    const n = first.counts.labelled;
    rows.push([`simulated labeller score (${n} poems)`, (m) => (m.labeller === null ? '-' : m.labeller.toFixed(3))]);
    rows.push([`even lines rhyme (simulated labeller)`, (m) => pct(m.rhymeRate)]);
    rows.push([`repeated characters`, (m) => pct(m.repeatRate)]);
  }
  if (report.models.some((m) => typeof m.metrics.klToBaseline === 'number')) {
    const base = report.models.find((m) => m.metrics.klToBaseline === 0)?.name ?? 'baseline';
    rows.push([`KL to ${base} (nats per answer, sampled)`, (m) => (typeof m.klToBaseline === 'number' ? m.klToBaseline.toFixed(2) : '-')]);
  }
  const judges = [...new Set(report.models.flatMap((m) => m.metrics.winRates.map((w) => `${w.judge}\u0000${w.baseline}`)))];
  for (const key of judges) {
    const [judge, baseline] = key.split('\u0000');
    rows.push([`win rate vs ${baseline} (${judge})`, (m) => {
      const w = m.winRates.find((x) => x.judge === judge && x.baseline === baseline);
      return w ? pct(w.rate) : '-';
    }]);
  }
  const w0 = Math.max(6, ...rows.map((r) => r[0].length));
  const cells = rows.map(([label, f]) => [label, ...report.models.map((m) => f(m.metrics))]);
  const widths = names.map((n, j) => Math.max(n.length, ...cells.map((c) => c[j + 1].length)));
  const line = (c: string[]) => c[0].padEnd(w0) + c.slice(1).map((x, j) => '  ' + x.padStart(widths[j])).join('');
  const out = [line(['metric', ...names]), '-'.repeat(w0 + widths.reduce((a, w) => a + w + 2, 0))];
  for (const c of cells) out.push(line(c));
  for (const n of report.notes ?? []) out.push(`note: ${n}`);
  return out.join('\n');
}

// ---------------------------------------------------------------------------------------------------------------------
// The stage: load each model, evaluate it on the same set, print the table, save JSON

export interface EvalOptions {
  models: { name: string; dir: string }[];   // e.g. [{name: 'base', dir: 'runs/demo/base'}, {name: 'sft', dir: 'runs/demo/sft'}]
  baseline?: string;                          // win rates against this model (default: the one named sft, else the first)
  judges?: Judge[];                           // who decides a win (default: the simulated labeller)
  data?: string;                              // built-in set or JSONL; default: the held-out set saved in the sft dir
  limit?: number;                             // corpus entries to read for a built-in set
  maxPrompts?: number;                        // evaluation prompts per task
  out?: string;                               // JSON report path; the same name with .html gets the picture
  klPrompts?: number;                         // prompts answered (sampled) for the KL to the baseline (default 16; 0: none)
  temperature?: number;                       // of the answers judged: 0 (default) greedy; else sampled, seeded per prompt
  seed?: number;
  log?: (line: string) => void;
}

export function runEval(opts: EvalOptions): EvalReport {
  const log = opts.log ?? ((s: string) => console.error(s));
  if (opts.models.length === 0) throw new UserError('eval: no model given', 'pass --base DIR and/or --sft DIR');
  const sftDir = opts.models.find((m) => m.name === 'sft')?.dir ??
    opts.models.find((m) => existsSync(join(m.dir, HELDOUT_FILE)))?.dir ?? opts.models[opts.models.length - 1].dir;
  const set = loadEvalSet({ data: opts.data, sftDir, limit: opts.limit, maxPrompts: opts.maxPrompts });
  if (opts.maxPrompts !== undefined) set.prompts = capPerTask(set.prompts, opts.maxPrompts);
  const report: EvalReport = { models: [], decoding: { temperature: opts.temperature ?? 0, seed: opts.seed ?? 0 } };
  const loaded = new Map<string, { model: GPT; tokenizer: Tokenizer }>();
  for (const m of opts.models) {
    const { model, tokenizer } = loadModel(m.dir);
    if (tokenizer) loaded.set(m.name, { model, tokenizer });
    if (!tokenizer) throw new UserError(`no tokenizer in ${m.dir}`, 'a model directory needs tokenizer.json; save it with its tokenizer');
    const t0 = Date.now();
    let last = 0;
    const r = evaluateModel(model, tokenizer, set, {
      temperature: opts.temperature, seed: opts.seed,
      onProgress: (done, total) => {
        const now = Date.now();
        if (process.stderr.isTTY && (now - last > 250 || done === total)) {
          last = now;
          process.stderr.write(`\r  eval ${m.name}: ${done}/${total}`);
        }
      },
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    log(`eval ${m.name} (${m.dir}): ${set.heldout.length} held-out dialogues, ${set.prompts.length} prompts, ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    report.models.push({ name: m.name, dir: m.dir, metrics: r.metrics, samples: r.samples });
  }
  addWinRates(report, set, opts.baseline, opts.judges ?? [simulatedLabeller]);
  addKL(report, loaded, set, opts.baseline, opts.klPrompts ?? 16);
  if (opts.out) {
    writeJsonAtomic(opts.out, report);
    writeFileAtomic(opts.out.replace(/\.json$/, '') + '.html', evalHtml(report, formatTable(report)));
  }
  return report;
}

// Each model's answers against the baseline's, prompt by prompt, per judge (the baseline itself gets none).
export function addWinRates(report: EvalReport, set: EvalSet, baselineName: string | undefined, judges: Judge[]): void {
  const baseline = baselineName !== undefined ? report.models.find((m) => m.name === baselineName)
    : report.models.find((m) => m.name === 'sft') ?? report.models[0];
  if (!baseline) throw new UserError(`eval: no model named "${baselineName}" to compare with`, `the models are ${report.models.map((m) => m.name).join(', ')}`);
  if (report.models.length < 2) return;
  const byIndex = (m: EvalReport['models'][number]) => new Map(m.samples.map((s) => [s.promptIndex, s.answer]));
  const base = byIndex(baseline);
  for (const m of report.models) {
    if (m === baseline) continue;
    const mine = byIndex(m);
    const idx = [...base.keys()].filter((i) => mine.has(i));
    for (const judge of judges) {
      const w = winRate(judge, idx.map((i) => set.prompts[i].messages), idx.map((i) => mine.get(i)!), idx.map((i) => base.get(i)!));
      m.metrics.winRates.push({ judge: judge.name, baseline: baseline.name, rate: w.rate, n: w.n });
    }
  }
  report.notes = rewardHackingNotes(report);
}

// A model that a learned judge (the reward model) prefers to the baseline far more often than the simulated labeller
// does is one the reward model misjudges: for a policy trained against it, reward hacking (over-optimisation); for the
// base model, answers unlike any it was trained on. Said in words under the table.
export const HACKING_GAP = 0.2;
export function rewardHackingNotes(report: EvalReport): string[] {
  const notes: string[] = [];
  for (const m of report.models) {
    const lab = m.metrics.winRates.find((w) => w.judge === simulatedLabeller.name);
    if (!lab || lab.rate === null) continue;
    for (const w of m.metrics.winRates) {
      if (w === lab || w.rate === null || w.baseline !== lab.baseline || w.rate - lab.rate < HACKING_GAP - 1e-9) continue; // 0.7 - 0.5 is 0.19999999999999996
      notes.push(`${m.name}: the ${w.judge} prefers its answers to ${w.baseline}'s ${(100 * w.rate).toFixed(0)}% of the time, the ` +
        `${lab.judge} ${(100 * lab.rate).toFixed(0)}%: the ${w.judge} misjudges them (for a policy trained against it, that is ` +
        `reward hacking: a larger KL coefficient, --kl-coef, or a reward model trained on more rankings holds it back)`);
    }
  }
  return notes;
}

// KL(model || baseline) on each model's own sampled answers to the first n prompts (k1 per answer, src/stages/rollout.ts).
function addKL(report: EvalReport, models: Map<string, { model: GPT; tokenizer: Tokenizer }>, set: EvalSet, baselineName: string | undefined, n: number): void {
  const baseline = report.models.find((m) => m.name === (baselineName ?? 'sft')) ?? report.models[0];
  const ref = models.get(baseline.name);
  const prompts = set.prompts.slice(0, n).map((p) => p.messages);
  if (!ref || n === 0 || prompts.length === 0) return;
  for (const m of report.models) {
    const { model, tokenizer } = models.get(m.name)!;
    if (model.config.vocabSize !== ref.model.config.vocabSize) continue;
    m.metrics.klToBaseline = m === baseline ? 0 : klFromReference(model, ref.model, tokenizer, prompts, 64, 4242);
  }
}

function capPerTask(prompts: EvalPrompt[], n: number): EvalPrompt[] {
  const seen = new Map<string, number>();
  return prompts.filter((p) => {
    const k = seen.get(p.reference.task) ?? 0;
    seen.set(p.reference.task, k + 1);
    return k < n;
  });
}
