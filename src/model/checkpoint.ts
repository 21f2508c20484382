// Model directories on disk, as Hugging Face checkpoints: config.json (LlamaForCausalLM / GPT2LMHeadModel keys, or the
// *ForSequenceClassification variants for scalar-head models) + model.safetensors (+ tokenizer.json and
// tokenizer_config.json via the tokenizer). What transformers can load we write; what it writes (float32/16, bf16) we load.
// The boundary: this file maps names, layouts and configs; gpt.ts never sees a file, safetensors.ts never sees a model.
//
// Conventions handled here: GPT-2's Conv1D weights are (in, out) in files and (out, in) in our buffer (transposed both
// ways); tied embeddings write no lm_head.weight (transformers' convention) and accept one on load if it equals the
// embedding; GPT-2 files from the Hub name tensors without the "transformer." prefix and carry causal-mask buffers
// (`h.N.attn.bias`, `attn.masked_bias`), which are accepted and ignored.
// Loading checks before it allocates (the config's parameter count against the values the weights file holds) and after
// (every weight finite and below 1e8: a NaN, an Inf or an absurd value is reported with the tensor's name, never turned
// into silent garbage).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readJson, writeJsonAtomic } from '../util/fsx.js';
import { Tokenizer } from '../tokenizer/index.js';
import { GPTConfig, RopeScaling, validateConfig } from './config.js';
import { loadGgufModel } from './gguf-model.js';
import { GPT, parameterCount } from './gpt.js';
import { checkPlausibleWeights, readSafetensors, writeSafetensors, StTensor } from './safetensors.js';

const CONV1D = /\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$/;

function transpose(src: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = src[i * cols + j];
  return out;
}

// The model's tensors in Hugging Face names and layouts. `source` is the flat buffer to read: model.flat (weights) or
// model.gradFlat (gradients, e.g. to compare with PyTorch's), or any buffer laid out like them (optimizer moments).
export function toHfTensors(model: GPT, source: Float32Array = model.flat): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const p of model.layout) {
    const data = source.subarray(p.offset, p.offset + p.size);
    if (model.config.arch === 'gpt2' && CONV1D.test(p.name)) {
      out.set(p.name, { shape: [p.shape[1], p.shape[0]], data: transpose(data, p.shape[0], p.shape[1]) });
    } else {
      out.set(p.name, { shape: p.shape, data });
    }
  }
  return out;
}

// Loads Hugging Face-named tensors into the model's flat buffer; every parameter must be present with its shape and
// nothing unknown may be left over (the error names the tensor and both shapes).
export function loadHfTensors(model: GPT, tensors: Map<string, StTensor>, what: string): void {
  const gpt2 = model.config.arch === 'gpt2';
  const hint = 'the weights do not match config.json; check that both come from the same model';
  const byName = new Map<string, StTensor>();
  for (const [name, t] of tensors) {
    let n = name;
    if (gpt2 && /(^|\.)attn\.(masked_)?bias$/.test(n)) continue; // causal-mask buffers, not parameters
    if (gpt2 && !n.startsWith('transformer.') && n !== 'lm_head.weight' && n !== 'score.weight') n = 'transformer.' + n;
    byName.set(n, t);
  }
  const shapeStr = (s: number[]) => `[${s.join(', ')}]`;
  for (const p of model.layout) {
    const t = byName.get(p.name);
    const conv = gpt2 && CONV1D.test(p.name);
    const want = conv ? [p.shape[1], p.shape[0]] : p.shape;
    if (!t) throw new UserError(`${what}: tensor ${p.name} ${shapeStr(want)} is missing`, hint);
    if (t.shape.join() !== want.join()) {
      throw new UserError(`${what}: tensor ${p.name} has shape ${shapeStr(t.shape)} but the config needs ${shapeStr(want)}`, hint);
    }
    checkPlausibleWeights(what, p.name, t.data);
    model.flat.set(conv ? transpose(t.data, want[0], want[1]) : t.data, p.offset);
    byName.delete(p.name);
  }
  const head = byName.get('lm_head.weight');
  if (head && model.config.tiedEmbeddings && !model.config.scalarHead) {
    const wte = model.layout[0]; // the token embedding comes first in every layout
    const w = model.flat.subarray(wte.offset, wte.offset + wte.size);
    if (head.shape.join() !== wte.shape.join() || head.data.some((v, i) => v !== w[i])) {
      throw new UserError(`${what}: lm_head.weight ${shapeStr(head.shape)} differs from the tied embedding ${wte.name} ` +
        `${shapeStr(wte.shape)}`, 'set tie_word_embeddings to false in config.json for an untied head');
    }
    byName.delete('lm_head.weight');
  }
  for (const [name, t] of byName) {
    throw new UserError(`${what}: unexpected tensor ${name} ${shapeStr(t.shape)} (the config has no such parameter)`, hint);
  }
}

