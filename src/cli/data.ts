// `chatwright data prepare`: token shards from text files, JSONL or the built-in corpora (src/stages/data.ts).
import { prepareData } from '../stages/data.js';
import { helpText, parseArgs, wantsHelp } from './args.js';
import { UserError } from '../util/errors.js';

const spec = {
  corpus: { type: 'string', description: 'chinese-poetry, wordnet or a PATH (.txt, .jsonl {"text"}, folder); comma-separated for several; more paths may follow as arguments' },
  tokenizer: { type: 'string', description: 'tokenizer directory (from `chatwright tokenizer train`)' },
  out: { type: 'string', description: 'output directory for the shards and manifest.json' },
  'val-fraction': { type: 'number', description: 'fraction of documents held out for validation', default: 0.02, min: 0, max: 0.5 },
  simplified: { type: 'boolean', description: 'chinese-poetry: convert traditional to simplified characters (opencc-js)', default: false },
  limit: { type: 'number', description: 'at most this many documents per built-in corpus', integer: true, min: 1 },
  'shard-tokens': { type: 'number', description: 'tokens per shard file', default: 1 << 24, integer: true, min: 1024 },
} as const;

const summary = 'prepare token shards: chatwright data prepare --corpus chinese-poetry|wordnet|PATH... --tokenizer DIR --out DIR';

export async function run(argv: string[]): Promise<number> {
  if (wantsHelp(argv) || argv.length === 0) {
    console.log(helpText('data prepare', summary, spec));
    return argv.length === 0 ? 1 : 0;
  }
  const [sub, ...rest] = argv;
  if (sub !== 'prepare') throw new UserError(`unknown data command "${sub}"`, 'the data command is `chatwright data prepare ...`');
  const a = parseArgs('data prepare', rest, spec);
  const corpus = [...(a.corpus ? a.corpus.split(',').map((s) => s.trim()).filter(Boolean) : []), ...a._];
  if (corpus.length === 0) throw new UserError('data prepare: --corpus is required', 'e.g. --corpus chinese-poetry');
  if (!a.tokenizer) throw new UserError('data prepare: --tokenizer is required', 'train one with `chatwright tokenizer train` first');
  if (!a.out) throw new UserError('data prepare: --out is required', 'e.g. --out runs/tiny/data');
  const t0 = performance.now();
  const tty = process.stdout.isTTY;
  const m = prepareData({
    corpus, tokenizer: a.tokenizer, out: a.out, valFraction: a['val-fraction'], simplified: a.simplified, limit: a.limit,
    shardTokens: a['shard-tokens'],
    onProgress: ({ documents, tokens, source }) => {
      const s = (performance.now() - t0) / 1000;
      const line = `${source}: ${documents} documents, ${tokens} tokens, ${(documents / s).toFixed(0)} docs/s`;
      if (tty) process.stdout.write('\r' + line.padEnd(80));
      else console.log(line);
    },
  });
  if (tty) process.stdout.write('\n');
  const count = (xs: { tokens: number; documents: number }[]) =>
    `${xs.reduce((s, x) => s + x.documents, 0)} documents, ${xs.reduce((s, x) => s + x.tokens, 0)} tokens in ${xs.length} shard(s)`;
  console.log(`train: ${count(m.train)}\nval:   ${count(m.val)}\nwrote ${a.out}/manifest.json (${m.dtype}, vocab ${m.vocabSize}) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  return 0;
}
