// Streaming with a real byte-level BPE tokenizer: characters split over several tokens (CJK, emoji) must never show up
// as U+FFFD in a delta, the deltas must add up to the text, and a stop string spread over tokens is cut. The model is
// a script (it puts all the probability on the next token of a fixed text), so the tokens are known in advance.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { trainTokenizer, type Tokenizer } from '../src/tokenizer/index.js';
import type { GPT } from '../src/model/gpt.js';
import { generate, generateStream } from '../src/generate/index.js';

// Emits script[i] as the i-th generated token (greedy), whatever the input; enough of GPT's surface for the engine.
function scriptedModel(vocabSize: number, promptLen: number, script: number[]): GPT {
  return {
    config: { vocabSize, maxSeqLen: 256 },
    newKVCache(batch: number, maxT: number) {
      const lens = new Int32Array(batch);
      return { lens, maxT, batch, reset: () => lens.fill(0) };
    },
    forwardCached(ids: Int32Array, B: number, Tq: number, cache: { lens: Int32Array }, opts: { rows?: ArrayLike<number> } = {}) {
      const out = new Float32Array(B * vocabSize);
      for (let b = 0; b < B; b++) {
        const r = opts.rows ? opts.rows[b] : b;
        cache.lens[r] += Tq;
        const i = cache.lens[r] - promptLen;
        out[b * vocabSize + (script[i] ?? 0)] = 20;
      }
      return out;
    },
  } as unknown as GPT;
}

const english = 'the sea was calm and the moon was bright over the quiet harbour. ';
let tok: Tokenizer;

test('deltas never contain U+FFFD for characters split over tokens, and add up to the text', async () => {
  tok = trainTokenizer([english.repeat(30)], { vocabSize: 300 });
  const text = 'moon 春眠不觉晓，处处闻啼鸟 🌸🌙 harbour é';
  const ids = tok.encode(text);
  const split = ids.filter((id) => tok.decode([id]).includes('\uFFFD')).length;
  assert.ok(split > 0, 'the text should have characters split over tokens for this test to mean anything');
  const prompt = tok.encode('the sea');
  const model = scriptedModel(tok.vocabSize, prompt.length, [...ids, tok.eot]);
  let joined = '';
  const deltas: string[] = [];
  for await (const c of generateStream(model, tok, prompt, { maxNewTokens: 200, temperature: 0 })) {
    deltas.push(c.delta);
    joined += c.delta;
    if (c.result) {
      assert.equal(c.result.finishReason, 'stop');
      assert.equal(c.result.stopToken, tok.eot);
      assert.deepEqual(c.result.ids, ids);
    }
  }
  for (const d of deltas) assert.ok(!d.includes('\uFFFD'), `a delta holds U+FFFD: ${JSON.stringify(d)}`);
  assert.equal(joined, text);
});

test('a stop string made of split multi-byte characters is found and cut', () => {
  const text = 'moon 春眠不觉晓，处处闻啼鸟';
  const ids = tok.encode(text);
  const prompt = tok.encode('the sea');
  const model = scriptedModel(tok.vocabSize, prompt.length, [...ids, tok.eot]);
  const r = generate(model, tok, prompt, { maxNewTokens: 200, temperature: 0, stop: ['觉晓'] });
  assert.equal(r.text, 'moon 春眠不');
  assert.equal(r.finishReason, 'stop');
  assert.equal(r.stopString, '觉晓');
  assert.ok(r.ids.length < ids.length);
  // maxNewTokens cuts with 'length'
  const cut = generate(model, tok, prompt, { maxNewTokens: 6, temperature: 0 });
  assert.equal(cut.finishReason, 'length');
  assert.deepEqual(cut.ids, ids.slice(0, 6));
});
