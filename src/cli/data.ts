// `chatwright data prepare`: token shards from text files, JSONL or the built-in corpora (src/stages/data.ts).
// Progress on stderr; the summary of what was written on stdout.
import { prepareData } from '../stages/data.js';
import { helpText, parseArgs, wantsHelp, UsageError } from './args.js';

const spec = {
  corpus: { type: 'string', value: 'LIST', description: 'chinese-poetry, wordnet or a PATH (.txt, .jsonl {"text"}, folder); comma-separated for several; more paths may follow as arguments' },
  tokenizer: { type: 'string', value: 'DIR', description: 'tokenizer directory (from `chatwright tokenizer train`)' },
  out: { type: 'string', value: 'DIR', description: 'output directory for the shards and manifest.json' },
  'val-fraction': { type: 'number', description: 'fraction of documents held out for validation', default: 0.02, min: 0, max: 0.5 },
  simplified: { type: 'boolean', description: 'chinese-poetry: convert traditional to simplified characters (opencc-js)', default: false },
  limit: { type: 'number', description: 'at most this many documents per built-in corpus', integer: true, min: 1 },
  'shard-tokens': { type: 'number', description: 'tokens per shard file', default: 1 << 24, integer: true, min: 1024 },
} as const;

const summary = 'prepare token shards from text, JSONL or the built-in corpora';

export async function run(argv: string[]): Promise<number> {
  const usage = 'chatwright data prepare --corpus NAME|PATH... --tokenizer DIR --out DIR [options]';
  if (wantsHelp(argv)) {
    console.log(helpText('data prepare', summary, spec, usage));
    return 0;
  }
  const [sub, ...rest] = argv;
  if (sub !== 'prepare') throw new UsageError('data', sub === undefined ? 'which subcommand? prepare' : `unknown subcommand "${sub}"; use prepare`, usage);
  const a = parseArgs('data prepare', rest, spec);
  const corpus = [...(a.corpus ? a.corpus.split(',').map((s) => s.trim()).filter(Boolean) : []), ...a._];
  if (corpus.length === 0) throw new UsageError('data prepare', '--corpus is required (e.g. --corpus chinese-poetry)', usage);
  if (!a.tokenizer) throw new UsageError('data prepare', '--tokenizer is required (train one with `chatwright tokenizer train` first)', usage);
  if (!a.out) throw new UsageError('data prepare', '--out is required (e.g. --out runs/tiny/data)', usage);
  const t0 = performance.now();
  const tty = process.stderr.isTTY;
  const m = prepareData({
    corpus, tokenizer: a.tokenizer, out: a.out, valFraction: a['val-fraction'], simplified: a.simplified, limit: a.limit,
    shardTokens: a['shard-tokens'],
    onProgress: ({ documents, tokens, source }) => {
      const s = (performance.now() - t0) / 1000;
      const line = `${source}: ${documents} documents, ${tokens} tokens, ${(documents / s).toFixed(0)} docs/s`;
      if (tty) process.stderr.write('\r' + line.padEnd(80));
      else console.error(line);
    },
  });
  if (tty) process.stderr.write('\n');
  const count = (xs: { tokens: number; documents: number }[]) =>
    `${xs.reduce((s, x) => s + x.documents, 0)} documents, ${xs.reduce((s, x) => s + x.tokens, 0)} tokens in ${xs.length} shard(s)`;
  console.log(`train: ${count(m.train)}\nval:   ${count(m.val)}\nwrote ${a.out}/manifest.json (${m.dtype}, vocab ${m.vocabSize}) in ${((performance.now() - t0) / 1000).toFixed(1)}s`);
  return 0;
}
