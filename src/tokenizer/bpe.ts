// The byte-pair encoder: token ids <-> bytes. It knows bytes, pairs and ids; it knows nothing about special tokens, chat
// or files (index.ts, chat.ts, hf.ts and tiktoken.ts build on it).
//
// A vocabulary is: the bytes of every token id; which id each of the 256 bytes starts as; and the merges, a table from
// an adjacent pair of ids (a, b) to (priority, result id). Encoding a piece starts from its bytes and repeatedly merges
// the adjacent pair of lowest priority, the leftmost on a tie, until no pair is in the table. This is tiktoken's
// `byte_pair_merge` (github.com/openai/tiktoken, src/lib.rs), where the priority of a pair is the rank of the
// concatenated token; for Hugging Face / GPT-2 merges files it is the line number of the merge.
// With `wholePieceFirst` a piece that is itself a token is that token, without merging (tiktoken does this; Hugging
// Face calls it `ignore_merges`).
//
// Speed (the merge rule is unchanged by any of these; test/tokenizer-parity.test.ts checks the ids against tiktoken):
// - a cache of pieces already encoded (English repeats its words: most pieces are hits), ids kept back to back in one
//   Int32Array so the garbage collector has no array per piece to trace; cleared when full;
// - the first merges of a piece read a 256 x 256 table of byte pairs, and later ones go through a small direct-mapped
//   cache of recent pair lookups that stays in the CPU's L2 before the full hash table (Chinese pieces are mostly
//   unique, so their time is in merging, and merging is in lookups);
// - the whole-piece rule only needs a lookup for the few tokens that merging their own bytes does not produce;
// - a piece of CJK text (a Han run is one long piece, nearly always new) is cut between characters that no token
//   spans, which changes nothing (boundaries.ts says why), and a character alone takes its ids from a per-character
//   table: merging is left to the few multi-character tokens (bench/tokenizer measures it against tiktoken).
import { assert } from '../util/errors.js';
import { PairTable, EMPTY, NO_MERGE } from './pairs.js';
import { CharBoundaries } from './boundaries.js';

export { PairTable };

// Ids a vocabulary file may leave unused (tiktoken's cl100k leaves a few below its special tokens). Files are read with
// ids bounded by their entries plus this, so a corrupt id (2^32, 1e308) is an error, not a giant table; every unused id
// shares NO_BYTES.
export const MAX_UNUSED_IDS = 65536;
export const NO_BYTES = new Uint8Array(0);

export interface BPEVocab {
  tokenBytes: Uint8Array[]; // id -> bytes (ids without bytes, e.g. special tokens, hold an empty array)
  byteToId: Int32Array; // (256) the id each single byte starts as
  merges: PairTable;
  wholePieceFirst: boolean;
}

const HOT_SIZE = 1 << 16; // entries of the pair-lookup cache (1 MB: stays in the CPU's L2, unlike the full table)
const ARENA_SIZE = 1 << 21; // ids
const CACHE_LIMIT = 1 << 18; // pieces; the cache is cleared when it grows past this

export class BytePairEncoder {
  readonly tokenBytes: Uint8Array[];
  readonly byteToId: Int32Array;
  readonly merges: PairTable;
  readonly wholePieceFirst: boolean;
  private tokenOfString = new Map<string, number>(); // text -> id of the tokens that merging alone does not reach
  private cache = new Map<string, number>(); // piece -> offset * 256 + count of its ids in the arena
  private arena = new Int32Array(ARENA_SIZE); // the cached ids, back to back (no array per piece for the GC to trace)
  private arenaUsed = 0;
  cacheLimit = CACHE_LIMIT; // pieces cached before the cache is cleared
  cutRuns = true; // the cut path of encodePiece (off: the plain one, which the tests compare it with)
  private boundaries: CharBoundaries | null = null; // built on the first piece that needs it
  private cps = new Int32Array(256); // scratch: the code points of the piece being cut
  private charSlot = new Int32Array(0x10000).fill(-1); // BMP code point -> offset * 8 + count of its ids in charArena
  private charAstral = new Map<number, number>(); // the same beyond the BMP
  private charArena = new Int32Array(1 << 14);
  private charUsed = 0;
  private w = new Int32Array(256); // scratch: ids of the piece being merged
  private pr = new Int32Array(256); // scratch: priority of (w[i], w[i+1])
  private rs = new Int32Array(256); // scratch: the id (w[i], w[i+1]) merges into
  private raw = new Uint8Array(256); // scratch: the piece's UTF-8 bytes
  private hot = new Int32Array(HOT_SIZE * 4).fill(EMPTY); // direct-mapped cache of recent lookups [a, b, priority, result]
  private bytePair: Int32Array; // (65536 * 2) [priority, result] of each pair of raw bytes: the first merges, without hashing

