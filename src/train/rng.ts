// A seeded pseudo-random generator with a serialisable state, so a resumed run draws exactly what an uninterrupted one
// would. sfc32 (Chris Doty-Humphrey's Small Fast Counting generator, PractRand-tested; state = four uint32), seeded
// through splitmix32 so that nearby seeds give unrelated streams.
//
// API: new Rng(seed) | Rng.fromState(state); next() in [0, 1); int(n) in [0, n); normal(); shuffle(array); state().

function splitmix32(x: number): () => number {
  return () => {
    x = (x + 0x9e3779b9) | 0;
    let z = x;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
}

export class Rng {
  private a = 0;
  private b = 0;
  private c = 0;
  private d = 0;

  constructor(seed: number) {
    // mix both 32-bit halves of seeds up to 2^53, so seed and seed + 2^32 differ
    const sm = splitmix32((seed >>> 0) ^ Math.imul(Math.floor(seed / 4294967296) | 0, 0x27d4eb2f));
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm() | 1;
    for (let i = 0; i < 12; i++) this.u32();
  }

  static fromState(s: readonly number[]): Rng {
    if (!Array.isArray(s) || s.length !== 4 || s.some((x) => !Number.isInteger(x) || x < 0 || x > 0xffffffff)) {
      throw new Error(`Rng state must be four uint32 values, got ${JSON.stringify(s)}`);
    }
    const r = new Rng(0);
    [r.a, r.b, r.c, r.d] = s;
    return r;
  }

  state(): number[] {
    return [this.a >>> 0, this.b >>> 0, this.c >>> 0, this.d >>> 0];
  }

  u32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  // uniform in [0, 1) with 53 random bits
  next(): number {
    return (this.u32() * 2097152 + (this.u32() >>> 11)) / 9007199254740992;
  }

  // uniform integer in [0, n), n <= 2^32; rejection sampling keeps it unbiased
  int(n: number): number {
    if (!(n >= 1 && n <= 4294967296)) throw new Error(`Rng.int: n must be in [1, 2^32], got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    let x: number;
    do x = this.u32();
    while (x >= limit);
    return x % n;
  }

  // standard normal (Box-Muller)
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  // Fisher-Yates in place
  shuffle<T extends { length: number; [i: number]: any }>(a: T): T {
    for (let i = a.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = a[i];
      a[i] = a[j];
      a[j] = t;
    }
    return a;
  }
}
