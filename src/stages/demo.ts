// The demo: the whole path from nothing to a chat model on the built-in poetry corpus, offline, on a laptop's CPU.
// This file is the table of contents of the system (nanochat `runs/speedrun.sh`): each step is one stage, with what it
// costs on 2 cores in the comment.
//
//   chatwright demo            # ~15 minutes: tokenizer, data, pretrain, SFT, eval, then the chat
//   chatwright demo --quick    # under 2 minutes: the same steps on a small slice (the test suite runs it)
//
// The run folder keeps every stage's output, so base and SFT model can be compared side by side:
//   <out>/tokenizer  <out>/data  <out>/base  <out>/sft  <out>/eval.json  <out>/demo.json
// Rerunning skips the steps already done: demo.json records each finished step and is written after the step's own
// output is complete (a manifest, a trainer_state.json, both written last by their stages); an interrupted pretraining
// or SFT resumes from its last checkpoint.
// Output: the steps as they run on stderr (log), the result (the table, how to chat with each model) on stdout (print).
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readJson, writeJsonAtomic } from '../util/fsx.js';
import { UserError } from '../util/errors.js';
import { trainTokenizer } from '../tokenizer/index.js';
import { readPoems, poemText } from '../train/corpora.js';
import { releaseTape } from '../tensor/index.js';
import { GPT } from '../model/gpt.js';
import { configFromPreset } from '../model/config.js';
import { formatDuration } from '../train/progress.js';
import { MANIFEST } from '../train/shards.js';
import { STATE_JSON } from '../train/state.js';
import { prepareData } from './data.js';
import { pretrain } from './pretrain.js';
import { sft } from './sft.js';
import { runEval, formatTable, type EvalReport } from './eval.js';

// ---------------------------------------------------------------------------------------------------------------------
// The plans: sizes chosen for the time budget on 2 cores

export interface DemoPlan {
  poems: number;            // poems read (Tang first), for the tokenizer, the pretraining text and the demonstrations
  tokenizerPoems: number;   // poems the tokenizer is trained on
  vocabSize: number;
  preset: 'tiny' | 'small';
  // steps: fixed, or (budget > 0) as many as fit `budget` seconds at the speed measured on this machine, within [steps, maxSteps]
  pretrain: { steps: number; maxSteps: number; budget: number; batchSize: number; seqLen: number; lr: number; warmup: number; evalEvery: number };
  sft: { steps: number; maxSteps: number; budget: number; batchSize: number; seqLen: number; lr: number; warmup: number; evalEvery: number };
  evalPrompts: number;      // per task
}

export const PLANS: Record<'quick' | 'full', DemoPlan> = {
  // quick: ~2 s tokenizer, ~1 s data, ~8 s pretrain, ~6 s SFT, ~2 s eval on an idle 2-core machine (fixed step counts)
  quick: {
    poems: 2000, tokenizerPoems: 500, vocabSize: 512, preset: 'tiny',
    pretrain: { steps: 200, maxSteps: 200, budget: 0, batchSize: 8, seqLen: 64, lr: 3e-3, warmup: 20, evalEvery: 0 },
    sft: { steps: 150, maxSteps: 150, budget: 0, batchSize: 8, seqLen: 96, lr: 2e-3, warmup: 20, evalEvery: 0 },
    evalPrompts: 6,
  },
  // full: ~5 s tokenizer, ~5 s data, 8 min pretrain, 3 min SFT, ~1 min eval: the step counts follow from the budgets
  full: {
    poems: 20000, tokenizerPoems: 5000, vocabSize: 4096, preset: 'tiny',
    pretrain: { steps: 300, maxSteps: 4000, budget: 480, batchSize: 16, seqLen: 128, lr: 3e-3, warmup: 50, evalEvery: 250 },
    sft: { steps: 100, maxSteps: 1500, budget: 180, batchSize: 16, seqLen: 128, lr: 1e-3, warmup: 20, evalEvery: 100 },
    evalPrompts: 40,
  },
};

// Seconds per optimizer step of a model of this preset at (B, T): the mean of two timed forward + backward passes after
// a warm-up one, plus 10% for the optimizer and the logging.
export function secondsPerStep(preset: DemoPlan['preset'], vocabSize: number, B: number, T: number): number {
  const model = GPT.create(configFromPreset(preset, vocabSize), 0);
  const ids = new Int32Array(B * T).map((_, i) => (i * 7919) % vocabSize);
  const targets = new Int32Array(B * T).map((_, i) => (i * 104729 + 1) % vocabSize);
  const once = () => {
    const t0 = performance.now();
    model.zeroGrad();
    model.forward(ids, B, T, { targets }).loss!.backward();
    releaseTape();
    return (performance.now() - t0) / 1000;
  };
  once();
  return 1.1 * ((once() + once()) / 2);
}

