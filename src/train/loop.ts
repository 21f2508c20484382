// The stage loop: the machinery every training stage shares, so each stage file only says what one step does.
// Pretraining, SFT, the reward model, DPO, PPO and GRPO all run through runLoop; none has a loop of its own (SFT's
// copied loop once lost its signal handling: a loop that never yields to the event loop never sees SIGINT).
//
// What it owns:
// - Signals: SIGINT and SIGTERM ask for a stop. The step in progress finishes, the checkpoint is written, and the result
//   says which signal stopped it, so the CLI exits 130 or 143 (128 + the signal number) only after the checkpoint is safe.
//   The loop yields to the event loop once a step (setImmediate), which is when Node runs the signal handlers; a step
//   is synchronous, so a stop waits for the step in progress. A stage whose step has parts (PPO: rollouts, then
//   training) may `await loop.yield()` between them and check `loop.stopping`.
// - The time limit (--time-limit minutes): a clean stop with a checkpoint, as for a signal.
// - Cadences: evaluation every evalEvery steps (before the step, so step 0 is measured) and at the end; a periodic extra
//   (samples) every sampleEvery steps; a checkpoint every saveEvery steps and at the end.
// - The step tail: metrics.jsonl record, tokens/s, MFU, ETA and the live progress line (progress.ts).
// - Checkpoints (saveCheckpoint): never from a non-finite loss or non-finite parameters, so the last good checkpoint
//   survives a divergence; the loss curve drawn from metrics.jsonl; trainer state written last (state.ts).
// - Resume (openRun, restoreOptimizer): the saved run of the same stage, or a clear error for another stage's folder.
//
// Boundary: knows steps, numbers and folders; not what a step computes. Stages share these nouns, not a base class.
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fsx.js';
import { bf16Unavailable, getBackend, setMatmulPrecision, type MatmulPrecision } from '../tensor/index.js';
import type { GPT } from '../model/gpt.js';
import { saveModel } from '../model/checkpoint.js';
import type { Tokenizer } from '../tokenizer/index.js';
import type { AdamW } from './optim.js';
import { appendMetrics, filterMetrics, readMetrics, type MetricsRecord } from './metrics.js';
import { lossCurveSvg } from './svg.js';
import { formatDuration, ProgressLine, StepMeter, stepLine, trainFlopsPerToken, trainingGemmPeak } from './progress.js';
import {
  hasCheckpoint, loadTrainerState, recoverCheckpointDir, saveTrainerState, writeCheckpointDir, type Moments, type TrainerStateCheck,
  type TrainerStateJson,
} from './state.js';

export type StopReason = 'steps' | 'time' | 'SIGINT' | 'SIGTERM';

// The exit code of a command whose run stopped this way: 0, or 128 + the signal number as a shell reports it.
export function exitCodeOf(stopped: StopReason): number {
  return stopped === 'SIGINT' ? 130 : stopped === 'SIGTERM' ? 143 : 0;
}

export const METRICS = 'metrics.jsonl';

// ---------------------------------------------------------------------------------------------------------------------
// Resume

export type SavedRun = Moments & { json: TrainerStateJson };

// The checkpoint to resume in `out`, or null for a fresh start (no checkpoint, or resume === false). A checkpoint of
// another stage is an error: each stage has its own folder. Checkpoints written before stages were named are
// pretraining ones.
// `check` is what the stage expects of the saved state (required fields, its options' types, its own option checks).
export function openRun(out: string, stage: string, resume: boolean | undefined, check: TrainerStateCheck = {}): SavedRun | null {
  recoverCheckpointDir(out);
  if (resume === false || !hasCheckpoint(out)) return null;
  const saved = loadTrainerState(out, { ...check, required: ['optimizerStep', ...(check.required ?? [])] })!;
  const savedStage = String(saved.json.stage ?? 'pretrain');
  if (savedStage !== stage) {
    throw new UserError(`${out} holds a ${savedStage} checkpoint, not a ${stage} one`,
      `give each stage its own --out folder (e.g. runs/<name>/${stage}), or start over there with --no-resume`);
  }
  return saved;
}

