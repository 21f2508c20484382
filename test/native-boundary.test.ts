// The native boundary: every function the addon exports, called with bad sizes and bad arrays, must throw a TypeError or
// RangeError that names it, never abort the process or touch memory outside the arrays it was given. A table holds one
// valid call per entry point (checked to succeed first); from it the test derives, for each size argument, the values
// -1, 1.5, NaN, "2", 2^47 and 2^40, for each typed array an empty one and a Float64Array, and for each pair of sizes
// 2^32 x 2^32 (a product that wraps to 0 in unchecked 64-bit arithmetic: the saturating products must refuse it),
// and all sizes at once.
// The table must list exactly the exported names, so a new entry point cannot slip past. A child process with
// CHATWRIGHT_TEST_FAIL_ALLOC=1 (every scratch allocation fails) sees each GEMM path (the low-precision prefill too) and
// attention throw an Error with a hint, and lives on.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { nativeSkip } from './helpers.js';

const addonPath = fileURLToPath(new URL('../../native/build/chatwright.node', import.meta.url));
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const addon: any = existsSync(addonPath) ? createRequire(import.meta.url)(addonPath) : null;
const skip = nativeSkip('native-boundary', addon ? false : 'native/build/chatwright.node is not built (run `npm run build:native`)');

type Arg = Float32Array | Int32Array | Uint16Array | Uint8Array | number | boolean | null;
interface Entry { args: () => Arg[]; sizes: number[] }

const f = (n: number) => Float32Array.from({ length: n }, (_, i) => ((i % 7) - 3) / 4);
const ints = (...xs: number[]) => Int32Array.from(xs);
const binary: Entry = { args: () => [f(5), f(5), f(5), 5], sizes: [3] };
const unary: Entry = { args: () => [f(5), f(5), 5], sizes: [2] };
const twoScalars: Entry = { args: () => [f(5), f(5), 0.5, 1.5, 5], sizes: [4] };

// One valid call per entry point (small sizes, every array exactly long enough) and which arguments are sizes.
const TABLE: Record<string, Entry> = {
  // B 1, Tq 2, Tk 2, nHead 2, nKvHead 1, headDim 4
  attentionForward: { args: () => [f(16), f(4), f(16), f(8), f(8), 1, 2, 2, 2, 1, 4, 0.5, ints(2)], sizes: [5, 6, 7, 8, 9, 10] },
  attentionBackward: {
    args: () => [f(16), f(8), f(8), f(16), f(16), f(4), f(16), f(8), f(8), 1, 2, 2, 1, 4, 0.5], sizes: [9, 10, 11, 12, 13],
  },
  rmsnormForward: { args: () => [f(6), f(2), f(6), f(3), 2, 3, 1e-5], sizes: [4, 5] },
  rmsnormBackward: { args: () => [f(6), f(3), f(6), f(6), f(3), f(2), 2, 3], sizes: [6, 7] },
  // (sum, out, rstd, x, y, w, N 2, C 3, eps)
  residualRmsnormForward: { args: () => [f(6), f(6), f(2), f(6), f(6), f(3), 2, 3, 1e-5], sizes: [6, 7] },
  layernormForward: { args: () => [f(6), f(2), f(2), f(6), f(3), f(3), 2, 3, 1e-5], sizes: [6, 7] },
  layernormBackward: { args: () => [f(6), f(3), f(3), f(6), f(6), f(3), f(2), f(2), 2, 3], sizes: [8, 9] },
  ropeForward: { args: () => [f(8), f(8), f(4), f(4), 1, 2, 1, 4, null], sizes: [4, 5, 6, 7] },
  ropeBackward: { args: () => [f(8), f(8), f(4), f(4), 1, 2, 1, 4, ints(0)], sizes: [4, 5, 6, 7] },
  swigluForward: { args: () => [f(5), f(5), f(5), 5], sizes: [3] },
  swigluBackward: { args: () => [f(5), f(5), f(5), f(5), f(5), 5], sizes: [5] },
  geluForward: { args: () => [f(5), f(5), 5], sizes: [2] },
  geluBackward: { args: () => [f(5), f(5), f(5), 5], sizes: [3] },
  softmaxForward: { args: () => [f(6), f(6), 2, 3], sizes: [2, 3] },
  softmaxBackward: { args: () => [f(6), f(6), f(6), 2, 3], sizes: [3, 4] },
  crossEntropyForward: { args: () => [f(2), f(2), f(6), ints(0, 2), 2, 3], sizes: [4, 5] },
  crossEntropyBackward: { args: () => [f(6), f(2), f(6), f(2), ints(0, -1), 2, 3], sizes: [5, 6] },
  embeddingForward: { args: () => [f(6), ints(0, 1), f(6), 2, 3], sizes: [3, 4] },
  embeddingBackward: { args: () => [f(6), f(6), ints(1, 1), 2, 3], sizes: [3, 4] },
  adamw: { args: () => [f(4), f(4), f(4), f(4), 4, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1], sizes: [4, 10] },
  addBias: { args: () => [f(6), f(6), f(3), 2, 3], sizes: [3, 4] },
  sumRows: { args: () => [f(3), f(6), 2, 3], sizes: [2, 3] },
  sum: { args: () => [f(5), 5], sizes: [1] },
  sumSquares: { args: () => [f(5), 5], sizes: [1] },
  add: binary, sub: binary, mul: binary, div: binary, minimum: binary, maximum: binary,
  exp: unary, log: unary, sigmoid: unary, logSigmoid: unary,
  scaleShift: twoScalars, clamp: twoScalars,
  axpy: { args: () => [f(5), 0.5, f(5), 5], sizes: [3] },
  where: { args: () => [f(5), f(5), f(5), f(5), 5], sizes: [4] },
  fill: { args: () => [f(5), 2, 5], sizes: [2] },
  // M 2, N 3, K 4, batch 2 with explicit strides
  gemm: { args: () => [f(12), f(16), f(24), 2, 3, 4, false, false, 1, 0, 2, 8, 12, 6], sizes: [3, 4, 5, 10, 11, 12, 13] },
  // the same arguments; where the CPU lacks AVX512_BF16 the valid call throws an Error saying so (checked below)
  gemmMixedBf16: { args: () => [f(12), f(16), f(24), 2, 3, 4, false, false, 1, 0, 2, 8, 12, 6], sizes: [3, 4, 5, 10, 11, 12, 13] },
  // C (M 2, N 3) = A (2, 32) @ W^T, W (3, 32): bf16 as uint16, q8_0 as 3 rows of one 34-byte block
  gemmBf16: { args: () => [f(6), f(64), new Uint16Array(96), 2, 3, 32], sizes: [3, 4, 5] },
  gemmQ8_0: { args: () => [f(6), f(64), new Uint8Array(102), 2, 3, 32], sizes: [3, 4, 5] },
  fmaPeak: { args: () => [0.01], sizes: [] }, // its bad values are checked below
  bf16Peak: { args: () => [0.01], sizes: [] }, // 0 where the CPU lacks AVX512_BF16; bad values checked below
  hasBf16Gemm: { args: () => [], sizes: [] },
  setNumThreads: { args: () => [1], sizes: [] }, // above 256 it clamps (by design); its bad values are checked below
  setCpuLevel: { args: () => [0], sizes: [] },
  cpuLevel: { args: () => [], sizes: [] },
  cpuLevelName: { args: () => [], sizes: [] },
  numThreads: { args: () => [], sizes: [] },
};

