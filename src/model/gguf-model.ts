// A GPT and its tokenizer <-> a GGUF file, as llama.cpp's convert_hf_to_gguf.py writes one and llama.cpp reads it
// (github.com/ggml-org/llama.cpp: gguf-py/gguf/constants.py for the names, src/llama-model.cpp and src/llama-vocab.cpp
// for what is read). Architectures: `llama` (our llama style), `qwen2` (llama style with q/k/v biases) and `gpt2`.
// gguf.ts knows the bytes; this file knows names, layouts, hyperparameters and the tokenizer keys.
//
// Layout conventions:
// - ggml lists dimensions innermost first, so our row-major (out, in) matrix is ne = [in, out]: no transposes, GPT-2's
//   fused c_attn included (we hold it (3C, C), llama.cpp wants attn_qkv ne = [C, 3C]).
// - llama.cpp runs the `llama` architecture with interleaved rotary pairs (x[2i], x[2i+1]) while Hugging Face rotates
//   halves (x[i], x[i + d/2]); convert_hf_to_gguf.py permutes the rows of q and k (and their biases) per head so both
//   compute the same thing, and we do the same (`permuteRows`). `qwen2` runs the halves form (NEOX): no permutation.
// - Llama 3.1 rope scaling is a `rope_freqs.weight` tensor of per-frequency divisors (convert_hf_to_gguf.py
//   LlamaModel.generate_extra_tensors); reading it back, the scaling parameters are recovered from the divisors.
// - A tied lm_head writes no output.weight; llama.cpp then uses token_embd.
import { basename } from 'node:path';
import { UserError } from '../util/errors.js';
import type { Tokenizer } from '../tokenizer/index.js';
import { tokenizerMetadata, tokenizerFromGguf } from './gguf-tokenizer.js';
import { ropeInvFreq } from '../tensor/index.js';
import { GPTConfig, RopeScaling, headDim, validateConfig } from './config.js';
import { GPT } from './gpt.js';
import { checkPlausibleWeights } from './safetensors.js';
import {
  GGML_TYPE, QK8_0, readGguf, tensorToF32, toF16Bytes, toQ8_0Bytes, f32Bytes, writeGguf, ggmlTypeName,
  type GgufFile, type GgufTensor, type GgufValue,
} from './gguf.js';

export type GgufType = 'f32' | 'f16' | 'q8_0';
const FILE_TYPE: Record<GgufType, number> = { f32: 0, f16: 1, q8_0: 7 }; // llama_ftype: ALL_F32, MOSTLY_F16, MOSTLY_Q8_0

function ggufArch(c: GPTConfig): 'llama' | 'qwen2' | 'gpt2' {
  return c.arch === 'gpt2' ? 'gpt2' : c.modelType === 'qwen2' ? 'qwen2' : 'llama';
}