// Copies the saved AdamW moments and step count into opt; returns the saved step. Metrics past the checkpoint belong to
// the lost part of the run and are dropped (the evaluation at the checkpoint's step runs again).
export function restoreOptimizer(opt: AdamW, saved: SavedRun, out: string, metricsPath = join(out, METRICS)): number {
  if (saved.m.length !== opt.m.length) throw new UserError(`${out}: optimizer state does not match the model`, 'start over with --no-resume');
  opt.m.set(saved.m);
  opt.v.set(saved.v);
  opt.t = saved.json.optimizerStep as number;
  const step = saved.json.step;
  filterMetrics(metricsPath, (r) => r.step < step || (r.step === step && r.loss !== undefined));
  return step;
}

// ---------------------------------------------------------------------------------------------------------------------
// Checkpoints

export interface CheckpointParts {
  out: string;
  step: number;
  loss: number; // the last step's loss: a non-finite one is never saved
  model: GPT;
  tokenizer: Tokenizer | null;
  opt: AdamW;
  state: Omit<TrainerStateJson, 'step' | 'version'> & { stage: string }; // options, cursors, RNG state, ...
  title: string; // of the curve
  curve?: { train: string; val: string }; // the metrics.jsonl fields drawn (default loss and valLoss)
  carry?: string[]; // files of the folder kept across checkpoints besides metrics.jsonl
  extra?: (dir: string) => void; // more files in the new folder (a value model, a report), written before the state
  moreParams?: Float32Array[]; // other trained parameters checked for non-finite values (a separate value model)
}

export function saveCheckpoint(p: CheckpointParts): void {
  const be = getBackend();
  for (const flat of [p.model.flat, ...(p.moreParams ?? [])]) {
    if (!Number.isFinite(p.loss) || !Number.isFinite(be.sumSquares(flat, flat.length))) {
      throw new UserError(`not saving step ${p.step}: the parameters or the loss are not finite`, 'lower --lr or raise --warmup');
    }
  }
  const records = readMetrics(join(p.out, METRICS));
  const series = (key: string) => records.filter((r) => typeof r[key] === 'number').map((r): [number, number] => [r.step, r[key] as number]);
  const svg = lossCurveSvg({ title: p.title, train: series(p.curve?.train ?? 'loss'), val: series(p.curve?.val ?? 'valLoss') });
  writeCheckpointDir(p.out, (dir) => {
    saveModel(dir, p.model, p.tokenizer ?? undefined);
    writeFileAtomic(join(dir, 'loss.svg'), svg);
    p.extra?.(dir);
    saveTrainerState(dir, p.opt, { version: 1, step: p.step, optimizerStep: p.opt.t, ...p.state });
  }, [METRICS, ...(p.carry ?? [])]);
}

// ---------------------------------------------------------------------------------------------------------------------
// Precision (--precision): fp32, or bf16 mixed precision where the CPU has AVX512_BF16 (src/tensor/ops.ts says what is
// rounded). A run keeps its precision on resume (it is one of the options saved with the checkpoint).

export function checkPrecision(stage: string, precision: MatmulPrecision): void {
  if (precision !== 'fp32' && precision !== 'bf16') {
    throw new UserError(`${stage}: precision must be fp32 or bf16, got ${String(precision)}`);
  }
  const why = precision === 'bf16' ? bf16Unavailable() : '';
  if (why) throw new UserError(`${stage}: --precision bf16 cannot run here: ${why}`, 'train with --precision fp32 (the default)');
}

// The backend as a stage's first lines name it: "native", "native (bf16 mixed precision)".
export function backendLabel(name: string, precision: MatmulPrecision): string {
  return precision === 'bf16' ? `${name} (bf16 mixed precision)` : name;
}

// ---------------------------------------------------------------------------------------------------------------------
// The loop

