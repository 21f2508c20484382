// SFT end to end on a tiny model: the loss counts the assistant's tokens only (and equals the mean of their
// -log p computed from the logits by hand), fine-tuning on a learnable task lowers the held-out loss and raises the form
// accuracy. (Stopping by a signal and the exact resume: test/stage-loop.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { trainTokenizer, type Tokenizer } from '../src/tokenizer/index.js';
import { GPT } from '../src/model/gpt.js';
import { saveModel, loadModel } from '../src/model/checkpoint.js';
import { noGrad, releaseTape } from '../src/tensor/index.js';
import { packConversations, makeBatch, demosToJsonl, type Conversation, type EvalPrompt } from '../src/train/demos.js';
import { sft } from '../src/stages/sft.js';
import { evaluateModel } from '../src/stages/eval.js';
import { readMetrics } from '../src/train/metrics.js';

// ---- a learnable task: "write a five-character quatrain titled X" answered by 4 lines of 5 characters, each line one of
// the four of Du Fu's 绝句 in a random order (a tiny model learns the form in a few hundred steps; random characters would
// make it count BPE pieces)
const HAN = '春风花草香江山丽日长泥融飞燕子沙暖睡鸳鸯';
const LINES = ['迟日江山丽', '春风花草香', '泥融飞燕子', '沙暖睡鸳鸯'];
function rand(seed: number) {
  let s = seed >>> 0 || 1;
  return () => ((s = Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5 >>> 0) / 2 ** 32);
}
function poem(i: number): Conversation {
  const r = rand(i * 7919 + 1);
  const title = HAN[Math.floor(r() * HAN.length)] + HAN[Math.floor(r() * HAN.length)];
  const line = () => LINES[Math.floor(r() * LINES.length)];
  const body = `${line()}，${line()}。\n${line()}，${line()}。`;
  return { messages: [{ role: 'user', content: `写一首五言绝句，题目是《${title}》` }, { role: 'assistant', content: body }] };
}
const train = Array.from({ length: 160 }, (_, i) => poem(i));
const heldout = Array.from({ length: 16 }, (_, i) => poem(1000 + i));
const prompts: EvalPrompt[] = heldout.map((c) => ({ messages: [c.messages[0]], reference: { task: 'poem-form', lines: 4, chars: 5 } }));

let tokCache: Tokenizer | null = null;
function tokenizer(): Tokenizer {
  tokCache ??= trainTokenizer(train.flatMap((c) => c.messages.map((m) => m.content)), { vocabSize: 360 });
  return tokCache;
}

function tinyModel(seed = 1): GPT {
  return GPT.create({
    arch: 'llama', vocabSize: tokenizer().vocabSize, nLayer: 2, nHead: 2, nKvHead: 2, nEmbd: 64, intermediateSize: 128,
    maxSeqLen: 64, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true,
  }, seed);
}

function sftLoss(model: GPT, ids: Int32Array, targets: Int32Array, weights: Float32Array, T: number): number {
  const l = noGrad(() => model.forward(ids, 1, T, { targets, weights }).loss!.item());
  releaseTape();
  return l;
}

test('the SFT loss is the mean -log p of the assistant tokens: user targets do not change it, assistant targets do', () => {
  const tok = tokenizer();
  const model = tinyModel();
  const c = train[0];
  const T = tok.render(c.messages).ids.length - 1;
  const packed = packConversations([c], tok, T, { pack: false });
  const b = makeBatch(packed, [0]);
  const base = sftLoss(model, b.ids, b.targets, b.weights, T);

  // reference: -log softmax(logits)[target] by hand, averaged over the positions whose target is the assistant's
  const logits = noGrad(() => model.forward(b.ids, 1, T).logits);
  const V = model.config.vocabSize;
  let sum = 0, n = 0;
  for (let t = 0; t < T; t++) {
    if (b.weights[t] === 0) continue;
    const row = logits.data.subarray(t * V, (t + 1) * V);
    let max = -Infinity;
    for (const x of row) max = Math.max(max, x);
    let z = 0;
    for (const x of row) z += Math.exp(x - max);
    sum += -(row[b.targets[t]] - max - Math.log(z));
    n++;
  }
  releaseTape();
  assert.ok(Math.abs(base - sum / n) < 1e-4, `loss ${base} vs reference ${sum / n}`);

  const special = new Set([tok.bos, tok.eos, tok.system, tok.user, tok.assistant, tok.eot, tok.pad]);
  const userPos = [...b.weights].findIndex((w, t) => w === 0 && b.targets[t] >= 0 && !special.has(b.targets[t]));
  const asstPos = [...b.weights].findIndex((w) => w === 1);
  assert.ok(userPos >= 0 && asstPos >= 0);
  const other = (id: number) => (id + 1) % V;
  const t1 = b.targets.slice();
  t1[userPos] = other(t1[userPos]);
  assert.equal(sftLoss(model, b.ids, t1, b.weights, T), base, 'changing a user target changed the loss');
  const t2 = b.targets.slice();
  t2[asstPos] = other(t2[asstPos]);
  assert.notEqual(sftLoss(model, b.ids, t2, b.weights, T), base, 'changing an assistant target did not change the loss');
});

function setup(): { dir: string; base: string; data: string; val: string } {
  const dir = mkdtempSync(join(tmpdir(), 'cw-sft-'));
  const base = join(dir, 'base');
  saveModel(base, tinyModel(), tokenizer());
  writeFileSync(join(dir, 'train.jsonl'), demosToJsonl(train));
  writeFileSync(join(dir, 'val.jsonl'), demosToJsonl(heldout));
  return { dir, base, data: join(dir, 'train.jsonl'), val: join(dir, 'val.jsonl') };
}

const quiet = () => {};
const common = {
  batchSize: 8, seqLen: 64, lr: 3e-3, minLr: 3e-4, warmup: 5, evalEvery: 0, evalAtEnd: false, peakGflops: 1, logEvery: 1000,
} as const;

test('SFT on a learnable task lowers the held-out loss and raises the form accuracy', { timeout: 120_000 }, async () => {
  const { dir, base, data, val } = setup();
  try {
    const out = join(dir, 'sft');
    const r = await sft({ ...common, init: base, data, val, out, steps: 200, lr: 5e-3, minLr: 5e-4 }, quiet);
    assert.equal(r.step, 200);
    assert.equal(r.data.train.truncated + r.data.train.skipped, 0);
    const set = { heldout, prompts };
    const before = evaluateModel(loadModel(base).model, tokenizer(), set).metrics;
    const evAfter = evaluateModel(loadModel(out).model, tokenizer(), set);
    const after = evAfter.metrics;
    if (process.env.DEBUG_SFT) console.log(evAfter.samples.slice(0, 4));
    assert.ok(after.heldoutLoss! < before.heldoutLoss! - 0.5, `held-out loss ${before.heldoutLoss} -> ${after.heldoutLoss}`);
    assert.ok(after.poemForm! >= 0.5 && after.poemForm! > before.poemForm!, `form accuracy ${before.poemForm} -> ${after.poemForm}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