// Our parameter names -> GGUF tensor names.
function ggufName(name: string): string {
  const m = /^(?:model\.layers|transformer\.h)\.(\d+)\.(.+)$/.exec(name);
  if (m) {
    const per: Record<string, string> = {
      'input_layernorm.weight': 'attn_norm.weight', 'post_attention_layernorm.weight': 'ffn_norm.weight',
      'self_attn.q_proj.weight': 'attn_q.weight', 'self_attn.k_proj.weight': 'attn_k.weight',
      'self_attn.v_proj.weight': 'attn_v.weight', 'self_attn.o_proj.weight': 'attn_output.weight',
      'self_attn.q_proj.bias': 'attn_q.bias', 'self_attn.k_proj.bias': 'attn_k.bias', 'self_attn.v_proj.bias': 'attn_v.bias',
      'mlp.gate_proj.weight': 'ffn_gate.weight', 'mlp.up_proj.weight': 'ffn_up.weight', 'mlp.down_proj.weight': 'ffn_down.weight',
      'ln_1.weight': 'attn_norm.weight', 'ln_1.bias': 'attn_norm.bias', 'ln_2.weight': 'ffn_norm.weight', 'ln_2.bias': 'ffn_norm.bias',
      'attn.c_attn.weight': 'attn_qkv.weight', 'attn.c_attn.bias': 'attn_qkv.bias',
      'attn.c_proj.weight': 'attn_output.weight', 'attn.c_proj.bias': 'attn_output.bias',
      'mlp.c_fc.weight': 'ffn_up.weight', 'mlp.c_fc.bias': 'ffn_up.bias', 'mlp.c_proj.weight': 'ffn_down.weight', 'mlp.c_proj.bias': 'ffn_down.bias',
    };
    const g = per[m[2]];
    if (g) return `blk.${m[1]}.${g}`;
  }
  const top: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight', 'model.norm.weight': 'output_norm.weight', 'lm_head.weight': 'output.weight',
    'transformer.wte.weight': 'token_embd.weight', 'transformer.wpe.weight': 'position_embd.weight',
    'transformer.ln_f.weight': 'output_norm.weight', 'transformer.ln_f.bias': 'output_norm.bias',
  };
  const g = top[name];
  if (!g) throw new UserError(`GGUF: the parameter ${name} has no GGUF name`, 'scalar-head (reward / value) models cannot be exported to GGUF');
  return g;
}

// Rows of a (nH * hd, ...) q or k matrix (or bias) from Hugging Face's rotate-half order to llama.cpp's interleaved
// pairs: new row h*hd + 2j + s = old row h*hd + s*hd/2 + j (convert_hf_to_gguf.py LlamaModel.permute); `inverse` undoes it.
export function permuteRows(x: Float32Array, nH: number, cols: number, inverse = false): Float32Array {
  const hd = x.length / cols / nH, half = hd / 2;
  const out = new Float32Array(x.length);
  for (let h = 0; h < nH; h++) {
    for (let j = 0; j < half; j++) {
      for (let s = 0; s < 2; s++) {
        const interleaved = (h * hd + 2 * j + s) * cols, halves = (h * hd + s * half + j) * cols;
        const [dst, src] = inverse ? [halves, interleaved] : [interleaved, halves];
        out.set(x.subarray(src, src + cols), dst);
      }
    }
  }
  return out;
}

// ---- export

export interface ExportResult { path: string; bytes: number; tensors: number; types: Record<string, number>; modelfile: string }

/** The GGUF metadata: general.*, the architecture's hyperparameters, tokenizer.ggml.* and the chat template. */
export function ggufMetadata(model: GPT, tokenizer: Tokenizer, type: GgufType, name: string): [string, GgufValue][] {
  const c = model.config, arch = ggufArch(c);
  const u32 = (value: number): GgufValue => ({ type: 'u32', value });
  const f32 = (value: number): GgufValue => ({ type: 'f32', value });
  const md: [string, GgufValue][] = [
    ['general.architecture', { type: 'string', value: arch }],
    ['general.name', { type: 'string', value: name }],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['general.quantization_version', u32(2)],
    [`${arch}.context_length`, u32(c.maxSeqLen)],
    [`${arch}.embedding_length`, u32(c.nEmbd)],
    [`${arch}.block_count`, u32(c.nLayer)],
    [`${arch}.feed_forward_length`, u32(c.intermediateSize)],
    [`${arch}.attention.head_count`, u32(c.nHead)],
  ];
  if (arch === 'gpt2') {
    md.push([`${arch}.attention.layer_norm_epsilon`, f32(c.normEps)]);
  } else {
    md.push([`${arch}.attention.head_count_kv`, u32(c.nKvHead)], [`${arch}.rope.freq_base`, f32(c.ropeTheta)],
      [`${arch}.attention.layer_norm_rms_epsilon`, f32(c.normEps)], [`${arch}.rope.dimension_count`, u32(headDim(c))],
      [`${arch}.vocab_size`, u32(c.vocabSize)]);
  }
  md.push(...tokenizerMetadata(tokenizer, c.vocabSize));
  return md;
}