export interface StepResult {
  loss: number; // shown and logged; the checkpoint guard reads it
  tokens: number; // tokens this step trained on (tokens/s, MFU)
  lr: number;
  record?: Record<string, number>; // more fields of the metrics record (gradNorm, reward, kl, ...)
  show?: string; // more of the progress line (e.g. "reward 0.41 | kl 0.02")
}

export interface EvalResult { record: Record<string, number>; line: string }

export interface LoopSpec {
  stage: string; // the progress line's label and the stop message
  out: string;
  step: number; // steps already done (resume)
  steps: number; // total
  timeLimit: number; // minutes; 0: none
  evalEvery: number; // 0: only at the end
  saveEvery: number; // 0: only at the end
  sampleEvery?: number; // 0 / undefined: never
  logEvery: number; // progress line every N steps when stderr is not a terminal
  // A wall-clock budget instead of a fixed count: after the first `calibrate` steps of a run the loop measures the
  // seconds per step (the first step left out: it warms caches) and sets the total to what fits, within [minSteps,
  // maxSteps]; onSteps tells the stage, which keeps the count in its checkpoint (so a resumed run keeps its schedule).
  // Calibrate within the warmup, before the schedule's total matters.
  budget?: { seconds: number; calibrate: number; minSteps: number; maxSteps: number; onSteps(total: number): void };
  precision?: MatmulPrecision; // of the linear and matmul ops for the whole run, evaluation and samples too (default fp32)
  flopsPerToken?: number; // with peakGflops: MFU on the progress line
  peakGflops?: number;
  print?: (line: string) => void; // full lines (evaluations, samples, the end); default stderr
  // one optimizer step; `step` counts the steps done before it
  trainStep(step: number, loop: LoopControl): StepResult | Promise<StepResult>;
  evaluate?(step: number): EvalResult | null | Promise<EvalResult | null>;
  sample?(step: number): string[];
  save(step: number, loss: number): void;
}

export interface LoopControl {
  readonly stopping: boolean; // a signal or the time limit asked for a stop
  yield(): Promise<void>; // let signal handlers and I/O run (between the parts of a long step)
  note(line: string): void; // a full line below the progress line
}

export interface LoopResult { step: number; loss: number; eval: Record<string, number> | null; stopped: StopReason }

const yieldNow = () => new Promise<void>((resolve) => setImmediate(resolve));

// Test hook: CHATWRIGHT_TEST_STEP_MS=n waits n ms after every step, so a test's signal lands mid-run on any machine.
const STEP_MS = Number(process.env.CHATWRIGHT_TEST_STEP_MS ?? 0);

