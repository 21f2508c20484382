// A small typed option parser: `--name value`, `--name=value`, `--flag`, `--no-flag`; a 'list' option may be repeated
// and collects its values in order. Unknown options, missing values,
// wrong types, values out of range and a file given where a folder is expected (or the reverse) are UsageErrors that
// name the option; the CLI prints them on stderr with the command's usage line and exits 2. Each option has one
// description, shown by --help with its value type, range and default, followed by the environment variables.
import { statSync } from 'node:fs';
import { UserError } from '../util/errors.js';

// A string option's value: DIR and FILE are checked against the disk (an existing file is not a DIR, an existing
// directory is not a FILE); the others only name what is expected in --help.
export type ValueKind = 'DIR' | 'FILE' | 'PATH' | 'NAME' | 'TEXT' | 'JSON' | 'LIST';

export type OptionSpec =
  | { type: 'string'; description: string; default?: string; value?: ValueKind }
  | { type: 'number'; description: string; default?: number; integer?: boolean; min?: number; max?: number }
  | { type: 'boolean'; description: string; default?: boolean }
  | { type: 'list'; description: string; default?: string[]; value?: ValueKind }; // repeatable: string[] ([] when absent)

export type OptionsSpec = Record<string, OptionSpec>;

type ValueOf<S extends OptionSpec> = S extends { type: 'string' } ? string : S extends { type: 'number' } ? number :
  S extends { type: 'list' } ? string[] : boolean;
export type Parsed<T extends OptionsSpec> = {
  [K in keyof T]: T[K] extends { default: any } | { type: 'list' } ? ValueOf<T[K]> : ValueOf<T[K]> | undefined;
} & {
  _: string[];
};

// A wrong command line: exit 2, with the command's usage line after the message.
export class UsageError extends UserError {
  constructor(readonly command: string, message: string, usage = `chatwright ${command} [options]`) {
    super(`${command}: ${message}`, `usage: ${usage}; \`chatwright ${command.split(' ')[0]} --help\` lists the options`);
    this.name = 'UsageError';
  }
}

// The environment variables every command reads, one description each (shown by every --help).
export const ENVIRONMENT: Record<string, string> = {
  CHATWRIGHT_BACKEND: 'js or native: the tensor backend (default: native when the addon is built, else js)',
  CHATWRIGHT_THREADS: 'threads of the native thread pool (default: the cores available)',
  CHATWRIGHT_CPU: 'scalar, avx2 or avx512: lower the SIMD level of the native kernels (never above the CPU\'s)',
  CHATWRIGHT_DEBUG: 'set to 1 to print the stack trace of an error',
};

function checkPath(command: string, name: string, kind: ValueKind | undefined, value: string): void {
  if (kind !== 'DIR' && kind !== 'FILE') return;
  let isDir: boolean;
  try {
    isDir = statSync(value).isDirectory();
  } catch {
    return; // absent (or unreadable): the command says what it needs
  }
  if (kind === 'DIR' && !isDir) throw new UsageError(command, `--${name} must be a folder, but ${value} is a file`);
  if (kind === 'FILE' && isDir) throw new UsageError(command, `--${name} must be a file, but ${value} is a folder`);
}

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
    if (!s) throw new UsageError(command, `unknown option --${name}`);
    if (s.type === 'boolean') {
      if (value === undefined) out[name] = true;
      else if (value === 'true' || value === 'false') out[name] = value === 'true';
      else throw new UsageError(command, `--${name} takes true or false, got "${value}"`);
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length || argv[i + 1].startsWith('--')) throw new UsageError(command, `--${name} needs a value`);
      value = argv[++i];
    }
    if (s.type === 'list') {
      checkPath(command, name, s.value, value);
      out[name] = [...(explicit.has(name) ? (out[name] as string[]) : []), value];
      explicit.add(name);
    } else if (s.type === 'string') {
      checkPath(command, name, s.value, value);
      out[name] = value;
    } else {
      const x = Number(value);
      if (value.trim() === '' || !Number.isFinite(x)) throw new UsageError(command, `--${name} takes a number, got "${value}"`);
      if (s.integer && !Number.isSafeInteger(x)) throw new UsageError(command, `--${name} takes an integer, got ${value}`);
      if (s.min !== undefined && x < s.min) throw new UsageError(command, `--${name} must be at least ${s.min}, got ${value}`);
      if (s.max !== undefined && x > s.max) throw new UsageError(command, `--${name} must be at most ${s.max}, got ${value}`);
      out[name] = x;
    }
  }
  return out as Parsed<T>;
}

// The value of an option as --help shows it: its kind (DIR, FILE, INT, NUM, ...) and range.
function valueText(s: OptionSpec): string {
  if (s.type === 'boolean') return '';
  if (s.type === 'string') return s.value ?? 'TEXT';
  if (s.type === 'list') return `${s.value ?? 'TEXT'} (repeatable)`;
  const range = s.min !== undefined && s.max !== undefined ? ` in [${s.min}, ${s.max}]`
    : s.min !== undefined ? ` >= ${s.min}` : s.max !== undefined ? ` <= ${s.max}` : '';
  return (s.integer ? 'INT' : 'NUM') + range;
}

// --help of a command: summary, usage, options, then the environment variables.
export function helpText(command: string, summary: string, spec: OptionsSpec, usage = `chatwright ${command} [options]`): string {
  return optionsText(command, summary, spec, usage) + '\n\n' + environmentText();
}

