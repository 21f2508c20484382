// The native kernels in depth: every primitive of native/kernels*.c (all but gemm) against the JS backend run in
// float64 (src/tensor/backend-js.ts, the oracle), at EVERY SIMD dispatch level the CPU has and with 1 and 2 threads,
// on random inputs whose sizes are not multiples of any vector or tile (1, 7, 33, 65, 127, ...), with in-place
// aliasing where backend.ts allows it, and backward kernels accumulating into non-zero gradients.
// The addon is called directly (not through backend-native.ts, which falls back to JS for missing methods), with the
// same lambda as the JS backend: that also checks the exported names and argument orders.
// Tolerance: |native - ref| <= atol + rtol |ref| per element, stated per op below (float32 kernels vs a float64
// reference rounded to float32; the polynomial exp/log are ~1e-7 relative). Results with 2 threads must equal those
// with 1 thread bit for bit. Skips, saying why, when the addon is not built.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { jsBackend } from '../src/tensor/backend-js.js';
import { CPU_LEVEL_NAMES } from '../src/tensor/backend-native.js';
import { nativeSkip, rng } from './helpers.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyBackend = any;
type Value = Float32Array | Int32Array | number | null;

const addonPath = fileURLToPath(new URL('../../native/build/chatwright.node', import.meta.url));
let addon: AnyBackend = null;
let skipReason: string | false = false;
if (!existsSync(addonPath)) {
  skipReason = 'native/build/chatwright.node is not built (run `npm run build:native`; it needs a C compiler)';
} else {
  addon = createRequire(import.meta.url)(addonPath);
  if (typeof addon.attentionForward !== 'function') skipReason = 'the addon was built without native/kernels*.c';
}
const skip = nativeSkip('native-kernels', skipReason);

// ---- seeded random inputs (mulberry32)
const rand = rng(12345);
function randn(n: number, scale = 1, shift = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rand() * 2 - 1) * scale + shift;
  return a;
}
function randInts(n: number, lo: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + Math.floor(rand() * (hi - lo));
  return a;
}

// ---- levels and threads
const levels: number[] = [];
const threadCounts = [1, 2];
if (addon && !skipReason) {
  const top = addon.cpuLevel();
  for (let l = 0; l <= top; l++) if (addon.setCpuLevel(l) === l) levels.push(l);
  addon.setCpuLevel(top);
}
const levelName = CPU_LEVEL_NAMES;

function copyInputs(inputs: Record<string, Value>, f64: boolean): Record<string, Value> {
  const out: Record<string, Value> = {};
  for (const [k, v] of Object.entries(inputs)) {
    out[k] = v instanceof Float32Array ? (f64 ? Float64Array.from(v) : v.slice()) as Float32Array
      : v instanceof Int32Array ? v.slice() : v;
  }
  return out;
}

interface Case {
  name: string;
  inputs: Record<string, Value>;
  outputs: string[];                       // names in `inputs` compared after the call
  call: (be: AnyBackend, a: Record<string, AnyBackend>) => unknown;  // a number result is compared too
  rtol: number;
  atol: number;
}