// ---- config.json <-> GPTConfig
// bos/eos ids: the tokenizer's when one is saved with the model, else the ones config.json came with, else null (an
// explicit null, so transformers does not fall back to GPT-2's 50256, which can lie outside a small vocabulary).
export function toHfConfig(c: GPTConfig, tokenizer?: Tokenizer): Record<string, unknown> {
  const id = (i: number | undefined) => (i !== undefined && i >= 0 ? i : null); // the tokenizer says -1 for a token it lacks
  const eos = c.eosTokenIds === undefined ? null : c.eosTokenIds.length === 1 ? c.eosTokenIds[0] : c.eosTokenIds;
  const ids = tokenizer
    ? { bos_token_id: id(tokenizer.bos) ?? id(c.bosTokenId), eos_token_id: id(tokenizer.eos) ?? eos, pad_token_id: id(tokenizer.pad) }
    : { bos_token_id: id(c.bosTokenId), eos_token_id: eos };
  const labels = c.scalarHead ? { id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 } } : {};
  if (c.arch === 'llama') {
    const qwen2 = c.modelType === 'qwen2';
    const family = qwen2 ? 'Qwen2' : 'Llama';
    const r = c.ropeScaling;
    return {
      architectures: [c.scalarHead ? `${family}ForSequenceClassification` : `${family}ForCausalLM`], model_type: qwen2 ? 'qwen2' : 'llama',
      vocab_size: c.vocabSize, hidden_size: c.nEmbd, intermediate_size: c.intermediateSize,
      num_hidden_layers: c.nLayer, num_attention_heads: c.nHead, num_key_value_heads: c.nKvHead,
      ...(qwen2 ? {} : { head_dim: c.nEmbd / c.nHead }), max_position_embeddings: c.maxSeqLen, rms_norm_eps: c.normEps,
      rope_theta: c.ropeTheta,
      rope_scaling: r ? { rope_type: r.type, factor: r.factor, low_freq_factor: r.lowFreqFactor, high_freq_factor: r.highFreqFactor,
        original_max_position_embeddings: r.originalMaxPositionEmbeddings } : null,
      hidden_act: 'silu', ...(qwen2 ? { use_sliding_window: false, sliding_window: null, max_window_layers: c.nLayer }
        : { attention_bias: false, mlp_bias: false }),
      attention_dropout: 0.0, initializer_range: 0.02, tie_word_embeddings: c.tiedEmbeddings, torch_dtype: 'float32',
      use_cache: true, ...ids, ...labels,
    };
  }
  return {
    architectures: [c.scalarHead ? 'GPT2ForSequenceClassification' : 'GPT2LMHeadModel'], model_type: 'gpt2',
    vocab_size: c.vocabSize, n_embd: c.nEmbd, n_layer: c.nLayer, n_head: c.nHead, n_positions: c.maxSeqLen,
    n_ctx: c.maxSeqLen, n_inner: c.intermediateSize, layer_norm_epsilon: c.normEps, activation_function: 'gelu_new',
    resid_pdrop: 0.0, embd_pdrop: 0.0, attn_pdrop: 0.0, scale_attn_weights: true, initializer_range: 0.02,
    tie_word_embeddings: c.tiedEmbeddings, torch_dtype: 'float32', use_cache: true, ...ids, ...labels,
  };
}

// config.json's rope_scaling: null, or Llama 3.1's {rope_type: "llama3", ...}; other kinds are named in the error.
function ropeScalingFrom(r: any, bad: (msg: string) => UserError): RopeScaling | undefined {
  if (r == null) return undefined;
  const kind = r.rope_type ?? r.type;
  if (kind === 'default') return undefined;
  if (kind !== 'llama3') throw bad(`rope_scaling of type ${JSON.stringify(kind)} is not supported (llama3 is)`);
  const num = (k: string, dflt?: number) => {
    const v = r[k] ?? dflt;
    if (typeof v !== 'number') throw bad(`rope_scaling.${k} must be a number, got ${JSON.stringify(r[k])}`);
    return v;
  };
  return {
    type: 'llama3', factor: num('factor'), lowFreqFactor: num('low_freq_factor', 1), highFreqFactor: num('high_freq_factor', 4),
    originalMaxPositionEmbeddings: num('original_max_position_embeddings', 8192),
  };
}

// Special ids config.json names, kept where they fit the vocabulary (GPT-2 configs default to 50256 whatever the vocab).
function tokenIdsFrom(j: any, vocabSize: number): Pick<GPTConfig, 'bosTokenId' | 'eosTokenIds'> {
  const ok = (v: unknown): v is number => Number.isInteger(v) && (v as number) >= 0 && (v as number) < vocabSize;
  const out: Pick<GPTConfig, 'bosTokenId' | 'eosTokenIds'> = {};
  if (ok(j.bos_token_id)) out.bosTokenId = j.bos_token_id;
  const eos = (Array.isArray(j.eos_token_id) ? j.eos_token_id : [j.eos_token_id]).filter(ok);
  if (eos.length > 0) out.eosTokenIds = eos;
  return out;
}

