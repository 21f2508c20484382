// chatwright tokenizer train|encode|decode: the tokenizer stage on the command line.
//
//   chatwright tokenizer train --corpus chinese-poetry --vocab-size 8192 --out runs/poetry/tokenizer
//   chatwright tokenizer train --corpus wordnet,chinese-poetry,notes.txt,data.jsonl --vocab-size 4096 --out DIR
//   chatwright tokenizer encode --tokenizer DIR --text "床前明月光"
//   chatwright tokenizer decode --tokenizer DIR --ids 1,2,3
// --tokenizer also takes a tiktoken rank file (.tiktoken, or the JSON of the tiktoken npm package) for encode/decode.
// Results (the ids, the text, the summary of training) go to stdout, with --json as JSON; progress goes to stderr.
import { statSync, existsSync } from 'node:fs';
import { parseArgs, helpText, optionsText, environmentText, wantsHelp, UsageError, type OptionsSpec } from '../cli/args.js';
import { UserError } from '../util/errors.js';
import { Tokenizer, trainTokenizer, CL100K_PATTERN, GPT2_PATTERN } from '../tokenizer/index.js';
import { corpusDocuments } from '../train/corpora.js';

const trainSpec = {
  corpus: { type: 'string', value: 'LIST', description: 'comma-separated: chinese-poetry, wordnet, or .txt/.jsonl files or directories', default: 'chinese-poetry' },
  'vocab-size': { type: 'number', description: 'ids in all: 256 bytes + merges + 7 special tokens', default: 8192, integer: true, min: 263 },
  out: { type: 'string', value: 'DIR', description: 'directory for tokenizer.json and tokenizer_config.json' },
  'max-mb': { type: 'number', description: 'use only the first N megabytes of text (0: all)', default: 0, min: 0 },
} satisfies OptionsSpec;

const tokenizerOption = { type: 'string', value: 'PATH', description: 'a tokenizer directory (tokenizer.json) or a tiktoken rank file' } as const;
const patternOption = { type: 'string', value: 'TEXT', description: 'pre-tokenizer for a .tiktoken file without one: cl100k, gpt2, or a regex' } as const;

const encodeSpec = {
  tokenizer: tokenizerOption,
  text: { type: 'string', value: 'TEXT', description: 'the text to encode' },
  'allow-special': { type: 'boolean', description: 'turn "<|bos|>" etc. in the text into special tokens', default: false },
  pattern: patternOption,
  json: { type: 'boolean', description: 'print {"ids": [...], "count": n} instead of the comma-separated ids', default: false },
} satisfies OptionsSpec;

const decodeSpec = {
  tokenizer: tokenizerOption,
  ids: { type: 'string', value: 'LIST', description: 'comma-separated token ids' },
  pattern: patternOption,
  json: { type: 'boolean', description: 'print {"text": "..."} instead of the plain text', default: false },
} satisfies OptionsSpec;

const SUBCOMMANDS = {
  train: ['train a byte-level BPE tokenizer', trainSpec],
  encode: ['print the token ids of a text', encodeSpec],
  decode: ['print the text of token ids', decodeSpec],
} as const;

const USAGE = [
  'usage: chatwright tokenizer train|encode|decode [options]   (chatwright tokenizer <subcommand> --help for its options)',
  '',
  ...Object.entries(SUBCOMMANDS).map(([name, [summary]]) => `  ${name.padEnd(7)} ${summary}`),
].join('\n');

function loadTokenizer(path: string | undefined, pattern: string | undefined): Tokenizer {
  if (!path) throw new UserError('--tokenizer is required', 'point it at a directory made by `chatwright tokenizer train --out DIR`');
  if (!existsSync(path)) throw new UserError(`tokenizer not found: ${path}`, 'train one with `chatwright tokenizer train --out DIR`');
  if (statSync(path).isDirectory()) return Tokenizer.load(path);
  const pat = pattern === 'cl100k' ? CL100K_PATTERN : pattern === 'gpt2' ? GPT2_PATTERN : pattern;
  return Tokenizer.fromTiktoken(path, pat ? { pattern: pat } : {});
}

function* limited(docs: Iterable<string>, maxBytes: number): Generator<string> {
  let used = 0;
  for (const d of docs) {
    if (maxBytes > 0 && used >= maxBytes) return;
    used += Buffer.byteLength(d) + 1;
    yield d;
  }
}

function* allCorpora(names: string[]): Generator<string> {
  for (const n of names) yield* corpusDocuments(n);
}

