// The one seeded generator (src/util/rng.ts) at its edges: the seeds it accepts, the states it refuses. Its stream is
// checked against the reference C in test/sampler.test.ts and its distributions in test/train.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';

const first = (seed: number) => new Rng(seed).u32();

test('rng: every finite number seeds a stream; both 32-bit halves matter; NaN and infinities are refused', () => {
  assert.notEqual(first(1), first(1 + 2 ** 32));
  assert.notEqual(first(0), first(-1));
  assert.equal(first(2 ** 60), first(2 ** 60)); // beyond 2^53 still deterministic
  assert.equal(first(0.5), first(0.5));
  assert.notEqual(first(0.5), first(1e-320));
  for (const bad of [NaN, Infinity, -Infinity]) assert.throws(() => new Rng(bad), RangeError, String(bad));
});

test('rng: a state is four uint32 words, not all zero (the fixed point of xoshiro)', () => {
  assert.ok(Rng.isState(new Rng(5).state()));
  for (const bad of [[0, 0, 0, 0], [1, 2, 3], [1, 2, 3, 2 ** 32], [1, 2, 3, -1], [1, 2, 3, 1.5], [1, 2, 3, NaN], 'abcd', null]) {
    assert.equal(Rng.isState(bad), false, JSON.stringify(bad));
    assert.throws(() => Rng.fromState(bad as number[]), RangeError);
  }
  const a = new Rng(9);
  a.u32();
  const b = Rng.fromState(a.state());
  assert.deepEqual(Array.from({ length: 8 }, () => a.u32()), Array.from({ length: 8 }, () => b.u32()));
});
