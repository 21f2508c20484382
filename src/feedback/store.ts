// The preference store: the items to rank and every ranking people (or the simulated labeller) gave, in one folder:
//   items.jsonl     the queue: one item per line (items.ts), appended as samples are added; an item is stored once
//   rankings.jsonl  the log: one record per line, appended; never rewritten
//   LOCK            the writer's pid while a process has the store open for writing (lock.ts)
//
// Why append-only JSONL and not SQLite: a store holds thousands of records, not millions, and is only ever appended to;
// one line per record, written with one write() and fsync'd before it is acknowledged, is as durable as an SQLite commit
// (which also ends in an fsync), needs no native module to build on every user's machine, and the log is readable with
// `tail`, diffable, and already the shape of the K-way export. Undo is a record too (kind "undo"), so nothing is
// overwritten and the history is kept. What SQLite would add, several writing processes at once, the design does
// not want: the server is the single writer (the LOCK file refuses a second writing process, naming the first), and
// many annotators share it through the API below. A crash loses at most the ranking in progress: every acknowledged
// record is on disk, a torn last line is cut off when the store is next opened (util/jsonl.ts).
//
// Records:
//   {"kind": "rank", "seq": 7, "item": "<id>", "prompt": [...], "responses": [...], "verdict": "ranked",
//    "ranking": [2, [0, 1], 3], "annotator": "alice", "time": "2026-...Z", "model": "runs/demo/sft",
//    "sampling": {...}, "meta": {...}}
//     verdict "ranked": a full order (ranking.ts; ties as inner lists); "all-bad": every answer is bad (ranking: one
//     group of all, so no pair); "skipped": no opinion (ranking: []), the item goes back to the others.
//   {"kind": "undo", "seq": 8, "undoes": 7, "annotator": "alice", "time": "..."}
//
// Nothing is ranked twice unless asked: an item needs `repeats` rankings (default 1) from different annotators, and
// no annotator gets an item twice. `next` leases an item to an annotator (for `leaseMinutes`) so two people ranking at
// once are shown different items; the lease ends when they submit, ask for the next, or it expires.
// Boundary: items and records on disk; no model, no terminal, no HTTP.
import { join } from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { JsonlAppender, fsyncDir, readJsonlLog } from '../util/jsonl.js';
import type { Message } from '../tokenizer/index.js';
import { acquireLock } from './lock.js';
import { validateItem, itemToJson, promptMessages, type SampleItem } from './items.js';
import { allTied, rankingFromJson, rankingToJson, validateRanking, type Ranking } from './ranking.js';

export const ITEMS_FILE = 'items.jsonl';
export const RANKINGS_FILE = 'rankings.jsonl';
export const LOCK_FILE = 'LOCK';

export type Verdict = 'ranked' | 'all-bad' | 'skipped';

export interface RankRecord {
  kind: 'rank';
  seq: number;
  item: string;
  prompt: Message[];
  responses: string[];
  verdict: Verdict;
  ranking: (number | number[])[];
  annotator: string;
  time: string;
  model?: string;
  sampling?: Record<string, unknown>;
  meta?: Record<string, unknown>; // e.g. the simulated labeller's scores, noise and seed
}

export interface UndoRecord {
  kind: 'undo';
  seq: number;
  undoes: number;
  annotator: string;
  time: string;
}

export type Submission = { verdict: 'ranked'; ranking: Ranking } | { verdict: 'all-bad' } | { verdict: 'skipped' };

export interface StoreCounts {
  items: number;
  done: number;       // items with all the rankings they need
  pending: number;    // items still needing a ranking
  ranked: number;     // records in effect, by verdict
  allBad: number;
  skipped: number;
  leased: number;     // items shown to someone right now
  annotators: Record<string, number>; // records in effect per annotator
}

// Why a submission was refused; the server maps these to HTTP 409 / 404.
export class PreferenceConflict extends UserError {
  constructor(readonly reason: 'unknown-item' | 'already-ranked' | 'ranked-by-you', message: string, hint?: string) {
    super(message, hint);
  }
}