  constructor(v: BPEVocab) {
    assert(v.byteToId.length === 256, `byteToId must have 256 entries, got ${v.byteToId.length}`);
    this.tokenBytes = v.tokenBytes;
    this.byteToId = v.byteToId;
    this.merges = v.merges;
    this.wholePieceFirst = v.wholePieceFirst;
    this.bytePair = new Int32Array(65536 * 2);
    for (let x = 0; x < 256; x++) {
      for (let y = 0; y < 256; y++) {
        const o = v.merges.find(v.byteToId[x], v.byteToId[y]);
        this.bytePair[(x << 9) | (y << 1)] = o < 0 ? NO_MERGE : v.merges.prioAt(o);
        this.bytePair[(x << 9) | (y << 1) | 1] = o < 0 ? -1 : v.merges.resultAt(o);
      }
    }
    if (this.wholePieceFirst) {
      // Whole-piece lookups are only needed for tokens that merging their own bytes does not produce (merging finds
      // all the others by itself): keep just those, a small table, instead of looking up every piece in the vocabulary.
      const dec = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }); // keep a leading U+FEFF: it is part of the token
      for (let id = 0; id < v.tokenBytes.length; id++) {
        const b = v.tokenBytes[id];
        if (b.length < 2) continue;
        let s: string;
        try {
          s = dec.decode(b);
        } catch {
          continue; // not valid UTF-8 on its own: can never be a whole piece
        }
        const merged = this.mergeBytes(b);
        if ((merged.length !== 1 || merged[0] !== id) && !this.tokenOfString.has(s)) this.tokenOfString.set(s, id);
      }
    }
  }

  /** Forget the cached pieces (benchmarks use it to time a cold encoder). */
  clearCache(): void {
    this.cache.clear();
    this.arenaUsed = 0;
  }

  /** Append the ids of one pre-split piece. */
  encodePiece(piece: string, out: number[]): void {
    // Runs of CJK characters (and anything else past U+2E80) are cut where no token spans two characters: nearly all
    // of their pieces are unique (a poem's line is one), so the piece cache would only cost, and each character alone
    // has the same ids every time (boundaries.ts)
    if (this.cutRuns && piece.length >= 2 && piece.charCodeAt(piece.length - 1) >= 0x2e80 && this.encodeByCuts(piece, out)) return;
    const hit = this.cache.get(piece);
    if (hit !== undefined) {
      const a = this.arena;
      for (let i = hit >>> 8, end = i + (hit & 255); i < end; i++) out.push(a[i]);
      return;
    }
    const k = this.encodeIntoW(piece);
    const w = this.w;
    for (let i = 0; i < k; i++) out.push(w[i]);
    if (k < 256) {
      if (this.cache.size >= this.cacheLimit || this.arenaUsed + k > this.arena.length) this.clearCache();
      const a = this.arena, o = this.arenaUsed;
      for (let i = 0; i < k; i++) a[o + i] = w[i];
      this.cache.set(piece, o * 256 + k);
      this.arenaUsed += k;
    }
  }

  // Cuts the piece at every boundary no token spans and appends each part's ids: a single character's from charSlot,
  // longer parts merged alone. Returns false, having appended nothing, when there is no such boundary (the plain path
  // then encodes the piece, and the whole-piece rule applies to it).
  private encodeByCuts(piece: string, out: number[]): boolean {
    if (this.cps.length < piece.length) this.cps = new Int32Array(piece.length * 2);
    const cps = this.cps;
    let n = 0;
    for (let i = 0; i < piece.length; i++) {
      let c = piece.charCodeAt(i);
      if (c >= 0xd800 && c < 0xe000) {
        const d = i + 1 < piece.length ? piece.charCodeAt(i + 1) : 0;
        if (c < 0xdc00 && d >= 0xdc00 && d < 0xe000) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
        } else c = 0xfffd; // a lone surrogate is U+FFFD, as in loadBytes
      }
      cps[n++] = c;
    }
    const cb = (this.boundaries ??= new CharBoundaries(this.tokenBytes));
    let first = 0;
    while (first + 1 < n && !cb.hard(cps[first], cps[first + 1])) first++;
    if (first + 1 >= n) return false;
    let s = 0;
    for (let i = first; i < n; i++) {
      if (i + 1 < n && i !== first && !cb.hard(cps[i], cps[i + 1])) continue;
      if (i === s) this.pushCharIds(cps[i], out);
      else {
        const k = this.mergeCodePoints(cps, s, i + 1), w = this.w;
        for (let j = 0; j < k; j++) out.push(w[j]);
      }
      s = i + 1;
    }
    return true;
  }

  // the ids of one character alone, merged once and kept
  private pushCharIds(cp: number, out: number[]): void {
    let slot = cp < 0x10000 ? this.charSlot[cp] : this.charAstral.get(cp) ?? -1;
    if (slot < 0) {
      const k = this.mergeCodePoints([cp], 0, 1);
      if (this.charUsed + k > this.charArena.length) {
        const a = new Int32Array(this.charArena.length * 2);
        a.set(this.charArena);
        this.charArena = a;
      }
      this.charArena.set(this.w.subarray(0, k), this.charUsed);
      slot = this.charUsed * 8 + k;
      this.charUsed += k;
      if (cp < 0x10000) this.charSlot[cp] = slot;
      else this.charAstral.set(cp, slot);
    }
    const a = this.charArena;
    for (let i = slot >>> 3, end = i + (slot & 7); i < end; i++) out.push(a[i]);
  }

  // Merges the UTF-8 bytes of code points cps[s .. e) into this.w (no whole-piece rule); returns the id count.
  private mergeCodePoints(cps: ArrayLike<number>, s: number, e: number): number {
    if (this.w.length < (e - s) * 4) this.grow((e - s) * 4);
    const raw = this.raw, w = this.w, b2i = this.byteToId;
    let n = 0;
    for (let i = s; i < e; i++) {
      const cp = cps[i];
      if (cp < 0x80) raw[n++] = cp;
      else if (cp < 0x800) {
        raw[n++] = 0xc0 | (cp >> 6);
        raw[n++] = 0x80 | (cp & 63);
      } else if (cp < 0x10000) {
        raw[n++] = 0xe0 | (cp >> 12);
        raw[n++] = 0x80 | ((cp >> 6) & 63);
        raw[n++] = 0x80 | (cp & 63);
      } else {
        raw[n++] = 0xf0 | (cp >> 18);
        raw[n++] = 0x80 | ((cp >> 12) & 63);
        raw[n++] = 0x80 | ((cp >> 6) & 63);
        raw[n++] = 0x80 | (cp & 63);
      }
    }
    for (let i = 0; i < n; i++) w[i] = b2i[raw[i]];
    return n <= 96 ? this.mergeSmall(n) : this.mergeLarge(n);
  }

  private grow(n: number): void {
    this.w = new Int32Array(n);
    this.pr = new Int32Array(n);
    this.rs = new Int32Array(n);
    this.raw = new Uint8Array(n);
  }

  encodePieceUncached(piece: string): number[] {
    return Array.from(this.w.subarray(0, this.encodeIntoW(piece)));
  }

  // Encode piece into this.w[0 .. k); returns k.
  private encodeIntoW(piece: string): number {
    const n = this.loadBytes(piece);
    const w = this.w, raw = this.raw, b2i = this.byteToId;
    for (let i = 0; i < n; i++) w[i] = b2i[raw[i]];
    const k = n <= 96 ? this.mergeSmall(n) : this.mergeLarge(n);
    if (k > 1 && this.tokenOfString.size > 0) {
      const id = this.tokenOfString.get(piece);
      if (id !== undefined) {
        w[0] = id;
        return 1;
      }
    }
    return k;
  }

  // Merge raw bytes (no whole-piece rule).
  private mergeBytes(b: Uint8Array): number[] {
    if (this.w.length < b.length) {
      this.w = new Int32Array(b.length);
      this.pr = new Int32Array(b.length);
      this.rs = new Int32Array(b.length);
      this.raw = new Uint8Array(b.length);
    }
    this.raw.set(b);
    for (let i = 0; i < b.length; i++) this.w[i] = this.byteToId[b[i]];
    const k = b.length <= 96 ? this.mergeSmall(b.length) : this.mergeLarge(b.length);
    return Array.from(this.w.subarray(0, k));
  }

  /** UTF-8 encode piece into this.raw; returns the byte count. Lone surrogates become U+FFFD (as TextEncoder). */
  private loadBytes(piece: string): number {
    if (this.w.length < piece.length * 3) {
      this.w = new Int32Array(piece.length * 3);
      this.pr = new Int32Array(piece.length * 3);
      this.rs = new Int32Array(piece.length * 3);
      this.raw = new Uint8Array(piece.length * 3);
    }
    const w = this.raw;
    let n = 0;
    for (let i = 0; i < piece.length; i++) {
      let c = piece.charCodeAt(i);
      if (c < 0x80) {
        w[n++] = c;
        continue;
      }
      if (c < 0x800) {
        w[n++] = 0xc0 | (c >> 6);
        w[n++] = 0x80 | (c & 63);
        continue;
      }
      if (c >= 0xd800 && c < 0xe000) {
        const d = i + 1 < piece.length ? piece.charCodeAt(i + 1) : 0;
        if (c < 0xdc00 && d >= 0xdc00 && d < 0xe000) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          w[n++] = 0xf0 | (cp >> 18);
          w[n++] = 0x80 | ((cp >> 12) & 63);
          w[n++] = 0x80 | ((cp >> 6) & 63);
          w[n++] = 0x80 | (cp & 63);
          continue;
        }
        c = 0xfffd;
      }
      w[n++] = 0xe0 | (c >> 12);
      w[n++] = 0x80 | ((c >> 6) & 63);
      w[n++] = 0x80 | (c & 63);
    }
    return n;
  }

  // The record [a, b, priority, result] of a pair in the hot cache, filled from the full table on a miss (misses,
  // pairs that do not merge, are cached too).
  private hotFind(a: number, b: number): number {
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b ^ 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    const o = (h & (HOT_SIZE - 1)) << 2;
    const hot = this.hot;
    if (hot[o] !== a || hot[o + 1] !== b) {
      const k = this.merges.find(a, b);
      hot[o] = a;
      hot[o + 1] = b;
      hot[o + 2] = k < 0 ? NO_MERGE : this.merges.prioAt(k);
      hot[o + 3] = k < 0 ? -1 : this.merges.resultAt(k);
    }
    return o;
  }

  // Short pieces (almost all): scan for the lowest priority and shift the arrays, as tiktoken does. Merges the byte ids
  // in this.w[0 .. n) in place; returns the number of ids left.
  private mergeSmall(n: number): number {
    const w = this.w, pr = this.pr, rs = this.rs, raw = this.raw, bp = this.bytePair, hot = this.hot;
    for (let i = 0; i + 1 < n; i++) {
      const o = (raw[i] << 9) | (raw[i + 1] << 1);
      pr[i] = bp[o];
      rs[i] = bp[o | 1];
    }
    while (n > 1) {
      let best = NO_MERGE, at = -1;
      for (let i = 0; i + 1 < n; i++) {
        if (pr[i] < best) {
          best = pr[i];
          at = i;
        }
      }
      if (at < 0) break;
      w[at] = rs[at];
      for (let i = at + 1; i + 1 < n; i++) {
        w[i] = w[i + 1];
        pr[i] = pr[i + 1];
        rs[i] = rs[i + 1];
      }
      n--;
      if (at > 0) {
        const o = this.hotFind(w[at - 1], w[at]);
        pr[at - 1] = hot[o + 2];
        rs[at - 1] = hot[o + 3];
      }
      if (at + 1 < n) {
        const o = this.hotFind(w[at], w[at + 1]);
        pr[at] = hot[o + 2];
        rs[at] = hot[o + 3];
      }
    }
    return n;
  }

  // Long pieces (whitespace runs, long words): a doubly linked list of parts and a min-heap of candidate merges keyed
  // by priority * 2^24 + position, so the leftmost of equal priorities comes first. Stale heap entries are skipped on
  // pop. O(n log n) instead of O(n^2); the same result as mergeSmall, also left in this.w.
  private mergeLarge(n: number): number {
    assert(n < 1 << 24, `piece too long for BPE: ${n} bytes`);
    const w = this.w.slice(0, n);
    const m = this.merges;
    const next = new Int32Array(n), prev = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const alive = new Uint8Array(n).fill(1);
    const heap: number[] = [];
    const push = (x: number) => {
      let i = heap.length;
      heap.push(x);
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (heap[p] <= x) break;
        heap[i] = heap[p];
        i = p;
      }
      heap[i] = x;
    };
    const pop = (): number => {
      const top = heap[0];
      const last = heap.pop()!;
      if (heap.length > 0) {
        let i = 0;
        for (;;) {
          const l = 2 * i + 1;
          if (l >= heap.length) break;
          const r = l + 1;
          const c = r < heap.length && heap[r] < heap[l] ? r : l;
          if (heap[c] >= last) break;
          heap[i] = heap[c];
          i = c;
        }
        heap[i] = last;
      }
      return top;
    };
    const SHIFT = 1 << 24;
    const consider = (i: number) => {
      const j = next[i];
      if (j < 0) return;
      const p = m.priority(w[i], w[j]);
      if (p !== NO_MERGE) push(p * SHIFT + i);
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (heap.length > 0) {
      const top = pop();
      const i = top % SHIFT;
      const p = (top - i) / SHIFT;
      const j = next[i];
      if (!alive[i] || j < 0 || m.priority(w[i], w[j]) !== p) continue; // stale
      w[i] = m.result(w[i], w[j]);
      alive[j] = 0;
      next[i] = next[j];
      if (next[j] >= 0) prev[next[j]] = i;
      if (prev[i] >= 0) consider(prev[i]);
      consider(i);
    }
    let k = 0;
    for (let i = 0; i >= 0; i = next[i]) this.w[k++] = w[i];
    return k;
  }

  /** The bytes of a sequence of ids (ids without bytes, i.e. special tokens, are the caller's business). */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes[ids[i]];
      if (b === undefined) throw new RangeError(`token id ${ids[i]} is outside the vocabulary (0..${this.tokenBytes.length - 1})`);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let o = 0;
    for (let i = 0; i < ids.length; i++) {
      const b = this.tokenBytes[ids[i]];
      out.set(b, o);
      o += b.length;
    }
    return out;
  }
}

