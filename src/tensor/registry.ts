// The backend registry: which Backend the ops run on. Default: the native addon when it loads, else the JS backend
// with ONE line on stderr at first use. CHATWRIGHT_BACKEND=js|native overrides the default.
// Boundary: this file chooses a backend; it knows nothing of tensors. The native module (backend-native.ts, owned by
// the native layer) is imported dynamically so that this file compiles and runs whether or not it exists.

import type { Backend } from './backend.js';
import { jsBackend } from './backend-js.js';
import { UserError } from '../util/errors.js';

interface NativeModule {
  loadNativeBackend(): Backend | null;
  nativeLoadError?(): string;
  nativeControls?: { hasBf16Gemm(): boolean; cpuLevelName(): string };
}

// A variable specifier keeps TypeScript from resolving the module at compile time.
const NATIVE_MODULE = './backend-native.js';
let nativeModule: NativeModule | null = null;
let nativeImportError = '';
try {
  nativeModule = (await import(NATIVE_MODULE)) as NativeModule;
} catch (e) {
  const code = (e as { code?: string }).code;
  nativeImportError = code === 'ERR_MODULE_NOT_FOUND' ? 'src/tensor/backend-native.ts is missing'
    : e instanceof Error ? e.message.split('\n')[0] : String(e);
}

let native: Backend | null | undefined; // undefined: not tried yet
let nativeError = '';
let current: Backend | null = null;

function tryNative(): Backend | null {
  if (native !== undefined) return native;
  native = null;
  if (!nativeModule || typeof nativeModule.loadNativeBackend !== 'function') {
    nativeError = nativeImportError || 'src/tensor/backend-native.ts exports no loadNativeBackend()';
    return null;
  }
  try {
    native = nativeModule.loadNativeBackend() ?? null;
    if (!native) nativeError = nativeModule.nativeLoadError?.() || 'the native addon (native/build/chatwright.node) did not load';
  } catch (e) {
    nativeError = e instanceof Error ? e.message.split('\n')[0] : String(e);
  }
  return native;
}

export function nativeAvailable(): boolean {
  return tryNative() !== null;
}

// Why the native backend is unavailable ('' when it is available).
export function nativeUnavailableReason(): string {
  return tryNative() ? '' : nativeError;
}

export function getBackend(): Backend {
  if (current) return current;
  const want = process.env.CHATWRIGHT_BACKEND;
  if (want !== undefined && want !== '' && want !== 'js' && want !== 'native') {
    throw new UserError(`CHATWRIGHT_BACKEND=${want} is not a backend`, 'use CHATWRIGHT_BACKEND=js or CHATWRIGHT_BACKEND=native');
  }
  if (want === 'js') {
    current = jsBackend;
  } else if (want === 'native') {
    setBackend('native');
  } else {
    current = tryNative();
    if (!current) {
      const hint = nativeError.includes('build:native') ? '' : ' HINT: run `npm run build:native`';
      process.stderr.write(`chatwright: native backend unavailable (${nativeError}); running on the slower JS backend.${hint}\n`);
      current = jsBackend;
    }
  }
  return current!;
}

export function setBackend(b: 'js' | 'native'): void {
  if (b === 'js') {
    current = jsBackend;
  } else if (b === 'native') {
    const n = tryNative();
    if (!n) throw new UserError(`the native backend is unavailable: ${nativeError}`, 'run `npm run build:native` (needs a C compiler), or use the JS backend');
    current = n;
  } else {
    throw new UserError(`unknown backend '${String(b)}'`, "use 'js' or 'native'");
  }
}

// Why bf16 mixed-precision GEMMs (Backend.gemmMixedBf16) cannot run at speed on the backend in use: '' when they can
// (the native backend on a CPU with AVX512_BF16 at the avx512 level), else the reason, naming what is missing.
export function bf16Unavailable(): string {
  const be = getBackend();
  if (be.name !== 'native') return 'the JS backend has only the reference bf16 GEMM, far too slow to train with (the native one needs AVX512_BF16)';
  const c = nativeModule?.nativeControls;
  if (!c) return 'the native module has no bf16 controls';
  if (c.hasBf16Gemm()) return '';
  const level = c.cpuLevelName();
  return level === 'avx512' ? 'this CPU lacks AVX512_BF16 (the vdpbf16ps instruction)'
    : `it needs AVX512_BF16 at the avx512 dispatch level, and the level in force is ${level}` +
      (process.env.CHATWRIGHT_CPU ? ` (CHATWRIGHT_CPU=${process.env.CHATWRIGHT_CPU})` : '');
}
