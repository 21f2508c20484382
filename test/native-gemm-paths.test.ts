// The native GEMM's special paths for small outputs over a long K (native/gemm.c: the K split in two halves, and
// B read in place without packing), against a plain triple loop in float64, at every CPU dispatch level and with 1
// and 2 threads; plus the native fill (memset / rep stosd, split over threads only past 2^20 elements per chunk).
// The shapes in test/native-gemm.test.ts never reach these paths (they need K >= 1024, M N <= 32768, and for the
// in-place B, N a multiple of 32 with B stored (K, N)), so they are checked here: the dW shapes of the tiny model
// (64 x 128, 128 x 128 over K = 2048) and tails (M = 5, 70, 131; N = 9, 96; odd K) with every transpose, beta 0
// over a NaN-filled C, beta 1 and a general beta, alpha != 1, and a view with an offset.
// Tolerance: the bound of test/native-gemm.test.ts, 3e-5 * (|alpha| sum_p |a b| + |beta C0|). The K split is fixed
// by the shape alone, so 1 and 2 threads must agree bitwise.
// When the addon is absent the tests skip and say why (and fail where native is required: CI).
import test from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../src/tensor/backend.js';
import { CPU_LEVEL_NAMES, loadNativeBackend, nativeControls, nativeLoadError } from '../src/tensor/backend-native.js';
import { nativeSkip, rng, randArray as randArrayOf } from './helpers.js';

const be: Backend | null = loadNativeBackend();
const skip = nativeSkip('native-gemm-paths', be ? false : `native addon unavailable: ${nativeLoadError()}`);

// ---- deterministic random data, values in [-1, 1)
const next = rng(987654321);
const rand = (): number => 2 * next() - 1;
const randArray = (n: number): Float32Array => randArrayOf(n, next);

interface Case {
  M: number; N: number; K: number; transA: boolean; transB: boolean; alpha: number; beta: number;
  A: Float32Array; B: Float32Array; C0: Float32Array; ref: Float64Array; bound: Float64Array;
}

function makeCase(M: number, N: number, K: number, transA: boolean, transB: boolean, alpha: number, beta: number): Case {
  const A = randArray(M * K), B = randArray(K * N), C0 = randArray(M * N);
  if (beta === 0) C0.fill(NaN); // beta 0 must never read C
  const ref = new Float64Array(M * N), bound = new Float64Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0, abs = 0;
      for (let p = 0; p < K; p++) {
        const a = transA ? A[p * M + i] : A[i * K + p];
        const b = transB ? B[j * K + p] : B[p * N + j];
        s += a * b;
        abs += Math.abs(a * b);
      }
      const c0 = beta === 0 ? 0 : beta * C0[i * N + j];
      ref[i * N + j] = alpha * s + c0;
      bound[i * N + j] = 3e-5 * (Math.abs(alpha) * abs + Math.abs(c0)) + 1e-30;
    }
  }
  return { M, N, K, transA, transB, alpha, beta, A, B, C0, ref, bound };
}

function run(c: Case): Float32Array {
  const C = c.C0.slice();
  be!.gemm(C, c.A, c.B, c.M, c.N, c.K, c.transA, c.transB, c.alpha, c.beta);
  return C;
}

function firstError(c: Case, C: Float32Array, label: string): string {
  for (let k = 0; k < C.length; k++) {
    const err = Math.abs(C[k] - c.ref[k]);
    if (!(err <= c.bound[k])) {
      return `${label} M=${c.M} N=${c.N} K=${c.K} transA=${c.transA} transB=${c.transB} alpha=${c.alpha} ` +
        `beta=${c.beta}: C[${k}] = ${C[k]}, expected ${c.ref[k]} (error ${err.toExponential(2)} > ${c.bound[k].toExponential(2)})`;
    }
  }
  return '';
}

// (M, N, K): the tiny model's weight-gradient shapes, then tails of MR = 14 / NR = 32 and of the K halves
function buildCases(): Case[] {
  const cases: Case[] = [];
  cases.push(makeCase(64, 128, 2048, true, false, 1, 1));    // dW += dY^T X: K split + B in place
  cases.push(makeCase(128, 128, 2048, true, false, 1, 0));
  cases.push(makeCase(128, 96, 1031, true, false, 1, 1));    // M N > 128 x 128 (B packed), odd K
  for (const [M, N, K] of [[70, 96, 1030], [5, 64, 1500], [131, 9, 1024], [33, 224, 1100]] as const) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        cases.push(makeCase(M, N, K, transA, transB, 1, 0));
        cases.push(makeCase(M, N, K, transA, transB, -0.75, 1));
      }
    }
  }
  cases.push(makeCase(70, 64, 1100, true, false, 0.5, 0.25)); // general beta: C scaled first, then the split
  return cases;
}

const LEVEL_NAMES = [...CPU_LEVEL_NAMES, 'avx512'].slice(0, 3); // the third is never there on arm64: skipped

test('gemm, K split and B in place: matches a float64 triple loop; 1 and 2 threads agree bitwise', skip, async (t) => {
  const cases = buildCases();
  const initialLevel = nativeControls.cpuLevel(), initialThreads = nativeControls.numThreads();
  try {
    for (let level = 0; level <= 2; level++) {
      await t.test(LEVEL_NAMES[level], (tt) => {
        if (nativeControls.setCpuLevel(level) !== level) {
          tt.skip(`this CPU does not support ${LEVEL_NAMES[level]}`);
          return;
        }
        const failures: string[] = [];
        for (const c of cases) {
          nativeControls.setNumThreads(1);
          const one = run(c);
          nativeControls.setNumThreads(2);
          const two = run(c);
          const e = firstError(c, one, `${LEVEL_NAMES[level]}/1t`) || firstError(c, two, `${LEVEL_NAMES[level]}/2t`);
          if (e) failures.push(e);
          else if (c.M * c.N <= 32768 && c.K >= 1024) {
            for (let k = 0; k < one.length; k++) {
              if (!Object.is(one[k], two[k])) {
                failures.push(`${LEVEL_NAMES[level]} M=${c.M} N=${c.N} K=${c.K}: C[${k}] differs between 1 and 2 threads`);
                break;
              }
            }
          }
        }
        assert.deepEqual(failures.slice(0, 5), []);
      });
    }
  } finally {
    nativeControls.setCpuLevel(initialLevel);
    nativeControls.setNumThreads(initialThreads);
  }
});

