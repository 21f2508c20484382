// The merge table of the byte-pair encoder: (a, b) -> (priority, result) for adjacent ids a, b. Knows ints only.

export const EMPTY = -1;
export const NO_MERGE = 0x7fffffff;

/**
 * Open-addressing hash table (a, b) -> (priority, result) in one Int32Array of [a, b, priority, result] records, so a
 * lookup touches one cache line: no boxing, no string keys.
 */
export class PairTable {
  private data: Int32Array;
  private mask: number; // slots - 1
  size = 0;

  constructor(capacity = 1024) {
    let cap = 1024;
    while (cap < capacity * 2) cap *= 2;
    this.data = new Int32Array(cap * 4).fill(EMPTY);
    this.mask = cap - 1;
  }

  /** The record offset of (a, b), or -1: read its priority and result with prioAt / resultAt. */
  find(a: number, b: number): number {
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b ^ 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    const d = this.data, mask = this.mask;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const o = i << 2;
      const k = d[o];
      if (k === a && d[o + 1] === b) return o;
      if (k === EMPTY) return -1;
    }
  }
  prioAt(o: number): number {
    return this.data[o + 2];
  }
  resultAt(o: number): number {
    return this.data[o + 3];
  }

  /** Keeps the first priority set for a pair (a later duplicate line in a merges file is ignored). */
  set(a: number, b: number, priority: number, result: number): void {
    if ((this.size + 1) * 2 > this.mask + 1) this.grow();
    if (this.find(a, b) >= 0) return;
    let h = Math.imul(a, 0x9e3779b1) ^ Math.imul(b ^ 0x7f4a7c15, 0x85ebca77);
    h ^= h >>> 15;
    const d = this.data, mask = this.mask;
    let i = h & mask;
    while (d[i << 2] !== EMPTY) i = (i + 1) & mask;
    const o = i << 2;
    d[o] = a;
    d[o + 1] = b;
    d[o + 2] = priority;
    d[o + 3] = result;
    this.size++;
  }

  /** Priority of merging (a, b), or NO_MERGE. */
  priority(a: number, b: number): number {
    const o = this.find(a, b);
    return o < 0 ? NO_MERGE : this.data[o + 2];
  }

  result(a: number, b: number): number {
    const o = this.find(a, b);
    return o < 0 ? -1 : this.data[o + 3];
  }

  /** Every entry as [a, b, priority, result], in table order. */
  entries(): [number, number, number, number][] {
    const out: [number, number, number, number][] = [];
    const d = this.data;
    for (let o = 0; o < d.length; o += 4) if (d[o] !== EMPTY) out.push([d[o], d[o + 1], d[o + 2], d[o + 3]]);
    return out;
  }

  /** Rebuild at the smallest size that keeps the load under one half (a smaller table misses the CPU cache less). */
  shrinkToFit(): void {
    let cap = 1024;
    while (cap < this.size * 2) cap *= 2;
    if (cap < this.mask + 1) this.rebuild(cap);
  }

  private grow(): void {
    this.rebuild((this.mask + 1) * 2);
  }

  private rebuild(cap: number): void {
    const old = this.entries();
    this.data = new Int32Array(cap * 4).fill(EMPTY);
    this.mask = cap - 1;
    this.size = 0;
    for (const [a, b, p, r] of old) this.set(a, b, p, r);
  }
}