// The thrown error: a TypeError or RangeError whose message starts with the function's name.
function refused(name: string, args: unknown[], what: string): string | null {
  try {
    addon[name](...args);
  } catch (e) {
    if ((e instanceof TypeError || e instanceof RangeError) && (e as Error).message.startsWith(`${name}:`)) return null;
    return `${name} ${what}: threw ${(e as Error).name}: ${(e as Error).message}`;
  }
  return `${name} ${what}: did not throw`;
}

test('the table lists every exported entry point, and each valid call succeeds', skip, () => {
  assert.deepEqual(Object.keys(addon).filter((k) => typeof addon[k] === 'function').sort(), Object.keys(TABLE).sort());
  const threads = addon.numThreads(), level = addon.cpuLevel();
  try {
    for (const [name, e] of Object.entries(TABLE)) {
      if (name === 'gemmMixedBf16' && !addon.hasBf16Gemm()) assert.throws(() => addon[name](...e.args()), /^Error: gemmMixedBf16: .*AVX512_BF16.*HINT/);
      else assert.doesNotThrow(() => addon[name](...e.args()), name);
    }
  } finally {
    addon.setNumThreads(threads);
    addon.setCpuLevel(level);
  }
});

test('bad sizes, short or mistyped arrays and overflowing size products are refused with a TypeError/RangeError', skip, () => {
  const problems: string[] = [];
  let calls = 0;
  const threads = addon.numThreads();
  try {
    for (const [name, e] of Object.entries(TABLE)) {
      const valid = e.args();
      const bad = (i: number, v: unknown, what: string) => {
        const args = valid.slice() as unknown[];
        args[i] = v;
        calls++;
        const p = refused(name, args, what);
        if (p) problems.push(p);
      };
      for (const i of e.sizes) {
        for (const v of [-1, 1.5, NaN, '2', 2 ** 47, 2 ** 40]) bad(i, v, `argument ${i} = ${String(v)}`);
      }
      valid.forEach((a, i) => {
        if (a instanceof Float32Array) {
          bad(i, new Float32Array(0), `argument ${i} empty`);
          bad(i, new Float64Array(a.length), `argument ${i} a Float64Array`);
        } else if (a instanceof Int32Array) {
          bad(i, new Int32Array(0), `argument ${i} empty`);
        } else if (a instanceof Uint16Array || a instanceof Uint8Array) {
          bad(i, a.subarray(0, 0), `argument ${i} empty`);
          bad(i, new Float32Array(a.length), `argument ${i} a Float32Array`);
        }
      });
      // 2^32 * 2^32 = 2^64 wraps to 0 in unchecked int64 arithmetic, which would pass any length check: every pair of
      // sizes, and all of them at once (GEMM's three operands each need a product of two of M, N, K)
      const huge = (which: number[]) => {
        const args = valid.slice() as unknown[];
        for (const i of which) args[i] = 2 ** 32;
        calls++;
        const p = refused(name, args, `arguments ${which.join(', ')} = 2^32`);
        if (p) problems.push(p);
      };
      for (let x = 0; x < e.sizes.length; x++) for (let y = x + 1; y < e.sizes.length; y++) huge([e.sizes[x], e.sizes[y]]);
      if (e.sizes.length > 2) huge(e.sizes);
      if (name === 'gemm' || name === 'gemmMixedBf16') huge([3, 4, 5]);
      if (name === 'setNumThreads') for (const v of [0, -1, 1.5, NaN, '2']) bad(0, v, `= ${String(v)}`);
      if (name === 'fmaPeak' || name === 'bf16Peak') for (const v of [0, -1, NaN, 61, '2']) bad(0, v, `= ${String(v)}`);
      calls++;
      const p = refused(name, valid.slice(0, Math.max(0, valid.length - 1)), 'with its last argument missing');
      // gemm's last four arguments are optional (gemmMixedBf16's too), and fmaPeak's and bf16Peak's only one
      if (p && valid.length > 0 && !['gemm', 'gemmMixedBf16', 'fmaPeak', 'bf16Peak'].includes(name)) problems.push(p);
    }
  } finally {
    addon.setNumThreads(threads);
  }
  console.log(`# ${calls} bad calls over ${Object.keys(TABLE).length} entry points`);
  assert.deepEqual(problems, []);
});

