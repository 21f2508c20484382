// Tokenizer: training (the minbpe worked example; the incremental trainer against a naive recount), round trips,
// special tokens as plain text, streaming decode at every byte split, the chat template checked by hand, and the file
// formats (Hugging Face tokenizer.json, GPT-2 vocab.json + merges.txt, tiktoken ranks) with their error messages.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Tokenizer, trainTokenizer, SPECIAL_TOKENS, CHAT_TEMPLATE_JINJA, toJsRegex, type Message } from '../src/tokenizer/index.js';
import { toJsPatternSource, CL100K_PATTERN } from '../src/tokenizer/pretokenize.js';
import { trainBpe } from '../src/tokenizer/train.js';
import { formatTiktokenRanks } from '../src/tokenizer/tiktoken.js';
import { bytesToToken } from '../src/tokenizer/hf.js';
import { UserError } from '../src/util/errors.js';
import { readPoems, poemText, readWordnet, wordText, parseWordnetLine, readTextSources } from '../src/train/corpora.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'cw-tok-'));

// A small mixed training corpus from the built-in data (Chinese poems + English glosses).
const corpus: string[] = [
  ...readPoems({ limit: 400, simplified: true }).map(poemText),
  ...readWordnet({ limit: 1500 }).map(wordText),
];
const trained = trainTokenizer(corpus, { vocabSize: 1024 });

// ---- training ----------------------------------------------------------------------------------------------------

test('worked example: "aaabdaaabac" with 3 merges encodes to [258, 100, 258, 97, 99] (minbpe)', () => {
  const tok = trainTokenizer(['aaabdaaabac'], { vocabSize: 256 + 3 + SPECIAL_TOKENS.length });
  assert.deepEqual(tok.encode('aaabdaaabac'), [258, 100, 258, 97, 99]);
  assert.equal(tok.decode([258, 100, 258, 97, 99]), 'aaabdaaabac');
});

// The readable reference: recount every pair of every word before each merge (no index, no heap).
function naiveTrain(words: Map<string, number>, nMerges: number): [number, number][] {
  const ws = [...words].map(([w, c]) => ({ ids: [...Buffer.from(w, 'utf8')], c }));
  const merges: [number, number][] = [];
  for (let m = 0; m < nMerges; m++) {
    const counts = new Map<string, number>();
    for (const { ids, c } of ws) for (let i = 0; i + 1 < ids.length; i++) counts.set(`${ids[i]},${ids[i + 1]}`, (counts.get(`${ids[i]},${ids[i + 1]}`) ?? 0) + c);
    let best: [number, number] | null = null, bestC = 0;
    for (const [k, c] of counts) {
      const [a, b] = k.split(',').map(Number);
      if (c > bestC || (c === bestC && best && (a < best[0] || (a === best[0] && b < best[1])))) {
        best = [a, b];
        bestC = c;
      }
    }
    if (!best) break;
    merges.push(best);
    const id = 256 + m;
    for (const w of ws) {
      const out: number[] = [];
      for (let i = 0; i < w.ids.length; i++) {
        if (i + 1 < w.ids.length && w.ids[i] === best[0] && w.ids[i + 1] === best[1]) {
          out.push(id);
          i++;
        } else out.push(w.ids[i]);
      }
      w.ids = out;
    }
  }
  return merges;
}

test('incremental trainer makes the same merges as a naive full recount', () => {
  const re = toJsRegex(CL100K_PATTERN);
  const cases = [
    corpus.slice(0, 60).join('\n'),
    'aaaa aaaaa aaaaaa abababab aaabbb', // overlapping occurrences of (a, a) and (a, b)
    '春风春风春风又绿江南岸，明月何时照我还。春风又绿',
  ];
  for (const text of cases) {
    const words = new Map<string, number>();
    for (const p of text.match(re) ?? []) words.set(p, (words.get(p) ?? 0) + 1);
    const ref = naiveTrain(words, 120);
    const got = trainBpe([text], { nMerges: 120 }).merges;
    assert.deepEqual(got, ref);
  }
});

test('random corpora: incremental trainer equals the naive recount', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ unit: fc.constantFrom('a', 'b', 'c', ' ', '中', 'é') , maxLength: 12 }), { maxLength: 12 }), (docs) => {
      const re = toJsRegex(CL100K_PATTERN);
      const words = new Map<string, number>();
      for (const d of docs) for (const p of d.match(re) ?? []) words.set(p, (words.get(p) ?? 0) + 1);
      assert.deepEqual(trainBpe(docs, { nMerges: 30 }).merges, naiveTrain(words, 30));
    }),
    { numRuns: 150 },
  );
});

