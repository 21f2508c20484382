// The ranking API: people order the K sampled answers of a prompt through the server, which is the preference store's
// single writer (src/feedback/store.ts: the same store, records and leases as `chatwright rank` in a terminal).
//
//   GET  /v1/feedback/next?annotator=NAME      the item to rank now, leased to NAME (the same one until they answer)
//        -> {"object": "feedback.item", "item": {"id", "prompt", "responses", "model"?, "finish"?} | null, "counts"}
//   POST /v1/feedback/rankings  {"annotator", "item", "ranking": [2, [0, 1], 3]}     (best first; a tie as an inner list)
//                               {"annotator", "item", "verdict": "all-bad" | "skipped"}
//        -> {"object": "feedback.record", "record": {"seq", "item", "verdict", "ranking", "annotator", "time"}, "counts"}
//   POST /v1/feedback/undo      {"annotator"}    takes back NAME's last record; its item is theirs again
//        -> {"object": "feedback.undo", "undone": record | null, "counts"}
//   GET  /v1/feedback/counts[?annotator=NAME]
//        -> {"object": "feedback.counts", "items", "done", "pending", "ranked", "all_bad", "skipped", "leased",
//            "annotators": {NAME: records}, "mine": records of NAME}
//
// "ranking" is the K-way format of the store and of `prefs export` (0-based answer indices), so what a client sends is
// what lands in rankings.jsonl. A record is on disk (written and fsync'd by the store) before its answer is sent:
// PreferenceStore.submit is synchronous, so the one event loop also orders concurrent annotators' calls.
// Errors: a missing or malformed name or ranking is 400 (param names the field); an item the store does not have is
// 404 and a PreferenceConflict is 409, both with the conflict's reason as the code ("unknown-item", "already-ranked",
// "ranked-by-you"); a failed write is 507 and says nothing was saved.
// Boundary: JSON in, JSON out; HTTP is server.ts, the records and their files are src/feedback/.
import { UserError } from '../util/errors.js';
import {
  LABELLER, PreferenceConflict, rankingFromJson, type PreferenceStore, type RankRecord, type SampleItem, type StoreCounts, type Submission,
} from '../feedback/index.js';
import { ApiError, requireObject } from './schema.js';

export interface FeedbackContext {
  store: PreferenceStore;
  among?: ReadonlySet<string>; // only these items are handed out (the --samples file's), as `chatwright rank` does
}

const invalid = (param: string, message: string, code = 'invalid_value') => new ApiError(400, message, 'invalid_request_error', param, code);

// A person's name in the records: letters, digits, spaces and . _ @ - (64 at most), trimmed. Names starting with
// "simulated" are the simulated labeller's (LABELLER), so a person's record is never mistaken for its, nor its for one.
const NAME = /^[\p{L}\p{N}][\p{L}\p{M}\p{N} ._@-]{0,63}$/u;

export function annotatorOf(v: unknown): string {
  if (v === undefined || v === null || v === '') throw invalid('annotator', "'annotator' is required: the name of the person ranking", 'missing_required_parameter');
  if (typeof v !== 'string') throw invalid('annotator', `'annotator' must be a string, got ${typeof v}`, 'invalid_type');
  const name = v.trim();
  if (!NAME.test(name))
    throw invalid('annotator', `'annotator' ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v)} is not a usable name: ` +
      'up to 64 letters, digits, spaces and . _ @ -, starting with a letter or digit');
  if (/^simulated/i.test(name)) throw invalid('annotator', `'annotator' names starting with "simulated" are reserved for the simulated labeller (${LABELLER})`);
  return name;
}

function countsOf(fb: FeedbackContext, annotator?: string): object {
  const c: StoreCounts = fb.store.counts(fb.among);
  return {
    items: c.items, done: c.done, pending: c.pending, ranked: c.ranked, all_bad: c.allBad, skipped: c.skipped, leased: c.leased,
    annotators: c.annotators, ...(annotator !== undefined ? { mine: c.annotators[annotator] ?? 0 } : {}),
  };
}

function itemView(item: SampleItem): object {
  return {
    id: item.id, prompt: item.prompt, responses: item.responses,
    ...(item.model !== undefined ? { model: item.model } : {}), ...(item.finish !== undefined ? { finish: item.finish } : {}),
  };
}

function recordView(r: RankRecord): object {
  return { seq: r.seq, item: r.item, verdict: r.verdict, ranking: r.ranking, annotator: r.annotator, time: r.time };
}

export function feedbackNext(fb: FeedbackContext, q: URLSearchParams): object {
  const annotator = annotatorOf(q.get('annotator'));
  const item = fb.store.next(annotator, fb.among);
  return { object: 'feedback.item', item: item ? itemView(item) : null, counts: countsOf(fb, annotator) };
}

export function feedbackCounts(fb: FeedbackContext, q: URLSearchParams): object {
  const annotator = q.has('annotator') ? annotatorOf(q.get('annotator')) : undefined;
  return { object: 'feedback.counts', ...countsOf(fb, annotator) };
}

export function feedbackSubmit(fb: FeedbackContext, body: unknown): object {
  const b = requireObject(body);
  const annotator = annotatorOf(b.annotator);
  if (typeof b.item !== 'string' || b.item === '') throw invalid('item', "'item' must be the id of the item ranked (from /v1/feedback/next)", 'invalid_type');
  const item = fb.store.item(b.item);
  if (!item) throw new ApiError(404, `no item ${JSON.stringify(b.item)} in the preference store`, 'invalid_request_error', 'item', 'unknown-item');
  const verdict = b.verdict ?? 'ranked';
  let sub: Submission;
  if (verdict === 'ranked') {
    if (b.ranking === undefined || b.ranking === null)
      throw invalid('ranking', "'ranking' is required: the answers' indices best first, ties as inner lists, e.g. [2, [0, 1], 3]", 'missing_required_parameter');
    try {
      sub = { verdict, ranking: rankingFromJson(b.ranking, item.responses.length, "'ranking'") };
    } catch (e) {
      if (e instanceof UserError) throw invalid('ranking', `${e.message}${e.hint ? `; ${e.hint}` : ''}`);
      throw e;
    }
  } else if (verdict === 'all-bad' || verdict === 'skipped') {
    if (b.ranking !== undefined && b.ranking !== null) throw invalid('ranking', `'ranking' goes with the verdict "ranked" only, not "${verdict}"`);
    sub = { verdict };
  } else throw invalid('verdict', `'verdict' must be "ranked", "all-bad" or "skipped", got ${JSON.stringify(verdict)}`);
  const rec = guard(() => fb.store.submit(annotator, item.id, sub));
  return { object: 'feedback.record', record: recordView(rec), counts: countsOf(fb, annotator) };
}

export function feedbackUndo(fb: FeedbackContext, body: unknown): object {
  const annotator = annotatorOf(requireObject(body).annotator);
  const undone = guard(() => fb.store.undo(annotator));
  return { object: 'feedback.undo', undone: undone ? recordView(undone) : null, counts: countsOf(fb, annotator) };
}

// The store's refusals and failed writes as API errors.
function guard<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof PreferenceConflict)
      throw new ApiError(e.reason === 'unknown-item' ? 404 : 409, `${e.message}${e.hint ? `; ${e.hint}` : ''}`, 'invalid_request_error', null, e.reason);
    const code = (e as NodeJS.ErrnoException)?.code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code))
      throw new ApiError(507, `the preference store could not write the record (${code}): nothing was saved; ` +
        'the server\'s operator must free space or fix the folder, then send it again', 'server_error', null, 'store_write_failed');
    throw e;
  }
}
