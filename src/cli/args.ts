// A small typed option parser: `--name value`, `--name=value`, `--flag`, `--no-flag`; a 'list' option may be repeated
// and collects its values in order. Unknown options, missing values and wrong types are UserErrors that name the
// option. Each option has one description, shown by --help.
import { UserError } from '../util/errors.js';

export type OptionSpec =
  | { type: 'string'; description: string; default?: string }
  | { type: 'number'; description: string; default?: number; integer?: boolean; min?: number; max?: number }
  | { type: 'boolean'; description: string; default?: boolean }
  | { type: 'list'; description: string; default?: string[] }; // may be given several times: string[] ([] when absent)

export type OptionsSpec = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S extends { type: 'string' } ? string : S extends { type: 'number' } ? number :
  S extends { type: 'list' } ? string[] : boolean;
export type Parsed<T extends OptionsSpec> = {
  [K in keyof T]: T[K] extends { default: any } | { type: 'list' } ? ValueOf<T[K]> : ValueOf<T[K]> | undefined;
} & {
  _: string[];
};

export function parseArgs<T extends OptionsSpec>(command: string, argv: string[], spec: T): Parsed<T> {
  const out: Record<string, unknown> = { _: [] as string[] };
  for (const [name, s] of Object.entries(spec)) {
    if (s.default !== undefined) out[name] = s.default;
    else if (s.type === 'list') out[name] = [];
  }
  const explicit = new Set<string>(); // list options given on the command line (they replace the default)
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (!a.startsWith('--')) {
      (out._ as string[]).push(a);
      continue;
    }
    let name = a.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let s = spec[name];
    if (!s && name.startsWith('no-') && spec[name.slice(3)]?.type === 'boolean' && value === undefined) {
      out[name.slice(3)] = false;
      continue;
    }
    if (!s) throw new UserError(`${command}: unknown option --${name}`, `run \`chatwright ${command} --help\` for the options`);
    if (s.type === 'boolean') {
      if (value === undefined) out[name] = true;
      else if (value === 'true' || value === 'false') out[name] = value === 'true';
      else throw new UserError(`${command}: --${name} takes true or false, got "${value}"`);
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new UserError(`${command}: --${name} needs a value`);
      value = argv[++i];
    }
    if (s.type === 'list') {
      out[name] = [...(explicit.has(name) ? (out[name] as string[]) : []), value];
      explicit.add(name);
      continue;
    }
    if (s.type === 'string') out[name] = value;
    else {
      const x = Number(value);
      if (value.trim() === '' || !Number.isFinite(x)) throw new UserError(`${command}: --${name} takes a number, got "${value}"`);
      if (s.integer && !Number.isInteger(x)) throw new UserError(`${command}: --${name} takes an integer, got ${value}`);
      if (s.min !== undefined && x < s.min) throw new UserError(`${command}: --${name} must be at least ${s.min}, got ${value}`);
      if (s.max !== undefined && x > s.max) throw new UserError(`${command}: --${name} must be at most ${s.max}, got ${value}`);
      out[name] = x;
    }
  }
  return out as Parsed<T>;
}

export function helpText(command: string, summary: string, spec: OptionsSpec): string {
  const lines = [`chatwright ${command}: ${summary}`, '', 'options:'];
  for (const [name, s] of Object.entries(spec)) {
    const def = s.type === 'list' ? ' (repeatable)' : s.default !== undefined ? ` (default ${JSON.stringify(s.default)})` : '';
    lines.push(`  --${name.padEnd(22)} ${s.description}${def}`);
  }
  return lines.join('\n');
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

// Returns v when it is one of `ok` (or undefined when absent); otherwise a UserError naming the option.
export function oneOf<T extends string>(command: string, name: string, v: string | undefined, ok: readonly T[]): T | undefined {
  if (v !== undefined && !ok.includes(v as T)) throw new UserError(`${command}: --${name} must be one of ${ok.join(', ')}, got "${v}"`);
  return v as T | undefined;
}

// Options that mean the same in every training stage (pretrain, sft): one description each.
const int = { type: 'number', integer: true } as const;
export const trainingOptions = {
  'grad-accum': { ...int, min: 1, description: 'micro-batches per optimizer step' },
  decay: { type: 'string', description: 'cosine, linear or constant' },
  beta1: { type: 'number', min: 0, max: 1, description: 'AdamW beta1' },
  beta2: { type: 'number', min: 0, max: 1, description: 'AdamW beta2' },
  clip: { type: 'number', min: 0, description: 'clip the global gradient norm to this (0: off)' },
  'save-every': { ...int, min: 0, description: 'checkpoint every N steps (0: only at the end)' },
  resume: { type: 'boolean', description: 'continue from the checkpoint in --out when one exists (default true)' },
  backend: { type: 'string', description: 'js or native (default: native when the addon is built)' },
  'time-limit': { type: 'number', min: 0, description: 'minutes; stop cleanly with a checkpoint' },
  budget: { type: 'number', min: 0, description: 'seconds: train as many steps as fit, measured on the first steps (at most --steps)' },
  'peak-gflops': { type: 'number', min: 0, description: 'GEMM peak for MFU (default: measured at start)' },
  'log-every': { ...int, min: 1, description: 'progress line every N steps when stdout is not a terminal' },
} as const;

// The preference store's options, as `chatwright rank` and `chatwright serve` take them.
export const storeOptions = {
  store: { type: 'string', description: 'preference store folder (created when missing), e.g. runs/demo/feedback' },
  samples: { type: 'string', description: 'samples file from `chatwright sample` (added to the store; only its items are shown)' },
  repeats: { ...int, min: 1, description: 'rankings each item needs from different people', default: 1 },
} as const;

// The options PPO and GRPO share (each has one description).
export const rlOptions = {
  init: { type: 'string', description: 'the SFT model the policy starts from, e.g. runs/demo/sft' },
  ref: { type: 'string', description: 'the frozen reference of the KL penalty (default: --init)' },
  reward: { type: 'string', description: 'a reward model folder (chatwright reward), `labeller`, or a .mjs file exporting reward(prompt, answer)' },
  prompts: { type: 'string', description: 'chinese-poetry or a JSONL file of {"messages"} / {"prompt"} (default chinese-poetry)' },
  limit: { ...int, min: 1, description: 'built-in prompts: poems read (default 5000)' },
  out: { type: 'string', description: 'checkpoint folder, e.g. runs/demo/ppo' },
  steps: { ...int, min: 1, description: 'iterations, one rollout batch each (default 100)' },
  'max-new-tokens': { ...int, min: 1, description: 'longest answer (default 64)' },
  temperature: { type: 'number', min: 0, max: 2, description: 'the policy trained is the model at this temperature: answers drawn and log-probabilities taken at it (default 1)' },
  'truncation-penalty': { type: 'number', min: 0, description: 'subtracted from the score of an answer cut at the length limit (default 1)' },
  lr: { type: 'number', min: 0, description: 'policy learning rate' },
  'min-lr': { type: 'number', min: 0, description: 'learning rate at the end of the decay (with --decay cosine or linear)' },
  warmup: { ...int, min: 0, description: 'linear warmup steps (default 5)' },
  'weight-decay': { type: 'number', min: 0, description: 'AdamW weight decay on matmul weights (default 0)' },
  'eval-every': { ...int, min: 0, description: 'score and KL on held-out prompts every N steps (0: only at the end)' },
  'eval-prompts': { ...int, min: 0, description: 'held-out prompts per evaluation (default 16)' },
  seed: { ...int, min: 0, description: 'seed of the prompt order, the rollouts and the minibatches' },
  ...trainingOptions,
} as const;
