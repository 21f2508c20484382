// chatwright tokenizer train|encode|decode: the tokenizer stage on the command line.
//
//   chatwright tokenizer train --corpus chinese-poetry --vocab-size 8192 --out runs/poetry/tokenizer
//   chatwright tokenizer train --corpus wordnet,chinese-poetry,notes.txt,data.jsonl --vocab-size 4096 --out DIR
//   chatwright tokenizer encode --tokenizer DIR --text "床前明月光"
//   chatwright tokenizer decode --tokenizer DIR --ids 1,2,3
// --tokenizer also takes a tiktoken rank file (.tiktoken, or the JSON of the tiktoken npm package) for encode/decode.
import { statSync, existsSync } from 'node:fs';
import { parseArgs, helpText, wantsHelp, type OptionsSpec } from '../cli/args.js';
import { UserError } from '../util/errors.js';
import { Tokenizer, trainTokenizer, CL100K_PATTERN, GPT2_PATTERN } from '../tokenizer/index.js';
import { corpusDocuments } from '../train/corpora.js';

const trainSpec = {
  corpus: { type: 'string', description: 'comma-separated: chinese-poetry, wordnet, or .txt/.jsonl files or directories', default: 'chinese-poetry' },
  'vocab-size': { type: 'number', description: 'ids in all: 256 bytes + merges + 7 special tokens', default: 8192, integer: true, min: 263 },
  out: { type: 'string', description: 'directory for tokenizer.json and tokenizer_config.json' },
  'max-mb': { type: 'number', description: 'use only the first N megabytes of text (0: all)', default: 0, min: 0 },
} satisfies OptionsSpec;

const encodeSpec = {
  tokenizer: { type: 'string', description: 'a tokenizer directory (tokenizer.json) or a tiktoken rank file' },
  text: { type: 'string', description: 'the text to encode' },
  'allow-special': { type: 'boolean', description: 'turn "<|bos|>" etc. in the text into special tokens', default: false },
  pattern: { type: 'string', description: 'pre-tokenizer for a .tiktoken file without one: cl100k, gpt2, or a regex' },
} satisfies OptionsSpec;

const decodeSpec = {
  tokenizer: { type: 'string', description: 'a tokenizer directory (tokenizer.json) or a tiktoken rank file' },
  ids: { type: 'string', description: 'comma-separated token ids' },
  pattern: { type: 'string', description: 'pre-tokenizer for a .tiktoken file without one: cl100k, gpt2, or a regex' },
} satisfies OptionsSpec;

const USAGE = [
  'usage: chatwright tokenizer train|encode|decode [options]',
  '',
  helpText('tokenizer train', 'train a byte-level BPE tokenizer', trainSpec),
  '',
  helpText('tokenizer encode', 'print the token ids of a text', encodeSpec),
  '',
  helpText('tokenizer decode', 'print the text of token ids', decodeSpec),
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
  if (!o.out) throw new UserError('tokenizer train: --out is required', 'e.g. --out runs/poetry/tokenizer');
  const names = o.corpus.split(',').map((s) => s.trim()).filter(Boolean);
  const maxBytes = o['max-mb'] * 1e6;
  const t0 = performance.now();
  let lastPrint = 0;
  const nMerges = o['vocab-size'] - 256 - 7;
  const tok = trainTokenizer(limited(allCorpora(names), maxBytes), {
    vocabSize: o['vocab-size'],
    onCounted: (c) =>
      console.log(`counted ${(c.bytes / 1e6).toFixed(1)} MB of text: ${c.pieces} pieces, ${c.uniquePieces} unique (${((performance.now() - t0) / 1000).toFixed(1)} s)`),
    onProgress: (m) => {
      const now = performance.now();
      if (now - lastPrint > 2000 || m === nMerges) {
        lastPrint = now;
        console.log(`merges ${m}/${nMerges} (${((100 * m) / nMerges).toFixed(1)}%) ${((now - t0) / 1000).toFixed(1)} s`);
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
  if (o.text === undefined && o._.length === 0) throw new UserError('tokenizer encode: --text is required');
  const tok = loadTokenizer(o.tokenizer, o.pattern);
  console.log(tok.encode(text, o['allow-special'] ? { allowedSpecial: 'all' } : {}).join(','));
  return 0;
}

async function decode(argv: string[]): Promise<number> {
  const o = parseArgs('tokenizer decode', argv, decodeSpec);
  const raw = o.ids ?? o._.join(',');
  if (!raw) throw new UserError('tokenizer decode: --ids is required', 'e.g. --ids 1,2,3');
  const ids = raw.split(/[,\s]+/).filter(Boolean).map((s) => {
    const x = Number(s);
    if (!Number.isInteger(x) || x < 0) throw new UserError(`tokenizer decode: "${s}" is not a token id`);
    return x;
  });
  const tok = loadTokenizer(o.tokenizer, o.pattern);
  for (const id of ids) if (id >= tok.vocabSize) throw new UserError(`tokenizer decode: id ${id} is outside the vocabulary (size ${tok.vocabSize})`);
  process.stdout.write(tok.decode(ids) + '\n');
  return 0;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!sub || wantsHelp([sub])) {
    console.log(USAGE);
    return sub ? 0 : 1;
  }
  if (wantsHelp(rest)) {
    console.log(USAGE);
    return 0;
  }
  if (sub === 'train') return train(rest);
  if (sub === 'encode') return encode(rest);
  if (sub === 'decode') return decode(rest);
  throw new UserError(`tokenizer: unknown subcommand "${sub}"`, 'use train, encode or decode');
}