// The same without the environment variables (for a command that lists several subcommands' options).
export function optionsText(command: string, summary: string, spec: OptionsSpec, usage = `chatwright ${command} [options]`): string {
  const lines = [`chatwright ${command}: ${summary}`, '', `usage: ${usage}`, '', 'options:'];
  const flag = (name: string, s: OptionSpec) => `--${name}${s.type === 'boolean' ? '' : ` ${valueText(s)}`}`;
  const width = Math.max(24, ...Object.entries(spec).map(([n, s]) => flag(n, s).length + 1));
  for (const [name, s] of Object.entries(spec)) {
    const def = s.default !== undefined ? ` (default ${JSON.stringify(s.default)})` : '';
    lines.push(`  ${flag(name, s).padEnd(width)} ${s.description}${def}`);
  }
  lines.push(`  ${'--help'.padEnd(width)} this text`);
  return lines.join('\n');
}

export function environmentText(): string {
  const width = Math.max(...Object.keys(ENVIRONMENT).map((k) => k.length)) + 1;
  return ['environment:', ...Object.entries(ENVIRONMENT).map(([k, d]) => `  ${k.padEnd(width)} ${d}`)].join('\n');
}

export function wantsHelp(argv: string[]): boolean {
  return argv.includes('--help') || argv.includes('-h');
}

// Returns v when it is one of `ok` (or undefined when absent); otherwise a UserError naming the option.
export function oneOf<T extends string>(command: string, name: string, v: string | undefined, ok: readonly T[]): T | undefined {
  if (v !== undefined && !ok.includes(v as T)) throw new UsageError(command, `--${name} must be one of ${ok.join(', ')}, got "${v}"`);
  return v as T | undefined;
}

// Options that mean the same in every training stage (pretrain, sft): one description each.
const int = { type: 'number', integer: true } as const;
export const trainingOptions = {
  'grad-accum': { ...int, min: 1, description: 'micro-batches per optimizer step' },
  decay: { type: 'string', value: 'NAME', description: 'cosine, linear or constant' },
  beta1: { type: 'number', min: 0, max: 1, description: 'AdamW beta1' },
  beta2: { type: 'number', min: 0, max: 1, description: 'AdamW beta2' },
  clip: { type: 'number', min: 0, description: 'clip the global gradient norm to this (0: off)' },
  'save-every': { ...int, min: 0, description: 'checkpoint every N steps (0: only at the end)' },
  resume: { type: 'boolean', description: 'continue from the checkpoint in --out when one exists (default true)' },
  backend: { type: 'string', value: 'NAME', description: 'js or native (default: native when the addon is built)' },
  precision: { type: 'string', value: 'NAME', description: 'fp32, or bf16: mixed precision, bf16 GEMM inputs with float32 weights, gradients and optimizer state (needs AVX512_BF16; kept on resume; default fp32)' },
  'time-limit': { type: 'number', min: 0, description: 'minutes; stop cleanly with a checkpoint' },
  budget: { type: 'number', min: 0, description: 'seconds: train as many steps as fit, measured on the first steps (at most --steps)' },
  'peak-gflops': { type: 'number', min: 0, description: 'GEMM peak for MFU (default: measured at start)' },
  'log-every': { ...int, min: 1, description: 'progress line every N steps when stdout is not a terminal' },
} as const;

// The preference store's options, as `chatwright rank` and `chatwright serve` take them.
export const storeOptions = {
  store: { type: 'string', value: 'DIR', description: 'preference store folder (created when missing), e.g. runs/demo/feedback' },
  samples: { type: 'string', value: 'FILE', description: 'samples file from `chatwright sample` (added to the store; only its items are shown)' },
  repeats: { ...int, min: 1, description: 'rankings each item needs from different people', default: 1 },
} as const;

// The run options every training stage shares (src/train/loop.ts RunOptions), from a parsed command line; each command
// spec declares the ones it offers (lr, min-lr, warmup, weight-decay, eval-every and seed have per-stage defaults in
// their descriptions; the rest come from trainingOptions).
export function runOptionsFrom(command: string, a: Record<string, any>) {
  return {
    lr: a.lr as number | undefined, minLr: a['min-lr'] as number | undefined, warmup: a.warmup as number | undefined,
    decay: oneOf(command, 'decay', a.decay, ['cosine', 'linear', 'constant'] as const), weightDecay: a['weight-decay'] as number | undefined,
    beta1: a.beta1 as number | undefined, beta2: a.beta2 as number | undefined, clip: a.clip as number | undefined,
    evalEvery: a['eval-every'] as number | undefined, saveEvery: a['save-every'] as number | undefined, seed: a.seed as number | undefined,
    resume: a.resume as boolean | undefined, backend: oneOf(command, 'backend', a.backend, ['js', 'native'] as const),
    precision: oneOf(command, 'precision', a.precision, ['fp32', 'bf16'] as const),
    timeLimit: a['time-limit'] as number | undefined, budget: a.budget as number | undefined, logEvery: a['log-every'] as number | undefined,
  };
}

// The options PPO and GRPO share (each has one description).
export const rlOptions = {
  init: { type: 'string', value: 'PATH', description: 'the SFT model the policy starts from, e.g. runs/demo/sft' },
  ref: { type: 'string', value: 'PATH', description: 'the frozen reference of the KL penalty (default: --init)' },
  reward: { type: 'string', value: 'PATH', description: 'a reward model folder (chatwright reward), `labeller`, or a .mjs file exporting reward(prompt, answer)' },
  prompts: { type: 'string', value: 'PATH', description: 'chinese-poetry or a JSONL file of {"messages"} / {"prompt"} (default chinese-poetry)' },
  limit: { ...int, min: 1, description: 'built-in prompts: poems read (default 5000)' },
  out: { type: 'string', value: 'DIR', description: 'checkpoint folder, e.g. runs/demo/ppo' },
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