/**
 * Merges from ranks, as tiktoken defines them: the pair (a, b) merges, with priority rank(a ++ b), whenever the
 * concatenation of their bytes is itself a token. Every split point of every token is a pair (the construction of
 * transformers' TikTokenConverter, convert_slow_tokenizer.py), so merging by this table is exactly tiktoken's rule.
 */
export function mergesFromRanks(tokenBytes: Uint8Array[], priorityOf: (id: number) => number = (id) => id): PairTable {
  const latin1 = (b: Uint8Array) => String.fromCharCode.apply(null, b as unknown as number[]); // one char per byte
  const keys: string[] = new Array(tokenBytes.length);
  const byKey = new Map<string, number>();
  for (let id = 0; id < tokenBytes.length; id++) {
    const b = tokenBytes[id];
    keys[id] = latin1(b);
    if (b.length > 0) byKey.set(keys[id], id);
  }
  const table = new PairTable(tokenBytes.length * 3);
  for (let id = 0; id < tokenBytes.length; id++) {
    const s = keys[id];
    for (let k = 1; k < s.length; k++) {
      const a = byKey.get(s.slice(0, k));
      if (a === undefined) continue;
      const c = byKey.get(s.slice(k));
      if (c !== undefined) table.set(a, c, priorityOf(id), id);
    }
  }
  table.shrinkToFit();
  return table;
}
