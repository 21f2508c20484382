// `chatwright eval`: held-out SFT loss and answer checks for a base and an SFT model side by side (src/stages/eval.ts).
import { join, dirname } from 'node:path';
import { runEval, formatTable } from '../stages/eval.js';
import { helpText, parseArgs, wantsHelp } from './args.js';
import { UserError } from '../util/errors.js';

const spec = {
  base: { type: 'string', description: 'base model folder (evaluated with the same chat template), e.g. runs/demo/base' },
  sft: { type: 'string', description: 'fine-tuned model folder, e.g. runs/demo/sft' },
  data: { type: 'string', description: 'chinese-poetry, wordnet, a JSONL of dialogues, or a folder with heldout.jsonl (default: the set saved in --sft)' },
  limit: { type: 'number', integer: true, min: 1, description: 'built-in sets: corpus entries to read' },
  'max-prompts': { type: 'number', integer: true, min: 0, description: 'evaluation prompts per task' },
  out: { type: 'string', description: 'JSON report (default: eval.json beside the --sft folder)' },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('eval', 'evaluate base and fine-tuned models on held-out prompts', spec));
    return 0;
  }
  const a = parseArgs('eval', argv, spec);
  if (a._.length) throw new UserError(`eval: unexpected argument "${a._[0]}"`, 'run `chatwright eval --help`');
  const models = [...(a.base ? [{ name: 'base', dir: a.base }] : []), ...(a.sft ? [{ name: 'sft', dir: a.sft }] : [])];
  if (models.length === 0) throw new UserError('eval: no model given', 'pass --base DIR and/or --sft DIR');
  const out = a.out ?? join(dirname(models[models.length - 1].dir), 'eval.json');
  const report = runEval({ models, data: a.data, limit: a.limit, maxPrompts: a['max-prompts'], out });
  console.log(formatTable(report));
  console.log(`wrote ${out}`);
  return 0;
}
