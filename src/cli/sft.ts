// `chatwright sft`: supervised fine-tuning of a pretrained model on demonstration dialogues (src/stages/sft.ts).
// Options left out keep the resumed run's values, else the defaults shown by --help. The result is the checkpoint folder
// (and its eval.json); progress goes to stderr.
import { sft, type SFTOptions } from '../stages/sft.js';
import { helpText, oneOf as oneOfFor, parseArgs, trainingOptions, wantsHelp, UsageError, runOptionsFrom } from './args.js';
import { exitCodeOf } from '../train/loop.js';

const int = { type: 'number', integer: true } as const;
const spec = {
  init: { type: 'string', value: 'DIR', description: 'pretrained model folder to start from, e.g. runs/tiny/base' },
  data: { type: 'string', value: 'PATH', description: 'chinese-poetry, wordnet, or a JSONL file of {"messages": [{"role", "content"}]}' },
  val: { type: 'string', value: 'FILE', description: 'held-out JSONL (default: the built-in held-out split, or 1 in 20 dialogues of --data)' },
  limit: { ...int, min: 1, description: 'built-in sets: corpus entries (poems, words) to read' },
  out: { type: 'string', value: 'DIR', description: 'checkpoint folder, e.g. runs/tiny/sft' },
  tokenizer: { type: 'string', value: 'DIR', description: 'without --init only: tokenizer folder of a fresh model' },
  preset: { type: 'string', value: 'NAME', description: 'without --init only: tiny, small or medium' },
  steps: { ...int, min: 1, description: 'total optimizer steps (default 300)' },
  'batch-size': { ...int, min: 1, description: 'rows per micro-batch (default 8)' },
  'seq-len': { ...int, min: 2, description: "tokens per row (default: min(256, the model's context))" },
  pack: { type: 'boolean', description: 'several dialogues per row (--no-pack: one per row, padded) (default true)' },
  overflow: { type: 'string', value: 'NAME', description: 'a dialogue longer than the context: truncate or skip (default truncate)' },
  lr: { type: 'number', min: 0, description: 'peak learning rate (default 1e-3)' },
  'min-lr': { type: 'number', min: 0, description: 'learning rate at the end of the decay (default 1e-4)' },
  warmup: { ...int, min: 0, description: 'linear warmup steps (default 20)' },
  'weight-decay': { type: 'number', min: 0, description: 'AdamW weight decay on matmul weights (default 0)' },
  'eval-every': { ...int, min: 0, description: 'held-out loss every N steps (0: only at the end)' },
  'eval-batches': { ...int, min: 1, description: 'held-out batches per evaluation' },
  'sample-every': { ...int, min: 0, description: 'print the answer to a held-out prompt every N steps (0: never)' },
  'max-prompts': { ...int, min: 0, description: 'evaluation prompts per task at the end (default 50)' },
  eval: { type: 'boolean', description: 'evaluate base and SFT model at the end and write <out>/eval.json (default true)' },
  seed: { ...int, min: 0, description: 'seed of the data order (and of a fresh model)' },
  ...trainingOptions,
} as const;

const usage = 'chatwright sft --init DIR --data NAME|FILE --out DIR [options]';

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('sft', 'supervised fine-tuning on demonstration dialogues (loss on the assistant tokens only)', spec, usage));
    return 0;
  }
  const a = parseArgs('sft', argv, spec);
  if (a._.length) throw new UsageError('sft', `unexpected argument "${a._[0]}"`, usage);
  if (!a.data) throw new UsageError('sft', '--data is required: chinese-poetry, wordnet, or a JSONL file of {"messages": [...]}', usage);
  if (!a.out) throw new UsageError('sft', '--out is required (e.g. --out runs/tiny/sft)', usage);
  const oneOf = <T extends string>(name: string, v: string | undefined, ok: readonly T[]) => oneOfFor('sft', name, v, ok);
  const opts: Partial<SFTOptions> & { data: string; out: string } = {
    ...runOptionsFrom('sft', a), init: a.init, data: a.data, val: a.val, limit: a.limit, out: a.out, tokenizer: a.tokenizer,
    preset: oneOf('preset', a.preset, ['tiny', 'small', 'medium'] as const), steps: a.steps, batchSize: a['batch-size'],
    seqLen: a['seq-len'], gradAccum: a['grad-accum'], pack: a.pack, overflow: oneOf('overflow', a.overflow, ['truncate', 'skip'] as const),
    evalBatches: a['eval-batches'], sampleEvery: a['sample-every'], maxPrompts: a['max-prompts'], evalAtEnd: a.eval,
    peakGflops: a['peak-gflops'],
  };
  return exitCodeOf((await sft(opts, (line) => process.stderr.write(line + '\n'))).stopped);
}
