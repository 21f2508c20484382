// bf16 mixed precision: the rounding (quant.ts bf16Round) on hand-picked values; the native gemmMixedBf16 (AVX512_BF16,
// native/gemm_bf16.c) against the JS reference on shapes that are not multiples of any tile (odd K included), every
// transpose form, alpha and beta, batches with padded and zero strides, 1 and 2 threads, and each driver path (blocked,
// M <= 4, N <= 4, split K, shared packed B); that it is not the float32 product; that a tiny GPT trained in bf16 tracks
// the same run in fp32; and that the CLI refuses bf16 with one error line and a hint where it cannot run.
//
// Tolerance of native against the reference: both round the same inputs the same way (the rounding is checked apart,
// and any other rounding shows as errors near 2^-9 of the terms), and a product of two bf16 values is exact in float32,
// so they differ only in the order and precision of the sums: the reference sums in float64, the native kernel in
// float32 over K products (vdpbf16ps adds two per instruction, each rounded), the K blocks into C, and split K's
// second half. Higham's bound for a recursive float32 sum of n terms (Accuracy and Stability of Numerical Algorithms,
// 2nd ed., eq. 4.4) is (n - 1) u sum |terms| with u = 2^-24, here n <= K + 3: so |C - ref| <= (K + 3) 2^-24
// (|alpha| sum_p |a_p b_p| + |beta C0|), with a and b the rounded inputs. Random-sign sums land far inside it (about
// sqrt(K) u); a float32 product of the unrounded inputs lands far outside it (checked).
// On CPUs without AVX512_BF16 the native tests skip and say why (CI included: no runner is promised the extension).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bf16Round } from '../src/tensor/quant.js';
import { jsBackend } from '../src/tensor/backend-js.js';
import { loadNativeBackend, nativeControls } from '../src/tensor/backend-native.js';
import { setBackend, setMatmulPrecision, releaseTape, type MatmulPrecision } from '../src/tensor/index.js';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset } from '../src/model/config.js';
import { AdamW } from '../src/train/optim.js';
import { Rng } from '../src/util/rng.js';
import { cannotSpawnNode, rng, randArray as randArrayOf } from './helpers.js';

const be = loadNativeBackend();
const noBf16 = !be ? 'the native addon is not built' : !nativeControls.hasBf16Gemm()
  ? `this CPU has no AVX512_BF16 at the dispatch level in force (${nativeControls.cpuLevelName()})` : false;
if (noBf16) console.log(`# SKIP native-gemm-bf16 (native product and bf16 training): ${noBf16}`);
const skip = { skip: noBf16 };

const next = rng(4242);
const randArray = (n: number): Float32Array => randArrayOf(n, next);

test('bf16Round: nearest even, denormals to signed zero, NaN and infinities kept (vcvtne2ps2bf16)', () => {
  const u = 2 ** -7; // the spacing of bf16 values in [1, 2)
  assert.equal(bf16Round(1 + u / 2), 1); // a tie: to the even neighbour, 1
  assert.equal(bf16Round(1 + (3 * u) / 2), 1 + 2 * u); // a tie: to the even neighbour, 1 + 2u
  assert.equal(bf16Round(1 + u / 2 + 2 ** -20), 1 + u); // above the tie: up
  assert.equal(bf16Round(-(1 + u / 2 - 2 ** -20)), -1); // below the tie: down, sign kept
  assert.equal(bf16Round(0.1), 0.10009765625);
  assert.ok(Object.is(bf16Round(1e-40), 0) && Object.is(bf16Round(-1e-40), -0)); // float32 denormals
  assert.ok(Number.isNaN(bf16Round(NaN)));
  assert.equal(bf16Round(Infinity), Infinity);
  assert.equal(bf16Round(3.4e38), Infinity); // past the largest bf16: overflows as a rounding up should
});

interface Case { M: number; N: number; K: number; tA: boolean; tB: boolean; alpha: number; beta: number; batch?: number; padA?: number; padB?: number; shareB?: boolean }

