// `chatwright ppo`: RLHF with PPO against a reward model, under a per-token KL penalty to the SFT model (src/stages/ppo.ts).
import { trainPPO, type PPOOptions } from '../stages/ppo.js';
import { helpText, parseArgs, rlOptions, wantsHelp, UsageError, runOptionsFrom } from './args.js';
import { exitCodeOf } from '../train/loop.js';

const int = { type: 'number', integer: true } as const;

const spec = {
  ...rlOptions,
  critic: { type: 'string', description: 'the critic\'s start (default: --reward when it is a reward model, else --init)' },
  'batch-size': { ...int, min: 1, description: 'answers per rollout batch (default 16)' },
  'mini-batch': { ...int, min: 1, description: 'answers per optimizer step (default 8)' },
  epochs: { ...int, min: 1, description: 'passes over each rollout batch (default 2)' },
  'kl-coef': { type: 'number', min: 0, description: 'beta of the per-token KL penalty (default 0.05)' },
  'kl-target': { type: 'number', min: 0, description: 'adapt beta to hold this KL per answer, in nats (default 0: fixed beta)' },
  'kl-horizon': { ...int, min: 1, description: 'adaptive KL horizon in answers (default 10000)' },
  gamma: { type: 'number', min: 0, max: 1, description: 'discount (default 1)' },
  lam: { type: 'number', min: 0, max: 1, description: 'GAE lambda (default 0.95)' },
  'clip-range': { type: 'number', min: 0, description: 'PPO ratio clip (default 0.2)' },
  'value-clip': { type: 'number', min: 0, description: 'value clip (default 0.2)' },
  'ent-coef': { type: 'number', min: 0, description: 'entropy bonus (default 0)' },
  'critic-lr': { type: 'number', min: 0, description: 'critic learning rate (default 1e-4)' },
  'ptx-data': { type: 'string', description: 'pretraining shards for PPO-ptx (chatwright data prepare)' },
  'ptx-coef': { type: 'number', min: 0, description: 'weight of the pretraining loss (PPO-ptx; default 0)' },
  'ptx-batch': { ...int, min: 1, description: 'pretraining rows per minibatch (default 4)' },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('ppo', 'RLHF with PPO: raise the reward under a per-token KL penalty to the SFT model', spec));
    return 0;
  }
  const a = parseArgs('ppo', argv, spec);
  if (a._.length) throw new UsageError('ppo', `unexpected argument "${a._[0]}"`);
  for (const k of ['init', 'reward', 'out'] as const) if (!a[k]) throw new UsageError('ppo', `--${k} is required`);
  if (a['grad-accum'] !== undefined) throw new UsageError('ppo', '--grad-accum is not supported: use --mini-batch and --batch-size');
  const opts: Partial<PPOOptions> & { init: string; reward: string; out: string } = {
    ...runOptionsFrom('ppo', a), init: a.init!, ref: a.ref, reward: a.reward!, critic: a.critic, prompts: a.prompts, limit: a.limit,
    out: a.out!, steps: a.steps, batchSize: a['batch-size'], miniBatch: a['mini-batch'], epochs: a.epochs,
    maxNewTokens: a['max-new-tokens'], temperature: a.temperature, truncationPenalty: a['truncation-penalty'], klCoef: a['kl-coef'],
    klTarget: a['kl-target'], klHorizon: a['kl-horizon'], gamma: a.gamma, lam: a.lam, clipRange: a['clip-range'],
    valueClip: a['value-clip'], entCoef: a['ent-coef'], ptxData: a['ptx-data'], ptxCoef: a['ptx-coef'], ptxBatch: a['ptx-batch'],
    criticLr: a['critic-lr'], evalPrompts: a['eval-prompts'],
  };
  return exitCodeOf((await trainPPO(opts)).stopped);
}