// How each tensor is stored: 1-D (norms, biases, rope factors) always f32, as convert_hf_to_gguf.py does; q8_0 needs
// rows that are whole blocks of 32, else f16.
function encodeTensor(name: string, ne: number[], data: Float32Array, type: GgufType): GgufTensor {
  if (ne.length === 1 || type === 'f32') return { name, type: GGML_TYPE.F32, ne, data: f32Bytes(data) };
  if (type === 'q8_0' && ne[0] % QK8_0 === 0) return { name, type: GGML_TYPE.Q8_0, ne, data: toQ8_0Bytes(data) };
  return { name, type: GGML_TYPE.F16, ne, data: toF16Bytes(data) };
}

/** The model's tensors in GGUF names, layouts and the requested type. */
export function ggufTensors(model: GPT, type: GgufType): GgufTensor[] {
  const c = model.config, arch = ggufArch(c), hd = headDim(c);
  const out: GgufTensor[] = [];
  for (const p of model.layout) {
    let data = model.flat.subarray(p.offset, p.offset + p.size);
    if (arch === 'llama' && /self_attn\.[qk]_proj\./.test(p.name)) {
      const nH = p.name.includes('q_proj') ? c.nHead : c.nKvHead;
      data = permuteRows(data, nH, p.shape.length === 2 ? p.shape[1] : 1);
    }
    out.push(encodeTensor(ggufName(p.name), [...p.shape].reverse(), data, type));
  }
  if (c.ropeScaling) {
    const base = ropeInvFreq(hd, c.ropeTheta), scaled = ropeInvFreq(hd, c.ropeTheta, c.ropeScaling);
    const factors = base.map((b, i) => b / scaled[i]);
    out.push({ name: 'rope_freqs.weight', type: GGML_TYPE.F32, ne: [hd / 2], data: f32Bytes(factors) });
  }
  return out;
}

/** Writes the GGUF file and returns what it holds, with an Ollama Modelfile for it. */
export function exportGguf(model: GPT, tokenizer: Tokenizer, path: string, type: GgufType, name = basename(path, '.gguf')): ExportResult {
  if (model.config.scalarHead) throw new UserError('GGUF: a reward / value model (scalar head) cannot be exported', 'export a language model (pretrain, sft, dpo or ppo output)');
  const md = ggufMetadata(model, tokenizer, type, name);
  const tensors = ggufTensors(model, type);
  writeGguf(path, md, tensors);
  const types: Record<string, number> = {};
  let bytes = 0;
  for (const t of tensors) {
    types[ggmlTypeName(t.type)] = (types[ggmlTypeName(t.type)] ?? 0) + 1;
    bytes += t.data.length;
  }
  return { path, bytes, tensors: tensors.length, types, modelfile: ollamaModelfile(basename(path), tokenizer) };
}

/**
 * An Ollama Modelfile for the exported file. Ollama recognises the chat templates of known model families from
 * tokenizer.chat_template; ours it cannot, so the same template is given in Ollama's Go-template syntax.
 */
export function ollamaModelfile(file: string, tokenizer: Tokenizer): string {
  const parts = tokenizer.toParts();
  const lines = [`FROM ./${file}`];
  const stops = new Set<string>();
  for (const id of [tokenizer.eot, tokenizer.eos]) {
    const s = id >= 0 ? tokenizer.specialName(id) : undefined;
    if (s) stops.add(s);
  }
  if (parts.chatTemplate === undefined && tokenizer.user >= 0) {
    lines.push('TEMPLATE """{{- range .Messages }}' +
      '{{- if eq .Role "system" }}<|system|>{{ .Content }}<|eot|>' +
      '{{- else if eq .Role "user" }}<|user|>{{ .Content }}<|eot|>' +
      '{{- else if eq .Role "assistant" }}<|assistant|>{{ .Content }}<|eot|>{{ end }}' +
      '{{- end }}<|assistant|>"""');
  }
  for (const s of stops) lines.push(`PARAMETER stop "${s}"`);
  return lines.join('\n') + '\n';
}

