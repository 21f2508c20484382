// `chatwright reward`: train a reward model on ranked answers (src/stages/reward.ts). Options left out keep the resumed
// run's values, else the defaults shown here.
import { trainReward, type RewardOptions } from '../stages/reward.js';
import { helpText, parseArgs, trainingOptions, wantsHelp, UsageError, runOptionsFrom } from './args.js';
import { exitCodeOf } from '../train/loop.js';

const int = { type: 'number', integer: true } as const;
const spec = {
  init: { type: 'string', description: 'the SFT model to start from, e.g. runs/demo/sft' },
  data: { type: 'string', description: 'preferences: JSONL of {"prompt", "chosen", "rejected"} or {"prompt", "responses", "ranking"}, or a store folder' },
  val: { type: 'string', description: 'held-out preferences (default: 1 in 10 prompts of --data)' },
  out: { type: 'string', description: 'checkpoint folder, e.g. runs/demo/rm' },
  steps: { ...int, min: 1, description: 'total optimizer steps (default 200)' },
  'batch-size': { ...int, min: 1, description: 'prompts per step, each with all its ranked pairs (default 8)' },
  margin: { type: 'number', min: 0, description: 'Bradley-Terry margin (default 0)' },
  'agreement-prompts': { ...int, min: 0, description: 'poem prompts the SFT model answers afresh at the end to compare the reward model with the simulated labeller (default 32; 0: none)' },
  lr: { type: 'number', min: 0, description: 'peak learning rate (default 3e-4)' },
  'min-lr': { type: 'number', min: 0, description: 'learning rate at the end of the decay (default 3e-5)' },
  warmup: { ...int, min: 0, description: 'linear warmup steps (default 10)' },
  'weight-decay': { type: 'number', min: 0, description: 'AdamW weight decay on matmul weights (default 0)' },
  'eval-every': { ...int, min: 0, description: 'held-out pair accuracy every N steps (0: only at the end)' },
  seed: { ...int, min: 0, description: 'seed of the score head and the prompt order' },
  ...trainingOptions,
} as const;

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('reward', 'train a reward model on ranked answers (Bradley-Terry over all pairs of a prompt)', spec));
    return 0;
  }
  const a = parseArgs('reward', argv, spec);
  if (a._.length) throw new UsageError('reward', `unexpected argument "${a._[0]}"`);
  if (!a.init) throw new UsageError('reward', '--init is required: the SFT model to start from, e.g. --init runs/demo/sft');
  if (!a.data) throw new UsageError('reward', '--data is required: rank answers first (`chatwright sample`, then `chatwright rank` or `chatwright label`)');
  if (!a.out) throw new UsageError('reward', '--out is required, e.g. --out runs/demo/rm');
  const opts: Partial<RewardOptions> & { init: string; data: string; out: string } = {
    ...runOptionsFrom('reward', a), init: a.init, data: a.data, val: a.val, out: a.out, steps: a.steps, batchSize: a['batch-size'],
    margin: a.margin, agreementPrompts: a['agreement-prompts'], peakGflops: a['peak-gflops'],
  };
  if (a['grad-accum'] !== undefined) throw new UsageError('reward', '--grad-accum is not supported: raise --batch-size instead');
  return exitCodeOf((await trainReward(opts)).stopped);
}