function stepsFor(p: DemoPlan['pretrain'], preset: DemoPlan['preset'], vocabSize: number): number {
  if (p.budget <= 0) return p.steps;
  const s = secondsPerStep(preset, vocabSize, p.batchSize, p.seqLen);
  return Math.max(p.steps, Math.min(p.maxSteps, Math.floor(p.budget / s)));
}

export interface DemoOptions {
  out: string;
  quick: boolean;
  chat: boolean;            // open the chat at the end when a terminal is attached
  print?: (line: string) => void;  // the result (default: stdout)
  log?: (line: string) => void;    // the steps as they run (default: stderr)
}

export interface DemoResult { out: string; timings: Record<string, number>; report: EvalReport | null; stopped: boolean }

interface DemoState { plan: 'quick' | 'full'; done: Record<string, { seconds: number }>; steps: Record<string, number> }

function readDemoState(path: string): DemoState {
  const hint = `delete ${path} to run every step again`;
  const s = readJson(path, 'demo state', hint);
  const isMap = (x: unknown, ok: (v: any) => boolean) => typeof x === 'object' && x !== null && !Array.isArray(x) && Object.values(x).every(ok);
  if (!isMap(s, () => true) || (s.plan !== 'quick' && s.plan !== 'full') || !isMap(s.done, (d) => Number.isFinite(d?.seconds)) ||
    !isMap(s.steps, (n) => Number.isSafeInteger(n) && n >= 1)) {
    throw new UserError(`demo state ${path} is damaged`, hint);
  }
  return s as DemoState;
}