export async function runLoop(spec: LoopSpec): Promise<LoopResult> {
  const print = spec.print ?? ((line: string) => process.stderr.write(line + '\n'));
  const metricsPath = join(spec.out, METRICS);
  const progress = new ProgressLine(process.stderr, spec.logEvery, print);
  const meter = new StepMeter(spec.flopsPerToken ?? 0, spec.peakGflops ?? 0);
  const t0 = performance.now();
  let step = spec.step, loss = NaN, lastEval: Record<string, number> | null = null;
  let steps = spec.steps, tCal = 0;
  let signal: 'SIGINT' | 'SIGTERM' | null = null;
  let stopped: StopReason = 'steps';
  const outOfTime = () => spec.timeLimit > 0 && (performance.now() - t0) / 60000 >= spec.timeLimit;
  const control: LoopControl = {
    get stopping() { return signal !== null || outOfTime(); },
    yield: yieldNow,
    note: (line) => progress.log(line),
  };
  const evaluate = async () => {
    const e = (await spec.evaluate?.(step)) ?? null;
    if (e) {
      lastEval = e.record;
      appendMetrics(metricsPath, { step, ...e.record });
      progress.log(`step ${step}: ${e.line}`);
    }
  };

  const onSignal = (name: 'SIGINT' | 'SIGTERM') => {
    if (signal === null) progress.log(`${name}: stopping after this step; the checkpoint is written first`);
    signal ??= name;
  };
  const onInt = () => onSignal('SIGINT'), onTerm = () => onSignal('SIGTERM');
  checkPrecision(spec.stage, spec.precision ?? 'fp32');
  const precisionBefore = setMatmulPrecision(spec.precision ?? 'fp32');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    while (step < steps) {
      if (spec.evalEvery > 0 && step % spec.evalEvery === 0) await evaluate();
      if (spec.sample && spec.sampleEvery && step > 0 && step % spec.sampleEvery === 0) {
        for (const s of spec.sample(step)) progress.log(`step ${step} sample: ${s}`);
      }

      // ---- one step, then its record and the progress line
      const ts = performance.now();
      const r = await spec.trainStep(step, control);
      step++;
      loss = r.loss;
      const dt = (performance.now() - ts) / 1000;
      // a run resumed before its calibration (killed in its first steps) calibrates from where it resumed
      const b = spec.budget;
      if (b && spec.step <= b.calibrate && step === spec.step + 1) tCal = performance.now();
      if (b && spec.step <= b.calibrate && step === spec.step + 1 + b.calibrate) {
        const perStep = (performance.now() - tCal) / 1000 / b.calibrate;
        steps = Math.max(b.minSteps, Math.min(b.maxSteps, Math.round(b.seconds / perStep)));
        b.onSteps(steps);
        progress.log(`step ${step}: ${perStep.toFixed(3)} s per step here and now: ${steps} steps fit the budget of ${formatDuration(b.seconds)}`);
      }
      const { tokPerSec, mfu, eta } = meter.step(r.tokens, dt, steps - step);
      const withMfu = spec.flopsPerToken && spec.peakGflops;
      const rec: MetricsRecord = { step, loss, lr: r.lr, ...r.record, tokPerSec: Math.round(tokPerSec) };
      if (withMfu) rec.mfu = +mfu.toFixed(4);
      rec.time = +((performance.now() - t0) / 1000).toFixed(3);
      appendMetrics(metricsPath, rec);
      progress.update(stepLine(`${spec.stage} `, step, steps, loss, r.lr, tokPerSec, withMfu ? mfu : null, dt, eta, r.show),
        step === steps);

      // ---- signals, time limit, checkpoint
      await (STEP_MS > 0 ? new Promise<void>((resolve) => setTimeout(resolve, STEP_MS)) : yieldNow());
      if (outOfTime()) stopped = 'time';
      if (signal) stopped = signal;
      if (step === steps || stopped !== 'steps') break;
      if (spec.saveEvery > 0 && step % spec.saveEvery === 0) spec.save(step, loss);
    }

    // ---- the end: the last evaluation and checkpoint
    progress.done();
    if (step > spec.step && spec.evaluate) await evaluate();
    if (step > spec.step && Number.isFinite(loss)) {
      spec.save(step, loss);
      if (stopped !== 'steps') {
        print(`stopped at step ${step} (${stopped === 'time' ? 'time limit' : stopped}); resume with the same command`);
      }
      print(`saved ${spec.out} (step ${step}, ${formatDuration((performance.now() - t0) / 1000)})`);
    } else if (step === spec.step) {
      print(`${spec.out} is already at step ${step} of ${steps}: nothing to train (raise --steps to go on)`);
    }
  } finally {
    setMatmulPrecision(precisionBefore);
    process.removeListener('SIGINT', onInt);
    process.removeListener('SIGTERM', onTerm);
  }
  return { step, loss, eval: lastEval, stopped };
}

