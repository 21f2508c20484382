// The simulated labeller on hand-made poems, each score worked out by hand from the rules in src/feedback/labeller.ts
// (form 0.25, rhyme 0.30, repetition 0.25, title 0.20), the pinyin finals and rhyme groups, and the noise model.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  finalOf, judgePoem, labellerRanking, labellerScore, lineEndRhyme, poemRequest, rhymeGroupOfSyllable, simulatedLabeller, winRate,
} from '../src/feedback/index.js';

const near = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) < 1e-12, `${what}: ${a} != ${b}`);
const ask = (title: string, form = '五言绝句') => [{ role: 'user' as const, content: `写一首${form}，题目是《${title}》` }];

test('pinyin finals in full spelling and their 中华新韵 groups', () => {
  const cases: [string, string][] = [
    ['yun', 'ün'], ['yue', 'üe'], ['yuan', 'üan'], ['yu', 'ü'], ['ju', 'ü'], ['xue', 'üe'], ['lü', 'ü'], ['lv', 'ü'],
    ['gui', 'uei'], ['wei', 'uei'], ['jiu', 'iou'], ['you', 'iou'], ['dun', 'uen'], ['wen', 'uen'], ['jun', 'ün'],
    ['shi', '-i'], ['zi', '-i'], ['ri', '-i'], ['di', 'i'], ['yi', 'i'], ['er', 'er'], ['wo', 'uo'], ['wu', 'u'],
    ['weng', 'ueng'], ['yong', 'iong'], ['ying', 'ing'], ['yan', 'ian'], ['zhuang', 'uang'], ['a', 'a'], ['e', 'e'],
  ];
  for (const [syl, f] of cases) assert.equal(finalOf(syl), f, syl);
  assert.equal(finalOf('3'), null);
  assert.equal(rhymeGroupOfSyllable('niao'), '豪');
  assert.equal(rhymeGroupOfSyllable('shao'), '豪');
  assert.equal(rhymeGroupOfSyllable('shi'), '支');
  assert.equal(rhymeGroupOfSyllable('di'), '齐');
  assert.equal(rhymeGroupOfSyllable('zhong'), '庚');
  assert.equal(rhymeGroupOfSyllable('feng'), '庚');
  assert.equal(rhymeGroupOfSyllable('yun'), '文');
  assert.equal(rhymeGroupOfSyllable('chen'), '文');
  // the last Han character of a line, read in context
  assert.deepEqual(lineEndRhyme('处处闻啼鸟。'), { char: '鸟', syllable: 'niao', group: '豪' });
  assert.equal(lineEndRhyme('...'), null);
});

test('the poem request is read from the prompt; other prompts get no score', () => {
  assert.deepEqual(poemRequest(ask('春晓')), { title: '春晓', lines: 4, chars: 5 });
  assert.deepEqual(poemRequest(ask('登高', '七言律诗')), { title: '登高', lines: 8, chars: 7 });
  assert.equal(poemRequest([{ role: 'user', content: '《春晓》的作者是谁？' }]), null);
  assert.equal(labellerScore([{ role: 'user', content: 'What does harbour mean?' }], 'a place for ships'), null);
  assert.equal(simulatedLabeller.score([{ role: 'user', content: 'hello' }], 'hi'), null);
});

test('a rhyming quatrain that uses its title: form 1, rhyme 1, repetition 0.9, title 1 -> 0.975', () => {
  // 鸟 niao and 少 shao are both in 豪; 处处 repeats one character of 20: r = 1/20, repetition = 1 - 2/20
  const c = judgePoem('春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。', poemRequest(ask('春晓'))!);
  near(c.form, 1, 'form');
  near(c.rhyme, 1, 'rhyme');
  near(c.repeatRate, 0.05, 'repeat rate');
  near(c.repetition, 0.9, 'repetition');
  near(c.title, 1, 'title');
  near(c.score, 0.25 + 0.3 + 0.25 * 0.9 + 0.2, 'score');
  assert.equal(c.rhymes, true);
  assert.deepEqual(c.rhymeGroups, ['豪', '豪']);
});

test('the same quatrain not rhyming (多时: shi is 支, not 豪) loses exactly the rhyme weight -> 0.675', () => {
  const c = judgePoem('春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多时。', poemRequest(ask('春晓'))!);
  near(c.rhyme, 0, 'rhyme');
  assert.equal(c.rhymes, false);
  near(c.score, 0.25 + 0 + 0.25 * 0.9 + 0.2, 'score');
});

