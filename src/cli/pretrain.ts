// `chatwright pretrain`: next-token pretraining on token shards (src/stages/pretrain.ts). Options left out keep the
// resumed run's values, else the preset's defaults. The result is the checkpoint folder; progress goes to stderr.
import { pretrain, type PretrainOptions } from '../stages/pretrain.js';
import { helpText, oneOf as oneOfFor, parseArgs, trainingOptions, wantsHelp, UsageError, runOptionsFrom } from './args.js';
import { exitCodeOf } from '../train/loop.js';

const int = { type: 'number', integer: true } as const;
const spec = {
  preset: { type: 'string', value: 'NAME', description: 'model size: tiny, small or medium (default tiny)' },
  data: { type: 'string', value: 'DIR', description: 'token shard directory (from `chatwright data prepare`)' },
  out: { type: 'string', value: 'DIR', description: 'checkpoint folder, e.g. runs/tiny/base' },
  tokenizer: { type: 'string', value: 'DIR', description: 'tokenizer directory (default: the copy inside --data)' },
  steps: { ...int, min: 1, description: 'total optimizer steps' },
  'batch-size': { ...int, min: 1, description: 'sequences per micro-batch' },
  'seq-len': { ...int, min: 1, description: 'tokens per sequence' },
  context: { ...int, min: 1, description: "a new model's context length (default: the preset's)" },
  'n-layer': { ...int, min: 1, description: "a new model's layer count (default: the preset's)" },
  'n-embd': { ...int, min: 1, description: "a new model's embedding width (default: the preset's)" },
  'n-head': { ...int, min: 1, description: "a new model's query heads (default: the preset's)" },
  'n-kv-head': { ...int, min: 1, description: "a new model's key/value heads (default: the preset's)" },
  'intermediate-size': { ...int, min: 1, description: "a new model's MLP width (default: the preset's)" },
  lr: { type: 'number', min: 0, description: 'peak learning rate' },
  'min-lr': { type: 'number', min: 0, description: 'learning rate at the end of the decay' },
  warmup: { ...int, min: 0, description: 'linear warmup steps' },
  'weight-decay': { type: 'number', min: 0, description: 'AdamW weight decay on matmul weights' },
  'decay-all': { type: 'boolean', description: 'weight decay on norms and embeddings too' },
  'eval-every': { ...int, min: 0, description: 'validation loss every N steps (0: only at the end)' },
  'eval-batches': { ...int, min: 1, description: 'validation batches per evaluation' },
  'sample-every': { ...int, min: 0, description: 'print sampled continuations every N steps (0: never)' },
  'sample-tokens': { ...int, min: 1, description: 'tokens per sample' },
  seed: { ...int, min: 0, description: 'seed of the initialisation, the data order and the samples' },
  ...trainingOptions,
} as const;

const usage = 'chatwright pretrain --data DIR --out DIR [options]';

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('pretrain', 'pretrain a GPT on token shards (next-token prediction)', spec, usage));
    return 0;
  }
  const a = parseArgs('pretrain', argv, spec);
  if (a._.length) throw new UsageError('pretrain', `unexpected argument "${a._[0]}"`, usage);
  if (!a.data) throw new UsageError('pretrain', '--data is required (prepare shards with `chatwright data prepare` first)', usage);
  if (!a.out) throw new UsageError('pretrain', '--out is required (e.g. --out runs/tiny/base)', usage);
  const oneOf = <T extends string>(name: string, v: string | undefined, ok: readonly T[]) => oneOfFor('pretrain', name, v, ok);
  const model = Object.fromEntries(Object.entries({
    nLayer: a['n-layer'], nEmbd: a['n-embd'], nHead: a['n-head'], nKvHead: a['n-kv-head'], intermediateSize: a['intermediate-size'],
  }).filter(([, v]) => v !== undefined));
  const opts: Partial<PretrainOptions> & { data: string; out: string } = {
    ...runOptionsFrom('pretrain', a), model: Object.keys(model).length ? model : undefined,
    preset: oneOf('preset', a.preset, ['tiny', 'small', 'medium'] as const), data: a.data, out: a.out,
    tokenizer: a.tokenizer, steps: a.steps, batchSize: a['batch-size'], seqLen: a['seq-len'], context: a.context,
    gradAccum: a['grad-accum'], decayAll: a['decay-all'], evalBatches: a['eval-batches'], sampleEvery: a['sample-every'],
    sampleTokens: a['sample-tokens'], peakGflops: a['peak-gflops'],
  };
  return exitCodeOf((await pretrain(opts, (line) => process.stderr.write(line + '\n'))).stopped);
}