export function fromHfConfig(j: any, what = 'config.json'): GPTConfig {
  const bad = (msg: string) => new UserError(`${what}: ${msg}`,
    'chatwright loads Llama-style (model_type "llama": Llama 2/3, SmolLM, TinyLlama), Qwen2 / Qwen2.5 and GPT-2 models');
  if (typeof j !== 'object' || j === null || Array.isArray(j)) throw bad('not a JSON object');
  const num = (k: string, dflt?: number): number => {
    const v = j[k] ?? dflt;
    if (typeof v !== 'number') throw bad(`"${k}" must be a number, got ${JSON.stringify(j[k])}`);
    return v;
  };
  const arch0 = Array.isArray(j.architectures) ? String(j.architectures[0]) : '';
  const scalarHead = arch0.endsWith('ForSequenceClassification');
  if (scalarHead && j.id2label && Object.keys(j.id2label).length !== 1) {
    throw bad(`a sequence-classification head with ${Object.keys(j.id2label).length} labels; only 1 (a scalar score) is supported`);
  }
  const extra = scalarHead ? { scalarHead: true } : {};
  let c: GPTConfig;
  if (j.model_type === 'llama' || j.model_type === 'qwen2') {
    const qwen2 = j.model_type === 'qwen2';
    if (j.hidden_act !== undefined && j.hidden_act !== 'silu') throw bad(`hidden_act "${j.hidden_act}" is not supported (silu only)`);
    if (!qwen2 && (j.attention_bias || j.mlp_bias)) throw bad('attention_bias / mlp_bias are not supported');
    if (qwen2 && j.use_sliding_window) throw bad('use_sliding_window is not supported (sliding-window attention)');
    const nHead = num('num_attention_heads');
    if (j.head_dim != null && j.head_dim * nHead !== num('hidden_size')) throw bad(`head_dim ${j.head_dim} != hidden_size / num_attention_heads`);
    const ropeScaling = ropeScalingFrom(j.rope_scaling, bad);
    c = {
      arch: 'llama', vocabSize: num('vocab_size'), nLayer: num('num_hidden_layers'), nHead,
      nKvHead: num('num_key_value_heads', nHead), nEmbd: num('hidden_size'), intermediateSize: num('intermediate_size'),
      maxSeqLen: num('max_position_embeddings', 2048), ropeTheta: num('rope_theta', 10000),
      normEps: num('rms_norm_eps', 1e-6), tiedEmbeddings: j.tie_word_embeddings ?? false, ...extra,
      ...(qwen2 ? { qkvBias: true, modelType: 'qwen2' as const } : {}), ...(ropeScaling ? { ropeScaling } : {}),
    };
  } else if (j.model_type === 'gpt2') {
    const act = j.activation_function ?? 'gelu_new';
    if (act !== 'gelu_new' && act !== 'gelu_pytorch_tanh') throw bad(`activation_function "${act}" is not supported (gelu_new only)`);
    const C = num('n_embd', 768);
    c = {
      arch: 'gpt2', vocabSize: num('vocab_size', 50257), nLayer: num('n_layer', 12), nHead: num('n_head', 12),
      nKvHead: num('n_head', 12), nEmbd: C, intermediateSize: j.n_inner == null ? 4 * C : num('n_inner'),
      maxSeqLen: num('n_positions', 1024), ropeTheta: 10000, normEps: num('layer_norm_epsilon', 1e-5),
      tiedEmbeddings: j.tie_word_embeddings ?? true, ...extra,
    };
  } else {
    throw bad(`model_type ${JSON.stringify(j.model_type)} is not supported`);
  }
  if (typeof c.tiedEmbeddings !== 'boolean') throw bad('"tie_word_embeddings" must be a boolean');
  const config = validateConfig(c);
  checkTokenIds(j, config.vocabSize, bad);
  Object.assign(config, tokenIdsFrom(j, config.vocabSize));
  return config;
}

// bos/eos/pad_token_id: a value no token can have means the file is not what it claims; transformers reads them, so we
// refuse what it would choke on (eos may be a list). Valid ones are kept in the config (tokenIdsFrom). One exception:
// transformers' GPT2Config writes its default 50256 whatever the vocabulary, so a small GPT-2 carries it; it is dropped.
function checkTokenIds(j: any, vocabSize: number, bad: (msg: string) => Error): void {
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id']) {
    const v = j[k];
    if (v === undefined || v === null) continue;
    const ids = k === 'eos_token_id' && Array.isArray(v) ? v : [v];
    for (const id of ids) {
      if (j.model_type === 'gpt2' && id === 50256) continue;
      if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw bad(`"${k}" ${JSON.stringify(v)} is not a token id below vocab_size ${vocabSize}`);
    }
  }
}