test('repeated characters, the rhyme character repeated, the title ignored -> only the form counts: 0.25', () => {
  // 20 characters, 5 distinct (一杯同醉中): r = 3/4, repetition 0; lines 2 and 4 both end in 中: one character, no rhyme
  const c = judgePoem('一杯同一醉，一醉一杯中。一杯同一醉，一醉一杯中。', poemRequest(ask('春晓'))!);
  near(c.form, 1, 'form');
  near(c.repeatRate, 0.75, 'repeat rate');
  near(c.repetition, 0, 'repetition');
  near(c.rhyme, 0, 'rhyme');
  near(c.title, 0, 'title');
  near(c.score, 0.25, 'score');
});

test('three good lines of four asked, one title character of two: 0.25 * 3/4 + 0.25 + 0.2 / 2 = 0.5375', () => {
  const c = judgePoem('春风吹柳绿，江水向东流。\n明月照高楼。', poemRequest(ask('春晓'))!);
  near(c.form, 0.75, 'form');
  near(c.rhyme, 0, 'rhyme (one even line)');
  near(c.repetition, 1, 'repetition');
  near(c.title, 0.5, 'title');
  near(c.score, 0.25 * 0.75 + 0.25 + 0.1, 'score');
  // five good lines for four: 4 / 5
  near(judgePoem('春风吹柳绿，江水向东流。明月照高楼，孤云飞远岫。长路接高天。', poemRequest(ask('春晓'))!).form, 0.8, 'form of five lines');
  // no Han character at all: 0
  near(judgePoem('hello world', poemRequest(ask('春晓'))!).score, 0, 'no poem');
});

test('an octave whose even lines end in 山 间 天 (寒) and 中 (庚): rhyme (3 - 1) / (4 - 1)', () => {
  const poem = '春来花满树，白日照青山。落叶随风去，清泉出石间。孤云飞远岫，长路接高天。归鸟知何处，明月在江中。';
  const c = judgePoem(poem, poemRequest(ask('山行', '五言律诗'))!);
  assert.deepEqual(c.rhymeGroups, ['寒', '寒', '寒', '庚']);
  near(c.rhyme, 2 / 3, 'rhyme');
  near(c.form, 1, 'form');
  near(c.title, 0.5, 'title: 山 used, 行 not');
});

test('ranking: best first, equal scores tie without noise; noise is seeded and flips pairs as Thurstone says', () => {
  const good = '春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。';    // 0.975
  const flat = '春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多时。';    // 0.675
  const bad = '一杯同一醉，一醉一杯中。一杯同一醉，一醉一杯中。';      // 0.25
  const item = { id: 'x', prompt: ask('春晓'), responses: [bad, good, flat, good] };
  const l = labellerRanking(item)!;
  assert.deepEqual(l.ranking, [[1, 3], [2], [0]]);
  assert.equal(labellerRanking({ id: 'y', prompt: [{ role: 'user', content: 'hi' }], responses: ['a', 'b'] }), null);
  // same seed, same ranking; noise breaks the tie
  const n1 = labellerRanking(item, { noise: 0.2, seed: 3 })!;
  assert.deepEqual(labellerRanking(item, { noise: 0.2, seed: 3 })!.ranking, n1.ranking);
  assert.equal(n1.ranking.length, 4);
  // P(flat beats good) = Phi(-0.3 / (0.3 * sqrt 2)) = Phi(-0.7071) = 0.2398
  let flips = 0;
  const N = 1500;
  for (let i = 0; i < N; i++) {
    const r = labellerRanking({ id: `p${i}`, prompt: ask('春晓'), responses: [good, flat] }, { noise: 0.3, seed: 1 })!;
    if (r.ranking[0][0] === 1) flips++;
  }
  assert.ok(Math.abs(flips / N - 0.2398) < 0.035, `flip rate ${flips / N}, expected 0.24`);
});

test('win rate: wins count 1, ties half, unjudged prompts are left out', () => {
  const good = '春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。';
  const bad = '一杯同一醉，一醉一杯中。一杯同一醉，一醉一杯中。';
  const prompts = [ask('春晓'), ask('春晓'), ask('春晓'), [{ role: 'user' as const, content: 'hello' }]];
  const w = winRate(simulatedLabeller, prompts, [good, bad, good, 'x'], [bad, good, good, 'y']);
  assert.equal(w.n, 3);
  near(w.rate!, (1 + 0 + 0.5) / 3, 'win rate');
});
