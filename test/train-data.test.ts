// Data preparation (src/stages/data.ts): documents from .jsonl and .txt sources come back from the shards, in order,
// each behind <|bos|>, split between train and val as documented; the manifest is written last.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainTokenizer, Tokenizer } from '../src/tokenizer/index.js';
import { prepareData } from '../src/stages/data.js';
import { loadSplit } from '../src/train/shards.js';
import { UserError } from '../src/util/errors.js';

test('prepareData: round trip of .jsonl and .txt documents through the shards', () => {
  const root = mkdtempSync(join(tmpdir(), 'cw-data-'));
  try {
    const docs = Array.from({ length: 9 }, (_, i) => `document ${i}: ${'lorem ipsum '.repeat(i + 1)}诗${i}`);
    writeFileSync(join(root, 'a.jsonl'), docs.slice(0, 8).map((text) => JSON.stringify({ text })).join('\n') + '\n');
    writeFileSync(join(root, 'b.txt'), docs[8]);
    trainTokenizer(docs, { vocabSize: 300 }).save(join(root, 'tok'));
    const tok = Tokenizer.load(join(root, 'tok'));
    const out = join(root, 'data');
    const m = prepareData({ corpus: [join(root, 'a.jsonl'), join(root, 'b.txt')], tokenizer: join(root, 'tok'), out, valFraction: 0.25, shardTokens: 64 });
    // every 4th document from the first is held out
    const valDocs = docs.filter((_, i) => i % 4 === 0), trainDocs = docs.filter((_, i) => i % 4 !== 0);
    const expect = (ds: string[]) => ds.flatMap((d) => [tok.bos, ...tok.encode(d)]);
    assert.deepEqual([...loadSplit(out, 'train')], expect(trainDocs));
    assert.deepEqual([...loadSplit(out, 'val')], expect(valDocs));
    assert.ok(m.train.length > 1, 'several shards');
    assert.equal(m.vocabSize, tok.vocabSize);
    assert.ok(existsSync(join(out, 'manifest.json')) && existsSync(join(out, 'tokenizer', 'tokenizer.json')));
    // a failed preparation leaves no manifest behind
    assert.throws(() => prepareData({ corpus: [join(root, 'nope.txt')], tokenizer: join(root, 'tok'), out, valFraction: 0.25 }), UserError);
    assert.ok(!existsSync(join(out, 'manifest.json')));
  } finally { rmSync(root, { recursive: true, force: true }); }
});