test('vocabulary layout: 256 bytes, merges, then the 7 special tokens in order', () => {
  assert.equal(trained.vocabSize, 1024);
  const names = SPECIAL_TOKENS.map((t) => trained.specialTokens.get(t));
  assert.deepEqual(names, [1017, 1018, 1019, 1020, 1021, 1022, 1023]);
  assert.deepEqual([trained.bos, trained.eos, trained.system, trained.user, trained.assistant, trained.eot, trained.pad], [1017, 1018, 1019, 1020, 1021, 1022, 1023]);
  assert.throws(() => trainTokenizer(['x'], { vocabSize: 100 }), UserError);
});

// ---- round trips -------------------------------------------------------------------------------------------------

const tricky = [
  '',
  'Hello, world!',
  '床前明月光，疑是地上霜。举头望明月，低头思故乡。',
  '안녕하세요, 세계! 한국어 문장입니다.',
  'emoji 👍🏽 👨‍👩‍👧 🇨🇳 ✨ and text',
  'mixed 中文English한국어русский العربية हिन्दी 123',
  ' '.repeat(300) + 'x' + '\n'.repeat(50) + '\t \t',
  '1234567890'.repeat(30),
  "I'LL they'Re it's 'ſ we've",
  '\ufeffBOM first, \u0085 NEL, \u00a0 nbsp, \u3000 ideographic space',
  'e\u0301 combining, ﬁ ligature, ² superscript, Ⅻ numeral, ١٢٣',
  'a'.repeat(5000),
];

test('decode(encode(s)) == s on the hard cases, for the trained tokenizer', () => {
  for (const s of tricky) assert.equal(trained.decode(trained.encode(s)), s, JSON.stringify(s.slice(0, 40)));
});

test('decode(encode(s)) == s on random Unicode strings (property)', () => {
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
      assert.equal(trained.decode(trained.encode(s)), s);
    }),
    { numRuns: 400 },
  );
  fc.assert(
    fc.property(fc.string({ unit: 'grapheme', maxLength: 100 }), (s) => {
      assert.equal(trained.decode(trained.encode(s)), s);
    }),
    { numRuns: 300 },
  );
});

test('long pieces (linked-list merge) encode exactly like short ones (scan merge)', () => {
  // Pieces around the 96-byte switch between the two merge loops, against tiktoken's rule spelled out naively.
  for (const unit of ['ab', '明月', 'x y', 'é']) {
    for (const n of [10, 40, 47, 48, 49, 50, 100, 400]) {
      const s = unit.replace(' ', '').repeat(n);
      const ids = trained.bpe.encodePieceUncached(s);
      assert.equal(trained.decode(ids), s);
      // reference: tiktoken's rule spelled out naively (lowest priority, leftmost) over byte ids
      let parts = [...Buffer.from(s, 'utf8')].map((b) => trained.bpe.byteToId[b]);
      for (;;) {
        let best = Infinity, at = -1;
        for (let i = 0; i + 1 < parts.length; i++) {
          const p = trained.bpe.merges.priority(parts[i], parts[i + 1]);
          if (p < best) { best = p; at = i; }
        }
        if (at < 0 || best === 0x7fffffff) break;
        parts = [...parts.slice(0, at), trained.bpe.merges.result(parts[at], parts[at + 1]), ...parts.slice(at + 2)];
      }
      const bytes = Buffer.from(s, 'utf8');
      const single = trained.bpe.tokenBytes.findIndex((b) => b.length === bytes.length && Buffer.from(b).equals(bytes));
      const whole = trained.bpe.wholePieceFirst && single >= 0 ? [single] : parts;
      assert.deepEqual(ids, whole, `${unit} x ${n}`);
    }
  }
});

