// Crash and fault tests of the training stages, through the real CLI (child processes), so they test what users run and
// not the stages' internals:
// - kill -9 at random moments: each run of a stage is SIGKILLed after a random delay and started again with the same
//   command, until it completes; after every kill the checkpoint folder must be readable (trainer state, moments and
//   model load), and at the end the per-step losses must equal those of an uninterrupted run, exactly.
// - a full disk while saving (the CHATWRIGHT_TEST_DISK_BYTES hook of src/util/fsx.ts: the disk "fills up" after n bytes):
//   the run fails with an error naming the disk, the previous checkpoint is intact and nothing half-written is left,
//   and the same command, with space again, resumes and ends with the uninterrupted run's losses.
//
// By hand (20 kills across the stages; a minute or two on 2 cores):
//   node dist/test/faults.js --kills 10 [--seed 1] [--stages pretrain,sft]
// test/faults.test.ts runs both with a few kills per stage.
//
// A new training stage is one entry in STAGES: the command line of a short run that checkpoints often. Every training
// stage is there: pretrain, sft, reward, dpo, ppo, grpo.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../src/cli/main.js', import.meta.url));
const MODEL_ARGS = ['--n-layer', '2', '--n-embd', '32', '--n-head', '2', '--n-kv-head', '1', '--intermediate-size', '64'];

export interface Fixture { root: string; data: string; base: string; demos: string; prefs: string; reward: string; prompts: string }
export interface Stage { name: string; args(f: Fixture, out: string, steps: number): string[] }

export const STAGES: Stage[] = [
  {
    name: 'pretrain',
    args: (f, out, steps) => ['pretrain', '--data', f.data, '--out', out, ...MODEL_ARGS, '--context', '32', '--steps', String(steps),
      '--batch-size', '4', '--seq-len', '16', '--warmup', '3', '--eval-every', '4', '--eval-batches', '2', '--save-every', '3',
      '--sample-every', '5', '--sample-tokens', '4', '--peak-gflops', '1', '--log-every', '1'],
  },
  {
    name: 'sft',
    args: (f, out, steps) => ['sft', '--init', f.base, '--data', f.demos, '--out', out, '--steps', String(steps), '--batch-size', '4',
      '--seq-len', '24', '--warmup', '3', '--eval-every', '4', '--eval-batches', '2', '--save-every', '3', '--no-eval',
      '--peak-gflops', '1', '--log-every', '1'],
  },
  {
    name: 'reward',
    args: (f, out, steps) => ['reward', '--init', f.base, '--data', f.prefs, '--out', out, '--steps', String(steps), '--batch-size', '2',
      '--warmup', '3', '--eval-every', '4', '--save-every', '3', '--agreement-prompts', '0', '--peak-gflops', '1', '--log-every', '1'],
  },
  {
    name: 'dpo',
    args: (f, out, steps) => ['dpo', '--init', f.base, '--data', f.prefs, '--out', out, '--steps', String(steps), '--batch-size', '2',
      '--warmup', '3', '--eval-every', '4', '--kl-prompts', '2', '--kl-tokens', '4', '--save-every', '3', '--peak-gflops', '1', '--log-every', '1'],
  },
  {
    name: 'ppo',
    args: (f, out, steps) => ['ppo', '--init', f.base, '--reward', f.reward, '--prompts', f.prompts, '--out', out, '--steps', String(steps),
      '--batch-size', '4', '--mini-batch', '2', '--max-new-tokens', '6', '--eval-every', '4', '--eval-prompts', '2', '--save-every', '3',
      '--lr', '1e-3', '--log-every', '1'],
  },
  {
    name: 'grpo',
    args: (f, out, steps) => ['grpo', '--init', f.base, '--reward', f.reward, '--prompts', f.prompts, '--out', out, '--steps', String(steps),
      '--batch-size', '2', '--group', '3', '--max-new-tokens', '6', '--eval-every', '4', '--eval-prompts', '2', '--save-every', '3',
      '--lr', '1e-3', '--log-every', '1'],
  },
];

