// The GPT architecture config: one family, two styles. Knows nothing about tensors or files; checkpoint.ts maps it to
// and from Hugging Face config.json.
//
// - 'llama' (default): RMSNorm, rotary embeddings (HF rotate_half), SwiGLU MLP, grouped-query attention, no biases
//   (Touvron et al. 2023, "LLaMA"; HF transformers `modeling_llama.py`).
// - 'gpt2': LayerNorm with bias, learned positions, GELU (tanh approximation, "gelu_new"), biases, tied embeddings,
//   nKvHead == nHead (Radford et al. 2019; HF `modeling_gpt2.py`; nanoGPT `model.py`).
import { UserError } from '../util/errors.js';

export interface GPTConfig {
  arch: 'llama' | 'gpt2';
  vocabSize: number;
  nLayer: number;
  nHead: number;
  nKvHead: number;          // grouped-query attention: query head h reads kv head floor(h / (nHead / nKvHead))
  nEmbd: number;
  intermediateSize: number; // MLP hidden width (SwiGLU: gate/up width; GPT-2: c_fc width, usually 4 * nEmbd)
  maxSeqLen: number;        // rotary table length / learned position table rows
  ropeTheta: number;        // rotary base (llama only)
  normEps: number;
  tiedEmbeddings: boolean;  // lm_head shares the token embedding matrix
  scalarHead?: boolean;     // reward / value models: a (1, nEmbd) `score` head instead of the lm head
  // ---- Llama-family variants and checkpoint facts (optional; absent means plain Llama / unknown); validateVariants.
  qkvBias?: boolean;        // q/k/v projections carry biases (Qwen2 / Qwen2.5)
  ropeScaling?: RopeScaling; // Llama 3.1+ long-context frequency scaling
  modelType?: 'llama' | 'qwen2'; // the Hugging Face model_type a llama-style config is written as (default llama)
  bosTokenId?: number;      // from config.json, kept when a model is saved without a tokenizer
  eosTokenIds?: number[];   // config.json's eos_token_id (one id or a list, as Llama 3 instruct models have)
}

// Llama 3.1's rope scaling (HF transformers `_compute_llama3_parameters`, rope_type "llama3"): wavelengths longer than
// originalMaxPositionEmbeddings / lowFreqFactor are slowed by `factor`, shorter than .../ highFreqFactor kept, and the
// band between interpolated.
export interface RopeScaling {
  type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number;
}

// Sizes chosen so the matrix shapes are multiples of 64/128 (efficient GEMM tiles). Vocab comes from the tokenizer.
// Non-embedding parameters (llama style): tiny ~0.8M, small ~9.4M, medium ~83M (GPT-2 small is 85M).
export const PRESETS: Record<'tiny' | 'small' | 'medium', Omit<GPTConfig, 'vocabSize'>> = {
  tiny: {
    arch: 'llama', nLayer: 4, nHead: 4, nKvHead: 2, nEmbd: 128, intermediateSize: 384,
    maxSeqLen: 256, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true,
  },
  small: {
    arch: 'llama', nLayer: 6, nHead: 6, nKvHead: 2, nEmbd: 384, intermediateSize: 1024,
    maxSeqLen: 512, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true,
  },
  medium: {
    arch: 'llama', nLayer: 12, nHead: 12, nKvHead: 4, nEmbd: 768, intermediateSize: 2304,
    maxSeqLen: 1024, ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true,
  },
};

export type PresetName = keyof typeof PRESETS;

// A preset with the tokenizer's vocab and optional overrides, validated. arch 'gpt2' switches to GPT-2 conventions:
// nKvHead = nHead and intermediateSize = 4 * nEmbd unless given.
export function configFromPreset(name: string, vocabSize: number, overrides: Partial<GPTConfig> = {}): GPTConfig {
  if (!(name in PRESETS)) {
    throw new UserError(`unknown model preset "${name}"`, `choose one of: ${Object.keys(PRESETS).join(', ')}`);
  }
  const base = { ...PRESETS[name as PresetName], vocabSize };
  if (overrides.arch === 'gpt2') {
    base.nKvHead = overrides.nHead ?? base.nHead;
    base.intermediateSize = 4 * (overrides.nEmbd ?? base.nEmbd);
  }
  return validateConfig({ ...base, ...overrides });
}