// native vs the JS reference on one case; returns the worst |C - ref| / bound (<= 1 passes), and that of the float32
// product against the same reference (for the test that bf16 is not float32)
function compare(c: Case): { bf16: number; f32: number } {
  const { M, N, K, tA, tB, alpha, beta } = c, batch = c.batch ?? 1;
  const sA = M * K + (c.padA ?? 0), sB = c.shareB ? 0 : K * N + (c.padB ?? 0), sC = M * N;
  const A = randArray((batch - 1) * sA + M * K), B = randArray((batch - 1) * sB + K * N), C0 = randArray(batch * sC);
  if (beta === 0) C0.fill(NaN); // beta 0 must never read C
  const ref = C0.slice(), got = C0.slice(), f32 = C0.slice(), bound = new Float32Array(batch * sC);
  jsBackend.gemmMixedBf16(ref, A, B, M, N, K, tA, tB, alpha, beta, batch, sA, sB, sC);
  be!.gemmMixedBf16(got, A, B, M, N, K, tA, tB, alpha, beta, batch, sA, sB, sC);
  be!.gemm(f32, A, B, M, N, K, tA, tB, alpha, beta, batch, sA, sB, sC);
  // sum_p |a_p b_p| of the rounded inputs: the reference on |A|, |B| (rounding commutes with the sign)
  jsBackend.gemmMixedBf16(bound, A.map(Math.abs), B.map(Math.abs), M, N, K, tA, tB, Math.abs(alpha), 0, batch, sA, sB, sC);
  let worst = 0, worstF32 = 0;
  for (let i = 0; i < got.length; i++) {
    const b = (K + 3) * 2 ** -24 * (bound[i] + (beta === 0 ? 0 : Math.abs(beta * C0[i]))) + 1e-30;
    worst = Math.max(worst, Number.isNaN(got[i]) ? Infinity : Math.abs(got[i] - ref[i]) / b);
    worstF32 = Math.max(worstF32, Math.abs(f32[i] - ref[i]) / b);
  }
  return { bf16: worst, f32: worstF32 };
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1], [5, 7, 3], [3, 40, 77], [33, 2, 65], [17, 33, 9], [29, 65, 31], [15, 40, 1], [100, 70, 129], [127, 97, 255],
];

test('native gemmMixedBf16 equals the JS reference: odd shapes, every transpose, alpha and beta, 1 and 2 threads', skip, () => {
  const threads = nativeControls.numThreads();
  const fails: string[] = [];
  let worst = 0, cases = 0;
  try {
    for (const t of [1, 2]) {
      nativeControls.setNumThreads(t);
      for (const [M, N, K] of SHAPES) {
        for (const tA of [false, true]) for (const tB of [false, true]) {
          for (const [alpha, beta] of [[1, 0], [0.7, 1], [1, 0.5], [-2, 0]]) {
            const r = compare({ M, N, K, tA, tB, alpha, beta });
            cases++;
            worst = Math.max(worst, r.bf16);
            if (!(r.bf16 <= 1)) fails.push(`${M}x${N}x${K} tA=${tA} tB=${tB} alpha=${alpha} beta=${beta} ${t} thread(s): ${r.bf16.toFixed(2)} x the bound`);
          }
        }
      }
    }
  } finally {
    nativeControls.setNumThreads(threads);
  }
  console.log(`# ${cases} cases, worst error ${worst.toFixed(4)} x the bound`);
  assert.deepEqual(fails, []);
});

test('native gemmMixedBf16: every driver path (split K, shared packed B, several K blocks) and batches with strides', skip, () => {
  const threads = nativeControls.numThreads();
  const cases: [string, Case][] = [
    ['split K (small output, K >= 1024, odd K)', { M: 40, N: 70, K: 1537, tA: true, tB: false, alpha: 1, beta: 1 }],
    ['split K, weight gradient form', { M: 64, N: 128, K: 2048, tA: true, tB: false, alpha: 1, beta: 0 }],
    ['shared packed B (M >= N >= 256), two K blocks', { M: 600, N: 260, K: 1601, tA: false, tB: true, alpha: 1, beta: 0 }],
    ['several N blocks', { M: 50, N: 1700, K: 33, tA: false, tB: false, alpha: 1, beta: 1 }],
    ['batch with padded strides', { M: 9, N: 35, K: 21, tA: true, tB: true, alpha: 0.5, beta: 1, batch: 3, padA: 5, padB: 3 }],
    ['batch sharing B (stride 0)', { M: 31, N: 18, K: 47, tA: false, tB: true, alpha: 1, beta: 0, batch: 4, shareB: true }],
    ['many small products (batch over threads)', { M: 64, N: 64, K: 63, tA: false, tB: false, alpha: 1, beta: 0, batch: 12 }],
  ];
  const fails: string[] = [];
  try {
    for (const t of [1, 2]) {
      nativeControls.setNumThreads(t);
      for (const [name, c] of cases) {
        const r = compare(c);
        if (!(r.bf16 <= 1)) fails.push(`${name}, ${t} thread(s): ${r.bf16.toFixed(2)} x the bound`);
      }
    }
  } finally {
    nativeControls.setNumThreads(threads);
  }
  assert.deepEqual(fails, []);
});

