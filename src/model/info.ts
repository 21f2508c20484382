// What a model is, without loading its weights: architecture, parameter count, stored dtypes, context, tokenizer and
// chat template, from a model folder's config.json, safetensors headers and tokenizer files, or a GGUF file's metadata.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readJson } from '../util/fsx.js';
import { Tokenizer, CL100K_PATTERN, GPT2_PATTERN, QWEN2_PATTERN } from '../tokenizer/index.js';
import { describeConfig, type GPTConfig } from './config.js';
import { fromHfConfig } from './checkpoint.js';
import { readSafetensorsHeader } from './safetensors.js';
import { readGguf, ggmlTypeName } from './gguf.js';
import { loadGgufModel } from './gguf-model.js';

export interface ModelInfo {
  path: string;
  format: 'huggingface' | 'gguf';
  architecture: string; // Hugging Face class name, or the GGUF general.architecture
  config: GPTConfig;
  summary: string;
  parameters: number;
  dtypes: Record<string, number>; // stored type -> tensors of it
  bytes: number; // weights on disk
  context: number;
  tokenizer: null | {
    kind: string; vocabSize: number; preTokenizer: string; bos: string | null; eos: string | null; eot: string | null;
    specialTokens: number; addBos: boolean;
  };
  chatTemplate: null | { family: string; chars: number };
  stopTokens: string[]; // what ends a turn in generation (eot, eos and generation_config.json's eos_token_id)
}

function patternName(p: string): string {
  if (p === CL100K_PATTERN) return 'GPT-4 / Llama 3 regex';
  if (p === QWEN2_PATTERN) return 'Qwen2 regex';
  if (p === GPT2_PATTERN) return 'GPT-2 regex';
  return 'custom regex';
}

// The family a chat template belongs to, by the markers it writes.
export function templateFamily(t: string): string {
  if (Tokenizer.isOwnTemplate(t)) return 'chatwright';
  if (t.includes('<|start_header_id|>')) return 'Llama 3';
  if (t.includes('<|im_start|>')) return 'ChatML (Qwen, SmolLM)';
  if (t.includes('[INST]')) return 'Llama 2 / Mistral';
  if (t.includes('<|user|>') && t.includes('</s>')) return 'Zephyr (TinyLlama chat)';
  return 'other';
}

function tokenizerInfo(tok: Tokenizer): ModelInfo['tokenizer'] {
  const name = (id: number) => (id >= 0 ? tok.specialName(id) ?? null : null);
  const parts = tok.toParts();
  return {
    kind: parts.kind === 'sentencepiece' ? 'SentencePiece-style BPE (byte fallback, ▁ metaspace)' : 'byte-level BPE',
    vocabSize: tok.vocabSize, preTokenizer: parts.kind === 'sentencepiece' ? 'none (metaspace)' : patternName(parts.pattern),
    bos: name(tok.bos), eos: name(tok.eos), eot: name(tok.eot), specialTokens: tok.specialTokens.size, addBos: tok.addBos,
  };
}

export function describeModel(path: string): ModelInfo {
  if (!existsSync(path)) throw new UserError(`not found: ${path}`, 'give a model folder (config.json + weights) or a .gguf file');
  if (statSync(path).isFile()) {
    if (!path.toLowerCase().endsWith('.gguf')) throw new UserError(`${path} is a file but not a .gguf file`, 'give a model folder or a .gguf file');
    return describeGguf(path);
  }
  const config = fromHfConfig(readJson(join(path, 'config.json'), 'model config', 'expected a model folder with config.json'), join(path, 'config.json'));
  const raw = readJson(join(path, 'config.json'), 'model config');
  const index = join(path, 'model.safetensors.index.json');
  const files = existsSync(join(path, 'model.safetensors')) ? ['model.safetensors']
    : existsSync(index) ? [...new Set(Object.values<string>(readJson(index, 'shard index').weight_map ?? {}))] : [];
  if (files.length === 0) throw new UserError(`no model.safetensors (or shard index) in ${path}`);
  const dtypes: Record<string, number> = {};
  let parameters = 0, bytes = 0;
  for (const f of files) {
    for (const [name, t] of readSafetensorsHeader(join(path, f)).tensors) {
      if (/(^|\.)attn\.(masked_)?bias$/.test(name)) continue; // GPT-2's causal-mask buffers
      const n = t.shape.reduce((a, b) => a * b, 1);
      parameters += n;
      bytes += n * (t.dtype === 'F32' ? 4 : t.dtype === 'F64' ? 8 : 2);
      dtypes[t.dtype] = (dtypes[t.dtype] ?? 0) + 1;
    }
  }
  const tok = existsSync(join(path, 'tokenizer.json')) || existsSync(join(path, 'vocab.json')) ? Tokenizer.load(path) : null;
  return finish(path, 'huggingface', String(raw.architectures?.[0] ?? raw.model_type), config, parameters, dtypes, bytes, tok);
}

