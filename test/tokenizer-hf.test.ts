// Interoperability with Hugging Face's own readers of our files: the tokenizer.json and tokenizer_config.json we write
// are loaded by @huggingface/tokenizers (tokenizers.js, the tokenizer of transformers.js; an independent implementation
// of the `tokenizers` format) and its chat template is rendered by @huggingface/jinja (the Jinja of transformers.js).
// Both must give exactly our ids: plain text, and whole conversations through the template.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { Template } from '@huggingface/jinja';
import { trainTokenizer, type Message } from '../src/tokenizer/index.js';
import { readPoems, poemText, readWordnet, wordText } from '../src/train/corpora.js';

const poems = readPoems({ simplified: true, limit: 400 });
const words = readWordnet({ limit: 400 });
const ours = trainTokenizer([...poems.slice(0, 300).map(poemText), ...words.slice(0, 300).map(wordText)], { vocabSize: 1500 });
const dir = mkdtempSync(join(tmpdir(), 'chatwright-hf-'));
ours.save(dir);
const tokenizerJson = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
const tokenizerConfig = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
rmSync(dir, { recursive: true, force: true });
const theirs = new HfTokenizer(tokenizerJson, tokenizerConfig);

test('tokenizers.js loads our tokenizer.json and encodes exactly as we do', () => {
  const texts = [
    ...poems.slice(300).map(poemText), // held out from training: merges must apply the same way on unseen text
    ...words.slice(300).map(wordText),
    '', ' ', 'Hello, world!', "I'm sure they'll say it's fine, isn't it?", '   leading and trailing   ', 'tabs\tand\nnewlines\n\n',
    '1234567 digits 3.14159 and 2026-11-29', '混合 English 和中文。', '한국어 텍스트', 'emoji 🙂👍🏽 and ZWJ 👨‍👩‍👧',
    '<|bos|> typed by a user stays text', 'ſ K Kelvin', '\u0085next line\ufeffbom',
  ];
  let checked = 0;
  for (const text of texts) {
    // tokenizers.js, like transformers, turns special-token text into special tokens; ours does that only when allowed
    // (by default a typed "<|bos|>" stays text: test/tokenizer.test.ts), so compare with everything allowed.
    const want = ours.encode(text, { allowedSpecial: 'all' });
    const got = theirs.encode(text, { add_special_tokens: false }).ids;
    assert.deepEqual(got, want, `ids differ for ${JSON.stringify(text.slice(0, 60))}`);
    if (want.length > 0) assert.equal(theirs.decode(want), text, `tokenizers.js decodes our ids of ${JSON.stringify(text.slice(0, 60))} differently`);
    checked++;
  }
  console.log(`# tokenizers.js: ${checked} texts, identical ids and decoding`);
});

test('the chat template in tokenizer_config.json, rendered by @huggingface/jinja, gives our render() ids', () => {
  // `{% generation %}` is transformers' extension marking the assistant's tokens (return_assistant_tokens_mask); plain
  // Jinja does not know it, so it is removed here (it emits nothing).
  const source = String(tokenizerConfig.chat_template).replace(/\{%-?\s*(end)?generation\s*-?%\}/g, '');
  const template = new Template(source); // @huggingface/jinja defines raise_exception, as transformers does
  const conversations: Message[][] = [
    [
      { role: 'system', content: '你是一位诗人。' },
      { role: 'user', content: '写一首五言绝句，题目是《春晓》' },
      { role: 'assistant', content: '春眠不觉晓，处处闻啼鸟。\n夜来风雨声，花落知多少。' },
      { role: 'user', content: "What does 'dog' mean?" },
      { role: 'assistant', content: 'a member of the genus Canis' },
    ],
    [
      { role: 'user', content: '《静夜思》的作者是谁？' },
      { role: 'assistant', content: '李白' },
    ],
  ];
  for (const messages of conversations) {
    const rendered = template.render({ messages, bos_token: tokenizerConfig.bos_token, add_generation_prompt: false });
    assert.deepEqual(theirs.encode(rendered, { add_special_tokens: false }).ids, ours.render(messages).ids);
    const prompt = template.render({
      messages: messages.slice(0, -1), bos_token: tokenizerConfig.bos_token, add_generation_prompt: true
    });
    assert.deepEqual(theirs.encode(prompt, { add_special_tokens: false }).ids, ours.renderForCompletion(messages.slice(0, -1)));
  }
  // The template refuses a conversation our render() refuses: two user turns in a row.
  const bad: Message[] = [{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }];
  assert.throws(() => ours.render(bad));
  assert.throws(() => template.render({ messages: bad, bos_token: '<|bos|>', add_generation_prompt: false }), /alternate/);
});