const KEYS: Record<keyof GPTConfig, 'number' | 'boolean' | 'arch' | 'variant'> = {
  arch: 'arch', vocabSize: 'number', nLayer: 'number', nHead: 'number', nKvHead: 'number', nEmbd: 'number',
  intermediateSize: 'number', maxSeqLen: 'number', ropeTheta: 'number', normEps: 'number', tiedEmbeddings: 'boolean',
  scalarHead: 'boolean', qkvBias: 'boolean', ropeScaling: 'variant', modelType: 'variant', bosTokenId: 'variant',
  eosTokenIds: 'variant',
};

// Unknown keys, wrong types and inconsistent sizes are errors (the config is saved with every checkpoint).
export function validateConfig(c: GPTConfig): GPTConfig {
  const bad = (msg: string) => new UserError(`invalid model config: ${msg}`, 'check the preset, the overrides or config.json');
  for (const k of Object.keys(c)) {
    if (!(k in KEYS)) throw bad(`unknown key "${k}"`);
  }
  for (const [k, kind] of Object.entries(KEYS) as [keyof GPTConfig, string][]) {
    const v = c[k];
    if (v === undefined && (k === 'scalarHead' || k === 'qkvBias')) continue;
    if (kind === 'variant') continue; // validateVariants
    if (kind === 'arch') {
      if (v !== 'llama' && v !== 'gpt2') throw bad(`arch must be "llama" or "gpt2", got ${JSON.stringify(v)}`);
    } else if (typeof v !== kind) {
      throw bad(`${k} must be a ${kind}, got ${JSON.stringify(v)}`);
    }
  }
  const ints: (keyof GPTConfig)[] = ['vocabSize', 'nLayer', 'nHead', 'nKvHead', 'nEmbd', 'intermediateSize', 'maxSeqLen'];
  for (const k of ints) {
    const v = c[k] as number;
    if (!Number.isInteger(v) || v < 1) throw bad(`${k} must be a positive integer, got ${v}`);
  }
  if (!(c.normEps > 0)) throw bad(`normEps must be > 0, got ${c.normEps}`);
  if (!(c.ropeTheta > 0)) throw bad(`ropeTheta must be > 0, got ${c.ropeTheta}`);
  if (c.nEmbd % c.nHead !== 0) throw bad(`nEmbd ${c.nEmbd} is not divisible by nHead ${c.nHead}`);
  if (c.nHead % c.nKvHead !== 0) throw bad(`nHead ${c.nHead} is not divisible by nKvHead ${c.nKvHead}`);
  if (c.arch === 'llama' && (c.nEmbd / c.nHead) % 2 !== 0) throw bad(`rotary needs an even head dim, got ${c.nEmbd / c.nHead}`);
  if (c.arch === 'gpt2' && c.nKvHead !== c.nHead) throw bad(`gpt2 style has nKvHead == nHead, got ${c.nKvHead} != ${c.nHead}`);
  checkConfigRanges(c, bad);
  validateVariants(c, bad);
  return c;
}