// Runs one case on the JS backend (float64) and on the addon at every level and thread count; returns the worst
// error ratio (error / tolerance), which must be <= 1.
function check(c: Case): number {
  const ref = copyInputs(c.inputs, true);
  const refResult = c.call(jsBackend, ref);
  const top = addon.cpuLevel();
  const threads = addon.numThreads();
  let worst = 0;
  try {
    for (const level of levels) {
      let oneThread: ArrayLike<number>[] | null = null;  // outputs with 1 thread at this level
      for (const t of threadCounts) {
        addon.setCpuLevel(level);
        addon.setNumThreads(t);
        const got = copyInputs(c.inputs, false);
        const result = c.call(addon, got);
        const where = `${c.name} [${levelName[level]}, ${t} thread${t > 1 ? 's' : ''}]`;
        const pairs: [string, ArrayLike<number>, ArrayLike<number>][] = c.outputs.map((o) => [
          o, got[o] as Float32Array, ref[o] as unknown as Float64Array,
        ]);
        if (typeof refResult === 'number') pairs.push(['result', [result as number], [refResult]]);
        // the split over threads never changes the result: each output element is summed by one thread in a fixed
        // order (kernels_reduce.c, kernels_norm.c, kernels_attention.c say how)
        if (oneThread === null) oneThread = pairs.map(([, g]) => Array.from(g));
        else pairs.forEach(([name, g], k) => {
          for (let i = 0; i < g.length; i++) {
            if (!Object.is(g[i], oneThread![k][i])) assert.fail(`${where}: ${name}[${i}] = ${g[i]} differs from 1 thread: ${oneThread![k][i]}`);
          }
        });
        for (const [name, g, r] of pairs) {
          assert.equal(g.length, r.length);
          for (let i = 0; i < r.length; i++) {
            const a = g[i], b = Math.fround(r[i]);  // the reference rounded to float32 (overflow included)
            if (Number.isNaN(b) || !Number.isFinite(b)) {
              assert.ok(Object.is(a, b) || (Number.isNaN(a) && Number.isNaN(b)),
                `${where}: ${name}[${i}] = ${a}, reference ${b}`);
              continue;
            }
            const ratio = a === b ? 0 : Math.abs(a - b) / (c.atol + c.rtol * Math.abs(b));
            if (!(ratio <= 1)) assert.fail(`${where}: ${name}[${i}] = ${a}, reference ${b} (tolerance ${c.atol} + ${c.rtol}|ref|)`);
            if (ratio > worst) worst = ratio;
          }
        }
      }
    }
  } finally {
    addon.setCpuLevel(top);
    addon.setNumThreads(threads);
  }
  return worst;
}

function run(cases: Case[]): void {
  for (const c of cases) {
    const w = check(c);
    console.log(`# ${c.name}: worst error ${(w * 100).toFixed(1)}% of tolerance over ${levels.length} levels x ${threadCounts.length} thread counts`);
  }
}

const SIZES = [1, 7, 33, 65, 127, 1000, 50001];  // the last is split over threads

// ---- attention
function attentionCase(B: number, Tq: number, Tk: number, nHead: number, nKv: number, hd: number,
  lens: Int32Array | null, withLse = true): Case {
  const scale = 1 / Math.sqrt(hd);
  return {
    name: `attentionForward B=${B} Tq=${Tq} Tk=${Tk} heads=${nHead}/${nKv} hd=${hd}${lens ? ` lens=${[...lens]}` : ''}${withLse ? '' : ' lse=null'}`,
    inputs: {
      out: randn(B * Tq * nHead * hd), lse: withLse ? randn(B * nHead * Tq) : null,
      q: randn(B * Tq * nHead * hd, 2), k: randn(B * Tk * nKv * hd, 2), v: randn(B * Tk * nKv * hd), lens,
    },
    outputs: withLse ? ['out', 'lse'] : ['out'],
    call: (be, a) => be.attentionForward(a.out, a.lse, a.q, a.k, a.v, B, Tq, Tk, nHead, nKv, hd, scale, a.lens),
    rtol: 1e-4, atol: 1e-5,
  };
}

function attentionBackwardCase(B: number, T: number, nHead: number, nKv: number, hd: number): Case {
  const scale = 1 / Math.sqrt(hd);
  const q = randn(B * T * nHead * hd, 2), k = randn(B * T * nKv * hd, 2), v = randn(B * T * nKv * hd);
  // out and lse from the reference forward, so the backward sees consistent saved buffers
  const out64 = new Float64Array(B * T * nHead * hd), lse64 = new Float64Array(B * nHead * T);
  jsBackend.attentionForward(out64, lse64, Float64Array.from(q), Float64Array.from(k), Float64Array.from(v),
    B, T, T, nHead, nKv, hd, scale, null);
  return {
    name: `attentionBackward B=${B} T=${T} heads=${nHead}/${nKv} hd=${hd}`,
    inputs: {
      dq: randn(q.length), dk: randn(k.length), dv: randn(v.length), dout: randn(q.length),
      out: Float32Array.from(out64), lse: Float32Array.from(lse64), q, k, v,
    },
    outputs: ['dq', 'dk', 'dv'],
    call: (be, a) => be.attentionBackward(a.dq, a.dk, a.dv, a.dout, a.out, a.lse, a.q, a.k, a.v, B, T, nHead, nKv, hd, scale),
    rtol: 2e-4, atol: 2e-5,
  };
}

