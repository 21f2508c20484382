// The native GEMM against a plain triple loop in float64, at every CPU dispatch level (scalar, AVX2, AVX-512) and
// with 1 and 2 threads, on shapes that are not multiples of any tile (1, 7, 33, 65, 127, 129, 257, ...): the
// decode-shaped path (M = 1..4), K = 1, several K / M / N cache blocks, every transpose, beta 0 over a NaN-filled C,
// beta 1, alpha != 1, batches with padded and zero strides, and subarray views.
// Tolerance: |C - ref| <= 3e-5 * (|alpha| * sum_p |op(A)[i,p]| |op(B)[p,j]| + |beta * C0|), the float32 rounding
// bound of a K-term dot product with margin (a wrong index or a dropped block gives errors of order 1 on that scale).
// When the addon is absent the tests skip and say why (and fail where native is required: CI); never pass silently.
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Backend } from '../src/tensor/backend.js';
import { CPU_LEVEL_NAMES, loadNativeBackend, nativeControls, nativeLoadError } from '../src/tensor/backend-native.js';
import { cannotSpawnNode, nativeSkip, rng, randArray as randArrayOf } from './helpers.js';

const be: Backend | null = loadNativeBackend();

// ---- deterministic random data, values in [-1, 1)
const next = rng(12345);
const randArray = (n: number): Float32Array => randArrayOf(n, next);

interface Case {
  M: number; N: number; K: number; transA: boolean; transB: boolean; alpha: number; beta: number;
  batch: number; strideA: number; strideB: number; strideC: number;
  A: Float32Array; B: Float32Array; C0: Float32Array; ref: Float64Array; bound: Float64Array;
}

function makeCase(M: number, N: number, K: number, transA: boolean, transB: boolean, alpha: number, beta: number,
  batch = 1, padA = 0, padB = 0, padC = 0, shareB = false): Case {
  const strideA = M * K + padA, strideB = shareB ? 0 : K * N + padB, strideC = M * N + padC;
  const A = randArray((batch - 1) * strideA + M * K);
  const B = randArray((batch - 1) * strideB + K * N);
  const C0 = randArray((batch - 1) * strideC + M * N);
  if (beta === 0) C0.fill(NaN); // beta 0 must never read C
  const ref = new Float64Array(C0.length).fill(NaN);
  const bound = new Float64Array(C0.length);
  for (let b = 0; b < batch; b++) {
    const oa = b * strideA, ob = b * strideB, oc = b * strideC;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0, abs = 0;
        for (let p = 0; p < K; p++) {
          const a = transA ? A[oa + p * M + i] : A[oa + i * K + p];
          const bb = transB ? B[ob + j * K + p] : B[ob + p * N + j];
          s += a * bb;
          abs += Math.abs(a * bb);
        }
        const c0 = beta === 0 ? 0 : beta * C0[oc + i * N + j];
        ref[oc + i * N + j] = alpha * s + c0;
        bound[oc + i * N + j] = 3e-5 * (Math.abs(alpha) * abs + Math.abs(c0)) + 1e-30;
      }
    }
  }
  return { M, N, K, transA, transB, alpha, beta, batch, strideA, strideB, strideC, A, B, C0, ref, bound };
}

// Returns '' when every element is within its bound, else a description of the first failure.
function check(c: Case, label: string): string {
  const C = c.C0.slice();
  be!.gemm(C, c.A, c.B, c.M, c.N, c.K, c.transA, c.transB, c.alpha, c.beta, c.batch, c.strideA, c.strideB, c.strideC);
  for (let b = 0; b < c.batch; b++) {
    for (let e = 0; e < c.M * c.N; e++) {
      const k = b * c.strideC + e;
      const err = Math.abs(C[k] - c.ref[k]);
      if (!(err <= c.bound[k])) {
        return `${label} M=${c.M} N=${c.N} K=${c.K} transA=${c.transA} transB=${c.transB} alpha=${c.alpha} ` +
          `beta=${c.beta} batch=${c.batch}: C[${k}] = ${C[k]}, expected ${c.ref[k]} (error ${err.toExponential(2)} > ` +
          `${c.bound[k].toExponential(2)})`;
      }
    }
    // Padding between the batch's C blocks is untouched.
    for (let e = c.M * c.N; b < c.batch - 1 && e < c.strideC; e++) {
      const k = b * c.strideC + e;
      if (!Object.is(C[k], c.C0[k])) return `${label}: gemm wrote into the padding between batch items at C[${k}]`;
    }
  }
  return '';
}

// (M, N, K): decode shapes, K = 1, tails of every tile size, several K blocks (K > 384), several M blocks (M > 336),
// several N blocks (N > 768), and products large enough to be split over threads (2 M N K >= 3e6).
const SHAPES: [number, number, number][] = [
  [1, 1, 1], [1, 257, 33], [2, 129, 65], [3, 65, 127], [4, 1000, 7], [4, 300, 257], [1, 33, 600],
  [7, 33, 65], [33, 7, 1], [65, 129, 1], [300, 3, 70], [129, 1, 257], [5, 4200, 3], [400, 40, 20], [37, 41, 800],
  [9, 1100, 5], [4100, 9, 5],
  [127, 129, 257], [129, 127, 33], [257, 65, 129], [300, 70, 50], [50, 300, 70],
];

