// Fused causal attention, forward + backward, on the native kernels: time and GFLOP/s for B=8, nHead=6, headDim=64
// at T = 256, 512, 1024 (median of runs), next to the GEMM rate measured in the same run (one (4096, 384) x
// (384, 1152) product, the QKV projection of a 384-wide model on 8 x 512 tokens, all threads) and the ratio.
// FLOPs counted as causal: forward 2 * 2 * B * nHead * T^2 * headDim / 2 (S = QK^T and PV over half the matrix),
// backward 2.5x the forward (five products: S, dP, dV, dQ, dK).
// Run: npx tsc -p . && node native/build.mjs && node dist/bench/attention.js [--quick]
// Env: CHATWRIGHT_THREADS, CHATWRIGHT_CPU (scalar | avx2 | avx512) as everywhere.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

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

// median seconds of `runs` calls after one warm-up call
function timeMedian(fn: () => void, runs: number): number {
  fn();
  const t: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = process.hrtime.bigint();
    fn();
    t.push(Number(process.hrtime.bigint() - t0) / 1e9);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)];
}

const levelNames = ['scalar', 'avx2', 'avx512'];
console.log(`native kernels: ${levelNames[addon.cpuLevel()]}, ${addon.numThreads()} threads`);

// ---- GEMM reference rate
const M = 4096, K = 384, N = 1152;
const A = randn(M * K), Bm = randn(K * N), C = new Float32Array(M * N);
const gemmSec = timeMedian(() => addon.gemm(C, A, Bm, M, N, K, false, false, 1, 0), quick ? 3 : 7);
const gemmRate = (2 * M * N * K) / gemmSec / 1e9;
console.log(`gemm (${M}, ${K}) x (${K}, ${N}): ${(gemmSec * 1e3).toFixed(2)} ms, ${gemmRate.toFixed(1)} GFLOP/s`);

// ---- attention
const B = 8, nHead = 6, nKv = 6, hd = 64, scale = 1 / Math.sqrt(hd);
console.log('T     fwd ms   bwd ms   fwd GFLOP/s  bwd GFLOP/s  fwd+bwd GFLOP/s  ratio to gemm');
for (const T of quick ? [256] : [256, 512, 1024]) {
  const nq = B * T * nHead * hd, nk = B * T * nKv * hd;
  const q = randn(nq), k = randn(nk), v = randn(nk), out = new Float32Array(nq), lse = new Float32Array(B * nHead * T);
  const dout = randn(nq), dq = new Float32Array(nq), dk = new Float32Array(nk), dv = new Float32Array(nk);
  const runs = quick ? 3 : T >= 1024 ? 5 : 7;
  const fwd = timeMedian(() => addon.attentionForward(out, lse, q, k, v, B, T, T, nHead, nKv, hd, scale, null), runs);
  const bwd = timeMedian(
    () => addon.attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, B, T, nHead, nKv, hd, scale), runs);
  const fwdFlops = (2 * 2 * B * nHead * T * T * hd) / 2, bwdFlops = 2.5 * fwdFlops;
  const rate = (fwdFlops + bwdFlops) / (fwd + bwd) / 1e9;
  console.log(
    `${String(T).padEnd(5)} ${(fwd * 1e3).toFixed(1).padStart(7)}  ${(bwd * 1e3).toFixed(1).padStart(7)}  ` +
    `${(fwdFlops / fwd / 1e9).toFixed(1).padStart(11)}  ${(bwdFlops / bwd / 1e9).toFixed(1).padStart(11)}  ` +
    `${rate.toFixed(1).padStart(15)}  ${(rate / gemmRate).toFixed(2).padStart(13)}`);
}
