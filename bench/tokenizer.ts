// Tokenizer benchmark (a script, not a test): prints figures and ratios measured in the same run.
//
//   npx tsc -p . && node dist/bench/tokenizer.js [--mb 20] [--vocab 8192] [--skip-train]
//
// 1. Encode throughput, one thread, one call over the whole text, cl100k_base ranks: ours vs the tiktoken npm package
//    (OpenAI's Rust tiktoken compiled to WASM), on --mb MB of English (WordNet glosses and examples; WordNet holds
//    ~12 MB of such text, so it is repeated to reach the size; the unique part is also timed alone) and of Chinese
//    (chinese-poetry, simplified). Our piece cache is cleared before each timed call; the ids are checked equal.
// 2. Training time for --vocab ids on --mb MB of text (half English, half Chinese, one file) vs SentencePiece's
//    spm_train --model_type=bpe on the same file (Debian package sentencepiece; skipped with a note when absent).
// 3. Compression (bytes per token) of the tokenizer trained in 2, and of gpt2 / cl100k_base, on held-out English and
//    Chinese text.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { Tokenizer, trainTokenizer } from '../src/tokenizer/index.js';
import { readPoems, poemText, readWordnet, wordText } from '../src/train/corpora.js';
import { parseArgs } from '../src/cli/args.js';

const opts = parseArgs('bench/tokenizer', process.argv.slice(2), {
  mb: { type: 'number', description: 'megabytes of each language', default: 20 },
  vocab: { type: 'number', description: 'vocabulary size to train', default: 8192, integer: true },
  'skip-train': { type: 'boolean', description: 'only the encode benchmark', default: false },
});
const require = createRequire(import.meta.url);
const tiktoken = require('tiktoken') as typeof import('tiktoken');
const encoders = join(dirname(require.resolve('tiktoken')), 'encoders');
const MB = 1e6;
const bytes = (s: string) => Buffer.byteLength(s, 'utf8');

function take(docs: string[], maxBytes: number, from = 0): { text: string; next: number } {
  const out: string[] = [];
  let n = 0, i = from;
  for (; i < docs.length && n < maxBytes; i++) {
    out.push(docs[i]);
    n += bytes(docs[i]) + 2;
  }
  return { text: out.join('\n\n'), next: i };
}

function cpuTime<T>(fn: () => T): { value: T; s: number; wall: number } {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  const value = fn();
  const c = process.cpuUsage(c0);
  return { value, s: (c.user + c.system) / 1e6, wall: (performance.now() - w0) / 1000 };
}

// ---------------------------------------------------------------------------------------------------------------------
console.log('# loading corpora');
const englishDocs = readWordnet().map(wordText);
const chineseDocs = readPoems({ simplified: true, limit: 200_000 }).map(poemText);
const enUnique = englishDocs.join('\n\n');
let english = enUnique;
while (bytes(english) < opts.mb * MB) english += '\n\n' + enUnique;
english = english.slice(0, Math.floor((english.length * opts.mb * MB) / bytes(english)));
const chinese = take(chineseDocs, opts.mb * MB).text;
console.log(`English ${(bytes(english) / MB).toFixed(1)} MB (unique part ${(bytes(enUnique) / MB).toFixed(1)} MB), Chinese ${(bytes(chinese) / MB).toFixed(1)} MB`);

// ---------------------------------------------------------------------------------------------------------------------
console.log('\n# 1. encode throughput, cl100k_base, one thread, one call over the whole text (CPU seconds)');
const ours = Tokenizer.fromTiktoken(join(encoders, 'cl100k_base.json'));
const ref = tiktoken.get_encoding('cl100k_base');
// warm up both (JIT, WASM tiers) on text outside the timed sets, then start cold
ours.encodeOrdinary(chinese.slice(0, 200_000) + enUnique.slice(0, 500_000));
ref.encode_ordinary(chinese.slice(0, 200_000) + enUnique.slice(0, 500_000));
for (const [name, text] of [['English', english], ['English, unique part', enUnique], ['Chinese', chinese]] as const) {
  const runs: { ours: number; ref: number }[] = [];
  let same = true;
  for (let r = 0; r < 3; r++) {
    ours.bpe.clearCache();
    const a = cpuTime(() => ours.encodeOrdinary(text));
    const b = cpuTime(() => ref.encode_ordinary(text));
    if (r === 0) same = a.value.length === b.value.length && a.value.every((x, i) => x === b.value[i]);
    runs.push({ ours: a.s, ref: b.s });
  }
  const med = (xs: number[]) => xs.sort((x, y) => x - y)[1];
  const o = med(runs.map((r) => r.ours)), t = med(runs.map((r) => r.ref));
  const mb = bytes(text) / MB;
  console.log(`${name.padEnd(22)} ours ${(mb / o).toFixed(2)} MB/s  tiktoken ${(mb / t).toFixed(2)} MB/s  ratio ${(t / o).toFixed(2)}x  identical ids: ${same ? 'yes' : 'NO'}`);
}
ref.free();

