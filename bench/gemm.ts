// GEMM throughput of the native backend, and the ratio to OpenBLAS's cblas_sgemm measured in the same run.
//
// Run: npm run build && node dist/bench/gemm.js [--reps 7] [--quick]
// Shapes: 512^3, 1024^3, 2048^3, and the transformer products (M, K, N) = (4096, 384, 1152), (4096, 1152, 384),
// (4096, 384, 1536) in the three forms training uses: forward x @ W^T (transB), dX = dY @ W, dW += dY^T @ X (transA,
// beta 1); plus decode-shaped rows (M = 1, 4). Each figure is the median of --reps timed runs after a warm-up, with
// 1 thread and with all threads.
// OpenBLAS is a peer, never a dependency: when libopenblas.so.0 is installed, bench/openblas_shim.c is compiled into a
// temporary folder and run as a child process (dlopen, no linking). OPENBLAS_L2_SIZE and OPENBLAS_CORETYPE are
// unset for it; if OpenBLAS then picks a core without AVX-512 on a CPU that has it (0.3.21 does not know Emerald
// Rapids and falls back to Prescott), the run is repeated with OPENBLAS_CORETYPE=SkylakeX, its fastest sgemm kernel
// here, and the table says so. The machine may be shared: the load average is printed before and after.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend, nativeControls, nativeLoadError } from '../src/tensor/backend-native.js';

const args = process.argv.slice(2);
const repsArg = args.indexOf('--reps');
const REPS = repsArg >= 0 ? Math.max(1, Number(args[repsArg + 1]) | 0) : 7;
const QUICK = args.includes('--quick');

interface Shape { label: string; M: number; N: number; K: number; transA: boolean; transB: boolean; beta: number }

function shapes(): Shape[] {
  const out: Shape[] = [];
  for (const n of QUICK ? [512, 1024] : [512, 1024, 2048]) out.push({ label: `${n}^3`, M: n, N: n, K: n, transA: false, transB: false, beta: 0 });
  // (M, K, N) of a linear layer y = x @ W^T with x (M, K), W (N, K)
  for (const [M, K, N] of [[4096, 384, 1152], [4096, 1152, 384], [4096, 384, 1536]]) {
    const tag = `${M}x${K}x${N}`;
    out.push({ label: `${tag} fwd x@W^T`, M, N, K, transA: false, transB: true, beta: 0 });
    out.push({ label: `${tag} dX=dY@W`, M, N: K, K: N, transA: false, transB: false, beta: 0 });
    out.push({ label: `${tag} dW+=dY^T@X`, M: N, N: K, K: M, transA: true, transB: false, beta: 1 });
  }
  out.push({ label: 'decode 1x384x1152 x@W^T', M: 1, N: 1152, K: 384, transA: false, transB: true, beta: 0 });
  out.push({ label: 'decode 4x1536x384 x@W^T', M: 4, N: 384, K: 1536, transA: false, transB: true, beta: 0 });
  out.push({ label: 'decode 1x384x32768 lmHead', M: 1, N: 32768, K: 384, transA: false, transB: true, beta: 0 });
  return out;
}

function randArray(n: number): Float32Array {
  const x = new Float32Array(n);
  let s = 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    x[i] = (s >>> 8) / 16777216 - 0.5;
  }
  return x;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

// ---- OpenBLAS peer (child process)

let shimPath: string | null = null;
let shimDir = '';
let openblasNote = '';
let openblasEnvCore: string | undefined; // undefined: leave OPENBLAS_CORETYPE unset

function prepareShim(): void {
  shimDir = mkdtempSync(join(tmpdir(), 'chatwright-bench-'));
  const src = fileURLToPath(new URL('../../bench/openblas_shim.c', import.meta.url));
  const exe = join(shimDir, 'openblas_shim');
  const cc = process.env.CC ?? 'cc';
  const r = spawnSync(cc, ['-O2', '-o', exe, src, '-ldl'], { encoding: 'utf8' });
  if (r.status !== 0) {
    openblasNote = `OpenBLAS not measured: compiling bench/openblas_shim.c with ${cc} failed`;
    return;
  }
  shimPath = exe;
}

