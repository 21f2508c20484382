// GEMM throughput of the native backend, and the ratio to OpenBLAS's cblas_sgemm measured in the same run.
//
// Run: npm run build && node dist/bench/gemm.js [--reps 5] [--rounds 3] [--quick] [--only TEXT] [--cpu-time] [--bf16]
// Shapes: 512^3, 1024^3, 2048^3, and the transformer products (M, K, N) = (4096, 384, 1152), (4096, 1152, 384),
// (4096, 384, 1536) in the three forms training uses: forward x @ W^T (transB), dX = dY @ W, dW += dY^T @ X (transA,
// beta 1); plus decode-shaped rows (M = 1, 4). Each figure is the median of --reps timed runs after a warm-up, with
// 1 thread and with all threads, and the whole list is measured --rounds times, the samples pooled: on a shared machine
// whose speed drifts over minutes, each row then sees several moments. --only keeps the shapes whose label contains
// TEXT (e.g. --only fwd).
// --cpu-time: on a shared machine, the 1-thread rows report flops per CPU-second of the process (ours and OpenBLAS
// alike), which time slices taken by other processes do not dilute; multi-thread rows stay wall-clock.
// OpenBLAS is a peer, never a dependency: when libopenblas.so.0 is installed, bench/openblas_shim.c is compiled into a
// temporary folder and run as a child process (dlopen, no linking) that times one cblas_sgemm per request, so each
// of our runs is followed by one of its runs under the same load. OPENBLAS_L2_SIZE and OPENBLAS_CORETYPE are unset
// for it; if OpenBLAS then picks a core without AVX-512 on a CPU that has it (0.3.21 does not know Emerald Rapids,
// CPUID model 207, and falls back to Prescott), it is restarted with OPENBLAS_CORETYPE=SkylakeX, its AVX-512 sgemm
// kernel, and the table says so. The machine may be shared: the load average is printed before and after.
// The header names the CPU and the dispatch level; 'of peak' is each rate over the core's fp32 FMA peak at that level,
// measured by a register-only FMA loop (native/peak.c) before and after the products, times the threads.
// --bf16 (CPUs with AVX512_BF16): each of our float32 runs is followed by one of gemmMixedBf16 (bf16 inputs, float32
// sums) on the same operands, and the table adds its GFLOP/s, its share of the bf16 peak (a register-only vdpbf16ps
// loop, measured like the FMA peak) and its speed over our float32 product (median of the paired ratios).
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadNativeBackend, nativeControls, nativeLoadError } from '../src/tensor/backend-native.js';

const args = process.argv.slice(2);
const repsArg = args.indexOf('--reps');
const REPS = repsArg >= 0 ? Math.max(1, Number(args[repsArg + 1]) | 0) : 5;
const roundsArg = args.indexOf('--rounds');
const ROUNDS = roundsArg >= 0 ? Math.max(1, Number(args[roundsArg + 1]) | 0) : 3;
const QUICK = args.includes('--quick');
const onlyArg = args.indexOf('--only');
const ONLY = onlyArg >= 0 ? args[onlyArg + 1] ?? '' : '';
const CPU_TIME = args.includes('--cpu-time');
const BF16 = args.includes('--bf16');

interface Shape { label: string; M: number; N: number; K: number; transA: boolean; transB: boolean; beta: number }

function shapes(): Shape[] {
  const out: Shape[] = [];
  for (const n of QUICK ? [512, 1024] : [512, 1024, 2048]) {
    out.push({ label: `${n}^3`, M: n, N: n, K: n, transA: false, transB: false, beta: 0 });
  }
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
  return out.filter((s) => s.label.includes(ONLY));
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

// ---- OpenBLAS peer: a child process that answers one timed cblas_sgemm per request, so its runs interleave with
// ours and both see the same machine load; it answers once its threads have stopped spinning (openblas_shim.c), so
// neither library's run shares the cores with the other's idle threads

class Peer {
  private child: ChildProcessWithoutNullStreams;
  private lines: string[] = [];
  private waiting: ((line: string) => void)[] = [];
  constructor(exe: string, core: string | undefined) {
    const env = { ...process.env };
    for (const k of ['OPENBLAS_L2_SIZE', 'OPENBLAS_CORETYPE', 'OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS']) delete env[k];
    if (core) env.OPENBLAS_CORETYPE = core;
    this.child = spawn(exe, [], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let buf = '';
    this.child.stdout.on('data', (d: Buffer) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const w = this.waiting.shift();
        if (w) w(line);
        else this.lines.push(line);
      }
    });
    this.child.on('exit', () => {
      for (const w of this.waiting.splice(0)) w('exited');
    });
  }
  next(): Promise<string> {
    const l = this.lines.shift();
    if (l !== undefined) return Promise.resolve(l);
    if (this.child.exitCode !== null) return Promise.resolve('exited');
    return new Promise((resolve) => this.waiting.push(resolve));
  }
  ask(cmd: string): Promise<string> {
    this.child.stdin.write(cmd + '\n');
    return this.next();
  }
  close(): void {
    this.child.stdin.end();
  }
}