test('the piece cache, also when it fills and is cleared, gives the ids of the uncached encoder', () => {
  const text = corpus.slice(0, 80).join('\n');
  const dir = tmp();
  trained.save(dir);
  const fresh = Tokenizer.load(dir);
  rmSync(dir, { recursive: true, force: true });
  fresh.bpe.cacheLimit = 50;
  const expected = trained.encodeOrdinary(text);
  assert.deepEqual(fresh.encodeOrdinary(text), expected);
  assert.deepEqual(fresh.encodeOrdinary(text), expected); // again, from a cache that was cleared many times
  const uncached: number[] = [];
  for (const p of text.match(toJsRegex(CL100K_PATTERN)) ?? []) uncached.push(...trained.bpe.encodePieceUncached(p));
  assert.deepEqual(expected, uncached);
});

// ---- special tokens ----------------------------------------------------------------------------------------------

test('special tokens are plain text unless allowed', () => {
  const s = 'say <|bos|> and <|eot|> please';
  const plain = trained.encode(s);
  assert.ok(!plain.includes(trained.bos) && !plain.includes(trained.eot));
  assert.equal(trained.decode(plain), s);
  const all = trained.encode(s, { allowedSpecial: 'all' });
  assert.ok(all.includes(trained.bos) && all.includes(trained.eot));
  assert.equal(trained.decode(all), s);
  const some = trained.encode(s, { allowedSpecial: new Set(['<|eot|>']) });
  assert.ok(!some.includes(trained.bos) && some.includes(trained.eot));
  assert.throws(() => trained.encode(s, { allowedSpecial: new Set(['<|nope|>']) }), UserError);
});

// ---- streaming decode --------------------------------------------------------------------------------------------

test('streaming decode of valid UTF-8 split at every byte never emits U+FFFD', () => {
  // A byte-level vocabulary with no merges: one token per byte, so the text is split at every byte position.
  const bytesOnly = trainTokenizer([''], { vocabSize: 263 });
  const texts = ['床前明月光', 'a😀b👨‍👩‍👧c', 'é中\u{10FFFF}x', '한국어 🇨🇳'];
  for (const s of texts) {
    const ids = bytesOnly.encode(s);
    assert.equal(ids.length, Buffer.byteLength(s));
    const d = bytesOnly.streamDecoder();
    let out = '';
    for (const id of ids) {
      const piece = d.push(id);
      assert.ok(!piece.includes('\ufffd'), `U+FFFD after a prefix of ${JSON.stringify(s)}`);
      out += piece;
    }
    out += d.flush();
    assert.equal(out, s);
  }
  // every two-way split of the byte string, through the trained tokenizer's own tokens
  for (const s of texts) {
    const bytes = Buffer.from(s, 'utf8');
    for (let cut = 0; cut <= bytes.length; cut++) {
      const d = bytesOnly.streamDecoder();
      let out = '';
      for (const id of [...bytes.subarray(0, cut)]) out += d.push(id);
      assert.ok(!out.includes('\ufffd'));
      for (const id of [...bytes.subarray(cut)]) out += d.push(id);
      out += d.flush();
      assert.equal(out, s);
    }
  }
  // random strings through the trained tokenizer
  fc.assert(
    fc.property(fc.string({ unit: 'binary', maxLength: 60 }), (s) => {
      const d = trained.streamDecoder();
      let out = '';
      for (const id of trained.encode(s)) {
        const piece = d.push(id);
        assert.ok(!piece.includes('\ufffd') || s.includes('\ufffd'));
        out += piece;
      }
      assert.equal(out + d.flush(), s);
    }),
    { numRuns: 200 },
  );
});

// ---- chat template -----------------------------------------------------------------------------------------------

