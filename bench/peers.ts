// The PyTorch peer's setup, shared by bench/train.ts and bench/generate.ts: which python3 imports torch, and the
// environment that lets Debian's torch run at its best on this machine. A peer for the benchmarks, never a dependency.
import { spawnSync } from 'node:child_process';
import { nativeAvailable } from '../src/tensor/index.js';
import { nativeControls } from '../src/tensor/backend-native.js';

// The first python3 that imports torch: the one on PATH, else the system's (Debian's python3-torch installs there,
// while PATH may lead to a pyenv or venv python without it). null when there is none.
export function torchPython(): string | null {
  return ['python3', '/usr/bin/python3'].find((py) => {
    const probe = spawnSync(py, ['-c', 'import torch'], { encoding: 'utf8' });
    return !probe.error && probe.status === 0;
  }) ?? null;
}

export const NO_TORCH = 'PyTorch not measured: no python3 with torch found (Debian: apt-get install python3-torch)';

export function torchEnv(): NodeJS.ProcessEnv {
  // Debian's torch does its matrix products in the system OpenBLAS, which (0.3.21) takes this CPU for an old one and
  // falls back to SSE3 kernels: give it its AVX-512 kernel, as bench/gemm does (5.96 -> 2.61 s a step for small here).
  const env = { ...process.env };
  delete env.OPENBLAS_L2_SIZE;
  if (nativeAvailable() && nativeControls.cpuLevel() === 2) env.OPENBLAS_CORETYPE = 'SkylakeX';
  // It also runs two thread pools, its own OpenMP one for everything but the products and OpenBLAS's for those, and
  // both spin after their work (OpenBLAS's for ~0.1 s): on 2 cores each then slows the other. Told to sleep at once
  // (OpenBLAS spins 2^4 cycles, OpenMP waits passively) its small step went 2.8-3.1 s -> 1.7-2.3 s here.
  env.OPENBLAS_THREAD_TIMEOUT ??= '4';
  env.OMP_WAIT_POLICY ??= 'PASSIVE';
  return env;
}