// Shards of a synthetic corpus, a small base model with its tokenizer, and demonstrations: made in a few seconds.
export async function makeFixture(root: string): Promise<Fixture> {
  const { trainTokenizer } = await import('../src/tokenizer/index.js');
  const { prepareData } = await import('../src/stages/data.js');
  const { GPT } = await import('../src/model/gpt.js');
  const { configFromPreset } = await import('../src/model/config.js');
  const { saveModel } = await import('../src/model/checkpoint.js');
  const words = ['moon', 'sea', 'river', 'light', 'frost', 'home', 'wind', 'rain', 'flower', 'bird', 'night', 'spring'];
  const line = (i: number) => Array.from({ length: 6 + (i % 5) }, (_, j) => words[(i * 7 + j * j * 3) % words.length]).join(' ');
  const docs = Array.from({ length: 300 }, (_, i) => `${line(i)}. ${line(i + 1)}.`);
  writeFileSync(join(root, 'corpus.jsonl'), docs.map((text) => JSON.stringify({ text })).join('\n') + '\n');
  const tok = trainTokenizer(docs, { vocabSize: 320 });
  tok.save(join(root, 'tok'));
  prepareData({ corpus: [join(root, 'corpus.jsonl')], tokenizer: join(root, 'tok'), out: join(root, 'data'), valFraction: 0.05 });
  const config = configFromPreset('tiny', tok.vocabSize, { nLayer: 2, nEmbd: 32, nHead: 2, nKvHead: 1, intermediateSize: 64, maxSeqLen: 32 });
  saveModel(join(root, 'base'), GPT.create(config, 3), tok);
  const demos = Array.from({ length: 80 }, (_, i) => JSON.stringify({ messages: [
    { role: 'user', content: `a line about ${words[i % words.length]}` }, { role: 'assistant', content: line(i) }] }));
  writeFileSync(join(root, 'demos.jsonl'), demos.join('\n') + '\n');
  // preferences (an answer with "moon" over one without), a toy reward module to match, and RL prompts
  const prompt = (i: number) => [{ role: 'user', content: `a line about ${words[i % words.length]}` }];
  const prefs = Array.from({ length: 40 }, (_, i) => JSON.stringify({ prompt: prompt(i), chosen: `moon ${line(i)}`, rejected: line(i + 3) }));
  writeFileSync(join(root, 'prefs.jsonl'), prefs.join('\n') + '\n');
  writeFileSync(join(root, 'reward.mjs'), 'export function reward(prompt, answer) { return answer.includes("moon") ? 1 : 0; }\n');
  writeFileSync(join(root, 'prompts.jsonl'), Array.from({ length: 30 }, (_, i) => JSON.stringify({ messages: prompt(i) })).join('\n') + '\n');
  return {
    root, data: join(root, 'data'), base: join(root, 'base'), demos: join(root, 'demos.jsonl'), prefs: join(root, 'prefs.jsonl'),
    reward: join(root, 'reward.mjs'), prompts: join(root, 'prompts.jsonl'),
  };
}

interface Run { status: number | null; signal: string | null; stderr: string; seconds: number }

// One run of the CLI; killed with SIGKILL after killAfterMs when given.
function chatwright(args: string[], opts: { killAfterMs?: number; env?: Record<string, string> } = {}): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(process.execPath, [MAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...opts.env } });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const timer = opts.killAfterMs !== undefined ? setTimeout(() => child.kill('SIGKILL'), opts.killAfterMs) : null;
    child.on('close', (status, signal) => {
      if (timer) clearTimeout(timer);
      resolve({ status, signal, stderr, seconds: (performance.now() - t0) / 1000 });
    });
  });
}

// [step, loss] of every training record of a finished run's metrics.jsonl
async function losses(out: string): Promise<[number, number][]> {
  const { readMetrics } = await import('../src/train/metrics.js');
  return readMetrics(join(out, 'metrics.jsonl')).filter((r) => typeof r.loss === 'number').map((r) => [r.step, r.loss as number]);
}

// The checkpoint a restart would resume from (out, or out.old after a kill between the two renames) must load whole.
// Returns its step, or null when there is none yet; throws when it is unreadable.
async function checkpointStep(out: string): Promise<number | null> {
  const { STATE_JSON, loadTrainerState } = await import('../src/train/state.js');
  const { loadModel } = await import('../src/model/checkpoint.js');
  const dir = existsSync(join(out, STATE_JSON)) ? out : existsSync(join(`${out}.old`, STATE_JSON)) ? `${out}.old` : null;
  if (!dir) return null;
  const saved = loadTrainerState(dir)!;
  const { model } = loadModel(dir);
  if (saved.m.length !== model.flat.length) throw new Error(`${dir}: the moments do not match the model`);
  return saved.json.step;
}

export interface KillReport { stage: string; kills: number; restarts: number; steps: number; checkpoints: (number | null)[]; seconds: number }

