// `chatwright eval`: held-out SFT loss, answer checks and the simulated labeller's judgement for any models side by side
// (src/stages/eval.ts).
//   chatwright eval --base runs/demo/base --sft runs/demo/sft
//   chatwright eval --model runs/demo/sft --model dpo=runs/demo/dpo --baseline sft
import { join, dirname, basename } from 'node:path';
import { runEval, formatTable } from '../stages/eval.js';
import { rewardJudge } from '../stages/reward.js';
import { simulatedLabeller } from '../feedback/index.js';
import { helpText, parseArgs, wantsHelp } from './args.js';
import { UserError } from '../util/errors.js';

const spec = {
  base: { type: 'string', description: 'base model folder (evaluated with the same chat template), e.g. runs/demo/base' },
  sft: { type: 'string', description: 'fine-tuned model folder, e.g. runs/demo/sft' },
  model: { type: 'list', description: 'a model to evaluate, as DIR (named after the folder) or NAME=DIR; after --base and --sft' },
  baseline: { type: 'string', description: 'name of the model the win rates compare against (default: sft, else the first)' },
  data: { type: 'string', description: 'chinese-poetry, wordnet, a JSONL of dialogues, or a folder with heldout.jsonl (default: the set saved in --sft)' },
  limit: { type: 'number', integer: true, min: 1, description: 'built-in sets: corpus entries to read' },
  'max-prompts': { type: 'number', integer: true, min: 0, description: 'evaluation prompts per task' },
  out: { type: 'string', description: 'JSON report (default: eval.json beside the --sft folder; eval.html beside it)' },
  reward: { type: 'string', description: 'a reward model folder: its win rates join the simulated labeller\'s' },
  temperature: { type: 'number', min: 0, max: 2, description: 'answers at this temperature, seeded per prompt (default 0: greedy)' },
  seed: { type: 'number', integer: true, min: 0, description: 'seed of sampled answers (default 0)' },
  'kl-prompts': { type: 'number', integer: true, min: 0, description: 'prompts answered by each model for its KL to the baseline (default 16; 0: none)' },
} as const;

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv)) {
    console.log(helpText('eval', 'evaluate base and fine-tuned models on held-out prompts', spec));
    return 0;
  }
  const a = parseArgs('eval', argv, spec);
  if (a._.length) throw new UserError(`eval: unexpected argument "${a._[0]}"`, 'run `chatwright eval --help`');
  const models = [
    ...(a.base ? [{ name: 'base', dir: a.base }] : []), ...(a.sft ? [{ name: 'sft', dir: a.sft }] : []),
    ...a.model.map((m) => {
      const eq = m.indexOf('=');
      return eq > 0 ? { name: m.slice(0, eq), dir: m.slice(eq + 1) } : { name: basename(m.replace(/\/+$/, '')), dir: m };
    }),
  ];
  if (models.length === 0) throw new UserError('eval: no model given', 'pass --base DIR, --sft DIR and/or --model [NAME=]DIR');
  const names = models.map((m) => m.name);
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup) throw new UserError(`eval: two models are named "${dup}"`, 'name them: --model NAME=DIR');
  if (a.baseline !== undefined && !names.includes(a.baseline))
    throw new UserError(`eval: --baseline ${a.baseline} is not one of the models (${names.join(', ')})`);
  const out = a.out ?? join(dirname(models[models.length - 1].dir), 'eval.json');
  const judges = [simulatedLabeller, ...(a.reward ? [rewardJudge(a.reward)] : [])];
  const report = runEval({ models, baseline: a.baseline, data: a.data, limit: a.limit, maxPrompts: a['max-prompts'], out, judges, klPrompts: a['kl-prompts'], temperature: a.temperature, seed: a.seed });
  console.log(formatTable(report));
  console.log(`wrote ${out}`);
  return 0;
}