test('native attention forward matches the JS backend (causal, GQA, odd head sizes, KV cache)', skip, () => {
  run([
    attentionCase(2, 65, 65, 4, 2, 64, null),
    attentionCase(1, 130, 130, 2, 1, 64, null),
    attentionCase(2, 33, 33, 3, 3, 33, null),
    attentionCase(1, 7, 7, 2, 2, 7, null, false),
    attentionCase(1, 1, 1, 1, 1, 1, null),
    attentionCase(3, 5, 70, 4, 2, 64, Int32Array.from([70, 12, 40])),   // KV cache: prefill a chunk at varied lengths
    attentionCase(3, 1, 129, 6, 2, 32, Int32Array.from([129, 1, 65])),   // decode step
    attentionCase(2, 4, 9, 2, 1, 16, Int32Array.from([2, 9])),           // len < Tq: the first queries see no key
    attentionCase(2, 3, 10, 2, 1, 16, Int32Array.from([14, 0])),         // len > Tk clamps to Tk; len 0: no key at all
    // the causal trimming (whole row tiles and vectors skipped near the diagonal) at query blocks whose first
    // position is not a multiple of any tile: a prefill chunk spanning two query blocks, and a chunk longer than
    // the cache so its first queries see nothing
    attentionCase(3, 45, 150, 4, 2, 64, Int32Array.from([150, 57, 45])),
    attentionCase(2, 40, 40, 2, 2, 48, Int32Array.from([23, 40])),
    attentionCase(1, 97, 97, 3, 1, 80, null),
    // K and V read in place (head size a multiple of 16) by several query blocks, the last key block's padded rows
    // past the Tk slots; and packed (head size 24) over several blocks; both grouped-query
    attentionCase(2, 70, 75, 4, 2, 32, Int32Array.from([75, 71])),
    attentionCase(1, 100, 100, 4, 2, 24, null),
  ]);
});

test('native attention backward matches the JS backend and accumulates', skip, () => {
  run([
    attentionBackwardCase(2, 65, 4, 2, 64),
    attentionBackwardCase(1, 130, 2, 1, 64),
    attentionBackwardCase(2, 33, 3, 3, 33),
    attentionBackwardCase(1, 7, 2, 2, 7),
    attentionBackwardCase(1, 1, 1, 1, 1),
    attentionBackwardCase(1, 97, 3, 1, 80),  // diagonal blocks cut at every offset (97 = 3 x 32 + 1)
    attentionBackwardCase(3, 150, 6, 2, 64),  // several tasks and query blocks per thread, groups of 3 heads
  ]);
});

// ---- norms, rope
test('native rmsnorm / layernorm forward and backward match the JS backend', skip, () => {
  const cases: Case[] = [];
  for (const [N, C] of [[1, 1], [7, 33], [33, 65], [5, 127], [3, 1000], [300, 127]]) {
    const x = randn(N * C, 2, 0.3), w = randn(C), b = randn(C), dout = randn(N * C);
    cases.push({
      name: `rmsnormForward N=${N} C=${C}`, inputs: { out: randn(N * C), rstd: randn(N), x, w },
      outputs: ['out', 'rstd'], call: (be, a) => be.rmsnormForward(a.out, a.rstd, a.x, a.w, N, C, 1e-5),
      rtol: 1e-5, atol: 1e-6,
    });
    const rstd = new Float32Array(N), mean = new Float32Array(N);
    jsBackend.rmsnormForward(new Float32Array(N * C), rstd, x, w, N, C, 1e-5);
    cases.push({
      name: `rmsnormBackward N=${N} C=${C}`, inputs: { dx: randn(N * C), dw: randn(C), dout, x, w, rstd },
      outputs: ['dx', 'dw'], call: (be, a) => be.rmsnormBackward(a.dx, a.dw, a.dout, a.x, a.w, a.rstd, N, C),
      rtol: 1e-4, atol: 1e-5,
    });
    cases.push({
      name: `layernormForward N=${N} C=${C}`, inputs: { out: randn(N * C), mean: randn(N), rstd: randn(N), x, w, b },
      outputs: ['out', 'mean', 'rstd'],
      call: (be, a) => be.layernormForward(a.out, a.mean, a.rstd, a.x, a.w, a.b, N, C, 1e-5),
      rtol: 1e-4, atol: 1e-5,
    });
    const lrstd = new Float32Array(N);
    jsBackend.layernormForward(new Float32Array(N * C), mean, lrstd, x, w, b, N, C, 1e-5);
    cases.push({
      name: `layernormBackward N=${N} C=${C}`,
      inputs: { dx: randn(N * C), dw: randn(C), db: randn(C), dout, x, w, mean, rstd: lrstd },
      outputs: ['dx', 'dw', 'db'],
      call: (be, a) => be.layernormBackward(a.dx, a.dw, a.db, a.dout, a.x, a.w, a.mean, a.rstd, N, C),
      rtol: 1e-4, atol: 1e-4,
    });
  }
  run(cases);
});

