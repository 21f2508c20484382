// Demonstration data: JSONL validation names the line, the built-in templates, the held-out split, and packing into
// (B, T) ids / targets / weights with the chat template's mask shifted by one. A character-level stand-in tokenizer
// renders dialogues with the chat template of the contract, so the expected rows can be written out by hand.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UserError } from '../src/util/errors.js';
import {
  parseDemos, validateConversation, packConversations, makeBatch, rowsForStep, epochOrder, poemDemos, wordDemos, poemForm,
  splitPoemLines, countHan, type Conversation,
} from '../src/train/demos.js';
import type { Tokenizer, Message } from '../src/tokenizer/index.js';

// ids: bos 1, system 2, user 3, assistant 4, eot 5, pad 0; characters are their code point + 100 (only compared, never decoded)
const fake = {
  pad: 0, bos: 1, system: 2, user: 3, assistant: 4, eot: 5, eos: 6,
  render(messages: Message[]) {
    const ids = [1];
    const mask = [0];
    for (const m of messages) {
      const head = m.role === 'system' ? 2 : m.role === 'user' ? 3 : 4;
      const a = m.role === 'assistant' ? 1 : 0;
      ids.push(head);
      mask.push(0);
      for (const ch of m.content) {
        ids.push(ch.codePointAt(0)! + 100);
        mask.push(a);
      }
      ids.push(5);
      mask.push(a);
    }
    return { ids, mask };
  },
} as unknown as Tokenizer;

const conv = (u: string, a: string): Conversation => ({ messages: [{ role: 'user', content: u }, { role: 'assistant', content: a }] });
const code = (s: string) => s.codePointAt(0)! + 100;

test('JSONL: valid lines parse, blank lines are skipped, a malformed line names its number', () => {
  const good = '{"messages":[{"role":"system","content":"s"},{"role":"user","content":"u"},{"role":"assistant","content":"a"}]}';
  assert.equal(parseDemos(`${good}\n\n${good}\n`).length, 2);
  const cases: [string, RegExp][] = [
    [`${good}\n{"messages": [}`, /line 2: not valid JSON/],
    [`${good}\n${good}\n{"msgs": []}`, /line 3: missing "messages"/],
    [`{"messages":[{"role":"bot","content":"x"}]}`, /line 1: message 0 has role "bot"/],
    [`{"messages":[{"role":"user","content":5}]}`, /line 1: message 0 \(user\) has no string "content"/],
    [`{"messages":[{"role":"user","content":"q"}]}`, /line 1: no assistant message/],
    [`{"messages":[]}`, /line 1: "messages" is empty/],
    ['\n\n', /no conversations/],
  ];
  for (const [text, re] of cases) {
    assert.throws(() => parseDemos(text, 'd.jsonl'), (e: unknown) => e instanceof UserError && re.test(e.message), text);
  }
  assert.throws(() => validateConversation([], 'x'), /expected a JSON object/);
});

test('batch: targets are ids shifted by one and weight t is the mask of token t + 1', () => {
  const c = conv('ab', 'xy');
  const { ids, mask } = fake.render(c.messages); // [bos user a b eot assistant x y eot]
  const T = ids.length - 1;
  const packed = packConversations([c], fake, T, { pack: false });
  const b = makeBatch(packed, [0]);
  assert.deepEqual([...b.ids], ids.slice(0, T));
  assert.deepEqual([...b.targets], ids.slice(1));
  assert.deepEqual([...b.weights], mask.slice(1));
  // the weighted positions predict exactly the assistant's content and its <|eot|>
  const predicted = [...b.targets].filter((_, t) => b.weights[t] === 1);
  assert.deepEqual(predicted, [code('x'), code('y'), 5]);
  assert.equal(packed.report.assistantTokens, 3);
});

test('padding: one dialogue per row, pad ids after it, targets -1 and weight 0 there', () => {
  const packed = packConversations([conv('a', 'b'), conv('cc', 'dd')], fake, 12, { pack: false });
  assert.equal(packed.rows.length, 2);
  const b = makeBatch(packed, [0, 1]);
  const len0 = fake.render(conv('a', 'b').messages).ids.length; // 7
  for (let t = len0 - 1; t < 12; t++) {
    assert.equal(b.targets[t], -1);
    assert.equal(b.weights[t], 0);
  }
  for (let t = len0; t < 12; t++) assert.equal(b.ids[t], fake.pad);
});

test('packing: dialogues share rows in order; the loss never predicts the next dialogue from the previous one', () => {
  const convs = [conv('a', 'b'), conv('c', 'd'), conv('e', 'f')]; // 7 tokens each
  const packed = packConversations(convs, fake, 13, { pack: true }); // rows of 14 tokens: two dialogues fit
  assert.equal(packed.rows.length, 2);
  assert.equal(packed.rows[0].len, 14);
  assert.equal(packed.rows[1].len, 7);
  const b = makeBatch(packed, [0]);
  // position 6 is the first dialogue's last token (eot); its target is the second dialogue's bos, not weighted
  assert.equal(b.targets[6], fake.bos);
  assert.equal(b.weights[6], 0);
  const predicted = [...b.targets].filter((_, t) => b.weights[t] === 1);
  assert.deepEqual(predicted, [code('b'), 5, code('d'), 5]);
  assert.equal(packed.report.fill, 21 / 28);
});

