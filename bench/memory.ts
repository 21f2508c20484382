// Memory over a long training run: the buffer pool must make a training step allocate nothing after warm-up, so
// resident memory stays flat. Trains the tiny transformer block of test/tiny-block.ts (embedding, RMSNorm, GQA
// attention with rotary embeddings, SwiGLU, LM head, cross-entropy, Adam) for --steps steps on the current backend
// and prints RSS, ArrayBuffer bytes and the count of typed arrays the tensor engine allocated, at step 100 and at the
// end, with the growth between them.
//
//   npx tsc -p . && node --expose-gc dist/bench/memory.js     # 1000 steps, default backend, heap collected first
//   CHATWRIGHT_BACKEND=js node dist/bench/memory.js --steps 300
//
// Exit status 1 when the engine allocated typed arrays after warm-up (step 100).

import { getBackend, poolStats, releaseTape } from '../src/tensor/index.js';
import { TinyBlock, periodicBatch, rng, type TinyConfig } from '../test/tiny-block.js';

const args = process.argv.slice(2);
const stepsArg = args.indexOf('--steps');
const STEPS = stepsArg >= 0 ? Math.max(101, Number(args[stepsArg + 1]) | 0) : 1000;
const CFG: TinyConfig = { vocabSize: 64, nEmbd: 64, nHead: 4, nKvHead: 2, hidden: 128, maxT: 64 };
const B = 8, T = 48, PERIOD = 5, LR = 3e-3;

const mib = (n: number) => (n / 2 ** 20).toFixed(1);

// With --expose-gc the heap is collected first, so the figures show what is retained, not garbage awaiting collection.
const gc = (globalThis as { gc?: () => void }).gc;
function snapshot() {
  gc?.();
  const m = process.memoryUsage();
  return { rss: m.rss, arrayBuffers: m.arrayBuffers, heapUsed: m.heapUsed, fresh: poolStats().freshAllocations };
}

const model = new TinyBlock(CFG, 1);
const r = rng(2);
const ids = new Int32Array(B * T), targets = new Int32Array(B * T);
console.log(`backend ${getBackend().name}; ${model.numParams()} parameters; B=${B} T=${T}; ${STEPS} steps; ` +
  (gc ? 'heap collected before each snapshot' : 'run with --expose-gc to collect the heap before each snapshot'));

let at100 = snapshot();
let loss = 0;
const t0 = performance.now();
for (let step = 1; step <= STEPS; step++) {
  periodicBatch(r, ids, targets, B, T, CFG.vocabSize, PERIOD);
  model.zeroGrad();
  const L = model.loss(ids, targets, B, T);
  L.backward();
  loss = L.item();
  model.adamStep(LR);
  releaseTape();
  if (step === 100) {
    at100 = snapshot();
    console.log(`step 100: loss ${loss.toFixed(4)}  rss ${mib(at100.rss)} MiB  arrayBuffers ${mib(at100.arrayBuffers)} MiB  ` +
      `heapUsed ${mib(at100.heapUsed)} MiB  typed arrays allocated so far ${at100.fresh}`);
  }
}
const ms = performance.now() - t0;
const end = snapshot();
const { pooledBytes } = poolStats();
console.log(`step ${STEPS}: loss ${loss.toFixed(4)}  rss ${mib(end.rss)} MiB  arrayBuffers ${mib(end.arrayBuffers)} MiB  ` +
  `heapUsed ${mib(end.heapUsed)} MiB  typed arrays allocated so far ${end.fresh}`);
console.log(`growth from step 100 to ${STEPS}: rss ${mib(end.rss - at100.rss)} MiB (x${(end.rss / at100.rss).toFixed(3)}), ` +
  `arrayBuffers ${mib(end.arrayBuffers - at100.arrayBuffers)} MiB, new typed arrays ${end.fresh - at100.fresh}; ` +
  `pool holds ${mib(pooledBytes)} MiB; ${(ms / STEPS).toFixed(2)} ms/step`);
if (end.fresh !== at100.fresh) {
  console.log('FAIL: the tensor engine allocated typed arrays after warm-up');
  process.exitCode = 1;
}