test('native rope forward (also in place) and backward match the JS backend', skip, () => {
  const cases: Case[] = [];
  for (const [B, T, nHead, hd, maxT] of [[2, 7, 3, 64, 20], [1, 33, 2, 14, 40], [2, 5, 1, 2, 8], [1, 3, 2, 66, 3], [2, 40, 4, 64, 50]]) {
    const half = hd / 2;
    const cos = new Float32Array(maxT * half), sin = new Float32Array(maxT * half);
    for (let p = 0; p < maxT; p++) for (let i = 0; i < half; i++) {
      const ang = p / Math.pow(10000, (2 * i) / hd);
      cos[p * half + i] = Math.cos(ang);
      sin[p * half + i] = Math.sin(ang);
    }
    const pos0 = B > 1 ? Int32Array.from({ length: B }, (_, b) => b * (maxT - T)) : null;
    const n = B * T * nHead * hd;
    const x = randn(n);
    cases.push({
      name: `ropeForward B=${B} T=${T} hd=${hd} pos0=${pos0 ? [...pos0] : null}`, inputs: { out: randn(n), x, cos, sin, pos0 },
      outputs: ['out'], call: (be, a) => be.ropeForward(a.out, a.x, a.cos, a.sin, B, T, nHead, hd, a.pos0),
      rtol: 1e-5, atol: 1e-6,
    });
    cases.push({
      name: `ropeForward in place B=${B} T=${T} hd=${hd}`, inputs: { x, cos, sin, pos0 },
      outputs: ['x'], call: (be, a) => be.ropeForward(a.x, a.x, a.cos, a.sin, B, T, nHead, hd, a.pos0),
      rtol: 1e-5, atol: 1e-6,
    });
    cases.push({
      name: `ropeBackward B=${B} T=${T} hd=${hd}`, inputs: { dx: randn(n), dout: x, cos, sin, pos0 },
      outputs: ['dx'], call: (be, a) => be.ropeBackward(a.dx, a.dout, a.cos, a.sin, B, T, nHead, hd, a.pos0),
      rtol: 1e-5, atol: 1e-6,
    });
  }
  run(cases);
});

