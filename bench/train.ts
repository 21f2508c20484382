// Training throughput: tokens/s and MFU of a full training step (forward, loss, backward, clipping, AdamW) for the
// tiny, small and medium presets at 2,048 tokens per step, fp32 (and bf16 mixed precision with --precision), all
// threads; the GEMM peak measured in the same run; peak resident memory. Each preset runs in its own child process so
// its peak memory is its own.
//
//   npx tsc -p . && node dist/bench/train.js                       # all three presets
//   node dist/bench/train.js --presets tiny --steps 10 --vocab 4096
//   node dist/bench/train.js --presets small --cpu-prof            # writes a .cpuprofile per child into bench-prof/
//   node dist/bench/train.js --runs 5                              # medians of 5 runs per preset (this machine drifts)
//   node dist/bench/train.js --precision fp32,bf16                 # each preset in both, one after the other (AVX512_BF16)
//
// Precision bf16: the linear and matmul GEMMs take bf16 inputs (Backend.gemmMixedBf16), so its MFU is against the
// bf16 GEMM's peak, measured the same way at the same shapes: the same model FLOPs over a ceiling about twice as high.
// Its PyTorch peer runs the forward and loss under torch.autocast("cpu", dtype=torch.bfloat16).
//
// Reported per preset: median step time over --steps timed steps after --warmup steps, its split into forward+loss,
// backward, clip+AdamW, tokens/s, MFU = model FLOP/s / GEMM peak (FLOPs as in src/train/progress.ts), peak RSS.
// The peak (trainingGemmPeak) is measured right after each step and each step is compared with it; MFU is the median of
// those ratios, as bench/gemm's ratio to OpenBLAS is the median of back-to-back pairs: on a shared machine whose speed
// drifts by 20% and more within seconds, a step must not be held to a peak measured at a quieter moment. MFU^ is that
// comparison anyway: the median step against the best rate of a 2 s window up front.
// --ops: time per Backend primitive; --shapes: GFLOP/s of each GEMM shape of the step (both on stderr).
// Peer: when python3 can import torch (Debian's python3-torch; never a dependency), bench/train_torch.py runs the same
// model and step right after ours, with the same thread count, and the table adds its tokens/s, its MFU^ against the
// same up-front peak, and our speed over its speed. --no-torch skips it.
import { spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { getBackend, setBackend, nativeAvailable, releaseTape, setMatmulPrecision, type MatmulPrecision } from '../src/tensor/index.js';
import { nativeControls } from '../src/tensor/backend-native.js';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset } from '../src/model/config.js';
import { AdamW, clipGradNorm } from '../src/train/optim.js';
import { measureGemmPeak, trainingGemmPeak, trainingGemmRates, trainFlopsPerToken } from '../src/train/progress.js';
import { Rng } from '../src/util/rng.js';
import { NO_TORCH, torchEnv, torchPython } from './peers.js';

