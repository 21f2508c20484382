// Training byte-level BPE: texts -> merges. It knows pieces, bytes and pair counts; the result is a vocabulary for
// bpe.ts (byte b is token b, merge i makes token 256 + i).
//
// The algorithm is Sennrich et al. 2016 (arXiv:1508.07909) on bytes, as GPT-2 does it, counted per unique pre-split
// piece ("word") with its frequency, and updated incrementally, as Hugging Face tokenizers' BpeTrainer does
// (tokenizers/src/models/bpe/trainer.rs): each merge touches only the words that contain the merged pair (an index
// pair -> words), adjusts the counts of the pairs in those words, and pushes the changed counts onto a max-heap whose
// stale entries are skipped when popped (lazy deletion). No recount of the corpus per merge.
// Ties between equally frequent pairs go to the smaller (left id, right id), so training is deterministic.
import { UserError } from '../util/errors.js';
import { PairTable, type BPEVocab } from './bpe.js';
import { DEFAULT_PATTERN, toJsRegex } from './pretokenize.js';

export interface TrainOptions {
  nMerges: number;
  pattern?: string;
  onProgress?: (merges: number) => void;
  onCounted?: (info: { pieces: number; uniquePieces: number; bytes: number }) => void;
}

export interface TrainResult {
  merges: [number, number][]; // merge i makes token 256 + i
  tokenBytes: Uint8Array[]; // 256 + merges.length
}

/** Pair -> slot index (open addressing over typed arrays; slots are never removed). */
class PairSlots {
  a: Int32Array; b: Int32Array; mask: number; // the hash table: keys
  slotOf = new Int32Array(1 << 16); // ... and the slot each key has
  pairA: number[] = []; // slot -> its pair
  pairB: number[] = [];
  n = 0; // slots in use
  constructor() {
    this.a = new Int32Array(1 << 16).fill(-1);
    this.b = new Int32Array(1 << 16);
    this.mask = (1 << 16) - 1;
  }
  // Returns the slot of (a, b), creating it.
  find(a: number, b: number): number {
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b ^ 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    let i = h & this.mask;
    while (this.a[i] !== -1) {
      if (this.a[i] === a && this.b[i] === b) return this.slotOf[i];
      i = (i + 1) & this.mask;
    }
    if ((this.n + 1) * 2 > this.a.length) {
      this.grow();
      return this.find(a, b);
    }
    this.a[i] = a;
    this.b[i] = b;
    this.slotOf[i] = this.n;
    this.pairA.push(a);
    this.pairB.push(b);
    return this.n++;
  }
  private grow(): void {
    const cap = this.a.length * 2;
    this.a = new Int32Array(cap).fill(-1);
    this.b = new Int32Array(cap);
    this.slotOf = new Int32Array(cap);
    this.mask = cap - 1;
    for (let s = 0; s < this.n; s++) {
      let h = Math.imul(this.pairA[s], 0x9e3779b1) ^ Math.imul(this.pairB[s] ^ 0x7f4a7c15, 0x85ebca77);
      h ^= h >>> 15;
      let i = h & this.mask;
      while (this.a[i] !== -1) i = (i + 1) & this.mask;
      this.a[i] = this.pairA[s];
      this.b[i] = this.pairB[s];
      this.slotOf[i] = s;
    }
  }
}

function utf8Into(s: string, out: Int32Array, o: number): number {
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) out[o++] = c;
    else if (c < 0x800) {
      out[o++] = 0xc0 | (c >> 6);
      out[o++] = 0x80 | (c & 63);
    } else {
      if (c >= 0xd800 && c < 0xe000) {
        const d = i + 1 < s.length ? s.charCodeAt(i + 1) : 0;
        if (c < 0xdc00 && d >= 0xdc00 && d < 0xe000) {
          const cp = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
          out[o++] = 0xf0 | (cp >> 18);
          out[o++] = 0x80 | ((cp >> 12) & 63);
          out[o++] = 0x80 | ((cp >> 6) & 63);
          out[o++] = 0x80 | (cp & 63);
          continue;
        }
        c = 0xfffd;
      }
      out[o++] = 0xe0 | (c >> 12);
      out[o++] = 0x80 | ((c >> 6) & 63);
      out[o++] = 0x80 | (c & 63);
    }
  }
  return o;
}

