// Throughput accounting and the live progress line. Knows numbers, not models: the caller passes the shape figures.
//
// MFU (model FLOPs utilisation, PaLM appendix B): achieved model FLOP/s over the machine's GEMM peak. Per token a training
// step costs 6 FLOPs per matmul parameter (2 forward, 4 backward) plus attention: QK^T and AV are 2 * 2 * C FLOPs per
// (query, key) pair forward, x3 with backward, over the T/2 keys a causal query sees on average: 6 * nLayer * C * T.
// (nanoGPT's estimate_mfu counts the full T x T square, 12 * nLayer * C * T; we count only what causal attention does.)
// The peak is measured, not taken from a datasheet: a short GEMM of training shape on the backend in use, at the run's
// precision (a bf16 mixed-precision run is held to the bf16 GEMM's rate, about twice the float32 one).
//
// API: trainFlopsPerToken(shape), measureGemmRates / measureGemmPeak(backend, M, N, K), trainingGemmRates /
//      trainingGemmPeak(backend, tokens, C, I), StepMeter, ProgressLine,
//      formatDuration(seconds)
import type { Backend } from '../tensor/backend.js';
import type { MatmulPrecision } from '../tensor/index.js';

export interface FlopShape { matmulParams: number; nLayer: number; nEmbd: number; seqLen: number }

export function trainFlopsPerToken(s: FlopShape): number {
  return 6 * s.matmulParams + 6 * s.nLayer * s.nEmbd * s.seqLen;
}

// GFLOP/s of each of a few repetitions of C(M, N) = A(M, K) @ B(N, K)^T (the layout of a linear layer, HF weights),
// lasting about `seconds` after one warm-up call; at bf16 precision the mixed-precision GEMM (gemmMixedBf16).
export function measureGemmRates(backend: Backend, M: number, N: number, K: number, seconds = 0.5,
  precision: MatmulPrecision = 'fp32'): number[] {
  const A = new Float32Array(M * K), B = new Float32Array(N * K), C = new Float32Array(M * N);
  for (let i = 0; i < A.length; i++) A[i] = ((i * 7919) % 1000) / 1000 - 0.5;
  for (let i = 0; i < B.length; i++) B[i] = ((i * 104729) % 1000) / 1000 - 0.5;
  const gemm = precision === 'bf16' ? 'gemmMixedBf16' : 'gemm';
  backend[gemm](C, A, B, M, N, K, false, true, 1, 0);
  const rates: number[] = [];
  const t0 = performance.now();
  while (rates.length < 3 || (performance.now() - t0 < seconds * 1000 && rates.length < 200)) {
    const t = performance.now();
    backend[gemm](C, A, B, M, N, K, false, true, 1, 0);
    rates.push((2 * M * N * K) / ((performance.now() - t) / 1000) / 1e9);
  }
  return rates;
}

// The best of measureGemmRates: the peak.
export function measureGemmPeak(backend: Backend, M: number, N: number, K: number, seconds = 0.5,
  precision: MatmulPrecision = 'fp32'): number {
  return Math.max(...measureGemmRates(backend, M, N, K, seconds, precision));
}

// The rates (measureGemmRates) of whichever of the two MLP GEMM shapes of a training step, (tokens x C) -> I and
// (tokens x I) -> C, reached the higher best, so a small inner dimension of one shape does not lower the bar.
export function trainingGemmRates(backend: Backend, tokens: number, nEmbd: number, intermediate: number, seconds = 0.5,
  precision: MatmulPrecision = 'fp32'): number[] {
  const a = measureGemmRates(backend, tokens, intermediate, nEmbd, seconds / 2, precision);
  const b = measureGemmRates(backend, tokens, nEmbd, intermediate, seconds / 2, precision);
  return Math.max(...a) >= Math.max(...b) ? a : b;
}

// The peak used for MFU: the best of trainingGemmRates.
export function trainingGemmPeak(backend: Backend, tokens: number, nEmbd: number, intermediate: number, seconds = 0.5,
  precision: MatmulPrecision = 'fp32'): number {
  return Math.max(...trainingGemmRates(backend, tokens, nEmbd, intermediate, seconds, precision));
}

// The rates of a training loop's steps: tokens/s and MFU of the step just done, and the ETA of the steps left from a
// moving average of step times (weight 0.1 on the newest).
export class StepMeter {
  private ema = 0;

  constructor(private readonly flopsPerToken: number, private readonly peakGflops: number) {}

  step(tokens: number, seconds: number, stepsLeft: number): { tokPerSec: number; mfu: number; eta: number } {
    this.ema = this.ema === 0 ? seconds : 0.9 * this.ema + 0.1 * seconds;
    const tokPerSec = tokens / seconds;
    return { tokPerSec, mfu: (this.flopsPerToken * tokPerSec) / (this.peakGflops * 1e9), eta: stepsLeft * this.ema };
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

// One status line rewritten in place with \r on a terminal; plain lines (every `every`-th update) otherwise. Plain lines
// and log() lines go through `print` when given (a caller that indents or captures output), else to the stream.
// Progress is a diagnostic: its stream is stderr (stdout carries a command's results).
// The live line of a training step: step, loss, the stage's own figures, learning rate, throughput, MFU (when known),
// step time and ETA.
export function stepLine(label: string, step: number, steps: number, loss: number, lr: number, tokPerSec: number,
  mfu: number | null, seconds: number, etaSeconds: number, extra?: string): string {
  return `${label}step ${step}/${steps} | loss ${loss.toFixed(4)} | ${extra ? extra + ' | ' : ''}lr ${lr.toExponential(2)} | ` +
    `${(tokPerSec / 1000).toFixed(1)}k tok/s | ${mfu === null ? '' : `MFU ${(100 * mfu).toFixed(1)}% | `}` +
    `${(seconds * 1000).toFixed(0)} ms | ETA ${formatDuration(etaSeconds)}`;
}

export class ProgressLine {
  private readonly tty: boolean;
  private count = 0;
  private width = 0;
  private readonly println: (text: string) => void;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr, private readonly every = 1, print?: (text: string) => void) {
    this.tty = !!stream.isTTY;
    this.println = print ?? ((text) => stream.write(text + '\n'));
  }

  update(text: string, force = false): void {
    this.count++;
    if (this.tty) {
      const pad = Math.max(0, this.width - text.length);
      this.stream.write('\r' + text + ' '.repeat(pad));
      this.width = text.length;
    } else if (force || this.count % this.every === 0) {
      this.println(text);
    }
  }

  // print a full line (a validation loss, a sample) without clobbering the status line
  log(text: string): void {
    if (this.tty && this.width > 0) {
      this.stream.write('\r' + ' '.repeat(this.width) + '\r');
      this.width = 0;
    }
    this.println(text);
  }

  done(): void {
    if (this.tty && this.width > 0) this.stream.write('\n');
    this.width = 0;
  }
}