export interface StoreOptions {
  repeats?: number;        // rankings each item needs, from different annotators (default 1)
  leaseMinutes?: number;   // how long `next` keeps an item for its annotator (default 30)
  command?: string;        // shown to a second process that finds the store taken
  now?: () => number;      // clock in ms (tests)
}

// ---------------------------------------------------------------------------------------------------------------------
// Reading: the state of a store folder, with or without the lock

interface State {
  items: Map<string, SampleItem>;
  order: string[];
  records: Map<number, RankRecord>;  // every rank record by seq
  undone: Set<number>;
  byItem: Map<string, RankRecord[]>; // records in effect per item
  lastSeq: number;
}

function emptyState(): State {
  return { items: new Map(), order: [], records: new Map(), undone: new Set(), byItem: new Map(), lastSeq: 0 };
}

function applyItem(s: State, item: SampleItem): boolean {
  if (s.items.has(item.id)) return false;
  s.items.set(item.id, item);
  s.order.push(item.id);
  return true;
}

function applyRecord(s: State, r: unknown, where: string): void {
  const o = r as { kind?: string; seq?: number; undoes?: number };
  if (!Number.isInteger(o.seq) || o.seq! <= s.lastSeq) throw new UserError(`${where}: "seq" ${o.seq} does not follow ${s.lastSeq}`, 'the log was edited; restore it');
  if (o.kind === 'rank') {
    const rec = r as RankRecord;
    if (typeof rec.item !== 'string' || typeof rec.annotator !== 'string' || !Array.isArray(rec.responses) || !Array.isArray(rec.prompt))
      throw new UserError(`${where}: a rank record needs "item", "prompt", "responses" and "annotator"`);
    promptMessages(rec.prompt, where);
    if (rec.responses.some((x) => typeof x !== 'string')) throw new UserError(`${where}: "responses" must be answer strings`);
    if (!['ranked', 'all-bad', 'skipped'].includes(rec.verdict)) throw new UserError(`${where}: unknown verdict ${JSON.stringify(rec.verdict)}`);
    if (rec.verdict !== 'skipped') rankingFromJson(rec.ranking, rec.responses?.length ?? 0, where);
    s.records.set(rec.seq, rec);
    s.byItem.set(rec.item, [...(s.byItem.get(rec.item) ?? []), rec]);
  } else if (o.kind === 'undo') {
    const undone = s.records.get(o.undoes!);
    if (!undone || s.undone.has(undone.seq)) throw new UserError(`${where}: undoes record ${o.undoes}, which is not in effect`);
    s.undone.add(undone.seq);
    s.byItem.set(undone.item, (s.byItem.get(undone.item) ?? []).filter((r) => r !== undone));
  } else throw new UserError(`${where}: unknown record kind ${JSON.stringify(o.kind)}`, 'written by a newer chatwright? update it');
  s.lastSeq = o.seq!;
}

function loadState(dir: string, items: unknown[], records: unknown[]): State {
  const s = emptyState();
  items.forEach((v, i) => applyItem(s, validateItem(v, `${join(dir, ITEMS_FILE)} record ${i + 1}`)));
  records.forEach((v, i) => applyRecord(s, v, `${join(dir, RANKINGS_FILE)} record ${i + 1}`));
  return s;
}

// The records in effect (not undone), in order.
function effective(s: State): RankRecord[] {
  return [...s.records.values()].filter((r) => !s.undone.has(r.seq)).sort((a, b) => a.seq - b.seq);
}

// A read-only snapshot of a store: for export, counts and the training stages. Needs no lock; a torn last line (a
// writer killed mid-record) is left out.
export function readStore(dir: string): { items: SampleItem[]; records: RankRecord[] } {
  if (!existsSync(join(dir, RANKINGS_FILE)) && !existsSync(join(dir, ITEMS_FILE)))
    throw new UserError(`no preference store in ${dir}`, 'make one with `chatwright rank --samples FILE --store DIR` or `chatwright label`');
  const s = loadState(dir, readJsonlLog(join(dir, ITEMS_FILE)).records, readJsonlLog(join(dir, RANKINGS_FILE)).records);
  return { items: s.order.map((id) => s.items.get(id)!), records: effective(s) };
}