// ---- softmax, cross-entropy
test('native softmax and cross-entropy match the JS backend (ignored targets, dlogits over logits)', skip, () => {
  const cases: Case[] = [];
  for (const [N, C] of [[1, 1], [7, 33], [5, 65], [3, 127], [2, 5000], [200, 65]]) {
    const x = randn(N * C, 8);
    const out = new Float32Array(N * C);
    jsBackend.softmaxForward(out, x, N, C);
    cases.push({
      name: `softmaxForward N=${N} C=${C}`, inputs: { out: randn(N * C), x }, outputs: ['out'],
      call: (be, a) => be.softmaxForward(a.out, a.x, N, C), rtol: 1e-5, atol: 1e-7,
    });
    cases.push({
      name: `softmaxBackward N=${N} C=${C}`, inputs: { dx: randn(N * C), dout: randn(N * C), out }, outputs: ['dx'],
      call: (be, a) => be.softmaxBackward(a.dx, a.dout, a.out, N, C), rtol: 1e-5, atol: 1e-6,
    });
    const targets = randInts(N, -1, C);  // some -1: ignored
    if (N > 1) targets[0] = -5;
    const lse = new Float32Array(N);
    jsBackend.crossEntropyForward(new Float32Array(N), lse, x, targets, N, C);
    cases.push({
      name: `crossEntropyForward N=${N} V=${C}`, inputs: { losses: randn(N), lse: randn(N), logits: x, targets },
      outputs: ['losses', 'lse'], call: (be, a) => be.crossEntropyForward(a.losses, a.lse, a.logits, a.targets, N, C),
      rtol: 1e-5, atol: 1e-5,
    });
    const dlosses = randn(N);
    cases.push({
      name: `crossEntropyBackward N=${N} V=${C}`, inputs: { dlogits: randn(N * C), dlosses, logits: x, lse, targets },
      outputs: ['dlogits'],
      call: (be, a) => be.crossEntropyBackward(a.dlogits, a.dlosses, a.logits, a.lse, a.targets, N, C),
      rtol: 1e-5, atol: 1e-7,
    });
    cases.push({
      name: `crossEntropyBackward in place N=${N} V=${C}`, inputs: { dlosses, logits: x, lse, targets },
      outputs: ['logits'],
      call: (be, a) => be.crossEntropyBackward(a.logits, a.dlosses, a.logits, a.lse, a.targets, N, C),
      rtol: 1e-5, atol: 1e-7,
    });
  }
  run(cases);
});

// ---- embedding, adamw, bias, reductions
test('native embedding, adamw, addBias, sumRows, sum, sumSquares match the JS backend', skip, () => {
  const cases: Case[] = [];
  for (const [N, C, V] of [[1, 1, 1], [7, 33, 5], [65, 127, 9], [33, 65, 1000], [300, 130, 50]]) {
    const ids = randInts(N, 0, V);
    cases.push({
      name: `embeddingForward N=${N} C=${C}`, inputs: { out: randn(N * C), ids, wte: randn(V * C) }, outputs: ['out'],
      call: (be, a) => be.embeddingForward(a.out, a.ids, a.wte, N, C), rtol: 0, atol: 0,
    });
    cases.push({
      name: `embeddingBackward N=${N} C=${C} (repeated ids)`, inputs: { dwte: randn(V * C), dout: randn(N * C), ids },
      outputs: ['dwte'], call: (be, a) => be.embeddingBackward(a.dwte, a.dout, a.ids, N, C), rtol: 1e-6, atol: 1e-6,
    });
    const x = randn(N * C);
    cases.push({
      name: `addBias N=${N} C=${C}`, inputs: { out: randn(N * C), x, b: randn(C) }, outputs: ['out'],
      call: (be, a) => be.addBias(a.out, a.x, a.b, N, C), rtol: 1e-7, atol: 0,
    });
    cases.push({
      name: `addBias in place N=${N} C=${C}`, inputs: { x, b: randn(C) }, outputs: ['x'],
      call: (be, a) => be.addBias(a.x, a.x, a.b, N, C), rtol: 1e-7, atol: 0,
    });
    cases.push({
      name: `sumRows N=${N} C=${C}`, inputs: { db: randn(C), dout: x }, outputs: ['db'],
      call: (be, a) => be.sumRows(a.db, a.dout, N, C), rtol: 1e-5, atol: 1e-5,
    });
  }
  for (const n of [...SIZES, 40000]) {
    const x = randn(n, 1, 0.1);
    cases.push({ name: `sum n=${n}`, inputs: { x }, outputs: [], call: (be, a) => be.sum(a.x, n), rtol: 1e-6, atol: 1e-5 });
    cases.push({
      name: `sumSquares n=${n}`, inputs: { x }, outputs: [], call: (be, a) => be.sumSquares(a.x, n), rtol: 1e-6, atol: 1e-6,
    });
    const g = randn(n), m = randn(n, 0.1), v = randn(n, 0.01, 0.011);
    for (const step of [1, 10]) {
      cases.push({
        name: `adamw n=${n} step=${step}`, inputs: { p: randn(n), g, m, v }, outputs: ['p', 'm', 'v'],
        call: (be, a) => be.adamw(a.p, a.g, a.m, a.v, n, 1e-3, 0.9, 0.999, 1e-8, 0.1, step), rtol: 1e-5, atol: 1e-6,
      });
    }
  }
  run(cases);
});

