// The llama.cpp peer of bench/generate.ts: the same model exported to GGUF (f32 and q8_0, the q8_0 file holding the
// same block_q8_0 bytes our q8_0 inference uses), run by llama.cpp through node-llama-cpp on the CPU with the same
// thread count, prompts and greedy sampling: prefill of the long prompt, decode at batch 1 and at batch 8 (eight
// sequences of one context, which llama.cpp batches into one forward per step).
//
// It needs two things that arrive with the GGUF work: `exportGguf(model, tokenizer, path, type)` in
// src/model/gguf-model.ts and the node-llama-cpp devDependency (3.21.1). Both are loaded at run time; while either is
// missing, llamaPeer returns a line saying which, and bench/generate.ts prints it in place of the figures.
// A GGUF file needs a tokenizer: one is trained on the built-in chinese-poetry corpus with the model's vocabulary size
// (the token ids the bench feeds are plain ids below it, so its merges do not matter).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { GPT } from '../src/model/gpt.js';
import { trainTokenizer, type Tokenizer } from '../src/tokenizer/index.js';
import { corpusDocuments } from '../src/train/corpora.js';

export interface PeerFigures { prefill: number; decode1: number; decode8: number } // tokens/s, medians
export interface LlamaSetup { prompt: number[]; prompts: number[][]; decode: number; rounds: number; threads: number }

type ExportGguf = (model: GPT, tokenizer: Tokenizer, path: string, type: 'f32' | 'q8_0') => unknown;
// the part of node-llama-cpp's API used here (its types come with the package, which may be absent)
interface LlamaSequence {
  clearHistory(): Promise<void>;
  evaluate(tokens: number[], o: { temperature: number }): AsyncGenerator<number>;
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
}
interface LlamaContext { getSequence(): LlamaSequence; dispose(): Promise<void> }
interface LlamaModel { createContext(o: object): Promise<LlamaContext>; dispose(): Promise<void> }
interface Llama { loadModel(o: object): Promise<LlamaModel>; dispose?(): Promise<void> }

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function benchTokenizer(vocabSize: number): Tokenizer {
  const docs: string[] = [];
  let bytes = 0;
  for (const d of corpusDocuments('chinese-poetry')) {
    docs.push(d);
    if ((bytes += d.length) > 3e6) break;
  }
  return trainTokenizer(docs, { vocabSize });
}

// figures per GGUF type (f32, q8_0), and the greedy tokens of the first batch-1 prompt (the token after the prompt
// and `decode` more, as bench/generate.ts records ours)
export async function llamaPeer(model: GPT, s: LlamaSetup): Promise<{ figures: Record<string, PeerFigures>; greedy: Record<string, number[]> } | string> {
  let exportGguf: ExportGguf | undefined;
  try {
    const modPath = '../src/model/gguf-model.js'; // a variable: the module may not exist yet, and that is not an error here
    exportGguf = ((await import(modPath)) as { exportGguf?: ExportGguf }).exportGguf;
  } catch {
    // handled below
  }
  if (typeof exportGguf !== 'function') return 'llama.cpp not measured: no GGUF export here yet (src/model/gguf-model.ts exportGguf)';
  let getLlama: ((o: object) => Promise<Llama>) | undefined;
  try {
    const pkg = 'node-llama-cpp';
    getLlama = ((await import(pkg)) as { getLlama?: typeof getLlama }).getLlama;
  } catch {
    // handled below
  }
  if (typeof getLlama !== 'function') return 'llama.cpp not measured: the npm package node-llama-cpp (3.21.1) is not installed';

  const tokenizer = benchTokenizer(model.config.vocabSize);
  if (tokenizer.vocabSize !== model.config.vocabSize) {
    return `llama.cpp not measured: the bench tokenizer has ${tokenizer.vocabSize} tokens, the model ${model.config.vocabSize}`;
  }
  const dir = mkdtempSync(join(tmpdir(), 'cw-bench-gguf-'));
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
  const figures: Record<string, PeerFigures> = {}, greedy: Record<string, number[]> = {};
  try {
    for (const type of ['f32', 'q8_0'] as const) {
      const path = join(dir, `model-${type}.gguf`);
      exportGguf(model, tokenizer, path, type);
      const m = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
      const ctx = await m.createContext({
        contextSize: Math.max(s.prompt.length, 16 + s.decode) + 8, sequences: s.prompts.length, batchSize: 512, threads: s.threads,
      });
      const seqs = Array.from({ length: s.prompts.length }, () => ctx.getSequence());
      const f = { prefill: [] as number[], decode1: [] as number[], decode8: [] as number[] };
      // greedy decode of `rows` sequences at once; tokens/s of the steps after the first token (the prefill's)
      const decode = async (rows: number) => {
        let t1 = 0, n = 0;
        await Promise.all(seqs.slice(0, rows).map(async (seq, b) => {
          await seq.clearHistory();
          let k = 0;
          const ids: number[] = [];
          for await (const id of seq.evaluate(s.prompts[b], { temperature: 0 })) {
            if (k === 0 && t1 === 0) t1 = performance.now();
            if (k > 0) n++;
            ids.push(id);
            if (++k > s.decode) break;
          }
          if (rows === 1) greedy[type] = ids;
        }));
        return n / ((performance.now() - t1) / 1000);
      };
      for (let r = 0; r <= s.rounds; r++) {
        await seqs[0].clearHistory();
        const t0 = performance.now();
        await seqs[0].evaluateWithoutGeneratingNewTokens(s.prompt);
        if (r > 0) f.prefill.push(s.prompt.length / ((performance.now() - t0) / 1000)); // the first is a warm-up
        if (r > 0) f.decode1.push(await decode(1));
        if (r > 0) f.decode8.push(await decode(s.prompts.length));
      }
      figures[type] = { prefill: median(f.prefill), decode1: median(f.decode1), decode8: median(f.decode8) };
      await ctx.dispose();
      await m.dispose();
    }
  } catch (e) {
    return `llama.cpp run failed: ${e instanceof Error ? e.message.split('\n')[0] : String(e)}`;
  } finally {
    await llama.dispose?.();
    rmSync(dir, { recursive: true, force: true });
  }
  return { figures, greedy };
}