function describeGguf(path: string): ModelInfo {
  const f = readGguf(path);
  const { model, tokenizer } = loadGgufModel(path);
  const dtypes: Record<string, number> = {};
  let parameters = 0, bytes = 0;
  for (const t of f.tensors.values()) {
    if (t.name !== 'rope_freqs.weight') parameters += t.ne.reduce((a, b) => a * b, 1); // a constant, not a parameter
    bytes += t.data.length;
    dtypes[ggmlTypeName(t.type)] = (dtypes[ggmlTypeName(t.type)] ?? 0) + 1;
  }
  return finish(path, 'gguf', String(f.metadata.get('general.architecture')), model.config, parameters, dtypes, bytes, tokenizer);
}

function finish(path: string, format: ModelInfo['format'], architecture: string, config: GPTConfig, parameters: number,
  dtypes: Record<string, number>, bytes: number, tok: Tokenizer | null): ModelInfo {
  const stops = new Set<string>();
  if (tok) for (const id of tok.stopTokens(config.eosTokenIds)) stops.add(tok.specialName(id) ?? String(id));
  return {
    path, format, architecture, config, summary: describeConfig(config), parameters, dtypes, bytes, context: config.maxSeqLen,
    tokenizer: tok ? tokenizerInfo(tok) : null,
    chatTemplate: tok ? { family: templateFamily(tok.chatTemplate), chars: tok.chatTemplate.length } : null,
    stopTokens: [...stops],
  };
}

export function formatModelInfo(i: ModelInfo): string {
  const m = (n: number) => (n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(1)}K`);
  const lines = [
    `${i.path}`,
    `  format        ${i.format === 'gguf' ? 'GGUF' : 'Hugging Face folder'}`,
    `  architecture  ${i.architecture} (${i.summary})`,
    `  parameters    ${m(i.parameters)} (${(i.bytes / 2 ** 20).toFixed(1)} MiB on disk; ${(i.parameters * 4 / 2 ** 20).toFixed(1)} MiB as float32 in memory)`,
    `  dtype         ${Object.entries(i.dtypes).map(([d, n]) => `${d.toLowerCase()} x${n}`).join(', ')}`,
    `  context       ${i.context} tokens${i.config.ropeScaling ? ` (rope scaling ${i.config.ropeScaling.type}, factor ${i.config.ropeScaling.factor})` : ''}`,
  ];
  if (i.tokenizer) {
    const t = i.tokenizer;
    lines.push(`  tokenizer     ${t.kind}, ${t.vocabSize} ids, ${t.preTokenizer}, ${t.specialTokens} special tokens`,
      `                bos ${t.bos ?? '-'}${t.addBos ? ' (added to prompts)' : ''}, eos ${t.eos ?? '-'}, end of turn ${t.eot ?? '-'}`);
  } else {
    lines.push('  tokenizer     none (add tokenizer.json to chat or export)');
  }
  if (i.chatTemplate) lines.push(`  chat template ${i.chatTemplate.family} (${i.chatTemplate.chars} characters of Jinja)`);
  if (i.stopTokens.length) lines.push(`  stops at      ${i.stopTokens.join(' ')}`);
  return lines.join('\n');
}
