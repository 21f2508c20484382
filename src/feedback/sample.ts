// Sampling K answers per prompt: the raw material of preference collection (InstructGPT, Ouyang et al. 2022, Sec. 3.5:
// labelers rank K = 4..9 outputs per prompt). Each answer is drawn through the sampler chain (src/generate) with its own
// seed, seed + promptIndex * K + j, so any one answer can be redrawn alone and a resumed run draws exactly what an
// uninterrupted one would. The K rows of one prompt go through one generateBatch, whose engine prefills the repeated
// prompt once.
//
// Prompts: a JSONL file of {"messages": [...]} (ending with the user's turn) or {"prompt": "..." | [...]}, with an
// optional "reference" (what eval checks); or the built-in ones: the held-out poem prompts, from eval_prompts.jsonl
// beside the model when `chatwright sft` wrote one (exactly the prompts it did not train on), else rebuilt from the
// chinese-poetry corpus by the same held-out split.
// Boundary: a model and prompts in, items (items.ts) out; the CLI writes them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { parseJsonlLog } from '../util/jsonl.js';
import { readFileChecked } from '../util/fsx.js';
import type { GPT } from '../model/gpt.js';
import type { Message, Tokenizer } from '../tokenizer/index.js';
import { generateBatch, resolveSampling, type SamplingOptions } from '../generate/index.js';
import { builtinDemos, PROMPTS_FILE, type Reference } from '../train/demos.js';
import { itemId, promptMessages, type SampleItem } from './items.js';

export interface PromptSpec {
  messages: Message[];
  reference?: Reference;
}

export function parsePromptsJsonl(text: string | Buffer, name: string): PromptSpec[] {
  const log = parseJsonlLog(Buffer.isBuffer(text) ? text : Buffer.from(text, 'utf8'), name);
  if (log.torn) throw new UserError(`${name}: the last line is incomplete`, 'fix or remove it');
  const out = log.records.map((v, i) => {
    const o = v as Record<string, unknown>;
    const where = `${name} record ${i + 1}`;
    if (!('messages' in o) && !('prompt' in o)) throw new UserError(`${where}: needs "messages" or "prompt"`, 'each line is {"messages": [...]} or {"prompt": "..."}');
    const spec: PromptSpec = { messages: promptMessages(o.messages ?? o.prompt, where) };
    if (o.reference && typeof o.reference === 'object') spec.reference = o.reference as Reference;
    return spec;
  });
  if (out.length === 0) throw new UserError(`${name}: no prompts`);
  return out;
}

export function readPromptsFile(path: string): PromptSpec[] {
  if (!existsSync(path)) throw new UserError(`prompts file not found: ${path}`, 'give a JSONL file of {"messages": [...]} or {"prompt": "..."}, or `builtin`');
  return parsePromptsJsonl(readFileChecked(path, 'prompts file'), path);
}

// The held-out poem-writing prompts: from the model folder when it has them, else from the corpus.
export function builtinPrompts(modelDir: string | undefined, max = 50): { prompts: PromptSpec[]; source: string } {
  const saved = modelDir ? join(modelDir, PROMPTS_FILE) : '';
  const all = saved && existsSync(saved)
    ? { prompts: parsePromptsJsonl(readFileChecked(saved, 'prompts file'), saved), source: saved }
    : { prompts: builtinDemos('chinese-poetry', { limit: 20000, maxPrompts: max }).prompts, source: 'chinese-poetry held-out split' };
  const poems = all.prompts.filter((p) => p.reference?.task === 'poem-form').slice(0, max);
  if (poems.length === 0) throw new UserError(`no poem prompts in ${all.source}`, 'give --prompts FILE');
  return { prompts: poems, source: all.source };
}

export interface SampleOptions {
  k: number;                 // answers per prompt
  sampling: SamplingOptions; // the chain's settings; sampling.seed is the base seed
  maxNewTokens: number;
  model: string;             // recorded in each item (the model folder)
  rows?: number;             // rows decoded together (default 16: floor(16 / k) prompts per batch)
}

// The settings recorded in every item (and compared when a run resumes).
export function samplingRecord(o: SampleOptions, vocabSize: number): Record<string, unknown> {
  const r = resolveSampling(o.sampling, vocabSize);
  return {
    temperature: r.temperature, topK: r.topK, topP: r.topP, minP: r.minP, repetitionPenalty: r.repetitionPenalty,
    presencePenalty: r.presencePenalty, frequencyPenalty: r.frequencyPenalty,
    ...(r.logitBias.size ? { logitBias: Object.fromEntries(r.logitBias) } : {}),
    maxNewTokens: o.maxNewTokens, k: o.k, seed: r.seed,
  };
}

// Sample prompts[from..] in batches; onItem is called for each item in prompt order (the CLI appends it to the file).
export function sampleItems(
  model: GPT, tokenizer: Tokenizer, prompts: PromptSpec[], o: SampleOptions,
  hooks: { from?: number; onItem?: (item: SampleItem, index: number) => void } = {},
): SampleItem[] {
  if (!Number.isInteger(o.k) || o.k < 2) throw new UserError(`k must be an integer >= 2, got ${o.k}`);
  const settings = samplingRecord(o, model.config.vocabSize);
  const base = settings.seed as number;
  const per = Math.max(1, Math.floor((o.rows ?? 16) / o.k));
  const out: SampleItem[] = [];
  const maxT = model.config.maxSeqLen;
  for (let i = hooks.from ?? 0; i < prompts.length; i += per) {
    const group = prompts.slice(i, Math.min(prompts.length, i + per));
    const ids = group.map((p) => tokenizer.renderForCompletion(p.messages));
    const rows: number[][] = [];
    const opts = [];
    for (let g = 0; g < group.length; g++) {
      const room = maxT - ids[g].length;
      if (room < 1) throw new UserError(`prompt ${i + g + 1} is ${ids[g].length} tokens; the model's context holds ${maxT}`, 'shorten it');
      for (let j = 0; j < o.k; j++) {
        rows.push(ids[g]);
        opts.push({ ...o.sampling, seed: base + (i + g) * o.k + j, maxNewTokens: Math.min(o.maxNewTokens, room) });
      }
    }
    const results = generateBatch(model, tokenizer, rows, opts);
    group.forEach((p, g) => {
      const rs = results.slice(g * o.k, (g + 1) * o.k);
      const responses = rs.map((r) => r.text);
      const item: SampleItem = {
        id: itemId(p.messages, responses), prompt: p.messages, responses, model: o.model,
        sampling: { ...settings, seeds: rs.map((_, j) => base + (i + g) * o.k + j) },
        ...(p.reference ? { reference: p.reference } : {}),
        finish: rs.map((r) => r.finishReason),
      };
      out.push(item);
      hooks.onItem?.(item, i + g);
    });
  }
  return out;
}
