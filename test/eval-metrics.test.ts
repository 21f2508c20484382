// The evaluation metrics as pure functions: the poem form check, the author check and SQuAD token F1, against values
// worked by hand (and, for F1, against the official SQuAD v1.1 script's definition).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { answerForm, formMatches, authorMatches, tokenF1, normalizeTokens, formatTable, rewardHackingNotes, type EvalReport } from '../src/stages/eval.js';

test('form: a five-character quatrain has 4 lines of 5 Han characters', () => {
  const poem = '床前明月光，疑是地上霜。\n举头望明月，低头思故乡。';
  assert.deepEqual(answerForm(poem), { lines: 4, chars: [5, 5, 5, 5] });
  assert.equal(formMatches(poem, 4, 5), true);
  assert.equal(formMatches(poem, 4, 7), false);
  assert.equal(formMatches(poem, 8, 5), false);
});

test('form: a seven-character octave, other punctuation, and broken answers', () => {
  const octave = [
    '风急天高猿啸哀，渚清沙白鸟飞回。', '无边落木萧萧下，不尽长江滚滚来。',
    '万里悲秋常作客，百年多病独登台。', '艰难苦恨繁霜鬓，潦倒新停浊酒杯。',
  ].join('\n');
  assert.equal(formMatches(octave, 8, 7), true);
  assert.equal(formMatches('一二三四五！一二三四五？一二三四五；一二三四五。', 4, 5), true);
  assert.equal(formMatches('一二三四五，一二三四。一二三四五，一二三四五。', 4, 5), false); // one line short by a character
  assert.equal(formMatches('一二三四五，一二三四五。', 4, 5), false);                         // two lines
  assert.equal(formMatches('', 4, 5), false);
  // non-Han characters are not counted: a line of 5 Han characters plus latin letters still has 5
  assert.deepEqual(answerForm('ab一二三四五，一二三四五').chars, [5, 5]);
});

test('author: the answer must contain the name', () => {
  assert.equal(authorMatches('《静夜思》的作者是李白。', '李白'), true);
  assert.equal(authorMatches('《静夜思》的作者是杜甫。', '李白'), false);
  assert.equal(authorMatches('', '李白'), false);
  assert.equal(authorMatches('anything', ''), false);
});

test('token F1 follows SQuAD: normalisation, bag overlap, precision and recall', () => {
  assert.deepEqual(normalizeTokens('The Cat, a dog; AN emu!'), ['cat', 'dog', 'emu']);
  assert.equal(tokenF1('the cat sat', 'a cat sat'), 1);
  assert.equal(tokenF1('', ''), 1);
  assert.equal(tokenF1('cat', ''), 0);
  assert.equal(tokenF1('dog', 'cat'), 0);
  // prediction "cat sat on mat" vs reference "cat sat": common 2, P = 2/4, R = 2/2, F1 = 2PR/(P+R) = 2/3
  assert.ok(Math.abs(tokenF1('cat sat on mat', 'cat sat') - 2 / 3) < 1e-12);
  // repeated words count once per occurrence in the reference: "cat cat" vs "cat": common 1, P = 1/2, R = 1, F1 = 2/3
  assert.ok(Math.abs(tokenF1('cat cat', 'cat') - 2 / 3) < 1e-12);
});

test('the table has one column per model and one row per metric present', () => {
  const m = (loss: number, form: number) => ({
    heldoutLoss: loss, poemForm: form, author: 0.5, glossF1: null, labeller: null, rhymeRate: null, repeatRate: null, winRates: [],
    counts: { heldout: 10, poemForm: 4, author: 2, gloss: 0 },
  });
  const table = formatTable({ models: [
    { name: 'base', dir: 'b', metrics: m(3.5, 0), samples: [] },
    { name: 'sft', dir: 's', metrics: m(1.25, 0.75), samples: [] },
  ] });
  const lines = table.split('\n');
  assert.match(lines[0], /metric\s+base\s+sft/);
  assert.match(table, /held-out SFT loss.*3\.500\s+1\.250/);
  assert.match(table, /requested form.*0\.0%\s+75\.0%/);
  assert.doesNotMatch(table, /F1/);
  assert.doesNotMatch(table, /labeller|win rate/); // no poems judged, no judge given: no rows for them
});

test('reward hacking is said under the table: the reward model far above the labeller (by 20 points or more)', () => {
  const m = (rm: number | null, lab: number | null) => ({
    heldoutLoss: 4, poemForm: 1, author: null, glossF1: null, labeller: 0.5, rhymeRate: 0, repeatRate: 0,
    winRates: rm === null ? [] : [{ judge: 'simulated labeller', baseline: 'sft', rate: lab, n: 40 }, { judge: 'reward model', baseline: 'sft', rate: rm, n: 40 }],
    counts: { heldout: 10, poemForm: 4, author: 0, gloss: 0 },
  });
  const report: EvalReport = { models: [
    { name: 'sft', dir: 's', metrics: m(null, null), samples: [] },
    { name: 'ppo', dir: 'p', metrics: m(0.85, 0.3), samples: [] },      // gap 0.55: hacking
    { name: 'grpo', dir: 'g', metrics: m(0.65, 0.5), samples: [] },     // gap 0.15: no note
    { name: 'dpo', dir: 'd', metrics: m(0.7, 0.5), samples: [] },       // gap 0.2 exactly: a note
    { name: 'none', dir: 'n', metrics: m(0.9, null), samples: [] },     // no labeller rate: nothing to compare
  ] };
  const notes = rewardHackingNotes(report);
  assert.equal(notes.length, 2);
  assert.match(notes[0], /^ppo: the reward model prefers its answers to sft's 85% of the time, the simulated labeller 30%.*reward hacking/);
  assert.match(notes[1], /^dpo: .* 70% .* 50%/);
  report.notes = notes;
  assert.match(formatTable(report), /\nnote: ppo: .*\nnote: dpo: /);
});
