// Where a piece can be cut without changing its byte-pair encoding: between two characters that no token spans.
//
// Merging (a, b) makes the token whose bytes are a's then b's, so a merge across the boundary between two characters
// needs a token of the vocabulary that holds the end of the first and the start of the second, the cut inside it. If
// no token does, no merge ever crosses that boundary: the two sides merge as if alone (each side's merges keep their
// order, the lowest priority first and the leftmost on a tie, since nothing across the cut is ever a candidate), and
// the piece's ids are the two sides' ids one after the other. This is exact for any merge table built from the
// vocabulary's tokens (tiktoken ranks and Hugging Face merges alike). A Han run (a line of a poem is one piece) cuts
// into single characters and the few multi-character tokens of the vocabulary, and a character alone merges the same
// way every time, so its ids are kept (BytePairEncoder), which replaces most of the merging.
//
// The vocabulary is read once: every token is split at its lead bytes (UTF-8 bytes that start a character) into
// fragments, and every place where a fragment meets the next is recorded as a pair of descriptors: a whole character
// (its code point), or a partial one (a token may start inside a character or end inside one: its bytes, tagged). A
// token whose middle is not valid UTF-8 can never form from text (pieces are valid UTF-8) and is skipped.
import { PairTable } from './pairs.js';

const PARTIAL = 1 << 30; // descriptor of a partial character: PARTIAL | (byte count - 1) << 24 | its bytes

function partial(bytes: ArrayLike<number>, from: number, to: number): number {
  let v = 0;
  for (let i = from; i < to; i++) v = (v << 8) | bytes[i];
  return PARTIAL | ((to - from - 1) << 24) | v;
}

const isCont = (b: number) => b >= 0x80 && b < 0xc0;
const seqLen = (b: number) => (b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 0);

// UTF-8 bytes of one code point into out; returns their count
function utf8(cp: number, out: Uint8Array): number {
  if (cp < 0x80) {
    out[0] = cp;
    return 1;
  }
  if (cp < 0x800) {
    out[0] = 0xc0 | (cp >> 6);
    out[1] = 0x80 | (cp & 63);
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = 0xe0 | (cp >> 12);
    out[1] = 0x80 | ((cp >> 6) & 63);
    out[2] = 0x80 | (cp & 63);
    return 3;
  }
  out[0] = 0xf0 | (cp >> 18);
  out[1] = 0x80 | ((cp >> 12) & 63);
  out[2] = 0x80 | ((cp >> 6) & 63);
  out[3] = 0x80 | (cp & 63);
  return 4;
}

export class CharBoundaries {
  private readonly spans = new PairTable(); // (left, right) descriptor pairs that meet inside some token
  private readonly leftPartials = new Set<number>(); // partial descriptors seen on the left of a cut
  private readonly rightPartials = new Set<number>(); // partial descriptors seen on the right
  private readonly flags = new Uint8Array(0x110000 >> 1); // per code point, 4 bits: 1 known, 2 a suffix is in leftPartials, 4 a prefix in rightPartials
  private readonly buf = new Uint8Array(4);

  constructor(tokenBytes: Uint8Array[]) {
    const starts: number[] = [];
    for (const t of tokenBytes) {
      if (t.length < 2) continue;
      starts.length = 0;
      for (let i = 0; i < t.length; i++) if (!isCont(t[i])) starts.push(i);
      if (starts.length === 0 || (starts[0] === 0 && starts.length === 1)) continue; // no cut inside
      // descriptors of the fragments: [begin, end) of each, and whether each is a whole character
      const frags: number[] = [];
      let valid = true;
      if (starts[0] > 0) frags.push(partial(t, 0, starts[0])); // starts inside a character
      for (let k = 0; k < starts.length; k++) {
        const b = starts[k], e = k + 1 < starts.length ? starts[k + 1] : t.length, need = seqLen(t[b]);
        if (need === e - b) frags.push(this.codePoint(t, b, e));
        else if (k === starts.length - 1 && need > e - b) frags.push(partial(t, b, e)); // ends inside a character
        else valid = false; // broken UTF-8 inside the token: it never forms from text
      }
      if (!valid) continue;
      for (let k = 0; k + 1 < frags.length; k++) {
        this.spans.set(frags[k], frags[k + 1], 0, 0);
        if (frags[k] >= PARTIAL) this.leftPartials.add(frags[k]);
        if (frags[k + 1] >= PARTIAL) this.rightPartials.add(frags[k + 1]);
      }
    }
  }

  private codePoint(t: ArrayLike<number>, b: number, e: number): number {
    const n = e - b;
    if (n === 1) return t[b];
    let cp = t[b] & (0xff >> (n + 1));
    for (let i = b + 1; i < e; i++) cp = (cp << 6) | (t[i] & 63);
    return cp;
  }

  /** True when no token spans the boundary between code points a and b (so the piece may be cut there). */
  hard(a: number, b: number): boolean {
    const spans = this.spans;
    if (spans.find(a, b) >= 0) return false;
    const fa = this.flagsOf(a), fb = this.flagsOf(b);
    if (!(fa & 2) && !(fb & 4)) return true;
    // a token that starts inside a or ends inside b: a's partial suffixes and b's partial prefixes against each other
    const buf = this.buf, na = utf8(a, buf), a0 = buf[0], a1 = buf[1], a2 = buf[2], a3 = buf[3];
    const nb = utf8(b, buf);
    for (let j = 0; j < nb; j++) { // j = 0: b whole; else b's first j bytes
      const r = j === 0 ? b : partial(buf, 0, j);
      if (j > 0 && !(fb & 4)) break;
      if (j > 0 && spans.find(a, r) >= 0) return false;
      if (fa & 2) {
        for (let i = 1; i < na; i++) { // a's last na - i bytes
          let v = 0;
          for (let k = i; k < na; k++) v = (v << 8) | (k === 0 ? a0 : k === 1 ? a1 : k === 2 ? a2 : a3);
          if (spans.find(PARTIAL | ((na - i - 1) << 24) | v, r) >= 0) return false;
        }
      }
    }
    return true;
  }

  private flagsOf(cp: number): number {
    const shift = (cp & 1) << 2;
    let f = (this.flags[cp >> 1] >> shift) & 15;
    if (f) return f;
    f = 1;
    const n = utf8(cp, this.buf);
    for (let i = 1; i < n; i++) {
      if (this.leftPartials.has(partial(this.buf, i, n))) f |= 2;
      if (this.rightPartials.has(partial(this.buf, 0, i))) f |= 4;
    }
    this.flags[cp >> 1] |= f << shift;
    return f;
  }
}