// ---- import

/** A model and its tokenizer from a GGUF file; F32/F16/BF16/Q8_0 tensors dequantised to float32. */
export function loadGgufModel(path: string): { model: GPT; tokenizer: Tokenizer | null; info: { dtypes: string[]; files: string[]; note?: string } } {
  const f = readGguf(path);
  const config = configFromGguf(f, path);
  const model = new GPT(config);
  const seen = new Set<string>();
  for (const p of model.layout) {
    const gname = ggufName(p.name);
    const t = f.tensors.get(gname);
    const ne = [...p.shape].reverse();
    if (!t) throw new UserError(`${path}: tensor ${gname} is missing`, 'the file does not hold a complete model of its architecture');
    if (t.ne.join() !== ne.join()) {
      throw new UserError(`${path}: tensor ${gname} has ne [${t.ne}] but the metadata needs [${ne}]`, 'the file is inconsistent');
    }
    let data = tensorToF32(t, path);
    checkPlausibleWeights(path, gname, data);
    if (ggufArch(config) === 'llama' && /self_attn\.[qk]_proj\./.test(p.name)) {
      data = permuteRows(data, p.name.includes('q_proj') ? config.nHead : config.nKvHead, p.shape.length === 2 ? p.shape[1] : 1, true);
    }
    model.flat.set(data, p.offset);
    seen.add(gname);
  }
  if (config.ropeScaling) seen.add('rope_freqs.weight');
  for (const name of f.tensors.keys()) {
    if (!seen.has(name) && name !== 'output.weight') {
      throw new UserError(`${path}: unexpected tensor ${name}`, 'the architecture has parameters chatwright does not know');
    }
  }
  const dtypes = [...new Set([...f.tensors.values()].map((t) => ggmlTypeName(t.type)))].sort();
  const narrow = dtypes.filter((d) => d !== 'F32');
  const note = narrow.length > 0 ? `${path} stores ${narrow.join('/').toLowerCase()} tensors; dequantised to float32 in memory ` +
    `(${(model.flat.byteLength / 2 ** 30).toFixed(2)} GiB)` : undefined;
  return { model, tokenizer: tokenizerFromGguf(f, path), info: { dtypes, files: [path], ...(note ? { note } : {}) } };
}

function configFromGguf(f: GgufFile, what: string): GPTConfig {
  const md = f.metadata;
  const arch = md.get('general.architecture');
  if (arch !== 'llama' && arch !== 'qwen2' && arch !== 'gpt2') {
    throw new UserError(`${what}: architecture ${JSON.stringify(arch)} is not supported`, 'chatwright reads GGUF files of the llama, qwen2 and gpt2 architectures');
  }
  const num = (k: string, dflt?: number): number => {
    const v = md.get(`${arch}.${k}`) ?? dflt;
    if (typeof v !== 'number') throw new UserError(`${what}: metadata ${arch}.${k} is missing or not a number`, 'the file is incomplete');
    return v;
  };
  const embd = f.tensors.get('token_embd.weight');
  if (!embd || embd.ne.length !== 2) throw new UserError(`${what}: no 2-D token_embd.weight tensor`, 'the file is incomplete');
  const nEmbd = num('embedding_length'), nHead = num('attention.head_count');
  const tied = !f.tensors.has('output.weight');
  let c: GPTConfig;
  if (arch === 'gpt2') {
    c = {
      arch: 'gpt2', vocabSize: embd.ne[1], nLayer: num('block_count'), nHead, nKvHead: nHead, nEmbd,
      intermediateSize: num('feed_forward_length'), maxSeqLen: num('context_length'), ropeTheta: 10000,
      normEps: num('attention.layer_norm_epsilon', 1e-5), tiedEmbeddings: tied,
    };
  } else {
    if (md.has(`${arch}.rope.dimension_count`) && num('rope.dimension_count') !== nEmbd / nHead) {
      throw new UserError(`${what}: partial rotary (rope.dimension_count ${num('rope.dimension_count')} of head dim ${nEmbd / nHead}) is not supported`);
    }
    c = {
      arch: 'llama', vocabSize: embd.ne[1], nLayer: num('block_count'), nHead, nKvHead: num('attention.head_count_kv', nHead),
      nEmbd, intermediateSize: num('feed_forward_length'), maxSeqLen: num('context_length'),
      ropeTheta: num('rope.freq_base', 10000), normEps: num('attention.layer_norm_rms_epsilon', 1e-5), tiedEmbeddings: tied,
      ...(arch === 'qwen2' ? { qkvBias: true, modelType: 'qwen2' as const } : {}),
    };
    const rf = f.tensors.get('rope_freqs.weight');
    if (rf) c.ropeScaling = scalingFromFactors(tensorToF32(rf), c, what);
  }
  const bos = md.get('tokenizer.ggml.bos_token_id'), eos = md.get('tokenizer.ggml.eos_token_id');
  if (typeof bos === 'number' && bos < c.vocabSize) c.bosTokenId = bos;
  if (typeof eos === 'number' && eos < c.vocabSize) c.eosTokenIds = [eos];
  try {
    return validateConfig(c);
  } catch (e) {
    if (e instanceof UserError) throw new UserError(`${what}: ${e.message}`, 'the metadata of the file is corrupt or describes a model chatwright cannot run');
    throw e;
  }
}