export function isStore(dir: string): boolean {
  return existsSync(join(dir, RANKINGS_FILE)) || existsSync(join(dir, ITEMS_FILE));
}

// ---------------------------------------------------------------------------------------------------------------------
// Writing: the one open store of a process

export class PreferenceStore {
  private readonly s: State;
  private readonly itemsLog: JsonlAppender;
  private readonly log: JsonlAppender;
  private readonly release: () => void;
  private readonly leases = new Map<string, { item: string; until: number }>(); // annotator -> lease
  private readonly repeats: number;
  private readonly leaseMs: number;
  private readonly now: () => number;
  readonly repaired: string[] = []; // notices about torn last lines cut off at open

  private constructor(readonly dir: string, opts: StoreOptions) {
    this.repeats = opts.repeats ?? 1;
    if (!Number.isInteger(this.repeats) || this.repeats < 1) throw new UserError(`repeats must be an integer >= 1, got ${opts.repeats}`);
    this.leaseMs = (opts.leaseMinutes ?? 30) * 60_000;
    this.now = opts.now ?? Date.now;
    const fresh = !existsSync(dir);
    mkdirSync(dir, { recursive: true });
    if (fresh) fsyncDir(join(dir, '..'));
    this.release = acquireLock(join(dir, LOCK_FILE), opts.command ?? 'chatwright', `the preference store ${dir}`);
    const logs: JsonlAppender[] = [];
    try {
      logs.push(new JsonlAppender(join(dir, ITEMS_FILE)));
      logs.push(new JsonlAppender(join(dir, RANKINGS_FILE)));
      this.s = loadState(dir, logs[0].existing.records, logs[1].existing.records);
    } catch (e) {
      for (const l of logs) l.close();
      this.release();
      throw e;
    }
    [this.itemsLog, this.log] = logs;
    for (const l of logs)
      if (l.existing.torn) this.repaired.push(`${l.path}: cut off an incomplete last line (${l.existing.torn} bytes) left by a crash`);
  }

  // Open (or create) the store for writing. Throws when another process has it open.
  static open(dir: string, opts: StoreOptions = {}): PreferenceStore {
    return new PreferenceStore(dir, opts);
  }

  close(): void {
    this.itemsLog.close();
    this.log.close();
    this.release();
  }

  // Add items to the queue; items already there (same prompt and answers) are not added again. Returns how many are new.
  addItems(items: SampleItem[]): number {
    let n = 0;
    for (const item of items) {
      if (this.s.items.has(item.id)) continue;
      this.itemsLog.append(itemToJson(item));
      applyItem(this.s, item);
      n++;
    }
    return n;
  }

  item(id: string): SampleItem | undefined {
    return this.s.items.get(id);
  }

  // The next item for this annotator, leased to them; the same one again until they submit it. `among`: only these ids.
  next(annotator: string, among?: ReadonlySet<string>): SampleItem | null {
    const now = this.now();
    const mine = this.leases.get(annotator);
    if (mine && mine.until > now && this.open(mine.item, annotator) && (!among || among.has(mine.item))) {
      mine.until = now + this.leaseMs;
      return this.s.items.get(mine.item)!;
    }
    this.leases.delete(annotator);
    const taken = new Set<string>();
    for (const [who, l] of this.leases) if (who !== annotator && l.until > now) taken.add(l.item);
    for (const id of this.s.order) {
      if (among && !among.has(id)) continue;
      if (taken.has(id) || !this.open(id, annotator)) continue;
      this.leases.set(annotator, { item: id, until: now + this.leaseMs });
      return this.s.items.get(id)!;
    }
    return null;
  }

  // Give up the annotator's lease (they left).
  releaseLease(annotator: string): void {
    this.leases.delete(annotator);
  }