const SHAPES: Record<string, { B: number; T: number }> = { tiny: { B: 16, T: 128 }, small: { B: 8, T: 256 }, medium: { B: 4, T: 512 } };

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function child(preset: string): void {
  const steps = Number(arg('steps', '6')), warmup = Number(arg('warmup', '2')), V = Number(arg('vocab', '8192'));
  if (arg('backend', '') === 'js' || !nativeAvailable()) setBackend('js');
  const be = getBackend();
  const precision = arg('child-precision', 'fp32') as MatmulPrecision;
  setMatmulPrecision(precision);
  const { B, T } = SHAPES[preset];
  const model = GPT.create(configFromPreset(preset, V), 1);
  const cfg = model.config;
  const opt = new AdamW(model, { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
  const rng = new Rng(2);
  const ids = new Int32Array(B * T), targets = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) { ids[i] = rng.int(V); targets[i] = rng.int(V); }

  // the GEMM peak at the MLP shapes of this step (src/train/progress.ts), measured in this process: right after each
  // timed step, so that on a shared machine each step is compared with the peak of its moment (MFU), and once up front
  // over 2 s (MFU against it, with that window's median rate beside its best, which shows how much the machine drifts)
  const upFront = trainingGemmRates(be, B * T, cfg.nEmbd, cfg.intermediateSize, 2.0, precision);
  const peak = Math.max(...upFront), peakMedian = median(upFront);
  const localPeaks: number[] = [], mfus: number[] = [];
  const matmulParams = model.layout.filter((p) => p.kind === 'matrix').reduce((a, p) => a + p.size, 0) +
    (cfg.tiedEmbeddings ? cfg.vocabSize * cfg.nEmbd : 0);
  const flopsPerToken = trainFlopsPerToken({ matmulParams, nLayer: cfg.nLayer, nEmbd: cfg.nEmbd, seqLen: T });

  const opTimes = process.argv.includes('--ops') ? timeBackendCalls(be) : null;
  const total: number[] = [], fwd: number[] = [], bwd: number[] = [], upd: number[] = [];
  let loss = 0;
  for (let s = 0; s < warmup + steps; s++) {
    const t0 = performance.now();
    model.zeroGrad();
    const l = model.forward(ids, B, T, { targets }).loss!;
    loss = l.item();
    const t1 = performance.now();
    l.backward();
    releaseTape();
    const t2 = performance.now();
    clipGradNorm(model.gradFlat, 1.0, be);
    opt.step(1e-4);
    const t3 = performance.now();
    if (s >= warmup) {
      total.push(t3 - t0); fwd.push(t1 - t0); bwd.push(t2 - t1); upd.push(t3 - t2);
      const p = trainingGemmPeak(be, B * T, cfg.nEmbd, cfg.intermediateSize, 0.4, precision);
      localPeaks.push(p);
      mfus.push((flopsPerToken * B * T) / ((t3 - t0) / 1000) / (p * 1e9));
    }
    if (s === warmup - 1) opTimes?.clear();
  }
  if (opTimes) {
    const sum = total.reduce((a, b) => a + b, 0);
    console.error(`  time per Backend primitive over ${steps} steps (${sum.toFixed(0)} ms of steps):`);
    for (const [name, ms] of [...opTimes].sort((a, b) => b[1] - a[1]).slice(0, 14)) {
      console.error(`    ${name.padEnd(22)} ${ms.toFixed(0).padStart(7)} ms  ${((100 * ms) / sum).toFixed(1).padStart(5)}%`);
    }
  }
  const dt = median(total) / 1000;
  const tokPerSec = (B * T) / dt;
  const mfuUpFront = (flopsPerToken * tokPerSec) / (peak * 1e9);
  const mfu = median(mfus), peakLocal = median(localPeaks);
  if (process.argv.includes('--shapes')) gemmShapes(be, B * T, cfg.nEmbd, cfg.intermediateSize, (cfg.nHead + 2 * cfg.nKvHead) * (cfg.nEmbd / cfg.nHead), V);
  console.log(JSON.stringify({
    preset, precision, backend: be.name, B, T, vocab: V, params: model.numParams(), matmulParams, stepMs: +(dt * 1000).toFixed(1),
    forwardMs: +median(fwd).toFixed(1), backwardMs: +median(bwd).toFixed(1), updateMs: +median(upd).toFixed(1),
    tokPerSec: Math.round(tokPerSec), modelGflops: +((flopsPerToken * tokPerSec) / 1e9).toFixed(1),
    peakLocalGflops: +peakLocal.toFixed(1), mfu: +mfu.toFixed(3), peakGflops: +peak.toFixed(1), peakMedianGflops: +peakMedian.toFixed(1),
    mfuUpFront: +mfuUpFront.toFixed(3), peakRssMiB: Math.round(process.resourceUsage().maxRSS / 1024), loss: +loss.toFixed(3),
  }));
}

// Wraps every Backend method with a timer (--ops): where a step's time goes, primitive by primitive. GEMMs are keyed by
// shape and transposes.
function timeBackendCalls(be: any): Map<string, number> {
  const times = new Map<string, number>();
  for (const name of Object.keys(be)) {
    const f = be[name];
    if (typeof f !== 'function') continue;
    be[name] = (...args: any[]) => {
      const t = performance.now();
      const r = f.apply(be, args);
      const key = name === 'gemm' ? `gemm ${args[3]}x${args[4]}x${args[5]}${args[6] ? ' tA' : ''}${args[7] ? ' tB' : ''}` : name;
      times.set(key, (times.get(key) ?? 0) + performance.now() - t);
      return r;
    };
  }
  return times;
}

// GFLOP/s of every GEMM a training step runs (forward y = x W^T, backward dx = g W, dW = g^T x), each next to a fresh
// peak measurement so that a busy machine shows as a low peak rather than as a slow shape. Printed to stderr.
function gemmShapes(be: ReturnType<typeof getBackend>, N: number, C: number, I: number, qkv: number, V: number): void {
  const time = (M: number, Nn: number, K: number, tA: boolean, tB: boolean) => {
    const A = new Float32Array(M * K).fill(0.01), Bm = new Float32Array(Nn * K).fill(0.02), Cm = new Float32Array(M * Nn);
    be.gemm(Cm, A, Bm, M, Nn, K, tA, tB, 1, 0);
    let best = Infinity;
    for (let r = 0; r < 5; r++) { const t = performance.now(); be.gemm(Cm, A, Bm, M, Nn, K, tA, tB, 1, 0); best = Math.min(best, performance.now() - t); }
    return (2 * M * Nn * K) / (best / 1000) / 1e9;
  };
  const layers: [string, number, number][] = [['qkv', qkv, C], ['o_proj', C, C], ['gate/up', I, C], ['down', C, I], ['lm_head', V, C]];
  for (const [name, out, inF] of layers) {
    const peak = measureGemmPeak(be, N, I, C, 0.2);
    const f = time(N, out, inF, false, true), dx = time(N, inF, out, false, false), dw = time(out, inF, N, true, false);
    console.error(`  ${name.padEnd(8)} (${N} x ${inF}) -> ${out}: fwd ${f.toFixed(1)}  dx ${dx.toFixed(1)}  dW ${dw.toFixed(1)} GFLOP/s  (peak now ${peak.toFixed(1)})`);
  }
}

function parent(): void {
  const presets = arg('presets', 'tiny,small,medium').split(',');
  const precisions = arg('precision', 'fp32').split(',') as MatmulPrecision[];
  for (const p of precisions) if (p !== 'fp32' && p !== 'bf16') throw new Error(`unknown precision ${p}; choose from fp32, bf16`);
  if (precisions.includes('bf16') && !(nativeAvailable() && nativeControls.hasBf16Gemm())) {
    throw new Error('--precision bf16 needs the native backend on a CPU with AVX512_BF16 at the avx512 dispatch level');
  }
  const self = fileURLToPath(import.meta.url);
  const pass = process.argv.slice(2).filter((a) => a !== '--cpu-prof');
  const nodeFlags = process.argv.includes('--cpu-prof') ? ['--cpu-prof', '--cpu-prof-dir=bench-prof'] : [];
  const runs = Math.max(1, Math.floor(Number(arg('runs', '1'))) || 1);
  const rows: any[] = [];
  for (const p of presets) {
    if (!(p in SHAPES)) throw new Error(`unknown preset ${p}; choose from ${Object.keys(SHAPES).join(', ')}`);
    // --runs N: N fresh processes, each followed by its PyTorch run; the table shows the median of each figure. With
    // several precisions each run does them one after the other, so they meet the same moments of a drifting machine.
    const done = new Map<MatmulPrecision, any[]>(precisions.map((q) => [q, []]));
    for (let i = 0; i < runs; i++) {
      for (const q of precisions) {
        const r = spawnSync(process.execPath, [...nodeFlags, self, ...pass, '--child', p, '--child-precision', q],
          { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
        const line = r.stdout.trim().split('\n').pop() ?? '';
        if (r.status !== 0 || !line.startsWith('{')) { console.error(`${p} ${q}: child failed (exit ${r.status})\n${r.stdout}`); continue; }
        const row = JSON.parse(line);
        row.torch = torchPeer(p, row.vocab, q);
        if (runs > 1) console.error(`  ${p} ${q} run ${i + 1}/${runs}: ${row.stepMs} ms a step, MFU ${(100 * row.mfu).toFixed(1)}%, MFU^ ${(100 * row.mfuUpFront).toFixed(1)}%`);
        done.get(q)!.push(row);
      }
    }
    for (const q of precisions) if (done.get(q)!.length) rows.push(medianRow(done.get(q)!));
  }
  const target: Record<string, number> = { tiny: 0.45, small: 0.65, medium: 0.65 };
  console.log('MFU: model FLOP/s (6 x matmul params + causal attention, per token) over the GEMM peak; per step against the peak');
  console.log('measured right after it, median over the steps (on a shared machine whose speed drifts, each step meets the peak of');
  console.log('its moment). MFU^: the median step against the best of a 2 s peak window up front; that window\'s median is printed');
  console.log('beside its best.');
  const peerInfo = rows.map((r) => r.torch).find((t) => typeof t !== 'string') as { version: string } | undefined;
  console.log(`PyTorch${peerInfo ? ` ${peerInfo.version}` : ''}: bench/train_torch.py, the same model and step in torch (same precision, same threads), run right`);
  console.log('after ours; its MFU^ against the same up-front peak (it is not paired step by step).');
  if (precisions.includes('bf16')) {
    console.log('bf16 rows: linear/matmul GEMMs with bf16 inputs and float32 sums; peak and MFU against the bf16 GEMM at the same');
    console.log('shapes (PyTorch: torch.autocast("cpu", dtype=torch.bfloat16) around the forward and loss).');
  }
  console.log('preset  prec  backend  B x T      params   step ms  fwd/bwd/upd ms        tok/s   model GF/s  peak GF/s   MFU  (target)  ' +
    'up-front peak best/median   MFU^  peak RSS   PyTorch tok/s  MFU^   ours/PyTorch');
  for (const r of rows) {
    const t = r.torch as { tokPerSec: number } | string;
    const peer = typeof t === 'string' ? `   (${t})` : `   ${String(t.tokPerSec).padStart(13)}  ${(100 * r.torchMfu).toFixed(1).padStart(4)}%` +
      `  ${r.torchRatio.toFixed(2).padStart(6)}x`;
    console.log(`${r.preset.padEnd(7)} ${r.precision.padEnd(5)} ${r.backend.padEnd(8)} ${`${r.B} x ${r.T}`.padEnd(9)} ${(r.params / 1e6).toFixed(2).padStart(7)}M ` +
      `${String(r.stepMs).padStart(8)}  ${`${r.forwardMs}/${r.backwardMs}/${r.updateMs}`.padEnd(20)} ${String(r.tokPerSec).padStart(7)} ` +
      `${String(r.modelGflops).padStart(11)} ${String(r.peakLocalGflops).padStart(10)} ${(100 * r.mfu).toFixed(1).padStart(5)}%  (${100 * target[r.preset]}%)  ` +
      `${`${r.peakGflops} / ${r.peakMedianGflops}`.padStart(25)} ${(100 * r.mfuUpFront).toFixed(1).padStart(5)}% ` +
      `${String(r.peakRssMiB).padStart(6)} MiB${peer}`);
  }
  if (runs > 1) {
    console.log(`medians of ${runs} runs; MFU from run to run: ` +
      rows.map((r) => `${r.preset} ${r.precision} ${(100 * r.mfuMin).toFixed(1)}-${(100 * r.mfuMax).toFixed(1)}%`).join(', '));
  }
}

// The median of each number over several runs of one preset; the MFU range; the PyTorch figures likewise (tokens/s, and
// our speed over its speed as the median of the per-run ratios).
function medianRow(done: any[]): any {
  const row: any = { ...done[0], runs: done.length, mfuMin: Math.min(...done.map((r) => r.mfu)), mfuMax: Math.max(...done.map((r) => r.mfu)) };
  for (const k of Object.keys(row)) if (typeof row[k] === 'number' && !['runs', 'mfuMin', 'mfuMax'].includes(k)) row[k] = median(done.map((r) => r[k]));
  const peers = done.filter((r) => typeof r.torch !== 'string');
  if (peers.length) {
    row.torch = { version: peers[0].torch.version, tokPerSec: median(peers.map((r) => r.torch.tokPerSec)) };
    row.torchRatio = median(peers.map((r) => r.tokPerSec / r.torch.tokPerSec));
    // its MFU^: its model FLOP/s (our FLOPs per token times its tokens/s) over the same up-front peak
    row.torchMfu = median(peers.map((r) => (r.modelGflops / r.tokPerSec) * r.torch.tokPerSec / r.peakGflops));
  }
  return row;
}

// The PyTorch peer (bench/train_torch.py) on the same preset, shapes, steps and thread count; a reason string when
// python3 or torch is missing (it is a peer for the benchmark, never a dependency) or --no-torch is given.
function torchPeer(preset: string, vocab: number, precision: MatmulPrecision): { tokPerSec: number; stepMs: number; version: string } | string {
  if (process.argv.includes('--no-torch')) return 'PyTorch not run: --no-torch';
  const script = fileURLToPath(new URL('../../bench/train_torch.py', import.meta.url));
  const python = torchPython();
  if (!python) return NO_TORCH;
  const { B, T } = SHAPES[preset];
  const cfg = configFromPreset(preset as 'tiny' | 'small' | 'medium', vocab);
  const threads = Number(process.env.CHATWRIGHT_THREADS) || availableParallelism();
  const env = torchEnv();
  const r = spawnSync(python, [script, JSON.stringify(cfg), String(B), String(T), arg('steps', '6'), arg('warmup', '2'), String(threads), precision],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], env });
  const line = (r.stdout ?? '').trim().split('\n').pop() ?? '';
  if (r.status !== 0 || !line.startsWith('{')) return `PyTorch run failed (exit ${r.status}): ${(r.stderr ?? '').trim().split('\n').pop()}`;
  const j = JSON.parse(line) as { step_ms: number; torch: string };
  return { tokPerSec: Math.round((B * T) / (j.step_ms / 1000)), stepMs: +j.step_ms.toFixed(1), version: j.torch };
}

const ci = process.argv.indexOf('--child');
if (ci >= 0) child(process.argv[ci + 1]);
else parent();