// ---- elementwise and activations
test('native elementwise ops and activations match the JS backend (also in place)', skip, () => {
  const cases: Case[] = [];
  for (const n of SIZES) {
    const a = randn(n, 3), b = randn(n, 3), out = randn(n);
    const pos = randn(n, 2, 2.5);  // (0.5, 4.5): log's domain
    const cond = Float32Array.from(a, (x, i) => (i % 3 === 0 ? 0 : x));
    for (const op of ['add', 'sub', 'mul', 'minimum', 'maximum']) {
      cases.push({ name: `${op} n=${n}`, inputs: { out, a, b }, outputs: ['out'], call: (be, v) => be[op](v.out, v.a, v.b, n), rtol: 1e-6, atol: 0 });
      cases.push({ name: `${op} in place n=${n}`, inputs: { a, b }, outputs: ['b'], call: (be, v) => be[op](v.b, v.a, v.b, n), rtol: 1e-6, atol: 0 });
    }
    cases.push({ name: `div n=${n}`, inputs: { out, a, pos }, outputs: ['out'], call: (be, v) => be.div(v.out, v.a, v.pos, n), rtol: 1e-6, atol: 0 });
    cases.push({ name: `scaleShift n=${n}`, inputs: { out, a }, outputs: ['out'], call: (be, v) => be.scaleShift(v.out, v.a, 1.5, -0.25, n), rtol: 1e-6, atol: 1e-7 });
    cases.push({ name: `axpy n=${n}`, inputs: { y: out, x: a }, outputs: ['y'], call: (be, v) => be.axpy(v.y, -0.75, v.x, n), rtol: 1e-6, atol: 1e-6 });
    cases.push({ name: `exp n=${n}`, inputs: { out, a: randn(n, 40) }, outputs: ['out'], call: (be, v) => be.exp(v.out, v.a, n), rtol: 1e-6, atol: 0 });
    cases.push({ name: `exp in place n=${n}`, inputs: { a }, outputs: ['a'], call: (be, v) => be.exp(v.a, v.a, n), rtol: 1e-6, atol: 0 });
    cases.push({ name: `log n=${n}`, inputs: { out, pos: randn(n, 100, 100.5) }, outputs: ['out'], call: (be, v) => be.log(v.out, v.pos, n), rtol: 1e-6, atol: 1e-7 });
    cases.push({ name: `sigmoid n=${n}`, inputs: { out, a: randn(n, 30) }, outputs: ['out'], call: (be, v) => be.sigmoid(v.out, v.a, n), rtol: 1e-6, atol: 1e-7 });
    cases.push({ name: `logSigmoid n=${n}`, inputs: { out, a: randn(n, 30) }, outputs: ['out'], call: (be, v) => be.logSigmoid(v.out, v.a, n), rtol: 1e-6, atol: 1e-7 });
    cases.push({ name: `clamp n=${n}`, inputs: { out, a }, outputs: ['out'], call: (be, v) => be.clamp(v.out, v.a, -1, 2, n), rtol: 0, atol: 0 });
    cases.push({ name: `where n=${n}`, inputs: { out, cond, a, b }, outputs: ['out'], call: (be, v) => be.where(v.out, v.cond, v.a, v.b, n), rtol: 0, atol: 0 });
    cases.push({ name: `where in place n=${n}`, inputs: { cond, a, b }, outputs: ['a'], call: (be, v) => be.where(v.a, v.cond, v.a, v.b, n), rtol: 0, atol: 0 });
    cases.push({ name: `fill n=${n}`, inputs: { out }, outputs: ['out'], call: (be, v) => be.fill(v.out, 0.3, n), rtol: 1e-7, atol: 0 });
    cases.push({ name: `swigluForward n=${n}`, inputs: { out, gate: a, up: b }, outputs: ['out'], call: (be, v) => be.swigluForward(v.out, v.gate, v.up, n), rtol: 1e-5, atol: 1e-6 });
    cases.push({
      name: `swigluBackward n=${n}`, inputs: { dgate: randn(n), dup: randn(n), dout: out, gate: a, up: b }, outputs: ['dgate', 'dup'],
      call: (be, v) => be.swigluBackward(v.dgate, v.dup, v.dout, v.gate, v.up, n), rtol: 1e-5, atol: 1e-6,
    });
    cases.push({ name: `geluForward n=${n}`, inputs: { out, x: a }, outputs: ['out'], call: (be, v) => be.geluForward(v.out, v.x, n), rtol: 1e-5, atol: 1e-6 });
    cases.push({ name: `geluForward in place n=${n}`, inputs: { x: a }, outputs: ['x'], call: (be, v) => be.geluForward(v.x, v.x, n), rtol: 1e-5, atol: 1e-6 });
    cases.push({
      name: `geluBackward n=${n}`, inputs: { dx: randn(n), dout: out, x: a }, outputs: ['dx'],
      call: (be, v) => be.geluBackward(v.dx, v.dout, v.x, n), rtol: 1e-5, atol: 1e-6,
    });
  }
  run(cases);
});

