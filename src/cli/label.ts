// `chatwright label`: the SIMULATED LABELLER (a rule-based judge of poems, not a person; src/feedback/labeller.ts) ranks
// sampled answers into a preference store, for unattended runs (the demo, CI). Its records' annotator is
// "simulated-labeller v1"; items people already ranked are left alone, and prompts that ask for no poem are left for
// people.
//
//   chatwright label --samples runs/demo/feedback/samples.jsonl --store runs/demo/feedback
//   chatwright label --samples samples.jsonl --store prefs --noise 0.1 --seed 2     (labellers who disagree)
//
// It also says how much room the sampled answers leave: the mean score of all answers and of the best of each K.
import { helpText, parseArgs, wantsHelp, UsageError } from './args.js';
import { LABELLER, labelSamples, readSamples } from '../feedback/index.js';

const spec = {
  samples: { type: 'string', description: 'samples file from `chatwright sample`' },
  store: { type: 'string', description: 'preference store folder (created when missing)' },
  noise: { type: 'number', min: 0, description: 'sigma of the Gaussian noise on scores before ranking: disagreement between people (0: none)', default: 0 },
  seed: { type: 'number', integer: true, description: 'seed of the noise', default: 0 },
  json: { type: 'boolean', description: 'print the summary as JSON on stdout', default: false },
} as const;

export async function run(argv: string[]): Promise<number> {
  const summary = 'rank samples with the simulated labeller (rule-based, not a person)';
  if (wantsHelp(argv)) {
    console.log(helpText('label', summary, spec));
    return 0;
  }
  const a = parseArgs('label', argv, spec);
  if (a._.length) throw new UsageError('label', `unexpected argument "${a._[0]}"`);
  if (!a.samples) throw new UsageError('label', '--samples FILE is required');
  if (!a.store) throw new UsageError('label', '--store DIR is required');
  const items = readSamples(a.samples, (s) => process.stderr.write(`[${s}]\n`));
  const result = labelSamples(items, a.store, { noise: a.noise, seed: a.seed, warn: (s) => process.stderr.write(`[${s}]\n`) });
  const { ranked, alreadyRanked: already, notPoemPrompts: notPoems, answers } = result;
  if (a.json) {
    console.log(JSON.stringify(result));
    return 0;
  }
  const f = (x: number | null) => (x === null ? '-' : x.toFixed(3));
  console.log(`simulated labeller (${LABELLER}; rule-based, not a person): ranked ${ranked} of ${items.length} item(s) into ${a.store}` +
    (a.noise ? ` with noise ${a.noise} (seed ${a.seed})` : ''));
  if (already) console.log(`  ${already} item(s) already had their ranking (left alone)`);
  if (notPoems) console.log(`  ${notPoems} item(s) ask for no poem: the simulated labeller does not judge them; rank them with \`chatwright rank\``);
  if (answers) {
    console.log(`  mean score of the ${answers} answers: ${f(result.meanScore)}; mean of the best of each ${items[0].responses.length}: ${f(result.bestOfKMeanScore)}`);
    const c = result.criteria;
    console.log(`  criteria (means): form ${f(c.form)}, rhyme ${f(c.rhyme)}, repetition ${f(c.repetition)}, title ${f(c.title)}; ` +
      `even lines rhyme in ${(100 * c.rhymeRate!).toFixed(1)}% of answers, ${(100 * c.repeatedCharRate!).toFixed(1)}% of characters repeat`);
  }
  return 0;
}