  // Record an annotator's verdict on an item. Returns once the record is on disk.
  submit(annotator: string, itemId: string, sub: Submission, meta?: Record<string, unknown>): RankRecord {
    if (!annotator.trim()) throw new UserError('the annotator has no name');
    const item = this.s.items.get(itemId);
    if (!item) throw new PreferenceConflict('unknown-item', `no item ${itemId} in ${this.dir}`, 'add the samples to the store first');
    const recs = this.recordsOf(itemId);
    if (recs.some((r) => r.annotator === annotator))
      throw new PreferenceConflict('ranked-by-you', `${annotator} has already given a verdict on item ${itemId}`, 'undo it first to change it');
    if (this.doneCount(itemId) >= this.repeats)
      throw new PreferenceConflict('already-ranked', `item ${itemId} already has the ${this.repeats} ranking(s) it needs`,
        'ask for the next item; to rank items more than once open the store with more repeats');
    const K = item.responses.length;
    const ranking = sub.verdict === 'ranked' ? validateRanking(sub.ranking, K, `ranking of item ${itemId}`)
      : sub.verdict === 'all-bad' ? allTied(K) : [];
    const rec: RankRecord = {
      kind: 'rank', seq: this.s.lastSeq + 1, item: itemId, prompt: item.prompt, responses: item.responses,
      verdict: sub.verdict, ranking: rankingToJson(ranking), annotator, time: new Date(this.now()).toISOString(),
      ...(item.model !== undefined ? { model: item.model } : {}),
      ...(item.sampling !== undefined ? { sampling: item.sampling } : {}),
      ...(meta ? { meta } : {}),
    };
    this.log.append(rec);
    applyRecord(this.s, rec, 'submit');
    if (this.leases.get(annotator)?.item === itemId) this.leases.delete(annotator);
    return rec;
  }

  // Take back the annotator's last record in effect; its item is leased back to them. null when there is none.
  undo(annotator: string): RankRecord | null {
    const last = effective(this.s).filter((r) => r.annotator === annotator).pop();
    if (!last) return null;
    const rec: UndoRecord = { kind: 'undo', seq: this.s.lastSeq + 1, undoes: last.seq, annotator, time: new Date(this.now()).toISOString() };
    this.log.append(rec);
    applyRecord(this.s, rec, 'undo');
    this.leases.set(annotator, { item: last.item, until: this.now() + this.leaseMs });
    return last;
  }

  records(): RankRecord[] {
    return effective(this.s);
  }

  items(): SampleItem[] {
    return this.s.order.map((id) => this.s.items.get(id)!);
  }

  counts(among?: ReadonlySet<string>): StoreCounts {
    const ids = among ? this.s.order.filter((id) => among.has(id)) : this.s.order;
    const inScope = new Set(ids);
    const c: StoreCounts = { items: ids.length, done: 0, pending: 0, ranked: 0, allBad: 0, skipped: 0, leased: 0, annotators: {} };
    for (const id of ids) (this.doneCount(id) >= this.repeats ? c.done++ : c.pending++);
    for (const r of effective(this.s)) {
      if (!inScope.has(r.item)) continue;
      if (r.verdict === 'ranked') c.ranked++;
      else if (r.verdict === 'all-bad') c.allBad++;
      else c.skipped++;
      c.annotators[r.annotator] = (c.annotators[r.annotator] ?? 0) + 1;
    }
    const now = this.now();
    for (const l of this.leases.values()) if (l.until > now && inScope.has(l.item)) c.leased++;
    return c;
  }

  private recordsOf(itemId: string): RankRecord[] {
    return this.s.byItem.get(itemId) ?? [];
  }

  private doneCount(itemId: string): number {
    return this.recordsOf(itemId).filter((r) => r.verdict !== 'skipped').length;
  }

  // Still needs a ranking, and this annotator has not given a verdict on it.
  private open(itemId: string, annotator: string): boolean {
    const recs = this.recordsOf(itemId);
    return recs.filter((r) => r.verdict !== 'skipped').length < this.repeats && !recs.some((r) => r.annotator === annotator);
  }
}
