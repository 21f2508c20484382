// `chatwright grpo`: group relative policy optimisation against a reward model or a verifiable reward (src/stages/grpo.ts).
import { trainGRPO, type GRPOOptions } from '../stages/grpo.js';
import { helpText, parseArgs, rlOptions, wantsHelp, UsageError, runOptionsFrom } from './args.js';
import { exitCodeOf } from '../train/loop.js';

const int = { type: 'number', integer: true } as const;
const spec = {
  ...rlOptions,
  'batch-size': { ...int, min: 1, description: 'prompts per step (default 4)' },
  group: { ...int, min: 2, description: 'answers per prompt, G (default 8)' },
  iterations: { ...int, min: 1, description: 'updates per batch of answers (default 1)' },
  'mini-batch': { ...int, min: 1, description: 'answers per forward and backward; gradients accumulate over the batch (default 16)' },
  beta: { type: 'number', min: 0, description: 'weight of the KL-to-reference term in the loss (default 0.04)' },
  'clip-range': { type: 'number', min: 0, description: 'ratio clip (default 0.2)' },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('grpo', 'GRPO: group-normalised advantages, no critic, KL to the SFT model in the loss', spec));
    return 0;
  }
  const a = parseArgs('grpo', argv, spec);
  if (a._.length) throw new UsageError('grpo', `unexpected argument "${a._[0]}"`);
  for (const k of ['init', 'reward', 'out'] as const) if (!a[k]) throw new UsageError('grpo', `--${k} is required`);
  if (a['grad-accum'] !== undefined) throw new UsageError('grpo', '--grad-accum is not supported: gradients already accumulate over --mini-batch');
  const opts: Partial<GRPOOptions> & { init: string; reward: string; out: string } = {
    ...runOptionsFrom('grpo', a), init: a.init!, ref: a.ref, reward: a.reward!, prompts: a.prompts, limit: a.limit, out: a.out!,
    steps: a.steps, batchSize: a['batch-size'], group: a.group, iterations: a.iterations, miniBatch: a['mini-batch'],
    maxNewTokens: a['max-new-tokens'], temperature: a.temperature, truncationPenalty: a['truncation-penalty'], beta: a.beta,
    clipRange: a['clip-range'], evalPrompts: a['eval-prompts'],
  };
  return exitCodeOf((await trainGRPO(opts)).stopped);
}
