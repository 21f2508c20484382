// Shared test helpers (not a test file).
import { spawnSync } from 'node:child_process';
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';

// A seeded uniform generator in [0, 1) for random test inputs: mulberry32 (Tommy Ettinger), small and fast; test inputs
// need reproducibility, not statistical quality.
export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// n values uniform in [-1, 1) from a generator made by rng().
export function randArray(n: number, next: () => number): Float32Array {
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) x[i] = 2 * next() - 1;
  return x;
}

// Why this Node cannot start a copy of itself, or '' when it can. Under qemu user-mode emulation without binfmt_misc
// (scripts/test-arm64.mjs) an arm64 process.execPath cannot be executed by the host: tests that need a child process
// skip there, saying so.
let spawnCheck: string | undefined;
export function cannotSpawnNode(): string {
  if (spawnCheck === undefined) {
    const r = spawnSync(process.execPath, ['-e', 'process.exit(0)'], { encoding: 'utf8' });
    spawnCheck = r.status === 0 ? '' : `this Node cannot start a child process of itself (${(r.stderr || String(r.error)).trim().split('\n')[0]})`;
  }
  return spawnCheck;
}

// ---- tests of the native backend: skip when it is absent, FAIL when it is required
// CI (the CI variable set to anything but "" / "0" / "false", as CI services do) and CHATWRIGHT_REQUIRE_NATIVE=1 require
// the native backend, as native/build.mjs does: there a missing addon is a failure, not a skip, so a broken kernel
// cannot land green.
export function nativeRequired(env: NodeJS.ProcessEnv = process.env): boolean {
  const ci = env.CI;
  return env.CHATWRIGHT_REQUIRE_NATIVE === '1' || (ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false');
}

const requiredBy = 'the native backend is required here (CI or CHATWRIGHT_REQUIRE_NATIVE=1)';

// The `skip` option of a file's native tests: false when the addon is there; otherwise the reason, and when native is
// required one failing test that says why.
export function nativeSkip(file: string, reason: string | false): { skip: string | false } {
  if (!reason) return { skip: false };
  if (nativeRequired()) test(`${file}: ${requiredBy}`, () => assert.fail(`${requiredBy}, but ${reason}`));
  else console.log(`# SKIP ${file}: ${reason}`);
  return { skip: reason };
}

// Inside a running test: skip it (saying why), or fail it when native is required.
export function skipNative(t: TestContext, reason: string): void {
  if (nativeRequired()) assert.fail(`${requiredBy}, but ${reason}`);
  console.log(`# SKIP ${reason}`);
  t.skip(reason);
}
