// Shared by the serve tests (not a test file): a tiny trained tokenizer and tiny random-weight models, served in-process
// on 127.0.0.1 at a free port, and the library's own answer to compare a response with.
// The models' output layer is scaled up so their next-token distributions are peaked like a trained model's (a random
// model's are near uniform), which makes the sampler's cuts and the lottery view show something.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GPT } from '../src/model/gpt.js';
import { configFromPreset } from '../src/model/config.js';
import { saveModel } from '../src/model/checkpoint.js';
import { trainTokenizer, type Message, type Tokenizer } from '../src/tokenizer/index.js';
import { chatStopTokens, generate, type GenerateOptions, type GenerateResult } from '../src/generate/index.js';
import { servedModel, type ServedModel } from '../src/serve/models.js';
import { startServer, type RunningServer, type ServeOptions } from '../src/serve/server.js';
import { itemId, itemToJson, type SampleItem } from '../src/feedback/index.js';

const CORPUS = [
  'The sea was calm and the moon was bright over the quiet harbour.',
  'A small boat drifted past the lighthouse while the gulls slept.',
  '春眠不觉晓，处处闻啼鸟。夜来风雨声，花落知多少。',
  '床前明月光，疑是地上霜。举头望明月，低头思故乡。',
  'What does the word harbour mean? A place on the coast where ships shelter.',
];

let tok: Tokenizer | null = null;
export function tinyTokenizer(): Tokenizer {
  tok ??= trainTokenizer(Array.from({ length: 20 }, (_, i) => CORPUS.map((s) => `${s} ${i}`).join('\n')), { vocabSize: 360 });
  return tok;
}

export function tinyModel(seed: number, maxSeqLen = 256, sharpen = 6): GPT {
  const t = tinyTokenizer();
  const m = GPT.create(configFromPreset('tiny', t.vocabSize, {
    nLayer: 2, nEmbd: 64, nHead: 4, nKvHead: 2, intermediateSize: 128, maxSeqLen, tiedEmbeddings: false,
  }), seed);
  const head = m.params.get('lm_head.weight')!.data as Float32Array;
  for (let i = 0; i < head.length; i++) head[i] *= sharpen;
  return m;
}

export function served(id: string, seed: number, o: { slots?: number; maxQueue?: number; maxSeqLen?: number } = {}): ServedModel {
  return servedModel(id, tinyModel(seed, o.maxSeqLen), tinyTokenizer(), { slots: o.slots ?? 8, maxQueue: o.maxQueue ?? 32 });
}

export async function serve(o: Partial<ServeOptions> & { models: ServedModel[] }): Promise<RunningServer> {
  return startServer({ host: '127.0.0.1', port: 0, ...o });
}

// What the library itself answers for a chat with these options: the server must give the same.
export function libraryChat(sm: ServedModel, messages: Message[], o: Omit<GenerateOptions, 'maxNewTokens'> & { maxNewTokens: number }): GenerateResult {
  return generate(sm.model, sm.tokenizer, sm.tokenizer.renderForCompletion(messages), { stopTokens: chatStopTokens(sm.tokenizer), ...o });
}

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export function saveTiny(dir: string, seed: number): void {
  saveModel(dir, tinyModel(seed), tinyTokenizer());
}

// Items to rank: a poem prompt with K answers each, as `chatwright sample` writes them.
export function rankItems(n: number, K = 4): SampleItem[] {
  return Array.from({ length: n }, (_, i) => {
    const prompt: Message[] = [{ role: 'user', content: `写一首五言绝句，题目是《${'春夏秋冬山水'[i % 6]}${i}》` }];
    const responses = Array.from({ length: K }, (_, j) => `床前明月光，疑是地上霜。${i}.${j + 1}\n举头望明月，低头思故乡。`);
    return { id: itemId(prompt, responses), prompt, responses, model: 'runs/test/sft', sampling: { temperature: 1, seeds: responses.map((_, j) => 100 + j) } };
  });
}

export function writeSamples(path: string, items: SampleItem[]): void {
  writeFileSync(path, items.map((it) => JSON.stringify(itemToJson(it)) + '\n').join(''));
}
