// Training end to end through the autograd engine: the tiny transformer block of test/tiny-block.ts learns the
// periodic-copy task with Adam on each backend (loss falls below a threshold far under the chance level ln V), and
// the JS and native backends, started from the same weights on the same batches, trace the same loss curve over the
// first 20 steps (float32 summation order differs, so within a tolerance). A step after warm-up allocates nothing.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend, nativeAvailable, nativeUnavailableReason, poolStats, releaseTape, setBackend } from '../src/tensor/index.js';
import { TINY, TinyBlock, periodicBatch, rng } from './tiny-block.js';
import { skipNative } from './helpers.js';

const B = 8, T = 12, PERIOD = 3, STEPS = 250, LR = 1e-2;
const THRESHOLD = 0.1; // chance is ln(8) = 2.08 on the predictable positions

function train(backend: 'js' | 'native', steps: number): { losses: number[]; freshAfterWarmup: number } {
  setBackend(backend);
  assert.equal(getBackend().name, backend);
  const model = new TinyBlock(TINY, 1234);
  const r = rng(99);
  const ids = new Int32Array(B * T), targets = new Int32Array(B * T);
  const losses: number[] = [];
  let freshAt = 0;
  for (let step = 0; step < steps; step++) {
    if (step === 2) freshAt = poolStats().freshAllocations;
    periodicBatch(r, ids, targets, B, T, TINY.vocabSize, PERIOD);
    model.zeroGrad();
    const loss = model.loss(ids, targets, B, T);
    loss.backward();
    losses.push(loss.item());
    model.adamStep(LR);
    releaseTape();
  }
  return { losses, freshAfterWarmup: poolStats().freshAllocations - freshAt };
}

function tail(losses: number[]): number {
  const last = losses.slice(-10);
  return last.reduce((a, b) => a + b, 0) / last.length;
}

const curves: Partial<Record<'js' | 'native', number[]>> = {};

test(`block trains on the JS backend (${new TinyBlock(TINY, 0).numParams()} parameters)`, () => {
  const { losses, freshAfterWarmup } = train('js', STEPS);
  curves.js = losses;
  console.log(`# js: loss ${losses[0].toFixed(3)} -> ${tail(losses).toFixed(4)} in ${STEPS} steps`);
  assert.ok(Math.abs(losses[0] - Math.log(TINY.vocabSize)) < 0.5, `initial loss ${losses[0]} is far from chance`);
  assert.ok(tail(losses) < THRESHOLD, `loss after ${STEPS} steps is ${tail(losses)}, want < ${THRESHOLD}`);
  assert.equal(freshAfterWarmup, 0, 'a warm training step allocated new typed arrays');
});

test('block trains on the native backend', (t) => {
  if (!nativeAvailable()) {
    skipNative(t, `native backend unavailable: ${nativeUnavailableReason()}`);
    return;
  }
  try {
    const { losses, freshAfterWarmup } = train('native', STEPS);
    curves.native = losses;
    console.log(`# native: loss ${losses[0].toFixed(3)} -> ${tail(losses).toFixed(4)} in ${STEPS} steps`);
    assert.ok(tail(losses) < THRESHOLD, `loss after ${STEPS} steps is ${tail(losses)}, want < ${THRESHOLD}`);
    assert.equal(freshAfterWarmup, 0, 'a warm training step allocated new typed arrays');
  } finally {
    setBackend('js');
  }
});

test('JS and native loss curves agree over the first 20 steps', (t) => {
  if (!curves.js || !curves.native) {
    const reason = !curves.native ? 'no native curve (native backend unavailable or its run failed)' : 'no JS curve';
    console.log(`# SKIP ${reason}`);
    t.skip(reason);
    return;
  }
  let worst = 0;
  for (let s = 0; s < 20; s++) {
    const d = Math.abs(curves.js[s] - curves.native[s]) / Math.max(1, Math.abs(curves.js[s]));
    worst = Math.max(worst, d);
  }
  console.log(`# largest relative difference of the loss over 20 steps: ${worst.toExponential(2)}`);
  assert.ok(worst < 1e-3, `loss curves differ by ${worst} (relative) within 20 steps`);
});