if (!opts['skip-train']) {
  // -------------------------------------------------------------------------------------------------------------------
  console.log(`\n# 2. training a vocabulary of ${opts.vocab} on ${opts.mb} MB (half English, half Chinese)`);
  const dir = mkdtempSync(join(tmpdir(), 'cw-bench-tok-'));
  try {
    const enTrain = take(englishDocs, (opts.mb * MB) / 2);
    const zhTrain = take(chineseDocs, (opts.mb * MB) / 2, chineseDocs.length - Math.floor(chineseDocs.length / 2));
    const file = join(dir, 'train.txt');
    writeFileSync(file, enTrain.text + '\n\n' + zhTrain.text);
    console.log(`training file ${(bytes(readFileSync(file, 'utf8')) / MB).toFixed(1)} MB`);
    const t = cpuTime(() => trainTokenizer([readFileSync(file, 'utf8')], { vocabSize: opts.vocab }));
    const tok = t.value;
    console.log(`ours      ${t.wall.toFixed(1)} s wall, ${t.s.toFixed(1)} s CPU (one thread; reading and pre-splitting included)`);
    const spm = spawnSync('spm_train', ['--version'], { encoding: 'utf8' });
    if (spm.error) console.log('spm_train not found: install the Debian package sentencepiece to compare (apt-get install -y sentencepiece)');
    else {
      const w0 = performance.now();
      const r = spawnSync('/usr/bin/time', ['-f', '%U %S', 'spm_train', `--input=${file}`, `--model_prefix=${join(dir, 'spm')}`, `--vocab_size=${opts.vocab}`,
        '--model_type=bpe', '--minloglevel=2'], { encoding: 'utf8', maxBuffer: 1 << 28 });
      const wall = (performance.now() - w0) / 1000;
      const cpu = (r.stderr.trim().split('\n').pop() ?? '').split(' ').map(Number);
      const cpuS = cpu.length === 2 && cpu.every(Number.isFinite) ? cpu[0] + cpu[1] : NaN;
      if (r.status !== 0) console.log(`spm_train failed (${r.status}): ${r.stderr.slice(-500)}`);
      else {
        console.log(`spm_train ${wall.toFixed(1)} s wall, ${cpuS.toFixed(1)} s CPU (default --num_threads)`);
        console.log(`time ratio ours/spm_train: ${(t.wall / wall).toFixed(2)}x wall, ${(t.s / cpuS).toFixed(2)}x CPU (target <= 1.0x)`);
      }
    }

    // -----------------------------------------------------------------------------------------------------------------
    console.log('\n# 3. compression on held-out text (bytes per token; higher is better)');
    const enHeld = take(englishDocs, 1 * MB, enTrain.next).text || take(englishDocs, MB, englishDocs.length - 5000).text;
    const zhHeld = take(chineseDocs, 1 * MB, 0).text; // training Chinese came from the second half
    const gpt2 = Tokenizer.fromTiktoken(join(encoders, 'gpt2.json'));
    const rows: [string, Tokenizer][] = [[`ours (${tok.vocabSize}, trained above)`, tok], ['gpt2 (50257)', gpt2], ['cl100k_base (100277)', ours]];
    for (const [name, tk] of rows) {
      const en = bytes(enHeld) / tk.encodeOrdinary(enHeld).length;
      const zh = bytes(zhHeld) / tk.encodeOrdinary(zhHeld).length;
      console.log(`${name.padEnd(30)} English ${en.toFixed(2)}  Chinese ${zh.toFixed(2)}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