test('gemmMixedBf16 is not the float32 product: fp32 GEMM misses the bf16 reference by far more than the bound', skip, () => {
  const r = compare({ M: 64, N: 48, K: 129, tA: false, tB: true, alpha: 1, beta: 0 });
  console.log(`# bf16 native ${r.bf16.toFixed(3)} x the bound; float32 product ${r.f32.toFixed(1)} x`);
  assert.ok(r.bf16 <= 1 && r.f32 > 20, `bf16 ${r.bf16}, f32 ${r.f32}`);
});

// ---- training: a tiny GPT, the same seed and batches, fp32 and bf16 side by side

function trainLosses(precision: MatmulPrecision, steps: number): number[] {
  const V = 256, B = 4, T = 32;
  const model = GPT.create(configFromPreset('tiny', V, { nLayer: 2, nEmbd: 64, nHead: 4, nKvHead: 2, intermediateSize: 128, maxSeqLen: T }), 7);
  const opt = new AdamW(model, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
  const rng = new Rng(3);
  // a learnable stream: each token is the previous one plus 1 (mod 16) most of the time
  const ids = new Int32Array(B * T), targets = new Int32Array(B * T);
  const was = setMatmulPrecision(precision);
  const losses: number[] = [];
  try {
    for (let s = 0; s < steps; s++) {
      for (let i = 0; i < B * T; i++) ids[i] = i % T === 0 ? rng.int(16) : rng.next() < 0.9 ? (ids[i - 1] + 1) % 16 : rng.int(V);
      for (let i = 0; i < B * T; i++) targets[i] = (i + 1) % T === 0 ? -1 : ids[i + 1];
      model.zeroGrad();
      const l = model.forward(ids, B, T, { targets }).loss!;
      losses.push(l.item());
      l.backward();
      releaseTape();
      opt.step(3e-3);
    }
  } finally {
    setMatmulPrecision(was);
  }
  return losses;
}

test('a tiny GPT trained in bf16 tracks fp32: the loss falls alike, within 0.05 nats at every step, not identical', skip, () => {
  setBackend('native');
  const steps = 40;
  const f32 = trainLosses('fp32', steps), bf16 = trainLosses('bf16', steps);
  const diffs = f32.map((x, i) => Math.abs(bf16[i] - x));
  console.log(`# loss fp32 ${f32[0].toFixed(3)} -> ${f32[steps - 1].toFixed(3)}, bf16 ${bf16[0].toFixed(3)} -> ${bf16[steps - 1].toFixed(3)}; ` +
    `largest step difference ${Math.max(...diffs).toFixed(4)}`);
  assert.ok(f32[steps - 1] < f32[0] - 1.5, `fp32 did not learn: ${f32[0]} -> ${f32[steps - 1]}`);
  // bf16 inputs carry ~3 significant digits: the losses must move apart a little (else bf16 never ran) and stay close
  assert.ok(Math.max(...diffs) > 1e-5, 'the bf16 losses equal the fp32 ones: the bf16 GEMM never ran');
  assert.ok(Math.max(...diffs) < 0.05, `bf16 strays from fp32 by ${Math.max(...diffs)} nats`);
});

test('the CLI refuses --precision bf16 where it cannot run: one error line naming AVX512_BF16, a hint, exit 2', { skip: cannotSpawnNode() || false }, () => {
  const main = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
  const dir = mkdtempSync(join(tmpdir(), 'cw-bf16-'));
  try {
    // avx2: below the level bf16 needs, on any x86-64 CPU (elsewhere the level is never avx512 at all)
    const r = spawnSync(process.execPath, [main, 'pretrain', '--data', join(dir, 'none'), '--out', join(dir, 'out'), '--precision', 'bf16'],
      { encoding: 'utf8', env: { ...process.env, CHATWRIGHT_CPU: process.arch === 'x64' ? 'avx2' : 'scalar' } });
    assert.equal(r.status, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 2, r.stderr);
    assert.match(lines[0], /^error: pretrain: --precision bf16 cannot run here: .*AVX512_BF16/);
    assert.match(lines[1], /^HINT: .*--precision fp32/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
