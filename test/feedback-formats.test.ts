// Rankings and the pairs they imply (ties give none), typed orders, and round trips through every preference format:
// K-way, TRL conversational pairs, TRL standard (plain) pairs, Anthropic-HH transcripts, and TRL's implicit-prompt pairs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  exportLines, parseOrder, parsePreferenceLine, parsePreferences, pairsOfKWay, preferencesByPrompt, pairsOf, rankingPairs,
  rankingFromJson, rankingToJson, formatOrder, splitByPrompt, toJsonl, type KWay, type ExportFormat,
} from '../src/feedback/index.js';
import type { Message } from '../src/tokenizer/index.js';

test('all K-choose-2 pairs from a full order; a tie removes exactly its pairs', () => {
  const full = rankingPairs([[2], [0], [3], [1]]);
  assert.equal(full.length, 6);
  assert.deepEqual(full, [
    { chosen: 2, rejected: 0 }, { chosen: 2, rejected: 3 }, { chosen: 2, rejected: 1 },
    { chosen: 0, rejected: 3 }, { chosen: 0, rejected: 1 }, { chosen: 3, rejected: 1 },
  ]);
  // 3 1=2 4: answer 3 best, 1 and 2 tied, 4 worst -> 6 - 1 pairs, none between 1 and 2
  const tied = rankingPairs(parseOrder('3 1=2 4', 4));
  assert.deepEqual(tied, [
    { chosen: 2, rejected: 0 }, { chosen: 2, rejected: 1 }, { chosen: 2, rejected: 3 },
    { chosen: 0, rejected: 3 }, { chosen: 1, rejected: 3 },
  ]);
  assert.deepEqual(rankingPairs([[0, 1, 2]]), []); // all tied ("all bad"): nothing preferred
  // K = 9: 36 pairs; two ties of two and three: 36 - 1 - 3
  assert.equal(rankingPairs([[0], [1, 2], [3], [4, 5, 6], [7], [8]]).length, 36 - 1 - 3);
});

test('typed orders: spaces, commas, > and = all read; mistakes are refused with what is wrong', () => {
  const r = [[2], [0, 1], [3]];
  for (const s of ['3 1=2 4', '3,1=2,4', '3 > 1 = 2 > 4', ' 3  1 =2   4 ']) assert.deepEqual(parseOrder(s, 4), r, s);
  assert.equal(formatOrder(r), '3 > 1 = 2 > 4');
  assert.deepEqual(rankingToJson(r), [2, [0, 1], 3]);
  assert.deepEqual(rankingFromJson([2, [0, 1], 3], 4, 'x'), r);
  assert.throws(() => parseOrder('3 1 2', 4), /answer 4 missing/);
  assert.throws(() => parseOrder('3 1 2 2', 4), /answer 2 appears twice/);
  assert.throws(() => parseOrder('3 1 2 5', 4), /no answer 5/);
  assert.throws(() => parseOrder('3 one 2 4', 4), /"one" is not an answer number/);
  assert.throws(() => rankingFromJson([0, 0], 2, 'line 3'), /line 3: answer index 0 appears twice/);
  assert.throws(() => rankingFromJson([0], 2, 'line 3'), /leaves out answer index 1/);
});

const single: Message[] = [{ role: 'user', content: '写一首五言绝句，题目是《春晓》' }];
const multi: Message[] = [
  { role: 'user', content: 'hello' }, { role: 'assistant', content: 'hi, how can I help?' }, { role: 'user', content: 'a poem please' },
];
const withSystem: Message[] = [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'a poem' }];

const kway = (prompt: Message[]): KWay => ({ prompt, responses: ['A one', 'B two', 'C three', 'D four'], ranking: [[2], [0, 1], [3]] });

// What a format keeps: K-way keeps the ranking; the pair formats keep the pairs.
function roundTrip(k: KWay, format: ExportFormat): KWay[] {
  const text = toJsonl(exportLines(k, format));
  return parsePreferences(text, `${format}.jsonl`);
}

test('K-way round trip keeps prompt, answers, ties and all-bad', () => {
  for (const prompt of [single, multi, withSystem]) {
    const back = roundTrip(kway(prompt), 'kway');
    assert.equal(back.length, 1);
    assert.deepEqual(back[0].prompt, prompt);
    assert.deepEqual(back[0].responses, kway(prompt).responses);
    assert.deepEqual(back[0].ranking, [[2], [0, 1], [3]]);
  }
  const bad = roundTrip({ ...kway(single), ranking: [[0, 1, 2, 3]], allBad: true }, 'kway');
  assert.equal(bad[0].allBad, true);
  // a plain-string prompt is one user message
  assert.deepEqual(parsePreferenceLine({ prompt: 'hi', responses: ['a', 'b'], ranking: [1, 0] }, 'x').prompt, [{ role: 'user', content: 'hi' }]);
});

