// `chatwright eval`: held-out SFT loss, answer checks and the simulated labeller's judgement for any models side by side
// (src/stages/eval.ts). The table (or, with --json, the whole report) goes to stdout, so `chatwright eval --json >
// eval.json` works; progress goes to stderr. The report is also written to --out (and eval.html beside it).
//   chatwright eval --base runs/demo/base --sft runs/demo/sft
//   chatwright eval --model runs/demo/sft --model dpo=runs/demo/dpo --baseline sft --reward runs/demo/rm
import { join, dirname, basename } from 'node:path';
import { runEval, formatTable } from '../stages/eval.js';
import { rewardJudge } from '../stages/reward.js';
import { simulatedLabeller } from '../feedback/index.js';
import { helpText, parseArgs, wantsHelp, UsageError } from './args.js';

const spec = {
  base: { type: 'string', value: 'DIR', description: 'base model folder (evaluated with the same chat template), e.g. runs/demo/base' },
  sft: { type: 'string', value: 'DIR', description: 'fine-tuned model folder, e.g. runs/demo/sft' },
  model: { type: 'list', value: 'PATH', description: 'a model to evaluate, as DIR (named after the folder) or NAME=DIR; after --base and --sft' },
  baseline: { type: 'string', value: 'NAME', description: 'name of the model the win rates compare against (default: sft, else the first)' },
  data: { type: 'string', value: 'PATH', description: 'chinese-poetry, wordnet, a JSONL of dialogues, or a folder with heldout.jsonl (default: the set saved in --sft)' },
  limit: { type: 'number', integer: true, min: 1, description: 'built-in sets: corpus entries to read' },
  'max-prompts': { type: 'number', integer: true, min: 0, description: 'evaluation prompts per task' },
  out: { type: 'string', value: 'FILE', description: 'JSON report (default: eval.json beside the --sft folder; eval.html beside it)' },
  reward: { type: 'string', value: 'DIR', description: 'a reward model folder: its win rates join the simulated labeller\'s' },
  temperature: { type: 'number', min: 0, max: 2, description: 'answers at this temperature, seeded per prompt (default 0: greedy)' },
  seed: { type: 'number', integer: true, min: 0, description: 'seed of sampled answers (default 0)' },
  'kl-prompts': { type: 'number', integer: true, min: 0, description: 'prompts answered by each model for its KL to the baseline (default 16; 0: none)' },
  json: { type: 'boolean', description: 'print the report as JSON instead of the table', default: false },
} as const;

const usage = 'chatwright eval [--base DIR] [--sft DIR] [--model [NAME=]DIR ...] [options]';

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('eval', 'evaluate base and fine-tuned models on held-out prompts', spec, usage));
    return 0;
  }
  const a = parseArgs('eval', argv, spec);
  if (a._.length) throw new UsageError('eval', `unexpected argument "${a._[0]}"`, usage);
  const models = [
    ...(a.base ? [{ name: 'base', dir: a.base }] : []), ...(a.sft ? [{ name: 'sft', dir: a.sft }] : []),
    ...a.model.map((m) => {
      const eq = m.indexOf('=');
      return eq > 0 ? { name: m.slice(0, eq), dir: m.slice(eq + 1) } : { name: basename(m.replace(/\/+$/, '')), dir: m };
    }),
  ];
  if (models.length === 0) throw new UsageError('eval', 'no model given: pass --base DIR, --sft DIR and/or --model [NAME=]DIR', usage);
  const names = models.map((m) => m.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new UsageError('eval', `two models are named "${dup}": name them, --model NAME=DIR`, usage);
  if (a.baseline !== undefined && !names.includes(a.baseline))
    throw new UsageError('eval', `--baseline ${a.baseline} is not one of the models (${names.join(', ')})`, usage);
  const out = a.out ?? join(dirname(models[models.length - 1].dir), 'eval.json');
  const judges = [simulatedLabeller, ...(a.reward ? [rewardJudge(a.reward)] : [])];
  const report = runEval({
    models, baseline: a.baseline, data: a.data, limit: a.limit, maxPrompts: a['max-prompts'], out, judges, klPrompts: a['kl-prompts'],
    temperature: a.temperature, seed: a.seed, log: (s) => console.error(s),
  });
  console.log(a.json ? JSON.stringify(report, null, 2) : formatTable(report));
  console.error(`wrote ${out}`);
  return 0;
}