export function trainBpe(texts: Iterable<string>, opts: TrainOptions): TrainResult {
  const re = toJsRegex(opts.pattern ?? DEFAULT_PATTERN);

  // ---- count the unique pieces
  const counts = new Map<string, number>();
  let nPieces = 0, nBytes = 0;
  for (const text of texts) {
    if (typeof text !== 'string') throw new UserError(`training texts must be strings, got ${typeof text}`);
    re.lastIndex = 0;
    const pieces = text.match(re);
    if (!pieces) continue;
    nPieces += pieces.length;
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i];
      counts.set(p, (counts.get(p) ?? 0) + 1);
    }
  }

  // ---- words as byte ids in one flat buffer: word w is sym[start[w] .. start[w] + len[w])
  const nWords = counts.size;
  let cap = 0;
  for (const p of counts.keys()) cap += p.length * 3;
  const sym = new Int32Array(cap);
  const start = new Int32Array(nWords), len = new Int32Array(nWords);
  const freq = new Float64Array(nWords);
  {
    let w = 0, o = 0;
    for (const [p, c] of counts) {
      start[w] = o;
      o = utf8Into(p, sym, o);
      len[w] = o - start[w];
      freq[w] = c;
      nBytes += len[w] * c;
      w++;
    }
  }
  counts.clear();
  opts.onCounted?.({ pieces: nPieces, uniquePieces: nWords, bytes: nBytes });

  // ---- pair counts and the pair -> words index
  const slots = new PairSlots();
  let count = new Float64Array(1 << 16);
  const where: number[][] = [];
  const slot = (a: number, b: number): number => {
    const s = slots.find(a, b);
    if (s >= where.length) {
      where.push([]);
      if (s >= count.length) {
        const c2 = new Float64Array(count.length * 2);
        c2.set(count);
        count = c2;
      }
    }
    return s;
  };
  for (let w = 0; w < nWords; w++) {
    const f = freq[w];
    for (let i = start[w], end = start[w] + len[w] - 1; i < end; i++) {
      const s = slot(sym[i], sym[i + 1]);
      count[s] += f;
      const list = where[s];
      if (list.length === 0 || list[list.length - 1] !== w) list.push(w);
    }
  }

  // ---- max-heap of (count, slot); larger count first, then smaller (a, b)
  const hc: number[] = [], hs: number[] = [];
  const above = (c1: number, s1: number, c2: number, s2: number): boolean =>
    c1 > c2 || (c1 === c2 && (slots.pairA[s1] < slots.pairA[s2] || (slots.pairA[s1] === slots.pairA[s2] && slots.pairB[s1] < slots.pairB[s2])));
  const push = (c: number, s: number) => {
    let i = hc.length;
    hc.push(c);
    hs.push(s);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!above(c, s, hc[p], hs[p])) break;
      hc[i] = hc[p];
      hs[i] = hs[p];
      i = p;
    }
    hc[i] = c;
    hs[i] = s;
  };
  const pop = (): void => {
    const c = hc.pop()!, s = hs.pop()!;
    if (hc.length === 0) return;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= hc.length) break;
      const r = l + 1;
      const k = r < hc.length && above(hc[r], hs[r], hc[l], hs[l]) ? r : l;
      if (!above(hc[k], hs[k], c, s)) break;
      hc[i] = hc[k];
      hs[i] = hs[k];
      i = k;
    }
    hc[i] = c;
    hs[i] = s;
  };
  for (let s = 0; s < where.length; s++) if (count[s] > 0) push(count[s], s);

  // ---- merge
  const merges: [number, number][] = [];
  const tokenBytes: Uint8Array[] = [];
  for (let b = 0; b < 256; b++) tokenBytes.push(Uint8Array.of(b));
  const stamp = new Int32Array(nWords).fill(-1); // word w was handled in merge stamp[w]
  let seen = new Int32Array(count.length).fill(-1); // slot t was touched in merge seen[t]
  let before = new Float64Array(count.length); // ... and had this count before it
  const touched: number[] = [];
  let step = 0;
  const add = (a: number, b: number, f: number, w: number) => {
    const t = slot(a, b);
    if (t >= seen.length) {
      const s2 = new Int32Array(count.length).fill(-1);
      s2.set(seen);
      seen = s2;
      const b2 = new Float64Array(count.length);
      b2.set(before);
      before = b2;
    }
    if (seen[t] !== step) {
      seen[t] = step;
      before[t] = count[t];
      touched.push(t);
    }
    count[t] += f;
    if (w >= 0) {
      const list = where[t];
      if (list.length === 0 || list[list.length - 1] !== w) list.push(w);
    }
  };
  while (merges.length < opts.nMerges && hc.length > 0) {
    const c = hc[0], s = hs[0];
    pop();
    if (count[s] !== c || c <= 0) continue; // stale
    const A = slots.pairA[s], B = slots.pairB[s];
    const C = 256 + merges.length;
    step = merges.length;
    merges.push([A, B]);
    const ab = new Uint8Array(tokenBytes[A].length + tokenBytes[B].length);
    ab.set(tokenBytes[A]);
    ab.set(tokenBytes[B], tokenBytes[A].length);
    tokenBytes.push(ab);

    // Only the pairs next to a merged occurrence change. Left to right, for an occurrence of (A, B) at i:
    //   left:  (L, A) -> (L, C), where L is the symbol before; if that was itself just merged, the old pair was (B, A)
    //          and the new one (C, C)
    //   right: (B, R) -> (C, R), unless R starts the next occurrence (its left side handles the pair (B, A))
    //   the pair itself: (A, B) goes away
    for (const w of where[s]) {
      if (stamp[w] === step) continue;
      stamp[w] = step;
      const s0 = start[w], end = s0 + len[w], f = freq[w];
      let o = s0, i = s0, prevMerged = false, any = false;
      while (i < end) {
        if (i + 1 < end && sym[i] === A && sym[i + 1] === B) {
          any = true;
          if (o > s0) {
            const L = sym[o - 1];
            add(prevMerged ? B : L, A, -f, -1);
            add(L, C, f, w);
          }
          if (i + 2 < end) {
            const R = sym[i + 2];
            if (!(R === A && i + 3 < end && sym[i + 3] === B)) {
              add(B, R, -f, -1);
              add(C, R, f, w);
            }
          }
          add(A, B, -f, -1);
          sym[o++] = C;
          i += 2;
          prevMerged = true;
        } else {
          sym[o++] = sym[i++];
          prevMerged = false;
        }
      }
      if (any) len[w] = o - s0; // a word without the pair (a stale index entry) is rewritten unchanged
    }
    where[s] = [];
    for (const t of touched) if (count[t] !== before[t] && count[t] > 0) push(count[t], t);
    touched.length = 0;
    opts.onProgress?.(merges.length);
  }
  return { merges, tokenBytes };
}

/** The BPE vocabulary of a training result (priority of merge i is i). */
export function vocabFromTraining(r: TrainResult): BPEVocab {
  const table = new PairTable(r.merges.length);
  r.merges.forEach(([a, b], i) => table.set(a, b, i, 256 + i));
  const byteToId = new Int32Array(256);
  for (let b = 0; b < 256; b++) byteToId[b] = b;
  return { tokenBytes: r.tokenBytes, byteToId, merges: table, wholePieceFirst: true };
}