// kill -9 `kills` times at random moments, restarting each time; then the losses must be the reference's.
export async function killAndResume(stage: Stage, f: Fixture, o: { kills: number; steps: number; seed: number }): Promise<KillReport> {
  const { Rng } = await import('../src/util/rng.js');
  const rng = new Rng(o.seed);
  const t0 = performance.now();
  const ref = join(f.root, `${stage.name}-ref`), out = join(f.root, `${stage.name}-killed`);
  const full = await chatwright(stage.args(f, ref, o.steps));
  if (full.status !== 0) throw new Error(`${stage.name}: the uninterrupted run failed (exit ${full.status}):\n${full.stderr}`);
  const checkpoints: (number | null)[] = [];
  let kills = 0, restarts = 0;
  while (kills < o.kills) {
    // a moment anywhere in a run's life: start-up, a step, an evaluation, a checkpoint being written
    const r = await chatwright(stage.args(f, out, o.steps), { killAfterMs: Math.round(1000 * full.seconds * (0.05 + 0.9 * rng.next())) });
    restarts++;
    if (r.signal === 'SIGKILL') {
      kills++;
      checkpoints.push(await checkpointStep(out));
    } else if (r.status !== 0) throw new Error(`${stage.name}: a restarted run failed (exit ${r.status}):\n${r.stderr}`);
    else for (const d of [out, `${out}.old`, `${out}.tmp`]) rmSync(d, { recursive: true, force: true }); // it finished first: again from scratch
    if (restarts > 4 * o.kills + 4) throw new Error(`${stage.name}: ${restarts} restarts for ${kills} kills`);
  }
  const last = await chatwright(stage.args(f, out, o.steps));
  if (last.status !== 0) throw new Error(`${stage.name}: the final resumed run failed (exit ${last.status}):\n${last.stderr}`);
  const a = await losses(ref), b = await losses(out);
  if (a.length !== o.steps) throw new Error(`${stage.name}: the reference has ${a.length} losses for ${o.steps} steps`);
  if (JSON.stringify(a) !== JSON.stringify(b)) {
    const i = a.findIndex((x, k) => JSON.stringify(x) !== JSON.stringify(b[k]));
    throw new Error(`${stage.name}: after ${kills} kills the losses differ from step ${a[i]?.[0] ?? b[i]?.[0]}: ` +
      `${JSON.stringify(a[i])} uninterrupted, ${JSON.stringify(b[i])} resumed (${a.length} and ${b.length} records)`);
  }
  return { stage: stage.name, kills, restarts, steps: o.steps, checkpoints, seconds: (performance.now() - t0) / 1000 };
}

export interface DiskReport { stage: string; message: string; kept: number }

// The disk fills up while the second checkpoint is written; then space comes back and the same command resumes.
export async function diskFullAndResume(stage: Stage, f: Fixture, o: { steps: number }): Promise<DiskReport> {
  const ref = join(f.root, `${stage.name}-disk-ref`), out = join(f.root, `${stage.name}-disk`);
  const first = await chatwright(stage.args(f, out, 3)); // one checkpoint, at step 3
  if (first.status !== 0) throw new Error(`${stage.name}: the first run failed:\n${first.stderr}`);
  // a few kilobytes left: enough for the small files written first, not for the weights of the next checkpoint
  const full = await chatwright(stage.args(f, out, o.steps), { env: { CHATWRIGHT_TEST_DISK_BYTES: '4096' } });
  const message = full.stderr.trim().split('\n').filter((l) => /^(error|HINT):/.test(l)).join('\n');
  if (full.status !== 2 || !/the disk is full: writing \S+ failed \(no space left on the device/.test(message) || /\n\s+at /.test(full.stderr)) {
    throw new Error(`${stage.name}: with a full disk: exit ${full.status}, expected 2 and the disk named:\n${full.stderr}`);
  }
  const kept = await checkpointStep(out);
  if (kept !== 3) throw new Error(`${stage.name}: after the failed save the checkpoint is at step ${kept}, expected the previous one (3)`);
  if (existsSync(`${out}.tmp`)) throw new Error(`${stage.name}: the unfinished checkpoint ${out}.tmp was left behind`);
  const again = await chatwright(stage.args(f, out, o.steps));
  if (again.status !== 0) throw new Error(`${stage.name}: the resumed run failed:\n${again.stderr}`);
  const r = await chatwright(stage.args(f, ref, o.steps));
  if (r.status !== 0) throw new Error(`${stage.name}: the uninterrupted run failed:\n${r.stderr}`);
  const a = await losses(ref), b = await losses(out);
  if (JSON.stringify(a) !== JSON.stringify(b)) throw new Error(`${stage.name}: after the full disk the losses differ:\n${JSON.stringify(a)}\n${JSON.stringify(b)}`);
  return { stage: stage.name, message, kept };
}

// ---------------------------------------------------------------------------------------------------------------------
// By hand: node dist/test/faults.js --kills 10

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string, dflt: string) => {
    const i = process.argv.indexOf(`--${name}`);
    return i > 0 ? process.argv[i + 1] : dflt;
  };
  const names = arg('stages', STAGES.map((s) => s.name).join(',')).split(',');
  const root = mkdtempSync(join(tmpdir(), 'cw-faults-'));
  try {
    const f = await makeFixture(root);
    let total = 0;
    for (const stage of STAGES.filter((s) => names.includes(s.name))) {
      const k = await killAndResume(stage, f, { kills: Number(arg('kills', '10')), steps: Number(arg('steps', '30')), seed: Number(arg('seed', '1')) });
      total += k.kills;
      console.log(`${k.stage}: ${k.kills} kills in ${k.restarts} runs (${k.seconds.toFixed(0)} s); checkpoint after each kill: ` +
        `${k.checkpoints.map((c) => c ?? 'none').join(', ')}; ${k.steps} losses equal to the uninterrupted run`);
      const d = await diskFullAndResume(stage, f, { steps: 9 });
      console.log(`${d.stage}: disk full -> exit 2, "${d.message.split('\n')[0]}"; step-${d.kept} checkpoint kept; resumed to the same losses`);
    }
    console.log(`${total} kills, every checkpoint readable, every resume exact`);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