// ---- the directory
// Weights and tokenizer first, config.json last: a directory with a config.json is complete.
export function saveModel(dir: string, model: GPT, tokenizer?: Tokenizer): void {
  writeSafetensors(join(dir, 'model.safetensors'), toHfTensors(model), { format: 'pt' });
  if (tokenizer) tokenizer.save(dir);
  writeJsonAtomic(join(dir, 'config.json'), toHfConfig(model.config, tokenizer));
}

/** What was read: the weights' stored dtypes (converted to float32 in memory), the files, and a note for the user. */
export interface LoadInfo { dtypes: string[]; files: string[]; note?: string }

/**
 * A model directory (config.json + model.safetensors, or shards listed in model.safetensors.index.json) or a .gguf
 * file. Weights stored as bf16 / f16 are converted to float32: the model then takes 4 bytes per parameter in memory,
 * twice the file; `info.note` says so.
 */
export function loadModel(path: string): { model: GPT; tokenizer: Tokenizer | null; info: LoadInfo } {
  if (path.toLowerCase().endsWith('.gguf')) return loadGgufModel(path);
  const dir = path;
  const hint = `expected a model directory with config.json and model.safetensors (written by chatwright or transformers), or a .gguf file`;
  if (!existsSync(dir)) throw new UserError(`model directory not found: ${dir}`, hint);
  if (!statSync(dir).isDirectory()) throw new UserError(`${dir} is a file, not a model directory`, hint);
  const config = fromHfConfig(readJson(join(dir, 'config.json'), 'model config', hint), join(dir, 'config.json'));
  const files = weightFiles(dir);
  const tensors = new Map<string, StTensor>();
  for (const f of files) for (const [name, t] of readSafetensors(f)) tensors.set(name, t);
  const where = files.length === 1 ? files[0] : `${dir} (${files.length} shards)`;
  // A config.json far larger than its weights (a corrupt vocab_size, say) must fail before the model is allocated; a
  // smaller mismatch (a missing tensor) is named tensor by tensor by loadHfTensors.
  let values = 0;
  for (const t of tensors.values()) values += t.data.length;
  const need = parameterCount(config);
  if (need > 2 * values + 65536) {
    throw new UserError(`${join(dir, 'config.json')} describes ${need} parameters, but ${where} holds only ${values} values`,
      'the weights do not match config.json; check that both come from the same model');
  }
  const model = new GPT(config);
  loadHfTensors(model, tensors, where);
  const dtypes = [...new Set([...tensors.values()].map((t) => t.dtype))].sort();
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? Tokenizer.load(dir) : null;
  const info: LoadInfo = { dtypes, files };
  const narrow = dtypes.filter((d) => d !== 'F32' && d !== 'F64');
  if (narrow.length > 0) {
    info.note = `${dir} stores ${narrow.join('/').toLowerCase()} weights; converted to float32 in memory ` +
      `(${(model.flat.byteLength / 2 ** 30).toFixed(2)} GiB, twice the file; training needs about 4x that)`;
  }
  return { model, tokenizer, info };
}

// model.safetensors, or every shard model.safetensors.index.json names (transformers' save_pretrained with
// max_shard_size), checked to exist.
function weightFiles(dir: string): string[] {
  const single = join(dir, 'model.safetensors'), index = join(dir, 'model.safetensors.index.json');
  if (existsSync(single)) return [single];
  if (existsSync(index)) {
    const j = readJson(index, 'shard index');
    const map = j?.weight_map;
    if (!map || typeof map !== 'object') throw new UserError(`${index} has no weight_map`, 'the index is corrupt; re-download it');
    const files = [...new Set(Object.values<unknown>(map))];
    for (const f of files) {
      if (typeof f !== 'string' || f.includes('/') || f.includes('\\')) throw new UserError(`${index}: weight_map names a bad file ${JSON.stringify(f)}`);
      if (!existsSync(join(dir, f))) throw new UserError(`shard ${f} listed in ${index} is missing`, 'download every model-0000N-of-0000M.safetensors file');
    }
    return files.map((f) => join(dir, f as string));
  }
  if (existsSync(join(dir, 'pytorch_model.bin'))) {
    throw new UserError(`model weights not found: ${single}`, 'only safetensors weights are read (not pytorch_model.bin); convert the weights with safetensors first');
  }
  throw new UserError(`model weights not found: ${single}`, 'expected model.safetensors or model.safetensors.index.json with its shards');
}
