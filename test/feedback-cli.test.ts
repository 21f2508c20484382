// The collection commands as a user runs them: `sample` (against the library, and resumed after a torn write), `rank`
// driven through a pipe (orders, ties, a mistake, skip, undo, all bad), `label` on hand-made poems, and `prefs` export,
// import and counts. A tiny random-weight model and tokenizer are made in a temp dir.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset } from '../src/model/config.js';
import { saveModel } from '../src/model/checkpoint.js';
import { trainTokenizer, type Tokenizer } from '../src/tokenizer/index.js';
import { itemId, readStore, sampleItems, LABELLER } from '../src/feedback/index.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'src', 'cli', 'main.js');
let dir = '';
let modelDir = '';
let model: GPT;
let tokenizer: Tokenizer;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'chatwright-feedback-'));
  modelDir = join(dir, 'model');
  const corpus = ['春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。', 'The sea was calm and the moon was bright.', '写一首五言绝句，题目是《春晓》'];
  tokenizer = trainTokenizer(Array.from({ length: 20 }, (_, i) => corpus.map((s) => `${s} ${i}`).join('\n')), { vocabSize: 300 });
  model = GPT.create(configFromPreset('tiny', tokenizer.vocabSize, {
    nLayer: 2, nEmbd: 64, nHead: 4, nKvHead: 2, intermediateSize: 128, maxSeqLen: 96, tiedEmbeddings: false,
  }), 7);
  saveModel(modelDir, model, tokenizer);
  writeFileSync(join(dir, 'prompts.jsonl'), [
    { messages: [{ role: 'user', content: '写一首五言绝句，题目是《春晓》' }] },
    { prompt: 'The sea' },
    { messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello' }] },
  ].map((x) => JSON.stringify(x)).join('\n') + '\n');
});

after(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: string[], input = ''): { stdout: string; stderr: string; status: number | null } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { input, encoding: 'utf8', timeout: 90_000, env: { ...process.env, NO_COLOR: '1' } });
  return { stdout: r.stdout, stderr: r.stderr, status: r.status };
}

test('sample: K answers per prompt, one seed each, as the library draws them; a torn run resumes to the same file', () => {
  const out = join(dir, 'samples.jsonl');
  const r = cli(['sample', '--model', modelDir, '--prompts', join(dir, 'prompts.jsonl'), '--k', '3', '--max-tokens', '6', '--seed', '5', '--out', out]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /wrote .*samples\.jsonl: 3 prompts x 3 answers/);
  assert.match(r.stderr, /temperature 1, top-p 0\.95, seed 5/);
  const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  assert.equal(lines.length, 3);
  assert.deepEqual(lines.map((l) => l.sampling.seeds), [[5, 6, 7], [8, 9, 10], [11, 12, 13]]);
  assert.equal(lines[1].prompt[0].content, 'The sea');
  assert.equal(lines[0].id, itemId(lines[0].prompt, lines[0].responses));
  const lib = sampleItems(model, tokenizer, lines.map((l) => ({ messages: l.prompt })), {
    k: 3, sampling: { temperature: 1, topP: 0.95, seed: 5 }, maxNewTokens: 6, model: modelDir,
  });
  assert.deepEqual(lines.map((l) => l.responses), lib.map((x) => x.responses));
  // a run killed while writing its second line: rerun without --seed, it continues with the file's seed
  const full = readFileSync(out, 'utf8');
  const first = full.indexOf('\n') + 1;
  writeFileSync(out, full.slice(0, first + 30));
  const again = cli(['sample', '--model', modelDir, '--prompts', join(dir, 'prompts.jsonl'), '--k', '3', '--max-tokens', '6', '--out', out]);
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /cut off the incomplete last line/);
  assert.match(again.stderr, /continuing after 1 already/);
  assert.equal(readFileSync(out, 'utf8'), full);
  // other settings into the same file: refused, nothing written
  const other = cli(['sample', '--model', modelDir, '--prompts', join(dir, 'prompts.jsonl'), '--k', '3', '--max-tokens', '6', '--temperature', '0.5', '--out', out]);
  assert.equal(other.status, 2);
  assert.match(other.stderr, /holds samples drawn differently \(different temperature\)/);
  assert.equal(readFileSync(out, 'utf8'), full);
});