// Llama 3.1 scaling parameters that reproduce rope_freqs' divisors. In the interpolated band the divisor is
// 1 / ((1 - s) / factor + s) with s = a / wavelen - b (a = ctx / (hi - lo), b = lo / (hi - lo)), so only a and b are
// determined: two band frequencies give both; with fewer, Meta's lo = 1, hi = 4 are assumed and ctx fitted. The
// result is checked against every divisor.
function scalingFromFactors(fac: Float32Array, c: GPTConfig, what: string): RopeScaling {
  const hd = headDim(c), factor = Math.max(...fac), base = ropeInvFreq(hd, c.ropeTheta);
  const fits = (r: RopeScaling) => {
    const s = ropeInvFreq(hd, c.ropeTheta, r);
    return base.every((b, i) => Math.abs(b / s[i] - fac[i]) <= 1e-4 * fac[i]);
  };
  const llama3 = (lo: number, hi: number, ctx: number): RopeScaling =>
    ({ type: 'llama3', factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositionEmbeddings: ctx });
  const candidates = [llama3(1, 4, 8192)];
  const wavelen = Array.from(base, (b) => (2 * Math.PI) / b);
  const band: [number, number][] = []; // (1 / wavelen, s)
  for (let i = 0; i < fac.length; i++) {
    if (fac[i] > 1 + 1e-5 && fac[i] < factor * (1 - 1e-5)) band.push([1 / wavelen[i], (1 / fac[i] - 1 / factor) / (1 - 1 / factor)]);
  }
  if (band.length >= 2) {
    const [[x0, s0], [x1, s1]] = [band[0], band[band.length - 1]];
    const a = (s1 - s0) / (x1 - x0), b = a * x0 - s0;
    candidates.push(llama3(b, b + 1, a));
  } else if (band.length === 1) {
    candidates.push(llama3(1, 4, 3 * (band[0][1] + 1 / 3) / band[0][0]));
  } else {
    const slowed = wavelen.filter((_, i) => fac[i] > 1 + 1e-5);
    if (slowed.length > 0) candidates.push(llama3(1, 4, Math.min(...slowed) * 0.999));
  }
  for (const r of candidates) if (r.lowFreqFactor > 0 && r.originalMaxPositionEmbeddings > 0 && fits(r)) return r;
  throw new UserError(`${what}: rope_freqs.weight does not follow Llama 3.1's rope scaling`, 'this rope scaling is not supported');
}
