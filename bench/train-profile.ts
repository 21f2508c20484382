// Where a training step's time goes: every Backend call of a full step (forward, loss, backward, clipping, AdamW) is
// timed and grouped by what it does (the GEMMs by layer role, attention, the loss, norms, elementwise, optimizer), next
// to the time spent outside the backend (the JS side: tape, closures, checks) and the time the step would take if
// every GEMM ran at the GEMM peak measured in the same run. Shares of the step, not absolute times, are the point: on
// a busy machine they stay comparable between runs when the absolute figures do not. Each bucket is also timed in CPU
// time of the process, and the step's MFU is estimated by CPU time as well (model FLOPs per CPU second over GEMM FLOPs
// per CPU second): that leaves out the time spent waiting for a core, though on a loaded machine cache and memory
// contention still move it by tens of percent between runs. CHATWRIGHT_THREADS=1 gives the cleanest CPU-time split.
// bench/train.ts is the reference for tokens/s and MFU on an idle machine.
//
//   npx tsc -p . && node dist/bench/train-profile.js --preset small --steps 3
//   node dist/bench/train-profile.js --preset tiny --steps 5 --vocab 8192
//   node dist/bench/train-profile.js --preset small --steps 6 --skip rmsnormForward,residualRmsnormForward,rmsnormBackward,add,swigluForward,swigluBackward,scaleShift,ropeForward,ropeBackward
//
// Same step as bench/train.ts (which reports tokens/s and MFU): 2,048 tokens per step, fp32, all threads.
import { cpus, loadavg } from 'node:os';
import { getBackend, setBackend, nativeAvailable, releaseTape } from '../src/tensor/index.js';
import { nativeControls } from '../src/tensor/backend-native.js';
import type { Backend } from '../src/tensor/backend.js';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset } from '../src/model/config.js';
import { AdamW, clipGradNorm } from '../src/train/optim.js';
import { trainingGemmPeak, trainFlopsPerToken } from '../src/train/progress.js';
import { Rng } from '../src/util/rng.js';

const SHAPES: Record<string, { B: number; T: number }> = { tiny: { B: 16, T: 128 }, small: { B: 8, T: 256 }, medium: { B: 4, T: 512 } };

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

interface Acc { ms: number; cpu: number; calls: number; flops: number }

// CPU time of this process (all threads) in ms: on a shared machine it leaves out the time the process waited for a
// core, so its ratios stay meaningful under load (pool threads that spin while waiting count, though).
const cpuMs = (): number => { const u = process.cpuUsage(); return (u.user + u.system) / 1000; };

// GEMM peak per CPU second, at the MLP shape (tokens x C) -> I, as src/train/progress.ts measures it by wall time.
function cpuGemmPeak(be: Backend, M: number, N: number, K: number, seconds: number): number {
  const A = new Float32Array(M * K).map((_, i) => ((i * 7919) % 1000) / 1000 - 0.5);
  const B = new Float32Array(N * K).map((_, i) => ((i * 104729) % 1000) / 1000 - 0.5), C = new Float32Array(M * N);
  be.gemm(C, A, B, M, N, K, false, true, 1, 0);
  let reps = 0;
  const t0 = performance.now(), c0 = cpuMs();
  while (performance.now() - t0 < seconds * 1000 || reps < 3) { be.gemm(C, A, B, M, N, K, false, true, 1, 0); reps++; }
  return (2 * M * N * K * reps) / ((cpuMs() - c0) / 1000) / 1e9;
}

// Wraps every Backend method with a timer; `group` names the bucket a call lands in.
function instrument(be: Backend, group: (name: string, args: unknown[]) => string): Map<string, Acc> {
  const acc = new Map<string, Acc>();
  const b = be as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of Object.keys(b)) {
    const f = b[name];
    if (typeof f !== 'function') continue;
    b[name] = (...args: unknown[]) => {
      const c = cpuMs(), t = performance.now();
      const r = f.apply(be, args);
      const dt = performance.now() - t, dc = cpuMs() - c;
      const key = group(name, args);
      let a = acc.get(key);
      if (!a) acc.set(key, (a = { ms: 0, cpu: 0, calls: 0, flops: 0 }));
      a.ms += dt;
      a.cpu += dc;
      a.calls++;
      if (name === 'gemm') a.flops += 2 * (args[3] as number) * (args[4] as number) * (args[5] as number) * ((args[10] as number) || 1);
      return r;
    };
  }
  return acc;
}