test('native special values: exp/log/sigmoid limits and NaN propagation match the JS backend', skip, () => {
  const special = Float32Array.from([0, -0, 1, -1, 88, 88.7, 89, -87, -100, -104, 1e-30, 3e38, Infinity, -Infinity, NaN, 0.5]);
  const n = special.length;
  const out = new Float32Array(n);
  const cases: Case[] = [
    { name: 'exp special', inputs: { out, a: special }, outputs: ['out'], call: (be, v) => be.exp(v.out, v.a, n), rtol: 2e-6, atol: 1e-40 },
    { name: 'log special', inputs: { out, a: Float32Array.from(special, Math.abs) }, outputs: ['out'], call: (be, v) => be.log(v.out, v.a, n), rtol: 2e-6, atol: 1e-7 },
    { name: 'sigmoid special', inputs: { out, a: special }, outputs: ['out'], call: (be, v) => be.sigmoid(v.out, v.a, n), rtol: 2e-6, atol: 1e-7 },
    { name: 'logSigmoid special', inputs: { out, a: special }, outputs: ['out'], call: (be, v) => be.logSigmoid(v.out, v.a, n), rtol: 2e-6, atol: 1e-7 },
    { name: 'clamp special', inputs: { out, a: special }, outputs: ['out'], call: (be, v) => be.clamp(v.out, v.a, -1, 2, n), rtol: 0, atol: 0 },
  ];
  run(cases);
});

test('native glue rejects short arrays, wrong types and out-of-range indices', skip, () => {
  const f = (n: number) => new Float32Array(n);
  assert.throws(() => addon.add(f(3), f(4), f(4), 4), /add: out has 3 elements, needs at least 4/);
  assert.throws(() => addon.add(new Float64Array(4), f(4), f(4), 4), TypeError);
  assert.throws(() => addon.rmsnormForward(f(6), f(1), f(6), f(3), 2, 3, 1e-5), /rmsnormForward: rstd/);
  assert.throws(() => addon.crossEntropyForward(f(2), f(2), f(6), Int32Array.from([0, 3]), 2, 3), /target 3 at position 1/);
  assert.throws(() => addon.embeddingForward(f(4), Int32Array.from([0, 2]), f(4), 2, 2), /id 2 at position 1/);
  assert.throws(() => addon.ropeForward(f(8), f(8), f(2), f(2), 1, 2, 1, 4, null), /rotary tables/);
  assert.throws(() => addon.attentionForward(f(8), null, f(8), f(8), f(8), 1, 1, 1, 3, 2, 8, 1, null), /multiple of nKvHead/);
  assert.throws(() => addon.attentionForward(f(8), null, f(8), f(8), f(8), 1, 1, 1, 1, 1, 8, 1, new Int32Array(0)), /lens/);
  assert.throws(() => addon.adamw(f(1), f(1), f(1), f(1), 1, 1e-3, 0.9, 0.999, 1e-8, 0, 0), /step counts from 1/);
  assert.throws(() => addon.sum(f(1)), /expected 2 arguments/);
});
