// The native Backend: the C kernels of native/ (SIMD, thread pool) behind Node-API.
//
// Boundary: this file loads native/build/chatwright.node and maps each Backend method to the addon function of the
// same name and argument order (see backend.ts); it holds no math. A method the addon does not export (yet) runs
// on the JS backend, so the native backend is always complete. Native kernels take Float32Array only; a Float64Array
// argument throws a TypeError naming the method and the argument (the addon's checks, or the ones here for fallbacks).
// nativeControls exposes the CPU dispatch level (0 scalar, 1 avx2, 2 avx512) and the thread count.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Backend } from './backend.js';
import { jsBackend } from './backend-js.js';
import { UserError } from '../util/errors.js';

interface Addon {
  cpuLevel(): number;
  setCpuLevel(level: number): number;
  cpuLevelName?(): string;
  numThreads(): number;
  setNumThreads(n: number): number;
  fmaPeak?(seconds: number): number;
  bf16Peak?(seconds: number): number;
  hasBf16Gemm?(): boolean;
  [name: string]: unknown;
}

const ADDON_RELATIVE = join('native', 'build', 'chatwright.node');

// The package root holds package.json named chatwright; this file runs from src/tensor (tsx, tests of sources) or
// dist/src/tensor (compiled), so walk up rather than assume a depth.
function findAddonPath(): string | null {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'chatwright') {
          const p = join(dir, ADDON_RELATIVE);
          return existsSync(p) ? p : null;
        }
      } catch {
        // an unreadable package.json: keep walking up
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  return null;
}

let addon: Addon | null | undefined; // undefined: not tried yet
let loadError = '';