async function train(argv: string[]): Promise<number> {
  const o = parseArgs('tokenizer train', argv, trainSpec);
  if (o._.length) throw new UsageError('tokenizer train', `unexpected argument "${o._[0]}"`);
  if (!o.out) throw new UsageError('tokenizer train', '--out is required (e.g. --out runs/poetry/tokenizer)');
  const names = o.corpus.split(',').map((s) => s.trim()).filter(Boolean);
  const maxBytes = o['max-mb'] * 1e6;
  const t0 = performance.now();
  let lastPrint = 0;
  const nMerges = o['vocab-size'] - 256 - 7;
  const tok = trainTokenizer(limited(allCorpora(names), maxBytes), {
    vocabSize: o['vocab-size'],
    onCounted: (c) =>
      console.error(`counted ${(c.bytes / 1e6).toFixed(1)} MB of text: ${c.pieces} pieces, ${c.uniquePieces} unique (${((performance.now() - t0) / 1000).toFixed(1)} s)`),
    onProgress: (m) => {
      const now = performance.now();
      if (now - lastPrint > 2000 || m === nMerges) {
        lastPrint = now;
        console.error(`merges ${m}/${nMerges} (${((100 * m) / nMerges).toFixed(1)}%) ${((now - t0) / 1000).toFixed(1)} s`);
      }
    },
  });
  tok.save(o.out);
  // Compression on (up to 2 MB of) the training text.
  let bytes = 0, tokens = 0;
  for (const d of limited(allCorpora(names), Math.min(maxBytes || 2e6, 2e6))) {
    bytes += Buffer.byteLength(d);
    tokens += tok.encodeOrdinary(d).length;
  }
  console.log(`vocabulary ${tok.vocabSize} (${tok.vocabSize - 256 - 7} merges) in ${((performance.now() - t0) / 1000).toFixed(1)} s; ` +
    `${(bytes / Math.max(1, tokens)).toFixed(2)} bytes/token on the training text; wrote ${o.out}/tokenizer.json and tokenizer_config.json`);
  return 0;
}

async function encode(argv: string[]): Promise<number> {
  const o = parseArgs('tokenizer encode', argv, encodeSpec);
  const text = o.text ?? o._.join(' ');
  if (o.text === undefined && o._.length === 0) throw new UsageError('tokenizer encode', '--text is required');
  const tok = loadTokenizer(o.tokenizer, o.pattern);
  const ids = tok.encode(text, o['allow-special'] ? { allowedSpecial: 'all' } : {});
  console.log(o.json ? JSON.stringify({ ids, count: ids.length }) : ids.join(','));
  return 0;
}

async function decode(argv: string[]): Promise<number> {
  const o = parseArgs('tokenizer decode', argv, decodeSpec);
  const raw = o.ids ?? o._.join(',');
  if (!raw) throw new UsageError('tokenizer decode', '--ids is required (e.g. --ids 1,2,3)');
  const ids = raw.split(/[,\s]+/).filter(Boolean).map((s) => {
    const x = Number(s);
    if (!Number.isSafeInteger(x) || x < 0) throw new UsageError('tokenizer decode', `"${s}" is not a token id`);
    return x;
  });
  const tok = loadTokenizer(o.tokenizer, o.pattern);
  for (const id of ids) if (id >= tok.vocabSize) throw new UsageError('tokenizer decode', `id ${id} is outside the vocabulary (size ${tok.vocabSize})`);
  const text = tok.decode(ids);
  process.stdout.write((o.json ? JSON.stringify({ text }) : text) + '\n');
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== undefined && wantsHelp([sub])) {
    const parts = Object.entries(SUBCOMMANDS).map(([name, [summary, spec]]) => optionsText(`tokenizer ${name}`, summary, spec));
    console.log([USAGE, ...parts, environmentText()].join('\n\n'));
    return 0;
  }
  const usage = 'chatwright tokenizer train|encode|decode [options]';
  if (!sub) throw new UsageError('tokenizer', 'which subcommand? train, encode or decode', usage);
  if (!(sub in SUBCOMMANDS)) throw new UsageError('tokenizer', `unknown subcommand "${sub}"; use train, encode or decode`, usage);
  const [summary, spec] = SUBCOMMANDS[sub as keyof typeof SUBCOMMANDS];
  if (wantsHelp(rest)) {
    console.log(helpText(`tokenizer ${sub}`, summary, spec));
    return 0;
  }
  if (sub === 'train') return train(rest);
  if (sub === 'encode') return encode(rest);
  return decode(rest);
}
