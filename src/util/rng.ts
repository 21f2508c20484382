// The one seeded random generator of chatwright: model initialisation, data order and the sampler's draws all use it.
// It sits in util, below every layer that needs it, so none of them imports another for it.
//
// xoshiro128** (Blackman & Vigna, "Scrambled linear pseudorandom number generators", 2018; reference C at
// https://prng.di.unimi.it/xoshiro128starstar.c), seeded through splitmix32 so that nearby seeds give unrelated streams.
// Its state is four uint32 words, readable (state()) and restorable (Rng.fromState, setState), so a resumed training run
// or a generation saved mid-stream draws exactly what an uninterrupted one would.
// Boundary: numbers only; it knows nothing of models, data or tokens.
//
// API: new Rng(seed) | Rng.fromState(words); u32(); next() in [0, 1); int(n) in [0, n); normal(); shuffle(array);
//      state() / setState(words); seed(seed).

export type RngState = [number, number, number, number];

export class Rng {
  private s = new Uint32Array(4);

  constructor(seed = 0) {
    this.seed(seed);
  }

  // Any finite number is a seed. An integer's low and high 32 bits both feed splitmix32, so seed and seed + 2^32
  // differ; any other number (a seed read from a damaged file, say) feeds the two words of its float64 bits.
  seed(seed: number): void {
    if (!Number.isFinite(seed)) throw new RangeError(`seed must be a finite number, got ${seed}`);
    let lo: number, hi: number;
    if (Number.isInteger(seed)) {
      hi = Math.floor(seed / 2 ** 32);
      lo = seed - hi * 2 ** 32;
    } else {
      const w = new Uint32Array(Float64Array.of(seed).buffer);
      [lo, hi] = [w[0], w[1] ^ 0x5bd1e995];
    }
    let x = lo ^ Math.imul(hi >>> 0, 0x9e3779b9);
    for (let i = 0; i < 4; i++) {
      // splitmix32 (the 32-bit finaliser of MurmurHash3 over a Weyl sequence)
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if ((this.s[0] | this.s[1] | this.s[2] | this.s[3]) === 0) this.s[0] = 1; // the all-zero state is a fixed point
  }

  // Checks the words, so a state read from a file can be handed over as it is (the caller names the file).
  static isState(words: unknown): words is RngState {
    return Array.isArray(words) && words.length === 4 &&
      words.every((w) => Number.isInteger(w) && w >= 0 && w <= 0xffffffff) && words.some((w) => w !== 0);
  }

  static fromState(words: readonly number[]): Rng {
    const r = new Rng(0);
    r.setState(words);
    return r;
  }

  state(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  setState(words: readonly number[]): void {
    if (!Rng.isState(words)) throw new RangeError(`rng state must be four uint32 words, not all zero; got ${JSON.stringify(words)}`);
    this.s.set(words);
  }

  // The next uint32: result = rotl(s1 * 5, 7) * 9, then the xorshift update of the state.
  u32(): number {
    const s = this.s;
    const r = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return r;
  }

  // Uniform in [0, 1) with 53 random bits.
  next(): number {
    const hi = this.u32() >>> 5; // 27 bits
    const lo = this.u32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  // Uniform integer in [0, n), n <= 2^32; rejection sampling keeps it unbiased.
  int(n: number): number {
    if (!(Number.isInteger(n) && n >= 1 && n <= 4294967296)) throw new RangeError(`Rng.int: n must be an integer in [1, 2^32], got ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    let x: number;
    do x = this.u32();
    while (x >= limit);
    return x % n;
  }

  // Standard normal (Box-Muller).
  normal(): number {
    let u = 0;
    while (u === 0) u = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * this.next());
  }

  // Fisher-Yates, in place.
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

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