function loadAddon(): Addon | null {
  if (addon !== undefined) return addon;
  addon = null;
  const path = findAddonPath();
  if (!path) {
    loadError = `${ADDON_RELATIVE} is not built (run \`npm run build:native\`; it needs a C compiler)`;
    return null;
  }
  try {
    addon = createRequire(import.meta.url)(path) as Addon;
  } catch (e) {
    loadError = `loading ${ADDON_RELATIVE} failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
    addon = null;
  }
  return addon;
}

// Why loadNativeBackend() returns null ('' when it loads).
export function nativeLoadError(): string {
  loadAddon();
  return addon ? '' : loadError;
}

// Every Backend method, in backend.ts order (the compiler checks the list against the interface below).
const METHODS = [
  'gemm', 'gemmMixedBf16', 'gemmBf16', 'gemmQ8_0', 'attentionForward', 'attentionBackward', 'rmsnormForward', 'rmsnormBackward', 'residualRmsnormForward',
  'layernormForward',
  'layernormBackward', 'ropeForward', 'ropeBackward', 'swigluForward', 'swigluBackward', 'geluForward', 'geluBackward',
  'softmaxForward', 'softmaxBackward', 'crossEntropyForward', 'crossEntropyBackward', 'embeddingForward',
  'embeddingBackward', 'adamw', 'addBias', 'sumRows', 'sum', 'sumSquares', 'add', 'sub', 'mul', 'div', 'minimum',
  'maximum', 'scaleShift', 'axpy', 'exp', 'log', 'sigmoid', 'logSigmoid', 'clamp', 'where', 'fill',
] as const satisfies readonly Exclude<keyof Backend, 'name'>[];
type Method = (typeof METHODS)[number];
// A compile-time check that METHODS names every method: this line fails to compile if one is missing.
const _complete: Record<Exclude<keyof Backend, 'name'>, true> =
  Object.fromEntries(METHODS.map((m) => [m, true])) as Record<Method, true>;
void _complete;

type AnyFn = (...args: unknown[]) => unknown;

// The JS fallback would accept float64; keep the native contract (float32 only) the same for every method.
function float32Only(name: string, fn: AnyFn): AnyFn {
  return (...args: unknown[]) => {
    for (let i = 0; i < args.length; i++) {
      if (args[i] instanceof Float64Array) {
        throw new TypeError(`${name}: argument ${i + 1} is a Float64Array; the native backend takes Float32Array only ` +
          '(use the JS backend for float64)');
      }
    }
    return fn(...args);
  };
}

let backend: Backend | null = null;
let nativeMethods: string[] = [];

// The native Backend, or null when the addon is not built or does not load (nativeLoadError() says why).
export function loadNativeBackend(): Backend | null {
  if (backend) return backend;
  const a = loadAddon();
  if (!a) return null;
  const impl: Record<string, unknown> = { name: 'native' };
  const js = jsBackend as unknown as Record<string, AnyFn>;
  nativeMethods = [];
  for (const m of METHODS) {
    const f = a[m];
    // gemmMixedBf16 runs in C only where the CPU has AVX512_BF16 at the level in force (asked at each call: the level
    // may be lowered at run time); elsewhere it is the JS reference (correct, slow: training refuses bf16 there up
    // front, checkPrecision in src/train/loop.ts)
    if (m === 'gemmMixedBf16' && typeof f === 'function' && typeof a.hasBf16Gemm === 'function') {
      const has = a.hasBf16Gemm.bind(a), ref = float32Only(m, js[m].bind(jsBackend));
      impl[m] = (...args: unknown[]) => (has() ? (f as AnyFn)(...args) : ref(...args));
      nativeMethods.push(m);
    } else if (typeof f === 'function') {
      impl[m] = f; // called directly: the addon checks types and lengths itself
      nativeMethods.push(m);
    } else {
      impl[m] = float32Only(m, js[m].bind(jsBackend));
    }
  }
  backend = impl as unknown as Backend;
  return backend;
}

// The Backend methods that run in C (the rest fall back to the JS backend).
export function nativeMethodNames(): string[] {
  loadNativeBackend();
  return [...nativeMethods];
}

function need(): Addon {
  const a = loadAddon();
  if (!a) {
    throw new UserError(`the native backend is unavailable: ${loadError}`, 'run `npm run build:native` (needs a C compiler)');
  }
  return a;
}

// The dispatch levels of this architecture's build, by number (native/cpu.c): x86-64 0 scalar, 1 avx2, 2 avx512;
// arm64 0 scalar, 1 neon.
export const CPU_LEVEL_NAMES: readonly string[] = process.arch === 'arm64' ? ['scalar', 'neon'] : ['scalar', 'avx2', 'avx512'];

// Dispatch level (a number, CPU_LEVEL_NAMES) and thread count of the native kernels. setCpuLevel never raises the
// level above what the CPU supports and returns the level in force; setNumThreads returns the count in force.
export const nativeControls = {
  cpuLevel: (): number => need().cpuLevel(),
  setCpuLevel: (level: number): number => need().setCpuLevel(level),
  cpuLevelName: (): string => need().cpuLevelName?.() ?? CPU_LEVEL_NAMES[need().cpuLevel()] ?? 'unknown',
  numThreads: (): number => need().numThreads(),
  // GFLOP/s of one core's FMA units at the level in force (a register-only FMA loop timed for `seconds`, best of ~20 ms
  // rounds): the ceiling for a one-thread GEMM
  fmaPeak: (seconds = 0.3): number => {
    const f = need().fmaPeak;
    if (typeof f !== 'function') throw new UserError('the native addon has no fmaPeak', 'rebuild it: `npm run build:native`');
    return f(seconds);
  },
  setNumThreads: (n: number): number => need().setNumThreads(n),
  // whether gemmMixedBf16 runs in C: the CPU has AVX512_BF16 and the level in force is avx512
  hasBf16Gemm: (): boolean => need().hasBf16Gemm?.() ?? false,
  // GFLOP/s of one core's vdpbf16ps units (bf16 products, float32 sums; a register-only loop like fmaPeak): the
  // ceiling for a one-thread gemmMixedBf16. Only where hasBf16Gemm().
  bf16Peak: (seconds = 0.3): number => {
    const f = need().bf16Peak;
    if (typeof f !== 'function') throw new UserError('the native addon has no bf16Peak', 'rebuild it: `npm run build:native`');
    return f(seconds);
  },
};
