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
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readJson, writeJsonAtomic } from '../util/fsx.js';
import { Tokenizer } from '../tokenizer/index.js';
import { GPTConfig, validateConfig } from './config.js';
import { GPT, parameterCount } from './gpt.js';
import { readSafetensors, writeSafetensors, StTensor } from './safetensors.js';

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
    const bad = firstImplausible(t.data);
    if (bad >= 0) {
      throw new UserError(`${what}: tensor ${p.name} holds ${t.data[bad]} at index ${bad} (of ${t.data.length}); ` +
        `weights are finite and below ${MAX_ABS_WEIGHT} in size`,
        'the weights are corrupt, or the training run that wrote them diverged; use an earlier checkpoint');
    }
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

// A weight of 1e8 or more is no trained value (they stay within ~1e3): such a file is corrupt, and its products would
// overflow float32 into Inf and NaN logits. NaN fails the comparison too.
const MAX_ABS_WEIGHT = 1e8;
function firstImplausible(x: Float32Array): number {
  for (let i = 0; i < x.length; i++) if (!(Math.abs(x[i]) < MAX_ABS_WEIGHT)) return i;
  return -1;
}

// ---- config.json <-> GPTConfig
export function toHfConfig(c: GPTConfig, tokenizer?: Tokenizer): Record<string, unknown> {
  const id = (i: number) => (i >= 0 ? i : null); // the tokenizer says -1 for a special token it lacks
  const ids = tokenizer ? { bos_token_id: id(tokenizer.bos), eos_token_id: id(tokenizer.eos), pad_token_id: id(tokenizer.pad) } : {};
  const labels = c.scalarHead ? { id2label: { '0': 'LABEL_0' }, label2id: { LABEL_0: 0 } } : {};
  if (c.arch === 'llama') {
    return {
      architectures: [c.scalarHead ? 'LlamaForSequenceClassification' : 'LlamaForCausalLM'], model_type: 'llama',
      vocab_size: c.vocabSize, hidden_size: c.nEmbd, intermediate_size: c.intermediateSize,
      num_hidden_layers: c.nLayer, num_attention_heads: c.nHead, num_key_value_heads: c.nKvHead,
      head_dim: c.nEmbd / c.nHead, max_position_embeddings: c.maxSeqLen, rms_norm_eps: c.normEps,
      rope_theta: c.ropeTheta, rope_scaling: null, hidden_act: 'silu', attention_bias: false, mlp_bias: false,
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

export function fromHfConfig(j: any, what = 'config.json'): GPTConfig {
  const bad = (msg: string) => new UserError(`${what}: ${msg}`, 'chatwright loads Llama-style (model_type "llama") and GPT-2 models');
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
  if (j.model_type === 'llama') {
    if (j.rope_scaling != null) throw bad(`rope_scaling ${JSON.stringify(j.rope_scaling)} is not supported`);
    if (j.hidden_act !== undefined && j.hidden_act !== 'silu') throw bad(`hidden_act "${j.hidden_act}" is not supported (silu only)`);
    if (j.attention_bias || j.mlp_bias) throw bad('attention_bias / mlp_bias are not supported');
    const nHead = num('num_attention_heads');
    if (j.head_dim != null && j.head_dim * nHead !== num('hidden_size')) throw bad(`head_dim ${j.head_dim} != hidden_size / num_attention_heads`);
    c = {
      arch: 'llama', vocabSize: num('vocab_size'), nLayer: num('num_hidden_layers'), nHead,
      nKvHead: num('num_key_value_heads', nHead), nEmbd: num('hidden_size'), intermediateSize: num('intermediate_size'),
      maxSeqLen: num('max_position_embeddings', 2048), ropeTheta: num('rope_theta', 10000),
      normEps: num('rms_norm_eps', 1e-6), tiedEmbeddings: j.tie_word_embeddings ?? false, ...extra,
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
  return config;
}

// bos/eos/pad_token_id: unused by the model (the tokenizer names its special tokens), but a value no token can have
// means the file is not what it claims; transformers reads them, so we refuse what it would choke on. eos may be a list.
function checkTokenIds(j: any, vocabSize: number, bad: (msg: string) => Error): void {
  for (const k of ['bos_token_id', 'eos_token_id', 'pad_token_id']) {
    const v = j[k];
    if (v === undefined || v === null) continue;
    const ids = k === 'eos_token_id' && Array.isArray(v) ? v : [v];
    for (const id of ids) {
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

export function loadModel(dir: string): { model: GPT; tokenizer: Tokenizer | null } {
  const hint = `expected a model directory with config.json and model.safetensors (written by chatwright or transformers)`;
  if (!existsSync(dir)) throw new UserError(`model directory not found: ${dir}`, hint);
  const config = fromHfConfig(readJson(join(dir, 'config.json'), 'model config', hint), join(dir, 'config.json'));
  const wpath = join(dir, 'model.safetensors');
  if (!existsSync(wpath)) {
    const sharded = existsSync(join(dir, 'model.safetensors.index.json'));
    throw new UserError(`model weights not found: ${wpath}`, sharded
      ? 'sharded checkpoints are not supported; merge the shards into one model.safetensors'
      : 'only model.safetensors is read (not pytorch_model.bin); convert the weights with safetensors first');
  }
  const tensors = readSafetensors(wpath);
  // A config.json far larger than its weights (a corrupt vocab_size, say) must fail before the model is allocated; a
  // smaller mismatch (a missing tensor) is named tensor by tensor by loadHfTensors.
  let values = 0;
  for (const t of tensors.values()) values += t.data.length;
  const need = parameterCount(config);
  if (need > 2 * values + 65536) {
    throw new UserError(`${join(dir, 'config.json')} describes ${need} parameters, but ${wpath} holds only ${values} values`,
      'the weights do not match config.json; check that both come from the same model');
  }
  const model = new GPT(config);
  loadHfTensors(model, tensors, wpath);
  const tokenizer = existsSync(join(dir, 'tokenizer.json')) ? Tokenizer.load(dir) : null;
  return { model, tokenizer };
}
