// `chatwright eval`: held-out SFT loss and answer checks for a base and an SFT model side by side (src/stages/eval.ts).
// The table (or, with --json, the whole report) goes to stdout, so `chatwright eval --json > eval.json` works; progress
// goes to stderr. The report is also written to --out.
import { join, dirname } from 'node:path';
import { runEval, formatTable } from '../stages/eval.js';
import { helpText, parseArgs, wantsHelp, UsageError } from './args.js';

const spec = {
  base: { type: 'string', value: 'DIR', description: 'base model folder (evaluated with the same chat template), e.g. runs/demo/base' },
  sft: { type: 'string', value: 'DIR', description: 'fine-tuned model folder, e.g. runs/demo/sft' },
  data: { type: 'string', value: 'PATH', description: 'chinese-poetry, wordnet, a JSONL of dialogues, or a folder with heldout.jsonl (default: the set saved in --sft)' },
  limit: { type: 'number', integer: true, min: 1, description: 'built-in sets: corpus entries to read' },
  'max-prompts': { type: 'number', integer: true, min: 0, description: 'evaluation prompts per task' },
  out: { type: 'string', value: 'FILE', description: 'JSON report (default: eval.json beside the --sft folder)' },
  json: { type: 'boolean', description: 'print the report as JSON instead of the table', default: false },
} as const;

const usage = 'chatwright eval [--base DIR] [--sft DIR] [options]';

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('eval', 'evaluate base and fine-tuned models on held-out prompts', spec, usage));
    return 0;
  }
  const a = parseArgs('eval', argv, spec);
  if (a._.length) throw new UsageError('eval', `unexpected argument "${a._[0]}"`, usage);
  const models = [...(a.base ? [{ name: 'base', dir: a.base }] : []), ...(a.sft ? [{ name: 'sft', dir: a.sft }] : [])];
  if (models.length === 0) throw new UsageError('eval', 'no model given: pass --base DIR and/or --sft DIR', usage);
  const out = a.out ?? join(dirname(models[models.length - 1].dir), 'eval.json');
  const report = runEval({ models, data: a.data, limit: a.limit, maxPrompts: a['max-prompts'], out, log: (s) => console.error(s) });
  console.log(a.json ? JSON.stringify(report, null, 2) : formatTable(report));
  console.error(`wrote ${out}`);
  return 0;
}