function main(): void {
  const preset = arg('preset', 'small'), steps = Number(arg('steps', '3')), V = Number(arg('vocab', '8192'));
  if (!(preset in SHAPES)) throw new Error(`unknown preset ${preset}; choose from ${Object.keys(SHAPES).join(', ')}`);
  if (arg('backend', '') === 'js' || !nativeAvailable()) setBackend('js');
  const be = getBackend();
  const { B, T } = SHAPES[preset];
  const model = GPT.create(configFromPreset(preset, V), 1);
  const cfg = model.config, C = cfg.nEmbd, I = cfg.intermediateSize, N = B * T;
  const opt = new AdamW(model, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
  const rng = new Rng(2);
  const ids = new Int32Array(N), targets = new Int32Array(N);
  for (let i = 0; i < N; i++) { ids[i] = rng.int(V); targets[i] = rng.int(V); }
  const peak = trainingGemmPeak(be, N, C, I, 1.0);
  const cpuPeak = Math.max(cpuGemmPeak(be, N, I, C, 0.5), cpuGemmPeak(be, N, C, I, 0.5));
  const matmulParams = model.layout.filter((p) => p.kind === 'matrix').reduce((a, p) => a + p.size, 0) +
    (cfg.tiedEmbeddings ? V * C : 0);
  const flopsPerToken = trainFlopsPerToken({ matmulParams, nLayer: cfg.nLayer, nEmbd: C, seqLen: T });

  // GEMMs are named by the layer they belong to (their output/inner widths) and pass (fwd, dx, dW).
  const hd = C / cfg.nHead, q = cfg.nHead * hd, kv = cfg.nKvHead * hd;
  const width = (w: number) => (w === V ? 'lm_head' : w === I ? 'mlp-I' : w === q + 2 * kv ? 'qkv' : w === q ? 'C' : w === kv ? 'kv' : `${w}`);
  const group = (name: string, a: unknown[]): string => {
    if (name === 'gemm') {
      const [M, Nn, K, tA, tB] = a.slice(3, 8) as [number, number, number, boolean, boolean];
      if (tB) return `gemm fwd  ${width(Nn)}<-${width(K)}`;
      if (tA) return `gemm dW   ${width(M)}x${width(Nn)}`;
      return `gemm dx   ${width(Nn)}<-${width(K)}`;
    }
    return name;
  };
  const acc = instrument(be, group);
  const runStep = (): number => {
    model.zeroGrad();
    const l = model.forward(ids, B, T, { targets }).loss!;
    const v = l.item();
    l.backward();
    releaseTape();
    clipGradNorm(model.gradFlat, 1.0, be);
    opt.step(1e-4);
    return v;
  };
  let outside = 0, total = 0, loss = 0, cpuTotal = 0, cpuOutside = 0;
  for (let s = 0; s < steps + 1; s++) {
    if (s === 1) { acc.clear(); outside = 0; total = 0; cpuTotal = 0; cpuOutside = 0; }
    const sumBefore = [...acc.values()].reduce((x, y) => x + y.ms, 0);
    const cpuBefore = [...acc.values()].reduce((x, y) => x + y.cpu, 0);
    const c0 = cpuMs(), t0 = performance.now();
    loss = runStep();
    const dt = performance.now() - t0, dc = cpuMs() - c0;
    const inBackend = [...acc.values()].reduce((x, y) => x + y.ms, 0) - sumBefore;
    const cpuInBackend = [...acc.values()].reduce((x, y) => x + y.cpu, 0) - cpuBefore;
    total += dt;
    outside += dt - inBackend;
    cpuTotal += dc;
    cpuOutside += dc - cpuInBackend;
  }
  const rows = [...acc.entries()].sort((x, y) => y[1].ms - x[1].ms);
  const gemmFlops = rows.reduce((x, [, a]) => x + a.flops, 0) / steps;
  console.log(`${preset}: B=${B} T=${T} V=${V}, ${steps} steps, ${(total / steps).toFixed(1)} ms/step, loss ${loss.toFixed(3)}, ` +
    `GEMM peak ${peak.toFixed(1)} GFLOP/s, load average ${loadavg()[0].toFixed(1)}`);
  console.log(`  ${cpus()[0]?.model?.trim() ?? 'an unknown CPU'}, ${be.name === 'native' ? `native kernels at ${nativeControls.cpuLevelName()}, ` +
    `${nativeControls.numThreads()} threads` : `${be.name} backend`}`);
  console.log('  bucket                      ms/step   share  cpu ms/step  cpu share  calls/step  GFLOP/s  GFLOP/cpu-s');
  const line = (k: string, ms: number, cpu: number, calls: string, gf: string, gfc: string) => console.log(
    `  ${k.padEnd(26)} ${(ms / steps).toFixed(1).padStart(8)} ${((100 * ms) / total).toFixed(1).padStart(6)}% ` +
    `${(cpu / steps).toFixed(1).padStart(11)} ${((100 * cpu) / cpuTotal).toFixed(1).padStart(9)}% ${calls.padStart(10)} ` +
    `${gf.padStart(8)} ${gfc.padStart(12)}`);
  for (const [k, a] of rows) {
    const gf = a.flops > 0 ? ((a.flops / (a.ms / 1000)) / 1e9).toFixed(1) : '';
    const gfc = a.flops > 0 && a.cpu > 0 ? ((a.flops / (a.cpu / 1000)) / 1e9).toFixed(1) : '';
    line(k, a.ms, a.cpu, String(a.calls / steps), gf, gfc);
  }
  line('(outside the backend)', outside, cpuOutside, '', '', '');
  const gemmMs = rows.filter(([k]) => k.startsWith('gemm')).reduce((x, [, a]) => x + a.ms, 0) / steps;
  const stepMs = total / steps;
  const tokPerSec = N / (stepMs / 1000);
  console.log(`  GEMM ${gemmMs.toFixed(1)} ms/step (${((100 * gemmMs) / stepMs).toFixed(1)}%), at peak it would be ` +
    `${((gemmFlops / (peak * 1e9)) * 1000).toFixed(1)} ms; non-GEMM ${(stepMs - gemmMs).toFixed(1)} ms/step`);
  console.log(`  tokens/s ${tokPerSec.toFixed(0)}, MFU ${((100 * flopsPerToken * tokPerSec) / (peak * 1e9)).toFixed(1)}%`);
  // Per CPU second: model FLOPs of a step over its CPU time, against GEMM FLOPs per CPU second. Equal to the MFU on
  // an idle machine whose pool threads never wait; under load it estimates what the idle machine would show.
  const cpuStep = cpuTotal / steps;
  console.log(`  CPU ${cpuStep.toFixed(1)} ms/step, GEMM peak ${cpuPeak.toFixed(1)} GFLOP/cpu-s: ` +
    `MFU by CPU time ${((100 * flopsPerToken * N) / (cpuStep / 1000) / (cpuPeak * 1e9)).toFixed(1)}%`);

  // --skip OPS: do the step's GEMMs run faster when the named Backend calls do nothing (their passes over the
  // activations gone, so they no longer evict the GEMMs' operands)? Steps alternate with and without the calls and the
  // GEMMs' CPU time is compared pair by pair. The skipped calls leave their outputs stale, so the loss is meaningless
  // there; only the GEMM times are the point.
  const skip = arg('skip', '');
  if (skip) {
    const names = skip.split(',');
    const b = be as unknown as Record<string, (...a: unknown[]) => unknown>;
    const kept = names.map((n) => {
      if (typeof b[n] !== 'function') throw new Error(`--skip: ${n} is not a Backend method`);
      return b[n];
    });
    const gemmCpu = () => [...acc.entries()].filter(([k]) => k.startsWith('gemm')).reduce((x, [, a]) => x + a.cpu, 0);
    const all: number[] = [], skipped: number[] = [];
    for (let s = 0; s < 2 * steps; s++) {
      const off = s % 2 === 1;
      names.forEach((n, i) => { b[n] = off ? () => undefined : kept[i]; });
      const g0 = gemmCpu();
      runStep();
      (off ? skipped : all).push(gemmCpu() - g0);
    }
    names.forEach((n, i) => { b[n] = kept[i]; });
    const med = (x: number[]) => [...x].sort((p, q) => p - q)[x.length >> 1];
    const ratios = skipped.map((v, i) => v / all[i]);
    console.log(`  GEMM cpu ms/step with every call ${med(all).toFixed(1)}, with ${names.join(', ')} skipped ` +
      `${med(skipped).toFixed(1)}: paired ratio median ${med(ratios).toFixed(3)} (${ratios.map((r) => r.toFixed(3)).join(' ')})`);
  }
}

main();