test('out of scratch memory (CHATWRIGHT_TEST_FAIL_ALLOC=1): every GEMM path and attention throw, the process lives', skip, () => {
  // shapes that reach each path of native/gemm.c: blocked, decode-shaped (M <= 4), few columns (N <= 4), split K,
  // shared packed B (2 threads, M >= N >= 256), a batch; then attention forward and backward
  const script = `
    const addon = require(${JSON.stringify(addonPath)});
    addon.setNumThreads(2);
    const f = (n) => new Float32Array(n).fill(0.5);
    const g = (M, N, K) => () => addon.gemm(f(M * N), f(M * K), f(K * N), M, N, K, false, false, 1, 0);
    const calls = {
      blocked: g(64, 64, 64), decode: g(2, 512, 256), fewColumns: g(512, 2, 256), splitK: g(64, 64, 2048),
      sharedB: g(1024, 512, 512),
      batch: () => addon.gemm(f(2 * 64 * 64), f(2 * 64 * 64), f(2 * 64 * 64), 64, 64, 64, false, false, 1, 0, 2),
      prefillQ8_0: () => addon.gemmQ8_0(f(64 * 64), f(64 * 64), new Uint8Array(64 * 2 * 34), 64, 64, 64),
      prefillBf16: () => addon.gemmBf16(f(64 * 64), f(64 * 64), new Uint16Array(64 * 64), 64, 64, 64),
      ...(addon.hasBf16Gemm() ? {
        mixedBf16: () => addon.gemmMixedBf16(f(64 * 64), f(64 * 64), f(64 * 64), 64, 64, 64, false, true, 1, 0),
        mixedBf16SplitK: () => addon.gemmMixedBf16(f(64 * 64), f(2048 * 64), f(2048 * 64), 64, 64, 2048, true, false, 1, 0),
        mixedBf16SharedB: () => addon.gemmMixedBf16(f(1024 * 512), f(1024 * 512), f(512 * 512), 1024, 512, 512, false, false, 1, 0),
      } : {}),
      attentionForward: () => addon.attentionForward(f(2 * 64 * 2 * 16), null, f(2 * 64 * 2 * 16), f(2 * 64 * 16), f(2 * 64 * 16), 2, 64, 64, 2, 1, 16, 0.25, null),
      attentionBackward: () => addon.attentionBackward(f(2 * 64 * 2 * 16), f(2 * 64 * 16), f(2 * 64 * 16), f(2 * 64 * 2 * 16), f(2 * 64 * 2 * 16), f(2 * 2 * 64), f(2 * 64 * 2 * 16), f(2 * 64 * 16), f(2 * 64 * 16), 2, 64, 2, 1, 16, 0.25),
    };
    const out = {};
    for (const [k, fn] of Object.entries(calls)) {
      try { fn(); out[k] = 'no error'; } catch (e) { out[k] = e.constructor.name + ': ' + e.message; }
    }
    console.log(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', script], { env: { ...process.env, CHATWRIGHT_TEST_FAIL_ALLOC: '1' }, encoding: 'utf8' });
  assert.equal(r.status, 0, `the child died (status ${r.status}, signal ${r.signal}): ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim()) as Record<string, string>;
  for (const [k, msg] of Object.entries(out)) {
    assert.match(msg, /^(Error|RangeError): (gemm|gemmQ8_0|gemmBf16|gemmMixedBf16|attentionForward|attentionBackward): out of memory.*HINT|smaller batch/i, `${k}: ${msg}`);
  }
});