const AVX512_CORES = /skylakex|cooperlake|sapphirerapids|cascadelake|icelake|zen4|zen5/i;

// Starts the peer, or returns why it cannot run.
async function startPeer(ourLevel: number): Promise<{ peer: Peer; note: string } | string> {
  const dir = mkdtempSync(join(tmpdir(), 'chatwright-bench-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const src = fileURLToPath(new URL('../../bench/openblas_shim.c', import.meta.url));
  const exe = join(dir, 'openblas_shim');
  const cc = process.env.CC ?? 'cc';
  const r = spawnSync(cc, ['-O2', '-o', exe, src, '-ldl'], { encoding: 'utf8' });
  if (r.status !== 0) return `compiling bench/openblas_shim.c with ${cc} failed`;
  let peer = new Peer(exe, undefined);
  let first = await peer.next();
  if (!first.startsWith('core ')) return first.replace(/^unavailable /, '');
  let note = `OpenBLAS core ${first.slice(5)} (OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset)`;
  if (ourLevel === 2 && !AVX512_CORES.test(first)) {
    peer.close();
    peer = new Peer(exe, 'SkylakeX');
    const second = await peer.next();
    note = `OpenBLAS picked core ${first.slice(5)} on its own (no AVX-512 kernels); measured with ` +
      `OPENBLAS_CORETYPE=SkylakeX instead (${second})`;
  } else if (ourLevel === 1 && AVX512_CORES.test(first)) {
    // CHATWRIGHT_CPU=avx2 on an AVX-512 machine: pair our AVX2 kernels with OpenBLAS's AVX2 kernels (Haswell), so the
    // ratio says what it would on an AVX2-only CPU of this microarchitecture
    peer.close();
    peer = new Peer(exe, 'Haswell');
    const second = await peer.next();
    note = `our kernels lowered to AVX2 (CHATWRIGHT_CPU); OpenBLAS measured with OPENBLAS_CORETYPE=Haswell, its AVX2 ` +
      `kernels (${second}; on its own it picked ${first.slice(5)})`;
  }
  return { peer, note };
}

// ---- main

const cleanup: (() => void)[] = [];
const be = loadNativeBackend();
if (!be) {
  console.error(`native backend unavailable: ${nativeLoadError()}`);
  process.exit(1);
}
const allThreads = nativeControls.numThreads();
const level = nativeControls.cpuLevel();
const started = await startPeer(level);
const peer = typeof started === 'string' ? null : started.peer;
const peerNote = typeof started === 'string' ? `OpenBLAS not measured: ${started}` : started.note;
const load0 = loadavg()[0];
// the core's peak at this level: a register-only FMA loop on one thread, before the products and again after them
// (the better of the two: on a shared machine either may be slowed)
if (BF16 && !nativeControls.hasBf16Gemm()) {
  console.error(`--bf16: this CPU has no AVX512_BF16 at the dispatch level in force (${nativeControls.cpuLevelName()})`);
  process.exit(1);
}
nativeControls.setNumThreads(1);
const peaks = [nativeControls.fmaPeak(0.5)];
const bf16Peaks = BF16 ? [nativeControls.bf16Peak(0.5)] : [];
nativeControls.setNumThreads(allThreads);
console.log(`native gemm on ${cpus()[0]?.model?.trim() ?? 'an unknown CPU'}: dispatch level ${nativeControls.cpuLevelName()}, ` +
  `${allThreads} thread(s) available, median of ${REPS} x ${ROUNDS} interleaved runs (ours, then OpenBLAS); ` +
  `load average ${load0.toFixed(2)} at start`);
console.log(`peak of one core at this level (fp32 FMAs on registers, measured): ${peaks[0].toFixed(1)} GFLOP/s` +
  (BF16 ? `; bf16 (vdpbf16ps on registers): ${bf16Peaks[0].toFixed(1)} GFLOP/s` : ''));

const threadCounts = allThreads > 1 ? [1, allThreads] : [1];
const rows: string[][] = [
  ['shape', 'M', 'N', 'K', 'tA', 'tB', 'beta', 'thr', 'ours GF/s', 'of peak', 'OpenBLAS GF/s', 'ratio', 'best/best',
    ...(BF16 ? ['bf16 GF/s', 'of bf16 peak', 'bf16/f32'] : [])],
];
const samples = new Map<string, { ours: number[]; theirs: number[]; bf16: number[] }>();
for (let round = 0; round < ROUNDS; round++) {
  for (const s of shapes()) {
    const A = randArray(s.M * s.K), B = randArray(s.K * s.N), C = new Float32Array(s.M * s.N);
    const flops = 2 * s.M * s.N * s.K;
    const inner = flops < 1e8 ? Math.max(1, Math.round(1e8 / flops)) : 1; // repeat small products to time them
    if (peer) await peer.ask(`shape ${s.M} ${s.N} ${s.K} ${s.transA ? 1 : 0} ${s.transB ? 1 : 0} ${s.beta}`);
    for (const threads of threadCounts) {
      nativeControls.setNumThreads(threads);
      const key = `${s.label}|${threads}`;
      const got = samples.get(key) ?? { ours: [], theirs: [], bf16: [] };
      samples.set(key, got);
      const cpu = CPU_TIME && threads === 1;
      for (let r = -1; r < REPS; r++) {
        const t0 = performance.now(), c0 = process.cpuUsage();
        for (let i = 0; i < inner; i++) be.gemm(C, A, B, s.M, s.N, s.K, s.transA, s.transB, 1, s.beta);
        const c1 = process.cpuUsage(c0);
        const t = cpu ? (c1.user + c1.system) / 1e6 / inner : (performance.now() - t0) / 1000 / inner;
        let tBf16 = 0;
        if (BF16) {
          const t2 = performance.now(), c2 = process.cpuUsage();
          for (let i = 0; i < inner; i++) be.gemmMixedBf16(C, A, B, s.M, s.N, s.K, s.transA, s.transB, 1, s.beta);
          const c3 = process.cpuUsage(c2);
          tBf16 = cpu ? (c3.user + c3.system) / 1e6 / inner : (performance.now() - t2) / 1000 / inner;
        }
        const answer = peer ? await peer.ask(`run ${threads} ${inner}`) : '';
        if (r < 0) continue; // warm-up
        const m = /^seconds (\S+) cpu (\S+)/.exec(answer);
        if (peer && !m) continue; // keep the two lists paired
        got.ours.push(flops / t / 1e9);
        if (BF16) got.bf16.push(flops / tBf16 / 1e9);
        if (m) got.theirs.push(flops / Number(cpu ? m[2] : m[1]) / 1e9);
      }
    }
  }
  console.log(`round ${round + 1}/${ROUNDS} done, load average ${loadavg()[0].toFixed(2)}`);
}
nativeControls.setNumThreads(1);
peaks.push(nativeControls.fmaPeak(0.5));
if (BF16) bf16Peaks.push(nativeControls.bf16Peak(0.5));
const peak = Math.max(...peaks), bf16Peak = BF16 ? Math.max(...bf16Peaks) : 0;
for (const s of shapes()) {
  for (const threads of threadCounts) {
    const { ours, theirs, bf16 } = samples.get(`${s.label}|${threads}`)!;
    const cpu = CPU_TIME && threads === 1;
    // each of our runs and the OpenBLAS run right after it saw nearly the same machine: the median of those paired
    // ratios cancels slow changes of load that the two medians alone would mix in
    const o = median(ours), p = theirs.length ? median(theirs) : 0;
    const ratio = p ? median(ours.map((x, i) => x / theirs[i])).toFixed(2) : '-';
    const best = p ? (Math.max(...ours) / Math.max(...theirs)).toFixed(2) : '-';
    rows.push([s.label, String(s.M), String(s.N), String(s.K), s.transA ? 'T' : 'N', s.transB ? 'T' : 'N', String(s.beta),
      String(threads) + (cpu ? ' cpu' : ''), o.toFixed(1), `${((100 * o) / (peak * threads)).toFixed(0)}%`, p ? p.toFixed(1) : '-', ratio, best,
      ...(BF16 ? [median(bf16).toFixed(1), `${((100 * median(bf16)) / (bf16Peak * threads)).toFixed(0)}%`,
        median(bf16.map((x, i) => x / ours[i])).toFixed(2)] : [])]);
  }
}
nativeControls.setNumThreads(allThreads);
peer?.close();
for (const f of cleanup) f();

// ---- the table
const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
console.log('');
for (const [i, r] of rows.entries()) {
  console.log(r.map((v, c) => (c === 0 ? v.padEnd(widths[c]) : v.padStart(widths[c]))).join('  '));
  if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
}
console.log('');
console.log('ratio: median over the runs of ours / the OpenBLAS run right after it; best/best: our fastest run over its fastest (less sensitive to load)');
console.log(`of peak: ours over (threads x the core's peak), the peak the better of ${peaks.map((x) => x.toFixed(1)).join(' and ')} GFLOP/s ` +
  `(a register-only FMA loop at level ${nativeControls.cpuLevelName()}, before and after the products)`);
if (BF16) {
  console.log(`bf16: gemmMixedBf16 run right after each of our float32 runs; of bf16 peak: over (threads x ` +
    `${bf16Peaks.map((x) => x.toFixed(1)).join(' or ')} GFLOP/s, the better), a register-only vdpbf16ps loop before and after; ` +
    'bf16/f32: median of the paired ratios');
}
if (CPU_TIME) console.log("'1 cpu' rows: flops per CPU-second of each process (--cpu-time), the rest wall-clock");
console.log(peerNote);
console.log(`load average ${loadavg()[0].toFixed(2)} at end (the machine may be shared: rerun key shapes when quiet)`);