// The optional Llama-family keys: each is checked only when present.
function validateVariants(c: GPTConfig, bad: (msg: string) => UserError): void {
  const llamaOnly = (k: string) => {
    if (c.arch !== 'llama') throw bad(`${k} applies to the llama style only`);
  };
  if (c.qkvBias) {
    llamaOnly('qkvBias');
    // transformers' Llama puts attention_bias on o_proj too; q/k/v-only biases are Qwen2's layout
    if (c.modelType !== 'qwen2') throw bad('qkvBias is the Qwen2 layout: set modelType "qwen2" with it');
  }
  if (c.modelType !== undefined) {
    llamaOnly('modelType');
    if (c.modelType !== 'llama' && c.modelType !== 'qwen2') throw bad(`modelType must be "llama" or "qwen2", got ${JSON.stringify(c.modelType)}`);
  }
  const r = c.ropeScaling;
  if (r !== undefined) {
    llamaOnly('ropeScaling');
    if (!r || typeof r !== 'object' || r.type !== 'llama3') throw bad(`ropeScaling must be {type: "llama3", ...}, got ${JSON.stringify(r)}`);
    for (const k of ['factor', 'lowFreqFactor', 'highFreqFactor', 'originalMaxPositionEmbeddings'] as const) {
      if (typeof r[k] !== 'number' || !(r[k] > 0)) throw bad(`ropeScaling.${k} must be a number > 0, got ${JSON.stringify(r[k])}`);
    }
    if (!(r.highFreqFactor > r.lowFreqFactor)) throw bad(`ropeScaling.highFreqFactor ${r.highFreqFactor} must exceed lowFreqFactor ${r.lowFreqFactor}`);
  }
  const id = (k: string, v: unknown) => {
    if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= c.vocabSize) {
      throw bad(`${k} must be a token id in 0..${c.vocabSize - 1}, got ${JSON.stringify(v)}`);
    }
  };
  if (c.bosTokenId !== undefined) id('bosTokenId', c.bosTokenId);
  if (c.eosTokenIds !== undefined) {
    if (!Array.isArray(c.eosTokenIds)) throw bad(`eosTokenIds must be an array of token ids, got ${JSON.stringify(c.eosTokenIds)}`);
    for (const e of c.eosTokenIds) id('eosTokenIds', e);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Ranges. A config.json is read from disk, so every number is checked against what a model of this family can be
// before anything is sized from it (a vocab_size of 2^31 would otherwise reach `new Float32Array` as an internal error,
// an rms_norm_eps of 1e308 or a rope_theta of Infinity would load and produce garbage). The bounds are generous: the
// largest published models of the family sit far inside them.
export const CONFIG_LIMITS = {
  vocabSize: 1 << 24,          // ids are stored as int32; the largest vocabularies in use are ~256k
  nLayer: 1024,
  nHead: 4096,
  nEmbd: 1 << 17,
  intermediateSize: 1 << 20,
  maxSeqLen: 1 << 20,          // the rotary / position tables are maxSeqLen rows
  parameters: 2 ** 31,         // floats in the flat buffer (8 GB), and as many again for the gradients
} as const;

export function checkConfigRanges(c: GPTConfig, bad: (msg: string) => Error): void {
  for (const k of ['vocabSize', 'nLayer', 'nHead', 'nEmbd', 'intermediateSize', 'maxSeqLen'] as const) {
    if (c[k] > CONFIG_LIMITS[k]) throw bad(`${k} ${c[k]} is larger than ${CONFIG_LIMITS[k]}`);
  }
  if (c.nKvHead > c.nHead) throw bad(`nKvHead ${c.nKvHead} is larger than nHead ${c.nHead}`);
  // norms divide by sqrt(mean(x^2) + eps): eps is a small positive number (1e-5, 1e-6 in published configs)
  if (!(Number.isFinite(c.normEps) && c.normEps > 0 && c.normEps < 1)) throw bad(`normEps must be in (0, 1), got ${c.normEps}`);
  // rotary frequencies theta^(-2i/d) must fall from 1 towards 0: theta > 1 (10000 to 1e6 in published configs)
  if (!(Number.isFinite(c.ropeTheta) && c.ropeTheta > 1 && c.ropeTheta <= 1e12)) throw bad(`ropeTheta must be in (1, 1e12], got ${c.ropeTheta}`);
  const params = parameterEstimate(c);
  if (params > CONFIG_LIMITS.parameters) throw bad(`the model would have ${params.toExponential(2)} parameters, more than ${CONFIG_LIMITS.parameters}`);
}

// Parameters of the config, up to the few norm and bias vectors: enough to refuse an impossible size before allocating.
function parameterEstimate(c: GPTConfig): number {
  const kv = (c.nEmbd / c.nHead) * c.nKvHead;
  const block = c.nEmbd * (2 * c.nEmbd + 2 * kv) + 3 * c.nEmbd * c.intermediateSize;
  return c.vocabSize * c.nEmbd * (c.tiedEmbeddings ? 1 : 2) + c.nLayer * block + (c.arch === 'gpt2' ? c.maxSeqLen * c.nEmbd : 0);
}

export function headDim(c: GPTConfig): number {
  return c.nEmbd / c.nHead;
}

export function describeConfig(c: GPTConfig): string {
  const kv = c.nKvHead === c.nHead ? '' : ` kv=${c.nKvHead}`;
  const arch = c.modelType && c.modelType !== 'llama' ? c.modelType : c.arch;
  return `${arch} L=${c.nLayer} C=${c.nEmbd} H=${c.nHead}${kv} I=${c.intermediateSize} V=${c.vocabSize} ` +
    `T=${c.maxSeqLen}${c.tiedEmbeddings ? ' tied' : ''}${c.qkvBias ? ' qkv-bias' : ''}` +
    `${c.ropeScaling ? ` rope-${c.ropeScaling.type}x${c.ropeScaling.factor}` : ''}${c.scalarHead ? ' scalar-head' : ''}`;
}