function runShim(s: Shape, threads: number, core: string | undefined): { core: string; seconds: number } | string {
  const env = { ...process.env };
  delete env.OPENBLAS_L2_SIZE;
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_NUM_THREADS;
  delete env.OMP_NUM_THREADS;
  if (core) env.OPENBLAS_CORETYPE = core;
  const argv = [threads, REPS, s.M, s.N, s.K, s.transA ? 1 : 0, s.transB ? 1 : 0, s.beta].map(String);
  const r = spawnSync(shimPath!, argv, { env, encoding: 'utf8', timeout: 300_000 });
  if (r.status === 2) return r.stdout.trim();
  if (r.status !== 0) return `openblas_shim exited with ${r.status}: ${r.stderr.trim()}`;
  const lines = r.stdout.trim().split('\n');
  const name = (lines.find((l) => l.startsWith('core ')) ?? 'core unknown').slice(5);
  const times = lines.filter((l) => l.startsWith('seconds ')).map((l) => Number(l.slice(8)));
  return { core: name, seconds: median(times) };
}

const AVX512_CORES = /skylakex|cooperlake|sapphirerapids|cascadelake|icelake|zen4|zen5/i;

function openblasSeconds(s: Shape, threads: number, ourLevel: number): number | null {
  if (!shimPath) return null;
  let r = runShim(s, threads, openblasEnvCore);
  if (typeof r === 'string') {
    openblasNote = `OpenBLAS not measured: ${r}`;
    shimPath = null;
    return null;
  }
  if (openblasEnvCore === undefined && ourLevel === 2 && !AVX512_CORES.test(r.core)) {
    openblasEnvCore = 'SkylakeX';
    openblasNote = `OpenBLAS picked core ${r.core} on its own (no AVX-512); measured with OPENBLAS_CORETYPE=SkylakeX instead`;
    r = runShim(s, threads, openblasEnvCore);
    if (typeof r === 'string') return null;
  }
  if (!openblasNote) openblasNote = `OpenBLAS core ${r.core} (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset)`;
  return r.seconds;
}

// ---- main

const be = loadNativeBackend();
if (!be) {
  console.error(`native backend unavailable: ${nativeLoadError()}`);
  process.exit(1);
}
const allThreads = nativeControls.numThreads();
const level = nativeControls.cpuLevel();
prepareShim();
const load0 = loadavg()[0];
console.log(`native gemm, cpu level ${nativeControls.cpuLevelName()}, ${allThreads} thread(s) available, median of ${REPS} runs; ` +
  `load average ${load0.toFixed(2)} at start`);

const threadCounts = allThreads > 1 ? [1, allThreads] : [1];
const rows: string[][] = [['shape', 'M', 'N', 'K', 'tA', 'tB', 'beta', 'thr', 'ours GF/s', 'OpenBLAS GF/s', 'ratio']];
for (const s of shapes()) {
  const A = randArray(s.M * s.K), B = randArray(s.K * s.N), C = new Float32Array(s.M * s.N);
  const flops = 2 * s.M * s.N * s.K;
  const small = flops < 1e8;
  for (const threads of threadCounts) {
    nativeControls.setNumThreads(threads);
    const inner = small ? Math.max(1, Math.round(2e8 / flops)) : 1; // repeat tiny products to time them
    const times: number[] = [];
    for (let r = -1; r < REPS; r++) {
      const t0 = performance.now();
      for (let i = 0; i < inner; i++) be.gemm(C, A, B, s.M, s.N, s.K, s.transA, s.transB, 1, s.beta);
      const t = (performance.now() - t0) / 1000 / inner;
      if (r >= 0) times.push(t);
    }
    const ours = flops / median(times) / 1e9;
    const ob = small ? null : openblasSeconds(s, threads, level);
    const peer = ob ? flops / ob / 1e9 : null;
    rows.push([s.label, String(s.M), String(s.N), String(s.K), s.transA ? 'T' : 'N', s.transB ? 'T' : 'N', String(s.beta),
      String(threads), ours.toFixed(1), peer ? peer.toFixed(1) : '-', peer ? (ours / peer).toFixed(2) : '-']);
    console.log(rows[rows.length - 1].join('  '));
  }
}
nativeControls.setNumThreads(allThreads);
if (shimDir) rmSync(shimDir, { recursive: true, force: true });

// ---- the table
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
console.log('');
for (const [i, r] of rows.entries()) {
  console.log(r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  '));
  if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
}
console.log('');
console.log(openblasNote || 'OpenBLAS not measured: libopenblas.so.0 is not installed (apt-get install libopenblas0-pthread)');
console.log(`load average ${loadavg()[0].toFixed(2)} at end (the machine may be shared: rerun key shapes when quiet)`);