test('gemm, B in place through a view with an offset (unaligned rows)', skip, () => {
  const c = makeCase(64, 128, 1024, true, false, 1, 0);
  const bigB = new Float32Array(c.B.length + 3);
  bigB.set(c.B, 3);
  const C = c.C0.slice();
  be!.gemm(C, c.A, bigB.subarray(3), c.M, c.N, c.K, true, false, 1, 0);
  assert.equal(firstError(c, C, 'view'), '');
});

test('fill: every element, large (threaded) and small, zero and non-zero bit patterns', skip, () => {
  const initialThreads = nativeControls.numThreads();
  try {
    for (const threads of [1, 2]) {
      nativeControls.setNumThreads(threads);
      for (const n of [0, 1, 7, 1000, (1 << 21) + 5]) {
        for (const v of [0, -0, 1.5, -3.25e-39, NaN, Infinity, 1e300]) {
          const x = randArray(n + 2);
          const guard0 = x[0], guard1 = x[n + 1];
          be!.fill(x.subarray(1, n + 1), v, n);
          const want = Math.fround(v);
          for (let i = 1; i <= n; i++) {
            if (!Object.is(x[i], want)) assert.fail(`fill(${v}) n=${n} ${threads}t: x[${i - 1}] = ${x[i]}, expected ${want}`);
          }
          assert.ok(Object.is(x[0], guard0) && Object.is(x[n + 1], guard1), `fill(${v}) n=${n}: wrote outside the view`);
        }
      }
    }
  } finally {
    nativeControls.setNumThreads(initialThreads);
  }
});

// The threaded path for large products split along M (native/gemm.c, gemm_shared: the threads pack each B block into
// one shared buffer, then claim MC-row blocks dynamically; taken when M >= N >= 256 and 2 M N K >= 5e8 on 2+
// threads). Shapes with MR / NR / K-block tails, every transpose form training uses, beta 0 over a NaN-filled C,
// beta 1 with alpha != 1, and a general beta; 2 and 3 threads must agree bitwise with 1 thread (each element sees the
// same K blocking whichever thread runs its rows), and 4,000 sampled elements are checked against a float64 dot
// product with the bound above (the full triple loop would take seconds at these sizes).
test('gemm, shared packed B with dynamic M blocks: sampled float64 reference; 1, 2 and 3 threads agree bitwise', skip, async (t) => {
  const initialLevel = nativeControls.cpuLevel(), initialThreads = nativeControls.numThreads();
  const M = 1031, N = 291, K = 900; // 2 M N K = 5.4e8
  const forms: [boolean, boolean, number, number][] = [
    [false, true, 1, 0], [false, false, -0.75, 1], [true, false, 1, 1], [true, true, 0.5, 0.25],
  ];
  try {
    for (let level = 0; level <= 2; level++) {
      await t.test(LEVEL_NAMES[level], (tt) => {
        if (nativeControls.setCpuLevel(level) !== level) {
          tt.skip(`this CPU does not support ${LEVEL_NAMES[level]}`);
          return;
        }
        for (const [transA, transB, alpha, beta] of level === 0 ? forms.slice(0, 1) : forms) {
          const A = randArray(M * K), B = randArray(K * N), C0 = randArray(M * N);
          if (beta === 0) C0.fill(NaN);
          const out: Float32Array[] = [];
          for (const threads of [1, 2, 3]) {
            nativeControls.setNumThreads(threads);
            const C = C0.slice();
            be!.gemm(C, A, B, M, N, K, transA, transB, alpha, beta);
            out.push(C);
          }
          const label = `${LEVEL_NAMES[level]} transA=${transA} transB=${transB} alpha=${alpha} beta=${beta}`;
          for (let s = 0; s < 4000; s++) {
            const i = Math.floor((rand() + 1) / 2 * M) % M, j = Math.floor((rand() + 1) / 2 * N) % N;
            let dot = 0, abs = 0;
            for (let p = 0; p < K; p++) {
              const a = transA ? A[p * M + i] : A[i * K + p], b = transB ? B[j * K + p] : B[p * N + j];
              dot += a * b;
              abs += Math.abs(a * b);
            }
            const c0 = beta === 0 ? 0 : beta * C0[i * N + j];
            const ref = alpha * dot + c0, bound = 3e-5 * (Math.abs(alpha) * abs + Math.abs(c0)) + 1e-30;
            const err = Math.abs(out[0][i * N + j] - ref);
            if (!(err <= bound)) assert.fail(`${label}: C[${i},${j}] = ${out[0][i * N + j]}, expected ${ref} (error ${err})`);
          }
          for (const k of [1, 2]) {
            for (let e = 0; e < M * N; e++) {
              if (!Object.is(out[0][e], out[k][e])) assert.fail(`${label}: C[${e}] differs between 1 and ${k + 1} threads`);
            }
          }
        }
      });
    }
  } finally {
    nativeControls.setCpuLevel(initialLevel);
    nativeControls.setNumThreads(initialThreads);
  }
});