test('chat template: three turns with a system message, ids and mask checked by hand', () => {
  // No merges: every content byte is its own id, so the expected ids can be written down.
  const tok = trainTokenizer([''], { vocabSize: 263 });
  const [BOS, , SYS, USR, AST, EOT] = [256, 257, 258, 259, 260, 261];
  const messages: Message[] = [
    { role: 'system', content: 'Be' },
    { role: 'user', content: 'hi' },
    { role: 'assistant', content: 'yo' },
    { role: 'user', content: '?' },
    { role: 'assistant', content: '!' },
    { role: 'user', content: 'ok' },
    { role: 'assistant', content: 'k' },
  ];
  const { ids, mask } = tok.render(messages);
  // prettier-ignore
  assert.deepEqual(ids, [
    BOS,
    SYS, 66, 101, EOT,       // "Be"
    USR, 104, 105, EOT,      // "hi"
    AST, 121, 111, EOT,      // "yo"
    USR, 63, EOT,            // "?"
    AST, 33, EOT,            // "!"
    USR, 111, 107, EOT,      // "ok"
    AST, 107, EOT,           // "k"
  ]);
  // prettier-ignore
  assert.deepEqual(mask, [
    0,
    0, 0, 0, 0,
    0, 0, 0, 0,
    0, 1, 1, 1,
    0, 0, 0,
    0, 1, 1,
    0, 0, 0, 0,
    0, 1, 1,
  ]);
  assert.deepEqual(tok.renderForCompletion(messages.slice(0, 6)), [...ids.slice(0, 23), AST]);
  // without a system message
  const r = tok.render([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }]);
  assert.deepEqual(r.ids, [BOS, USR, 97, EOT, AST, 98, EOT]);
  assert.deepEqual(r.mask, [0, 0, 0, 0, 0, 1, 1]);
  // a user typing special tokens gets plain text
  const forged = tok.render([{ role: 'user', content: '<|eot|>' }, { role: 'assistant', content: 'no' }]);
  assert.deepEqual(forged.ids.slice(2, 9), [...Buffer.from('<|eot|>')]);
});

test('invalid conversations get clear errors', () => {
  const bad: [unknown, RegExp][] = [
    [[], /no messages/],
    [[{ role: 'bot', content: 'x' }], /unknown role "bot"/],
    [[{ role: 'user', content: '' }, { role: 'assistant', content: 'x' }], /content is empty/],
    [[{ role: 'assistant', content: 'x' }], /expected a user message, got assistant/],
    [[{ role: 'user', content: 'a' }, { role: 'user', content: 'b' }], /expected a assistant message, got user|expected an? assistant/],
    [[{ role: 'user', content: 'a' }, { role: 'system', content: 'b' }], /system message may only come first/],
    [[{ role: 'user', content: 'a' }], /must end with an assistant message/],
    [[{ role: 'user', content: 3 }, { role: 'assistant', content: 'x' }], /content must be a string/],
  ];
  for (const [msgs, re] of bad) assert.throws(() => trained.render(msgs as Message[]), (e: unknown) => e instanceof UserError && re.test(e.message));
  assert.throws(() => trained.renderForCompletion([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }]), /must end with a user message/);
});

// ---- files -------------------------------------------------------------------------------------------------------

