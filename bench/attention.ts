// Fused causal attention, forward + backward, on the native kernels: time and GFLOP/s for B=8, nHead=6, headDim=64
// at T = 256, 512, 1024 (median of runs), next to the GEMM rate measured in the same run (one (4096, 384) x
// (384, 1152) product, the QKV projection of a 384-wide model on 8 x 512 tokens, all threads) and the ratio.
// GEMM and attention calls alternate, so a busy machine slows both alike; the ratio of CPU-time rates is printed too
// (it holds even when other processes take turns on the cores).
// FLOPs counted as causal: forward 2 * 2 * B * nHead * T^2 * headDim / 2 (S = QK^T and PV over half the matrix),
// backward 2.5x the forward (five products: S, dP, dV, dQ, dK).
// Run: npx tsc -p . && node native/build.mjs && node dist/bench/attention.js [--quick]
// Env: CHATWRIGHT_THREADS, CHATWRIGHT_CPU (scalar | avx2 | avx512) as everywhere.
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { CPU_LEVEL_NAMES } from '../src/tensor/backend-native.js';

const addonPath = fileURLToPath(new URL('../../native/build/chatwright.node', import.meta.url));
if (!existsSync(addonPath)) {
  console.log('bench/attention: SKIPPED: native/build/chatwright.node is not built (run `npm run build:native`)');
  process.exit(0);
}
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const addon: any = createRequire(import.meta.url)(addonPath);
const quick = process.argv.includes('--quick');

function randn(n: number): Float32Array {
  const a = new Float32Array(n);
  let s = 1;
  for (let i = 0; i < n; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}

function median(xs: number[]): number {
  const t = [...xs].sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

// Wall-clock and CPU seconds of one call. The CPU time (all threads) is what the work cost even when other
// processes share the cores; the wall time is what a user waits.
function timed(fn: () => void): { wall: number; cpu: number } {
  const c0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  fn();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const c = process.cpuUsage(c0);
  return { wall, cpu: (c.user + c.system) / 1e6 };
}

const levelNames = CPU_LEVEL_NAMES;
const threads = addon.numThreads();
addon.setNumThreads(1);
const peak = addon.fmaPeak(0.5);  // one core's fp32 FMA peak at this level, for scale
addon.setNumThreads(threads);
console.log(`native kernels on ${cpus()[0]?.model?.trim() ?? 'an unknown CPU'}: dispatch level ${levelNames[addon.cpuLevel()]}, ` +
  `${threads} threads; one core's FMA peak ${peak.toFixed(1)} GFLOP/s; load average ${loadavg()[0].toFixed(2)} at start`);

// ---- the GEMM reference: timed interleaved with the attention runs of each T, so that both see the same load
const M = 4096, K = 384, N = 1152;
const A = randn(M * K), Bm = randn(K * N), C = new Float32Array(M * N);
const gemmFlops = 2 * M * N * K;
const gemm = () => addon.gemm(C, A, Bm, M, N, K, false, false, 1, 0);
console.log(`gemm: (${M}, ${K}) x (${K}, ${N}), ${(gemmFlops / 1e9).toFixed(2)} GFLOP per call`);

// ---- attention
const B = 8, nHead = 6, nKv = 6, hd = 64, scale = 1 / Math.sqrt(hd);
console.log(`attention: B=${B}, nHead=${nHead}, headDim=${hd}, causal; medians of interleaved runs`);
console.log('T     fwd ms   bwd ms   fwd GFLOP/s  bwd GFLOP/s  fwd+bwd GFLOP/s  gemm GFLOP/s  ratio  (CPU-time ratio)');
for (const T of quick ? [256] : [256, 512, 1024]) {
  const nq = B * T * nHead * hd, nk = B * T * nKv * hd;
  const q = randn(nq), k = randn(nk), v = randn(nk), out = new Float32Array(nq), lse = new Float32Array(B * nHead * T);
  const dout = randn(nq), dq = new Float32Array(nq), dk = new Float32Array(nk), dv = new Float32Array(nk);
  const fwd = () => addon.attentionForward(out, lse, q, k, v, B, T, T, nHead, nKv, hd, scale, null);
  const bwd = () => addon.attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, B, T, nHead, nKv, hd, scale);
  gemm(); fwd(); bwd();  // warm-up: thread pool, page faults
  const runs = quick ? 3 : T >= 1024 ? 5 : 7;
  const g: { wall: number; cpu: number }[] = [], f: typeof g = [], b: typeof g = [];
  for (let r = 0; r < runs; r++) {
    g.push(timed(gemm));
    f.push(timed(fwd));
    b.push(timed(bwd));
  }
  const fwdFlops = (2 * 2 * B * nHead * T * T * hd) / 2, bwdFlops = 2.5 * fwdFlops;
  const fw = median(f.map((x) => x.wall)), bw = median(b.map((x) => x.wall)), gw = median(g.map((x) => x.wall));
  const rate = (fwdFlops + bwdFlops) / (fw + bw) / 1e9, gemmRate = gemmFlops / gw / 1e9;
  const cpuRate = (fwdFlops + bwdFlops) / (median(f.map((x) => x.cpu)) + median(b.map((x) => x.cpu)));
  const cpuGemm = gemmFlops / median(g.map((x) => x.cpu));
  console.log(
    `${String(T).padEnd(5)} ${(fw * 1e3).toFixed(1).padStart(7)}  ${(bw * 1e3).toFixed(1).padStart(7)}  ` +
    `${(fwdFlops / fw / 1e9).toFixed(1).padStart(11)}  ${(bwdFlops / bw / 1e9).toFixed(1).padStart(11)}  ` +
    `${rate.toFixed(1).padStart(15)}  ${gemmRate.toFixed(1).padStart(12)}  ${(rate / gemmRate).toFixed(2).padStart(5)}` +
    `  (${(cpuRate / cpuGemm).toFixed(2)})`);
}