test('pair formats round trip: TRL conversational, TRL plain, Anthropic HH (5 pairs from one ranking with a tie)', () => {
  const cases: [ExportFormat, Message[]][] = [
    ['pairs', single], ['pairs', multi], ['pairs', withSystem], ['pairs-plain', single], ['pairs-plain', multi], ['hh', single], ['hh', multi],
  ];
  for (const [format, prompt] of cases) {
    const k = kway(prompt);
    const lines = exportLines(k, format);
    assert.equal(lines.length, 5, format);
    const back = parsePreferences(toJsonl(lines), format);
    const want = pairsOfKWay(k);
    assert.deepEqual(back.map((b) => ({ prompt: b.prompt, chosen: b.responses[0], rejected: b.responses[1] })), want, `${format} ${prompt.length}`);
  }
  // the exact shapes
  assert.deepEqual(exportLines(kway(single), 'pairs')[0], {
    prompt: single, chosen: [{ role: 'assistant', content: 'C three' }], rejected: [{ role: 'assistant', content: 'A one' }],
  });
  assert.deepEqual(exportLines(kway(single), 'pairs-plain')[0], { prompt: single[0].content, chosen: 'C three', rejected: 'A one' });
  assert.deepEqual(exportLines(kway(multi), 'hh')[0], {
    chosen: '\n\nHuman: hello\n\nAssistant: hi, how can I help?\n\nHuman: a poem please\n\nAssistant: C three',
    rejected: '\n\nHuman: hello\n\nAssistant: hi, how can I help?\n\nHuman: a poem please\n\nAssistant: A one',
  });
  assert.throws(() => exportLines(kway(withSystem), 'hh'), /no system turn/);
});

test('reading what others write: hh-rlhf lines, TRL implicit-prompt pairs, a plain prompt with message answers', () => {
  const hh = parsePreferenceLine({
    chosen: '\n\nHuman: What is a harbour?\n\nAssistant: A sheltered place for ships.',
    rejected: '\n\nHuman: What is a harbour?\n\nAssistant: No idea.',
  }, 'hh line 1');
  assert.deepEqual(hh, { prompt: [{ role: 'user', content: 'What is a harbour?' }], responses: ['A sheltered place for ships.', 'No idea.'], ranking: [[0], [1]] });
  const implicit = parsePreferenceLine({
    chosen: [...multi, { role: 'assistant', content: 'good' }], rejected: [...multi, { role: 'assistant', content: 'bad' }],
  }, 'implicit');
  assert.deepEqual(implicit.prompt, multi);
  assert.deepEqual(implicit.responses, ['good', 'bad']);
  const mixed = parsePreferenceLine({ prompt: 'hi', chosen: [{ role: 'assistant', content: 'hello!' }], rejected: [{ role: 'assistant', content: 'go away' }] }, 'm');
  assert.deepEqual(mixed.responses, ['hello!', 'go away']);
  assert.throws(() => parsePreferenceLine({ chosen: [...multi, { role: 'assistant', content: 'a' }], rejected: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'b' }] }, 'L7'),
    /L7: "chosen" and "rejected" do not share the conversation/);
  assert.throws(() => parsePreferenceLine({ chosen: 'just text', rejected: 'other text' }, 'L2'), /L2 "chosen": not an Anthropic-HH transcript/);
  assert.throws(() => parsePreferenceLine({ prompt: 'x', text: 'y' }, 'L3'), /neither a K-way record/);
  assert.throws(() => parsePreferences('{"prompt": "x", "chosen": "a", "rejected": "b"}\n{"prompt": ', 'f.jsonl'), /f.jsonl: the last line is incomplete/);
  assert.throws(() => parsePreferences('{"prompt": "x", "chosen": "a", "rejected": "b"}\nnot json\n{}\n', 'f.jsonl'), /f.jsonl line 2 is not valid JSON/);
});

test('the training view: per prompt, the distinct answers and every pair, from K-way records and pairs alike', () => {
  const a: KWay = { prompt: single, responses: ['x', 'y', 'z'], ranking: [[1], [0], [2]] };     // y > x > z
  const b: KWay = { prompt: single, responses: ['w', 'x'], ranking: [[0], [1]] };               // w > x (a second annotator)
  const c: KWay = { prompt: multi, responses: ['p', 'q'], ranking: [[0, 1]] };                  // a tie: no pair
  const prefs = preferencesByPrompt([a, b, c]);
  assert.equal(prefs.length, 1); // the multi-turn prompt has no pair left
  assert.deepEqual(prefs[0].responses, ['x', 'y', 'z', 'w']);
  assert.deepEqual(pairsOf(prefs[0]).map((p) => `${p.chosen}>${p.rejected}`), ['y>x', 'y>z', 'x>z', 'w>x']);
  // the held-out split keeps each prompt on one side
  const many = Array.from({ length: 200 }, (_, i) => ({ prompt: [{ role: 'user' as const, content: `p${i}` }], responses: ['a', 'b'], pairs: [{ chosen: 0, rejected: 1 }] }));
  const s = splitByPrompt(many, 0.2);
  assert.equal(s.train.length + s.heldout.length, 200);
  assert.ok(s.heldout.length > 20 && s.heldout.length < 60, `${s.heldout.length} held out of 200 at 0.2`);
  assert.deepEqual(splitByPrompt(many, 0.2).heldout, s.heldout);
});
