// Where a training step's time goes: every Backend call of a full step (forward, loss, backward, clipping, AdamW) is
// timed and grouped by what it does (the GEMMs by layer role, attention, the loss, norms, elementwise, optimizer), next
// to the time spent outside the backend (the JS side: tape, closures, checks) and the time the step would take if
// every GEMM ran at the GEMM peak measured in the same run. Shares of the step, not absolute times, are the point: on
// a busy machine they stay comparable between runs when the absolute figures do not.
//
//   npx tsc -p . && node dist/bench/train-profile.js --preset small --steps 3
//   node dist/bench/train-profile.js --preset tiny --steps 5 --vocab 8192
//
// Same step as bench/train.ts (which reports tokens/s and MFU): 2,048 tokens per step, fp32, all threads.
import { loadavg } from 'node:os';
import { getBackend, setBackend, nativeAvailable, releaseTape } from '../src/tensor/index.js';
import type { Backend } from '../src/tensor/backend.js';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset } from '../src/model/config.js';
import { AdamW, clipGradNorm } from '../src/train/optim.js';
import { trainingGemmPeak, trainFlopsPerToken } from '../src/train/progress.js';
import { Rng } from '../src/train/rng.js';

const SHAPES: Record<string, { B: number; T: number }> = { tiny: { B: 16, T: 128 }, small: { B: 8, T: 256 }, medium: { B: 4, T: 512 } };

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

interface Acc { ms: number; calls: number; flops: number }

// Wraps every Backend method with a timer; `group` names the bucket a call lands in.
function instrument(be: Backend, group: (name: string, args: unknown[]) => string): Map<string, Acc> {
  const acc = new Map<string, Acc>();
  const b = be as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const name of Object.keys(b)) {
    const f = b[name];
    if (typeof f !== 'function') continue;
    b[name] = (...args: unknown[]) => {
      const t = performance.now();
      const r = f.apply(be, args);
      const dt = performance.now() - t;
      const key = group(name, args);
      let a = acc.get(key);
      if (!a) acc.set(key, (a = { ms: 0, calls: 0, flops: 0 }));
      a.ms += dt;
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
  let outside = 0, total = 0, loss = 0;
  for (let s = 0; s < steps + 1; s++) {
    if (s === 1) { acc.clear(); outside = 0; total = 0; }
    const sumBefore = [...acc.values()].reduce((x, y) => x + y.ms, 0);
    const t0 = performance.now();
    model.zeroGrad();
    const l = model.forward(ids, B, T, { targets }).loss!;
    loss = l.item();
    l.backward();
    releaseTape();
    clipGradNorm(model.gradFlat, 1.0, be);
    opt.step(1e-4);
    const dt = performance.now() - t0;
    const inBackend = [...acc.values()].reduce((x, y) => x + y.ms, 0) - sumBefore;
    total += dt;
    outside += dt - inBackend;
  }
  const rows = [...acc.entries()].sort((x, y) => y[1].ms - x[1].ms);
  const gemmFlops = rows.reduce((x, [, a]) => x + a.flops, 0) / steps;
  console.log(`${preset}: B=${B} T=${T} V=${V}, ${steps} steps, ${(total / steps).toFixed(1)} ms/step, loss ${loss.toFixed(3)}, ` +
    `GEMM peak ${peak.toFixed(1)} GFLOP/s, load average ${loadavg()[0].toFixed(1)}`);
  console.log('  bucket                      ms/step   share   calls/step   GFLOP/s');
  for (const [k, a] of rows) {
    const gf = a.flops > 0 ? ((a.flops / (a.ms / 1000)) / 1e9).toFixed(1) : '';
    console.log(`  ${k.padEnd(26)} ${(a.ms / steps).toFixed(1).padStart(8)} ${((100 * a.ms) / total).toFixed(1).padStart(6)}% ` +
      `${String(a.calls / steps).padStart(8)}     ${gf.padStart(7)}`);
  }
  console.log(`  ${'(outside the backend)'.padEnd(26)} ${(outside / steps).toFixed(1).padStart(8)} ${((100 * outside) / total).toFixed(1).padStart(6)}%`);
  const gemmMs = rows.filter(([k]) => k.startsWith('gemm')).reduce((x, [, a]) => x + a.ms, 0) / steps;
  const stepMs = total / steps;
  const tokPerSec = N / (stepMs / 1000);
  console.log(`  GEMM ${gemmMs.toFixed(1)} ms/step (${((100 * gemmMs) / stepMs).toFixed(1)}%), at peak it would be ` +
    `${((gemmFlops / (peak * 1e9)) * 1000).toFixed(1)} ms; non-GEMM ${(stepMs - gemmMs).toFixed(1)} ms/step`);
  console.log(`  tokens/s ${tokPerSec.toFixed(0)}, MFU ${((100 * flopsPerToken * tokPerSec) / (peak * 1e9)).toFixed(1)}%`);
}

main();