function buildCases(): Case[] {
  const cases: Case[] = [];
  for (const [M, N, K] of SHAPES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        cases.push(makeCase(M, N, K, transA, transB, 1, 0));
        cases.push(makeCase(M, N, K, transA, transB, -0.75, 1));
      }
    }
  }
  // batched: padded strides, a shared B (stride 0), decode-shaped items, and a general beta
  cases.push(makeCase(17, 19, 23, false, true, 1, 0, 3, 5, 7, 3));
  cases.push(makeCase(17, 19, 23, true, false, 0.5, 1, 4, 0, 0, 0, true));
  cases.push(makeCase(2, 50, 40, false, true, 1, 0, 3, 1, 2, 3));
  cases.push(makeCase(33, 65, 129, true, true, 2, 0.5, 2, 0, 0, 0));
  return cases;
}

const LEVEL_NAMES = [...CPU_LEVEL_NAMES, 'avx512'].slice(0, 3); // the third is never there on arm64: skipped

const skip = nativeSkip('native-gemm', be ? false : `native addon unavailable: ${nativeLoadError()}`);

test('native gemm matches a float64 triple loop at every dispatch level, with 1 and 2 threads', skip, async (t) => {
  const cases = buildCases();
  const initialLevel = nativeControls.cpuLevel();
  const initialThreads = nativeControls.numThreads();
  try {
    for (let level = 0; level <= 2; level++) {
      for (const threads of [1, 2]) {
        await t.test(`${LEVEL_NAMES[level]}, ${threads} thread(s)`, (tt) => {
          const got = nativeControls.setCpuLevel(level);
          if (got !== level) {
            const reason = `this CPU does not support ${LEVEL_NAMES[level]} (level in force: ${LEVEL_NAMES[got]})`;
            console.log(`# SKIP native-gemm ${LEVEL_NAMES[level]}: ${reason}`);
            tt.skip(reason);
            return;
          }
          assert.equal(nativeControls.setNumThreads(threads), threads);
          const failures = cases.map((c) => check(c, `${LEVEL_NAMES[level]}/${threads}t`)).filter((f) => f !== '');
          assert.deepEqual(failures.slice(0, 5), []);
        });
      }
    }
  } finally {
    nativeControls.setCpuLevel(initialLevel);
    nativeControls.setNumThreads(initialThreads);
  }
});

test('native gemm: subarray views, determinism across runs, and argument errors', skip, () => {
  // A view into a larger buffer: the addon must honour the byte offset.
  const M = 37, N = 45, K = 29;
  const c = makeCase(M, N, K, false, true, 1, 0);
  const bigA = new Float32Array(M * K + 11);
  bigA.set(c.A, 11);
  const bigC = new Float32Array(M * N + 3).fill(7);
  const viewC = bigC.subarray(3);
  be!.gemm(viewC, bigA.subarray(11), c.B, M, N, K, false, true, 1, 0);
  for (let k = 0; k < M * N; k++) assert.ok(Math.abs(viewC[k] - c.ref[k]) <= c.bound[k], `view: C[${k}]`);
  assert.deepEqual([...bigC.subarray(0, 3)], [7, 7, 7]);

  // The same product twice (threaded size) gives bitwise the same result.
  const d = makeCase(160, 150, 140, false, false, 1, 0);
  const C1 = new Float32Array(160 * 150), C2 = new Float32Array(160 * 150);
  be!.gemm(C1, d.A, d.B, 160, 150, 140, false, false, 1, 0);
  be!.gemm(C2, d.A, d.B, 160, 150, 140, false, false, 1, 0);
  assert.deepEqual(C1, C2);

  assert.throws(() => be!.gemm(new Float64Array(4), new Float32Array(4), new Float32Array(4), 2, 2, 2, false, false, 1, 0),
    (e: Error) => e instanceof TypeError && /gemm/.test(e.message) && /\bC\b/.test(e.message) && /Float64Array/.test(e.message));
  assert.throws(() => be!.gemm(new Float32Array(4), new Float32Array(3), new Float32Array(4), 2, 2, 2, false, false, 1, 0),
    (e: Error) => e instanceof RangeError && /gemm/.test(e.message) && /\bA\b/.test(e.message));
});

test('CHATWRIGHT_CPU=scalar and CHATWRIGHT_THREADS=1 in a child process give level 0 and 1 thread', skip, (t) => {
  if (cannotSpawnNode()) {
    t.skip(cannotSpawnNode());
    return;
  }
  const modPath = fileURLToPath(new URL('../src/tensor/backend-native.js', import.meta.url));
  const script = `import(${JSON.stringify(modPath)}).then((m) => { m.loadNativeBackend(); ` +
    'console.log(JSON.stringify([m.nativeControls.cpuLevel(), m.nativeControls.numThreads()])); })';
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    env: { ...process.env, CHATWRIGHT_CPU: 'scalar', CHATWRIGHT_THREADS: '1' },
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim()), [0, 1]);
});

test('fmaPeak: the measured FMA rate of one core at each level is a positive rate; bad durations are RangeErrors', skip, () => {
  const initial = nativeControls.cpuLevel();
  try {
    for (let level = 0; level <= 2; level++) {
      if (nativeControls.setCpuLevel(level) !== level) continue;
      const g = nativeControls.fmaPeak(0.03);
      assert.ok(Number.isFinite(g) && g > 0.1 && g < 1e5, `${LEVEL_NAMES[level]}: ${g} GFLOP/s`);
    }
  } finally {
    nativeControls.setCpuLevel(initial);
  }
  assert.throws(() => nativeControls.fmaPeak(0), (e: Error) => e instanceof RangeError && /fmaPeak: seconds/.test(e.message));
  assert.throws(() => nativeControls.fmaPeak(-1), RangeError);
});