// MFU's two figures for a model trained on micro-batches of `tokens` tokens of length T: model FLOPs per token
// (progress.ts) and the GEMM peak (measured now unless given) at the run's precision: bf16 runs are held to the bf16
// GEMM's peak, not the float32 one.
export function mfuFigures(model: GPT, tokens: number, T: number, peakGflops = 0, precision: MatmulPrecision = 'fp32'):
  { flopsPerToken: number; peakGflops: number } {
  const c = model.config;
  const matmulParams = model.layout.filter((p) => p.kind === 'matrix').reduce((a, p) => a + p.size, 0) +
    (c.tiedEmbeddings && !c.scalarHead ? c.vocabSize * c.nEmbd : 0);
  return {
    flopsPerToken: trainFlopsPerToken({ matmulParams, nLayer: c.nLayer, nEmbd: c.nEmbd, seqLen: T }),
    peakGflops: peakGflops > 0 ? peakGflops : trainingGemmPeak(getBackend(), tokens, c.nEmbd, c.intermediateSize, 0.5, precision),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Options every optimizer-driven stage has (each stage adds its own, and its own defaults)

export interface RunOptions {
  lr: number;                // peak learning rate
  minLr: number;             // end of the decay
  warmup: number;            // linear warmup steps
  decay: 'cosine' | 'linear' | 'constant';
  weightDecay: number;       // AdamW's, on matmul weights
  beta1: number;
  beta2: number;
  clip: number;              // max global gradient norm; 0: no clipping
  evalEvery: number;         // 0: only at the end
  saveEvery: number;         // 0: only at the end
  seed: number;
  resume: boolean;           // continue from the checkpoint in --out when there is one
  backend: 'js' | 'native' | null;
  timeLimit: number;         // minutes; 0: none. Stops cleanly with a checkpoint.
  budget: number;            // seconds: as many steps as fit, measured on the first steps (at most --steps); 0: --steps
  precision: MatmulPrecision; // of the linear and matmul GEMMs: fp32, or bf16 mixed precision (AVX512_BF16 CPUs)
  logEvery: number;          // progress line every N steps when stderr is not a terminal
}

// ---------------------------------------------------------------------------------------------------------------------
// Options: the defaults, overridden by the saved run (on resume), overridden by what the caller gives. An unknown key is
// a programming error; a value out of range is the user's, named with the stage.

export function mergeOptions<O extends object>(stage: string, defaults: O, given: Partial<O>, saved: Partial<O> = {}, required: string[] = []): O {
  for (const k of Object.keys(given)) if (!(k in defaults) && !required.includes(k)) throw new Error(`unknown ${stage} option ${k}`);
  const defined = (o: Partial<O>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
  const o = { ...defaults, ...defined(saved), ...defined(given) } as O & { budget?: number; steps?: number };
  // a run sized by a budget keeps the step count it measured, while the budget is the same
  const s = saved as { budget?: number; steps?: number };
  if (s.budget && s.budget > 0 && (o.budget ?? 0) === s.budget && s.steps !== undefined) o.steps = s.steps;
  return o;
}

// The loop's budget for a stage with options { budget (seconds, 0: none), steps (the most) } and its LR schedule.
export function stepBudget(o: { budget: number; steps: number }, schedule: { total: number }, calibrate = 5): LoopSpec['budget'] {
  if (!(o.budget > 0)) return undefined;
  return {
    seconds: o.budget, calibrate, minSteps: Math.min(o.steps, calibrate + 1), maxSteps: o.steps,
    onSteps: (n) => { o.steps = n; schedule.total = n; },
  };
}

// The checks every optimizer-driven stage shares: positive integer counts, a learning-rate range, a decay shape.
export function checkTrainingOptions(stage: string, o: { lr: number; minLr: number; decay: string }, counts: Record<string, number>): void {
  for (const [k, v] of Object.entries(counts)) if (!(Number.isInteger(v) && v >= 1)) throw new UserError(`${stage}: ${k} must be a positive integer, got ${v}`);
  if (!(o.lr > 0 && o.minLr >= 0 && o.minLr <= o.lr)) throw new UserError(`${stage}: need 0 <= min-lr <= lr and lr > 0, got lr ${o.lr}, min-lr ${o.minLr}`);
  if (!['cosine', 'linear', 'constant'].includes(o.decay)) throw new UserError(`${stage}: decay must be cosine, linear or constant, got ${o.decay}`);
}