export async function demo(opts: DemoOptions): Promise<DemoResult> {
  const print = opts.print ?? ((s: string) => console.log(s));
  const log = opts.log ?? ((s: string) => console.error(s));
  const planName = opts.quick ? 'quick' : 'full';
  const plan = PLANS[planName];
  const out = opts.out;
  const dirs = { tokenizer: join(out, 'tokenizer'), data: join(out, 'data'), base: join(out, 'base'), sft: join(out, 'sft'), eval: join(out, 'eval.json') };
  const statePath = join(out, 'demo.json');
  const state: DemoState = existsSync(statePath) ? readDemoState(statePath) : { plan: planName, done: {}, steps: {} };
  if (state.plan !== planName) {
    throw new UserError(`${out} holds a ${state.plan} demo; this is a ${planName} one`, `use another --out, or ${state.plan === 'quick' ? 'add' : 'drop'} --quick`);
  }
  const timings: Record<string, number> = {};
  let upstreamRan = false; // set below: a step that ran invalidates the checkpoints of the later ones
  const t00 = performance.now();
  const stages: [string, string, () => Promise<boolean | void>, () => boolean][] = [];
  const step = (name: string, title: string, complete: () => boolean, fn: () => Promise<boolean | void>) => stages.push([name, title, fn, complete]);

  // ---- 1. tokenizer: byte-level BPE on a subset of the poems (quick ~5 s, full ~30 s)
  step('tokenizer', `train a ${plan.vocabSize}-token BPE tokenizer on ${plan.tokenizerPoems} poems`,
    () => existsSync(join(dirs.tokenizer, 'tokenizer.json')), async () => {
      const texts = readPoems({ simplified: true, limit: plan.tokenizerPoems }).map(poemText);
      const tok = trainTokenizer(texts, { vocabSize: plan.vocabSize });
      tok.save(dirs.tokenizer);
      log(`  vocabulary ${tok.vocabSize}; "床前明月光，疑是地上霜。" -> ${tok.encode('床前明月光，疑是地上霜。').length} tokens`);
    });

  // ---- 2. data: the poems as token shards with a validation split (quick ~2 s, full ~20 s)
  step('data', `tokenize ${plan.poems} poems into shards`, () => existsSync(join(dirs.data, MANIFEST)), async () => {
    const m = prepareData({ corpus: ['chinese-poetry'], tokenizer: dirs.tokenizer, out: dirs.data, valFraction: 0.02, simplified: true, limit: plan.poems });
    const sum = (xs: { tokens: number }[]) => xs.reduce((a, x) => a + x.tokens, 0);
    log(`  train ${sum(m.train)} tokens, val ${sum(m.val)} tokens`);
  });

  // ---- 3. pretrain: next-token prediction on the poems (quick ~15 s, full 8 min)
  // The step counts are fixed when the step first runs and kept in demo.json, so a resumed run keeps its schedule.
  const stepsOf = (name: 'base' | 'sft', p: DemoPlan['pretrain']): number => {
    if (state.steps[name] === undefined) {
      state.steps[name] = stepsFor(p, plan.preset, readJson(join(dirs.data, MANIFEST), 'data manifest').vocabSize);
      writeJsonAtomic(statePath, state);
    }
    return state.steps[name];
  };
  step('base', `pretrain a ${plan.preset} GPT (${plan.pretrain.budget > 0 ? `${formatDuration(plan.pretrain.budget)} of steps` : `${plan.pretrain.steps} steps`})`,
    () => existsSync(join(dirs.base, STATE_JSON)), async () => {
      const p = plan.pretrain;
      const steps = stepsOf('base', p);
      log(`  ${steps} steps of ${p.batchSize} x ${p.seqLen} tokens`);
      const r = await pretrain({
        preset: plan.preset, data: dirs.data, tokenizer: dirs.tokenizer, out: dirs.base, steps, batchSize: p.batchSize,
        seqLen: p.seqLen, lr: p.lr, minLr: p.lr / 10, warmup: p.warmup, evalEvery: p.evalEvery, evalBatches: 8,
        saveEvery: Math.max(50, Math.floor(steps / 4)), resume: !upstreamRan, logEvery: Math.max(1, Math.floor(steps / 20)),
      }, (s) => log(`  ${s}`));
      return r.stopped === 'steps';
    });

  // ---- 4. SFT: the demonstrations made from the same poems, loss on the answers only (quick ~10 s, full 3 min)
  step('sft', `fine-tune on poem demonstrations (${plan.sft.budget > 0 ? `${formatDuration(plan.sft.budget)} of steps` : `${plan.sft.steps} steps`})`,
    () => existsSync(join(dirs.sft, STATE_JSON)), async () => {
      const s = plan.sft;
      const steps = stepsOf('sft', s);
      log(`  ${steps} steps of ${s.batchSize} x ${s.seqLen} tokens`);
      const r = await sft({
        init: dirs.base, data: 'chinese-poetry', limit: plan.poems, out: dirs.sft, steps, batchSize: s.batchSize,
        seqLen: s.seqLen, lr: s.lr, minLr: s.lr / 10, warmup: s.warmup, evalEvery: s.evalEvery, evalBatches: 4,
        saveEvery: Math.max(50, Math.floor(steps / 4)), resume: !upstreamRan, maxPrompts: plan.evalPrompts, evalAtEnd: false,
        logEvery: Math.max(1, Math.floor(steps / 20)),
      }, (line) => log(`  ${line}`));
      return r.stopped === 'steps';
    });

  // ---- 5. eval: base and SFT model on the held-out prompts, same chat template (quick ~10 s, full ~1 min)
  let report: EvalReport | null = null;
  step('eval', 'evaluate base and SFT model on held-out prompts', () => existsSync(dirs.eval), async () => {
    report = runEval({
      models: [{ name: 'base', dir: dirs.base }, { name: 'sft', dir: dirs.sft }], data: dirs.sft, maxPrompts: plan.evalPrompts,
      out: dirs.eval, log: (s) => log(`  ${s}`),
    });
  });

  // ---- run them in order, skipping what is done; once a step runs, every later one runs again from scratch
  for (let i = 0; i < stages.length; i++) {
    const [name, title, fn, complete] = stages[i];
    const header = `[${i + 1}/${stages.length}] ${name}: ${title}`;
    if (!upstreamRan && state.done[name] && complete()) {
      log(`${header}: done earlier (${formatDuration(state.done[name].seconds)}), skipped`);
      timings[name] = 0;
      continue;
    }
    log(header);
    if (upstreamRan) delete state.steps[name];
    const t0 = performance.now();
    const finished = (await fn()) !== false;
    upstreamRan = true;
    if (!finished) {
      // stopped by Ctrl-C: the checkpoint is saved, the step is not done; the same command resumes it
      log(`\ndemo stopped during ${name}; run the same command again to resume from its last checkpoint`);
      return { out, timings, report: null, stopped: true };
    }
    const seconds = (performance.now() - t0) / 1000;
    timings[name] = seconds;
    state.done[name] = { seconds };
    for (const [later] of stages.slice(i + 1)) {
      delete state.done[later];
      delete state.steps[later];
    }
    writeJsonAtomic(statePath, state);
    log(`  (${formatDuration(seconds)})`);
  }
  timings.total = (performance.now() - t00) / 1000;

  // ---- the result: the table, and how to chat with each model
  if (!report && existsSync(dirs.eval)) report = readJson(dirs.eval, 'evaluation report') as EvalReport;
  print('');
  if (report) print(formatTable(report));
  print(`\ndemo ${planName} finished in ${formatDuration(timings.total)}; every stage's output is in ${out}/`);
  print(`chat with the fine-tuned model:  chatwright chat --model ${dirs.sft}`);
  print(`chat with the base model:        chatwright chat --model ${dirs.base}`);
  print(`answers of both models:          ${dirs.eval}`);
  return { out, timings, report, stopped: false };
}
