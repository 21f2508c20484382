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

const KEYS: Record<keyof GPTConfig, 'number' | 'boolean' | 'arch'> = {
  arch: 'arch', vocabSize: 'number', nLayer: 'number', nHead: 'number', nKvHead: 'number', nEmbd: 'number',
  intermediateSize: 'number', maxSeqLen: 'number', ropeTheta: 'number', normEps: 'number', tiedEmbeddings: 'boolean',
  scalarHead: 'boolean',
};

// Unknown keys, wrong types and inconsistent sizes are errors (the config is saved with every checkpoint).
export function validateConfig(c: GPTConfig): GPTConfig {
  const bad = (msg: string) => new UserError(`invalid model config: ${msg}`, 'check the preset, the overrides or config.json');
  for (const k of Object.keys(c)) {
    if (!(k in KEYS)) throw bad(`unknown key "${k}"`);
  }
  for (const [k, kind] of Object.entries(KEYS) as [keyof GPTConfig, string][]) {
    const v = c[k];
    if (v === undefined && k === 'scalarHead') continue;
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
  return c;
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
  return `${c.arch} L=${c.nLayer} C=${c.nEmbd} H=${c.nHead}${kv} I=${c.intermediateSize} V=${c.vocabSize} ` +
    `T=${c.maxSeqLen}${c.tiedEmbeddings ? ' tied' : ''}${c.scalarHead ? ' scalar-head' : ''}`;
}