test('save/load tokenizer.json: same ids, and the Hugging Face schema', () => {
  const dir = tmp();
  try {
    trained.save(dir);
    const back = Tokenizer.load(dir);
    assert.equal(back.vocabSize, trained.vocabSize);
    for (const s of [...tricky, corpus.slice(0, 20).join('\n')]) assert.deepEqual(back.encode(s), trained.encode(s));
    assert.deepEqual([back.bos, back.eot, back.pad], [trained.bos, trained.eot, trained.pad]);
    const j = JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8'));
    assert.equal(j.model.type, 'BPE');
    assert.equal(j.pre_tokenizer.type, 'Sequence');
    assert.deepEqual(j.pre_tokenizer.pretokenizers.map((p: any) => p.type), ['Split', 'ByteLevel']);
    assert.equal(j.pre_tokenizer.pretokenizers[0].pattern.Regex, CL100K_PATTERN);
    assert.equal(j.pre_tokenizer.pretokenizers[1].use_regex, false);
    assert.equal(j.decoder.type, 'ByteLevel');
    assert.equal(j.model.merges.length, 1024 - 256 - 7);
    assert.equal(Object.keys(j.model.vocab).length, 1024 - 7);
    assert.deepEqual(j.added_tokens.map((t: any) => t.content), [...SPECIAL_TOKENS]);
    assert.ok(j.added_tokens.every((t: any) => t.special === true && t.normalized === false));
    // GPT-2's byte-level alphabet: space is "Ġ", newline "Ċ"
    assert.equal(j.model.vocab['Ġ'], 32);
    assert.equal(j.model.vocab['Ċ'], 10);
    const cfg = JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8'));
    assert.equal(cfg.chat_template, CHAT_TEMPLATE_JINJA);
    assert.deepEqual([cfg.bos_token, cfg.eos_token, cfg.pad_token], ['<|bos|>', '<|eos|>', '<|pad|>']);
    assert.equal(cfg.added_tokens_decoder[String(trained.eot)].content, '<|eot|>');
    // merges in the newer [a, b] pair form (tokenizers >= 0.20) load to the same tokenizer
    assert.equal(typeof j.model.merges[0], 'string');
    j.model.merges = j.model.merges.map((m: string) => m.split(' '));
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(j));
    const old = Tokenizer.load(dir);
    for (const s of tricky) assert.deepEqual(old.encode(s), trained.encode(s));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('loads a tokenizer.json as transformers writes it (GPT-2 layout: ByteLevel pre-tokenizer with its own regex)', () => {
  // Hand-written in the layout of the Hugging Face "gpt2" tokenizer.json: no Split, ByteLevel(use_regex=true),
  // "a b" merges, <|endoftext|> in both vocab and added_tokens.
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[bytesToToken(Uint8Array.of(b))] = b;
  vocab['Ġt'] = 256; vocab['he'] = 257; vocab['Ġthe'] = 258; vocab['<|endoftext|>'] = 259;
  const j = {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [{ id: 259, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true }],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '', end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges: ['Ġ t', 'h e', 'Ġt he'] },
  };
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(j));
    const tok = Tokenizer.load(dir);
    assert.deepEqual(tok.encode(' the the'), [258, 258]);
    assert.deepEqual(tok.encode("it's"), [105, 116, 39, 115]); // GPT-2 pattern: "it" "'s"
    assert.equal(tok.bos, 259);
    assert.equal(tok.eos, 259);
    assert.deepEqual(tok.encode('<|endoftext|>', { allowedSpecial: 'all' }), [259]);
    assert.throws(() => tok.render([{ role: 'user', content: 'a' }, { role: 'assistant', content: 'b' }]), /no <\|system\|> token/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('GPT-2 vocab.json + merges.txt', () => {
  const dir = tmp();
  try {
    const vocab: Record<string, number> = {};
    for (let b = 0; b < 256; b++) vocab[bytesToToken(Uint8Array.of(b))] = b;
    vocab['Ġa'] = 256; vocab['Ġab'] = 257;
    writeFileSync(join(dir, 'vocab.json'), JSON.stringify(vocab));
    writeFileSync(join(dir, 'merges.txt'), '#version: 0.2\nĠ a\nĠa b\n');
    const tok = Tokenizer.load(dir);
    assert.deepEqual(tok.encode(' ab ab a'), [257, 257, 256]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tiktoken .tiktoken rank files load, and save/load as tokenizer.json keeps the ids', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'mine.tiktoken');
    writeFileSync(path, formatTiktokenRanks(trained.toParts().vocab.tokenBytes.slice(0, 1017)));
    const tk = Tokenizer.fromTiktoken(path, { pattern: CL100K_PATTERN });
    const text = corpus.slice(0, 30).join('\n');
    assert.deepEqual(tk.encode(text), trained.encode(text));
    tk.save(join(dir, 'hf'));
    const back = Tokenizer.load(join(dir, 'hf'));
    assert.deepEqual(back.encode(text), tk.encode(text));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('malformed or truncated files get clear errors', () => {
  const dir = tmp();
  try {
    const good = JSON.parse(JSON.stringify((() => { trained.save(dir); return JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')); })()));
    const text = readFileSync(join(dir, 'tokenizer.json'), 'utf8');
    const cases: [string, RegExp][] = [
      [text.slice(0, text.length / 2), /not valid JSON/],
      [JSON.stringify({ ...good, model: { ...good.model, type: 'Unigram' } }), /not BPE/],
      [JSON.stringify({ ...good, model: { ...good.model, merges: good.model.merges.slice(0, 5).concat([['zz', 'qq']]) } }), /not in the vocabulary/],
      [JSON.stringify({ ...good, model: { ...good.model, merges: ['a b c'] } }), /not two tokens/],
      [JSON.stringify({ ...good, model: { ...good.model, vocab: { a: 0 } } }), /no token for the byte/],
      [JSON.stringify({ ...good, pre_tokenizer: { type: 'Metaspace' }, decoder: { type: 'Metaspace' } }), /neither a byte-level BPE tokenizer .* nor SentencePiece-style BPE/],
      [JSON.stringify({ version: '1.0' }), /no "model" section/],
    ];
    for (const [content, re] of cases) {
      writeFileSync(join(dir, 'tokenizer.json'), content);
      assert.throws(() => Tokenizer.load(dir), (e: unknown) => e instanceof UserError && re.test(e.message), String(re));
    }
    rmSync(join(dir, 'tokenizer.json'));
    assert.throws(() => Tokenizer.load(dir), (e: unknown) => e instanceof UserError && /no tokenizer.json/.test(e.message));
    const tk = join(dir, 'bad.tiktoken');
    writeFileSync(tk, 'IQ== 0\nIg==\n');
    assert.throws(() => Tokenizer.fromTiktoken(tk, { pattern: CL100K_PATTERN }), (e: unknown) => e instanceof UserError && /expected "<base64 token> <rank>"/.test(e.message));
    writeFileSync(tk, 'IQ== 0\nIg== 1\n');
    assert.throws(() => Tokenizer.fromTiktoken(tk, { pattern: CL100K_PATTERN }), (e: unknown) => e instanceof UserError && /truncated/.test(`${e.message} ${(e as UserError).hint}`));
    writeFileSync(join(dir, 'r.json'), '{"bpe_ranks": "! 0 IQ== Ig=');
    assert.throws(() => Tokenizer.fromTiktoken(join(dir, 'r.json')), (e: unknown) => e instanceof UserError && /not valid JSON/.test(e.message));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---- pre-tokenizer pattern rewriting -----------------------------------------------------------------------------

test('pattern rewriting: inline case-insensitive groups, \\s, possessive quantifiers', () => {
  assert.equal(toJsPatternSource("(?i:'s|'ll)"), "(?:'[sSſ]|'[lL][lL])");
  assert.equal(toJsPatternSource('\\s+(?!\\S)|[^\\s\\p{L}]'), '\\p{White_Space}+(?!\\P{White_Space})|[^\\p{White_Space}\\p{L}]');
  // nanochat's pattern (github.com/karpathy/nanochat, nanochat/tokenizer.py): possessives become greedy
  const nano = "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}+|\\p{N}{1,2}| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*|\\s*[\\r\\n]|\\s+(?!\\S)|\\s+";
  const js = toJsPatternSource(nano);
  assert.ok(!/\?\+|\+\+/.test(js), js);
  assert.ok(js.startsWith("'(?:[sSſdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|"), js);
  const re = toJsRegex(nano);
  assert.deepEqual("Hello world's 12345!!!\n\n  x".match(re), ['Hello', ' world', "'s", ' ', '12', '34', '5', '!!!\n\n', ' ', ' x']);
  // U+0085 is Unicode White_Space (Rust's \s) but not JS's \s: punctuation stops before it, as in Rust
  assert.deepEqual('!!\u0085\u0085'.match(toJsRegex(CL100K_PATTERN)), ['!!', '\u0085\u0085']);
});

// ---- corpora -----------------------------------------------------------------------------------------------------

test('corpora: poems, simplified characters, WordNet lines, text sources', () => {
  const trad = readPoems({ limit: 3 });
  const simp = readPoems({ limit: 3, simplified: true });
  assert.equal(trad.length, 3);
  assert.equal(trad[0].dynasty, 'tang');
  assert.ok(trad[0].paragraphs.join('').includes('壯'), trad[0].paragraphs.join(''));
  assert.ok(simp[0].paragraphs.join('').includes('壮'));
  assert.ok(poemText(simp[0]).startsWith(`《${simp[0].title}》 唐·${simp[0].author}\n`));
  const line = '00001740 00 a 01 able 0 005 = 05207437 n 0000 ! 00002098 a 0101 | (usually followed by `to\') having the necessary means; "able to swim"; "she was able to program her computer"  ';
  assert.deepEqual(parseWordnetLine(line, 'adjective'), {
    word: 'able', pos: 'adjective', gloss: "(usually followed by `to') having the necessary means",
    examples: ['able to swim', 'she was able to program her computer'],
  });
  assert.equal(readWordnet({ limit: 2 })[0].word, 'entity');
  const dir = tmp();
  try {
    writeFileSync(join(dir, 'a.txt'), 'one doc');
    writeFileSync(join(dir, 'b.jsonl'), '{"text": "x"}\n{"text": "y"}\n');
    assert.deepEqual([...readTextSources([dir])], ['one doc', 'x', 'y']);
    writeFileSync(join(dir, 'c.jsonl'), '{"txt": 1}\n');
    assert.throws(() => [...readTextSources([join(dir, 'c.jsonl')])], /no "text" string field/);
    assert.throws(() => [...readTextSources([join(dir, 'nope.txt')])], UserError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
