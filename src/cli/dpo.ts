// `chatwright dpo`: direct preference optimisation of the SFT model on ranked answers (src/stages/dpo.ts).
import { trainDPO, type DPOOptions } from '../stages/dpo.js';
import { helpText, oneOf as oneOfFor, parseArgs, trainingOptions, wantsHelp, UsageError, runOptionsFrom } from './args.js';
import { exitCodeOf } from '../train/loop.js';

const int = { type: 'number', integer: true } as const;
const spec = {
  init: { type: 'string', description: 'the SFT model to start from, e.g. runs/demo/sft' },
  ref: { type: 'string', description: 'the frozen reference model (default: --init)' },
  data: { type: 'string', description: 'preferences: JSONL of {"prompt", "chosen", "rejected"} or {"prompt", "responses", "ranking"}, or a store folder' },
  val: { type: 'string', description: 'held-out preferences (default: 1 in 10 prompts of --data)' },
  out: { type: 'string', description: 'checkpoint folder, e.g. runs/demo/dpo' },
  steps: { ...int, min: 1, description: 'total optimizer steps (default 200)' },
  'batch-size': { ...int, min: 1, description: 'pairs per step (default 8)' },
  beta: { type: 'number', min: 0, description: 'strength of the pull towards the reference (default 0.1)' },
  loss: { type: 'string', description: 'sigmoid (DPO) or ipo (default sigmoid)' },
  'sft-weight': { type: 'number', min: 0, description: 'add this times the SFT loss of the chosen answers (RPO; default 0)' },
  lr: { type: 'number', min: 0, description: 'peak learning rate (default 1e-4)' },
  'min-lr': { type: 'number', min: 0, description: 'learning rate at the end of the decay (default 1e-5)' },
  warmup: { ...int, min: 0, description: 'linear warmup steps (default 10)' },
  'weight-decay': { type: 'number', min: 0, description: 'AdamW weight decay on matmul weights (default 0)' },
  'eval-every': { ...int, min: 0, description: 'held-out accuracy, margin and KL every N steps (0: only at the end)' },
  'kl-prompts': { ...int, min: 0, description: 'held-out prompts the policy answers for the KL estimate (default 8; 0: none)' },
  'kl-tokens': { ...int, min: 1, description: 'new tokens per answer for the KL estimate (default 64)' },
  seed: { ...int, min: 0, description: 'seed of the pair order and of the KL samples' },
  ...trainingOptions,
} as const;

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('dpo', 'direct preference optimisation: the policy learns ranked answers against a frozen reference', spec));
    return 0;
  }
  const a = parseArgs('dpo', argv, spec);
  if (a._.length) throw new UsageError('dpo', `unexpected argument "${a._[0]}"`);
  if (!a.init) throw new UsageError('dpo', '--init is required: the SFT model to start from, e.g. --init runs/demo/sft');
  if (!a.data) throw new UsageError('dpo', '--data is required: preference pairs (JSONL), or rank answers first (`chatwright rank`)');
  if (!a.out) throw new UsageError('dpo', '--out is required, e.g. --out runs/demo/dpo');
  if (a['grad-accum'] !== undefined) throw new UsageError('dpo', '--grad-accum is not supported: raise --batch-size instead');
  const oneOf = <T extends string>(name: string, v: string | undefined, ok: readonly T[]) => oneOfFor('dpo', name, v, ok);
  const opts: Partial<DPOOptions> & { init: string; data: string; out: string } = {
    ...runOptionsFrom('dpo', a), init: a.init, ref: a.ref, data: a.data, val: a.val, out: a.out, steps: a.steps, batchSize: a['batch-size'],
    beta: a.beta, loss: oneOf('loss', a.loss, ['sigmoid', 'ipo'] as const), sftWeight: a['sft-weight'], klPrompts: a['kl-prompts'],
    klTokens: a['kl-tokens'], peakGflops: a['peak-gflops'],
  };
  return exitCodeOf((await trainDPO(opts)).stopped);
}
