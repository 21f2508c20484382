// `chatwright sample`: K answers per prompt from a chat model, for people (or the simulated labeller) to rank.
//
//   chatwright sample --model runs/demo/sft --k 4 --out runs/demo/feedback/samples.jsonl       (built-in poem prompts)
//   chatwright sample --model runs/demo/sft --prompts prompts.jsonl --k 6 --temperature 0.9 --out samples.jsonl
//
// Each prompt's item is appended (and fsync'd) as soon as it is sampled; a run stopped midway continues where it
// stopped when run again with the same --out, drawing the same answers (the seeds depend on the prompt's position).
// Progress on stderr; the file on --out (src/feedback/sample.ts, items.ts).
import { performance } from 'node:perf_hooks';
import { existsSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { JsonlAppender } from '../util/jsonl.js';
import { helpText, parseArgs, wantsHelp, type OptionsSpec, UsageError } from './args.js';
import { loadChatModel, samplingFrom, samplingSpec } from './generate.js';
import { formatDuration } from '../train/progress.js';
import {
  builtinPrompts, itemToJson, readPromptsFile, sampleItems, samplingRecord, validateItem, type SampleOptions,
} from '../feedback/index.js';

const { explain: _e, 'explain-top': _t, ...sampling } = samplingSpec;

const spec = {
  model: { type: 'string', description: 'chat model folder, e.g. runs/demo/sft' },
  prompts: { type: 'string', description: 'JSONL of {"messages": [...]} or {"prompt": "..."}, or builtin (the held-out poem prompts)', default: 'builtin' },
  k: { type: 'number', integer: true, min: 2, max: 16, description: 'answers per prompt (InstructGPT ranked 4 to 9)', default: 4 },
  limit: { type: 'number', integer: true, min: 1, description: 'at most this many prompts (builtin: default 50)' },
  out: { type: 'string', description: 'samples file to write (JSONL, one prompt and its K answers per line)' },
  json: { type: 'boolean', description: 'print a summary as JSON on stdout', default: false },
  ...sampling,
  'max-tokens': { ...samplingSpec['max-tokens'], default: 96 },
  'top-p': { ...samplingSpec['top-p'], default: 0.95 },
} satisfies OptionsSpec;

export async function run(argv: string[]): Promise<number> {
  const summary = 'sample K answers per prompt for ranking';
  if (wantsHelp(argv)) {
    console.log(helpText('sample', summary, spec));
    return 0;
  }
  const a = parseArgs('sample', argv, spec);
  if (a._.length) throw new UsageError('sample', `unexpected argument "${a._[0]}"`);
  if (!a.out) throw new UsageError('sample', '--out FILE is required');
  const { model, tokenizer } = loadChatModel(a.model, 'sample');
  const { prompts: all, source } = a.prompts === 'builtin' ? builtinPrompts(a.model, a.limit ?? 50)
    : { prompts: readPromptsFile(a.prompts), source: a.prompts };
  const prompts = a.limit ? all.slice(0, a.limit) : all;

  const seedGiven = a.seed !== undefined;
  const opts: SampleOptions = { k: a.k, sampling: samplingFrom(a), maxNewTokens: a['max-tokens'], model: a.model! };
  // resume: the items already in --out were drawn with these settings, or the run is a different one
  const existed = existsSync(a.out);
  const out = new JsonlAppender(a.out);
  try {
    const done = out.existing.records.map((r, i) => validateItem(r, `${a.out} line ${i + 1}`));
    if (out.existing.torn) process.stderr.write(`sample: cut off the incomplete last line of ${a.out} (a run stopped while writing it)\n`);
    if (done.length > 0) {
      const was = done[0].sampling ?? {};
      if (!seedGiven && typeof was.seed === 'number') opts.sampling.seed = was.seed;
      const now = samplingRecord(opts, model.config.vocabSize);
      const differs = Object.keys(now).filter((key) => JSON.stringify(now[key]) !== JSON.stringify(was[key]));
      if (differs.length || done[0].model !== opts.model || done.length > prompts.length ||
        done.some((d, i) => JSON.stringify(d.prompt) !== JSON.stringify(prompts[i].messages)))
        throw new UserError(`${a.out} holds samples drawn differently (${differs.length ? `different ${differs.join(', ')}` : 'other model or prompts'})`,
          'give another --out, or delete the file to start over');
    }
    const settings = samplingRecord(opts, model.config.vocabSize);
    const log = (s: string) => process.stderr.write(s + '\n');
    log(`sample: ${prompts.length} prompts from ${source}, ${a.k} answers each, model ${a.model}; ` +
      `temperature ${settings.temperature}, top-p ${settings.topP}, seed ${settings.seed}` +
      (done.length ? `; continuing after ${done.length} already in ${a.out}` : ''));
    const t0 = performance.now();
    let n = done.length, tokens = 0, cut = 0;
    const tty = process.stderr.isTTY;
    sampleItems(model, tokenizer, prompts, opts, {
      from: done.length,
      onItem: (item) => {
        out.append(itemToJson(item));
        n++;
        cut += item.finish?.filter((f) => f === 'length').length ?? 0;
        tokens += item.responses.reduce((s, r) => s + tokenizer.encode(r).length, 0);
        const secs = (performance.now() - t0) / 1000;
        const eta = ((prompts.length - n) * secs) / Math.max(1, n - done.length);
        const line = `sample: ${n}/${prompts.length} prompts | ${(tokens / secs).toFixed(0)} tok/s | ${formatDuration(secs)} | ETA ${formatDuration(eta)}`;
        if (tty) process.stderr.write(`\r${line}`);
        else if (n === prompts.length || (n - done.length) % 10 === 0) log(line);
      },
    });
    if (tty) process.stderr.write('\n');
    const secs = (performance.now() - t0) / 1000;
    const summaryLine = { out: a.out, prompts: prompts.length, k: a.k, sampled: n - done.length, answersCut: cut, seconds: secs, sampling: settings };
    if (a.json) console.log(JSON.stringify(summaryLine));
    else console.log(`wrote ${a.out}: ${prompts.length} prompts x ${a.k} answers${cut ? ` (${cut} answers cut at --max-tokens ${a['max-tokens']})` : ''}${existed && done.length ? `, ${done.length} of them from before` : ''}`);
  } finally {
    out.close();
  }
  return 0;
}
