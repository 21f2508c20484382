// The seeded random source of the sampler: xoshiro128** (Blackman & Vigna, "Scrambled linear pseudorandom number
// generators", 2018; reference C at https://prng.di.unimi.it/xoshiro128starstar.c), seeded through splitmix32 so that
// nearby seeds give unrelated streams. Four uint32 words of state, readable and restorable with getState/setState, so a
// generation (or an RL rollout) can be saved and resumed mid-stream and give the same draws.
// Boundary: numbers only; it knows nothing about logits or tokens.

export type RngState = [number, number, number, number];

export class Rng {
  private s = new Uint32Array(4);

  constructor(seed = 0) {
    this.seed(seed);
  }

  // Any safe integer is a valid seed: its low and high 32 bits both feed splitmix32.
  seed(seed: number): void {
    if (!Number.isSafeInteger(seed)) throw new RangeError(`seed must be a safe integer, got ${seed}`);
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) >>> 0, 0x9e3779b9);
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

  getState(): RngState {
    return [this.s[0], this.s[1], this.s[2], this.s[3]];
  }

  setState(state: readonly number[]): void {
    if (state.length !== 4 || state.some((w) => !Number.isInteger(w) || w < 0 || w > 0xffffffff))
      throw new RangeError(`rng state must be four uint32 words, got ${JSON.stringify(state)}`);
    this.s.set(state);
  }

  // The next uint32: result = rotl(s1 * 5, 7) * 9, then the xorshift update of the state.
  nextU32(): number {
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
    const hi = this.nextU32() >>> 5; // 27 bits
    const lo = this.nextU32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