test('rank through a pipe: an order with a tie, a mistake, skip, undo, all bad; then nothing is left', () => {
  const samples = join(dir, 'samples.jsonl'); // from the test above
  const store = join(dir, 'store-pipe');
  const input = ['?', '9 1', '2 1=3', 'skip', 'undo', '3 2 1', 'bad', ''].join('\n');
  const r = cli(['rank', '--samples', samples, '--store', store, '--annotator', 'tester'], input);
  assert.equal(r.status, 0, r.stderr);
  const items = readFileSync(samples, 'utf8').trim().split('\n').map((l) => JSON.parse(l));
  // the screen: each item with its prompt and numbered answers, and an acknowledgement per line typed
  assert.match(r.stdout, /\[1\/3\] model .*\nuser: 写一首五言绝句，题目是《春晓》\n {3}1\) /);
  assert.ok(r.stdout.includes(`   3) ${items[0].responses[2].split('\n')[0]}`), r.stdout);
  const acks = r.stdout.split('\n').filter((l) => /^(saved|undone):/.test(l));
  assert.deepEqual(acks, ['saved: 2 > 1 = 3', 'saved: skipped', 'undone: skipped; here it is again', 'saved: 3 > 2 > 1', 'saved: all-bad']);
  assert.match(r.stderr, /3 1=2 4 {5}= ties answers/); // the help
  assert.match(r.stderr, /not saved: there is no answer 9; the answers are numbered 1 to 3/);
  assert.match(r.stderr, /nothing left for you to rank here/);
  assert.match(r.stderr, /4 saved, 1 undone this session; 3 of 3 done, 0 to go/);
  const recs = readStore(store).records;
  assert.deepEqual(recs.map((x) => [x.item, x.verdict, x.ranking, x.annotator]), [
    [items[0].id, 'ranked', [1, [0, 2]], 'tester'],
    [items[1].id, 'ranked', [2, 1, 0], 'tester'],
    [items[2].id, 'all-bad', [[0, 1, 2]], 'tester'],
  ]);
  assert.deepEqual(recs[0].sampling?.seeds, [5, 6, 7]);
  assert.equal(recs[0].model, modelDir);
  // a second session: nothing is ranked twice
  const again = cli(['rank', '--samples', samples, '--store', store, '--annotator', 'tester'], '1 2 3\n');
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /0 of 3 item\(s\) to rank/);
  assert.equal(readStore(store).records.length, 3);
  // wrong use: a clear message, exit 2
  const bad = cli(['rank', '--samples', samples]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /error: rank: --store DIR is required/);
});

test('label: the simulated labeller ranks poem prompts by its score, leaves the others, and says so', () => {
  const prompt = [{ role: 'user', content: '写一首五言绝句，题目是《春晓》' }];
  const responses = ['一杯同一醉，一醉一杯中。一杯同一醉，一醉一杯中。', '春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。', '春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多时。'];
  const other = { prompt: [{ role: 'user', content: 'hello' }], responses: ['hi', 'go away'] };
  const samples = join(dir, 'poems.jsonl');
  writeFileSync(samples, [{ prompt, responses }, other].map((x) => JSON.stringify(x)).join('\n') + '\n');
  const store = join(dir, 'store-label');
  const r = cli(['label', '--samples', samples, '--store', store]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /simulated labeller \(simulated-labeller v1; rule-based, not a person\): ranked 1 of 2 item\(s\)/);
  assert.match(r.stdout, /1 item\(s\) ask for no poem/);
  // scores 0.25, 0.975, 0.675 (test/feedback-labeller.test.ts): mean 0.633, best 0.975
  assert.match(r.stdout, /mean score of the 3 answers: 0\.633; mean of the best of each 3: 0\.975/);
  const recs = readStore(store).records;
  assert.equal(recs.length, 1);
  assert.equal(recs[0].annotator, LABELLER);
  assert.deepEqual(recs[0].ranking, [1, 2, 0]);
  assert.deepEqual((recs[0].meta as { scores: number[] }).scores, [0.25, 0.975, 0.675]);
  // again: already ranked, nothing added
  const j = cli(['label', '--samples', samples, '--store', store, '--json']);
  assert.equal(j.status, 0, j.stderr);
  const s = JSON.parse(j.stdout);
  assert.equal(s.ranked, 0);
  assert.equal(s.alreadyRanked, 1);
  assert.ok(Math.abs(s.bestOfKMeanScore - 0.975) < 1e-12);
});

test('prefs: export every format, import it into a new store (twice adds nothing), counts', () => {
  const store = join(dir, 'store-pipe'); // ranked above: 2 > 1 = 3 (2 pairs), 3 > 2 > 1 (3 pairs), all bad (none; its system prompt never meets hh)
  const lines: Record<string, number> = { kway: 3, pairs: 5, 'pairs-plain': 5, hh: 5 };
  for (const [format, n] of Object.entries(lines)) {
    const out = join(dir, `export-${format}.jsonl`);
    const r = cli(['prefs', 'export', '--store', store, '--format', format, '--out', out]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(out, 'utf8').trim().split('\n').length, n, format);
  }
  const dest = join(dir, 'store-imported');
  const imp = cli(['prefs', 'import', join(dir, 'export-pairs.jsonl'), '--store', dest, '--json']);
  assert.equal(imp.status, 0, imp.stderr);
  assert.deepEqual(JSON.parse(imp.stdout), { file: join(dir, 'export-pairs.jsonl'), store: dest, records: 5, added: 5, alreadyThere: 0 });
  const twice = cli(['prefs', 'import', join(dir, 'export-pairs.jsonl'), '--store', dest]);
  assert.match(twice.stdout, /imported 0 of 5 record\(s\).*\(5 were already there\)/);
  const kw = cli(['prefs', 'import', join(dir, 'export-kway.jsonl'), '--store', dest]);
  assert.match(kw.stdout, /imported 3 of 3/);
  const c = cli(['prefs', 'counts', '--store', dest, '--json']);
  assert.equal(c.status, 0, c.stderr);
  assert.deepEqual(JSON.parse(c.stdout), { items: 8, itemsRanked: 8, ranked: 7, allBad: 1, skipped: 0, annotators: { 'imported:export-pairs.jsonl': 5, tester: 3 } });
  const bad = cli(['prefs', 'export', '--store', store, '--format', 'csv', '--out', join(dir, 'x')]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--format must be one of kway, pairs, pairs-plain, hh/);
});