test('overflow: long dialogues are truncated or skipped, and counted', () => {
  const long = conv('q', 'x'.repeat(30));
  const tooLongPrompt = conv('q'.repeat(30), 'a');
  const convs = [conv('a', 'b'), long, tooLongPrompt];
  const t = packConversations(convs, fake, 15, { overflow: 'truncate' });
  assert.equal(t.report.truncated, 1);
  assert.equal(t.report.skipped, 1); // its assistant part lies past the context: nothing left to learn
  assert.equal(Math.max(...t.rows.map((r) => r.len)), 16);
  const s = packConversations(convs, fake, 15, { overflow: 'skip' });
  assert.equal(s.report.truncated, 0);
  assert.equal(s.report.skipped, 2);
  assert.equal(s.rows.length, 1);
});

test('row order: each epoch is a permutation, deterministic in (seed, step)', () => {
  const o = epochOrder(10, 7, 0);
  assert.deepEqual([...o].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.notDeepEqual([...o], [...epochOrder(10, 7, 1)]);
  // steps of 4 rows over 10 rows: steps 0..4 cover epochs 0 and 1 exactly
  const seen = [0, 1, 2, 3, 4].flatMap((s) => rowsForStep(10, 4, 7, s));
  assert.deepEqual(seen.slice(0, 10).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(seen.slice(10, 20).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.deepEqual(rowsForStep(10, 4, 7, 3), seen.slice(12, 16));
});

test('poems: forms, templates, and a held-out split by poem', () => {
  const mk = (title: string, author: string, paragraphs: string[]) => ({ title, author, paragraphs, dynasty: 'tang' });
  const jueju = mk('静夜思', '李白', ['床前明月光，疑是地上霜。', '举头望明月，低头思故乡。']);
  assert.deepEqual(poemForm(jueju), { chars: 5, lines: 4, name: '五言绝句' });
  assert.equal(poemForm(mk('x', 'y', ['一二三四五六七，一二三四五六七。', '一二三四五六七，一二三四五六七。']))?.name, '七言绝句');
  assert.equal(poemForm(mk('x', 'y', ['一二三四五，一二三四五六。'])), null);
  assert.deepEqual(splitPoemLines('床前明月光，疑是地上霜。'), ['床前明月光', '疑是地上霜']);
  assert.equal(countHan('a床b前'), 2);
  // many synthetic poems with distinct titles: a held-out share near 5%, disjoint by poem
  const han = '天地玄黄宇宙洪荒日月盈昃辰宿列张寒来暑往秋收冬藏';
  const poems = Array.from({ length: 400 }, (_, i) => {
    const title = han[i % 20] + han[Math.floor(i / 20) % 20] + i;
    const line = han.slice(i % 10, (i % 10) + 5);
    return mk(title, '某' + (i % 7), [`${line}，${line}。`, `${line}，${line}。`]);
  });
  const set = poemDemos([...poems, jueju]);
  const trainTitles = new Set(set.train.map((c) => /《(.+)》/.exec(c.messages[0].content)?.[1]).filter(Boolean));
  const heldTitles = new Set(set.heldout.map((c) => /《(.+)》/.exec(c.messages[0].content)?.[1]).filter(Boolean));
  for (const t of heldTitles) assert.ok(!trainTitles.has(t), `held-out title ${t} also in train`);
  assert.ok(heldTitles.size >= 5 && heldTitles.size <= 45, `held-out poems: ${heldTitles.size} of 401`);
  const forms = set.prompts.filter((p) => p.reference.task === 'poem-form');
  assert.equal(forms.length, Math.min(50, heldTitles.size));
  for (const p of forms) assert.match(p.messages[0].content, /^写一首五言绝句，题目是《.+》$/);
  // the split depends on the poem, not on the corpus size
  const again = poemDemos(poems.slice(0, 200));
  for (const c of again.heldout) {
    const t = /《(.+)》/.exec(c.messages[0].content)?.[1];
    if (t) assert.ok(heldTitles.has(t));
  }
  const li = set.train.concat(set.heldout).filter((c) => c.messages[0].content === '《静夜思》的作者是谁？');
  assert.deepEqual(li.map((c) => c.messages[1].content), ['《静夜思》的作者是李白。']);
});

test('words: one sense per word, gloss and example templates', () => {
  const entries = Array.from({ length: 200 }, (_, i) => ({ word: `w${i}`, pos: 'noun', gloss: `gloss of w${i}`, examples: i % 2 ? [`use w${i}`] : [] }));
  entries.push({ word: 'w0', pos: 'verb', gloss: 'another sense', examples: [] });
  const set = wordDemos(entries);
  const all = set.train.concat(set.heldout);
  const w0 = all.filter((c) => c.messages[0].content === "What does 'w0' mean?");
  assert.deepEqual(w0.map((c) => c.messages[1].content), ['gloss of w0']);
  assert.ok(all.some((c) => c.messages[0].content === "Use 'w1' in a sentence." && c.messages[1].content === 'use w1'));
  for (const p of set.prompts) assert.equal(p.reference.task, 'gloss');
  assert.equal(set.prompts.length, set.heldout.filter((c) => /^What does/.test(c.messages[0].content)).length);
});
