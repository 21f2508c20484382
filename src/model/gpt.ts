// The GPT: parameters, the training forward (autograd ops from src/tensor) and the cached inference forward (Backend
// primitives directly, no autograd). Knows nothing about text or files: it sees token ids; checkpoint.ts does the disk.
//
// All parameters live in ONE Float32Array (`flat`) and all gradients in another (`gradFlat`); each named parameter is a
// Tensor viewing its slice of both (llm.c `malloc_and_point_parameters`), so the optimizer is one loop over the flat
// buffer and a checkpoint is one write. Names are Hugging Face's (LlamaForCausalLM / GPT2LMHeadModel). Every weight
// matrix is stored (out, in) as nn.Linear does; GPT-2's Conv1D matrices are (in, out) in HF files and checkpoint.ts
// transposes them at the file boundary. GPT-2's fused c_attn (3C, C) is used through three (C, C) views (q, k, v rows).
//
// Block (pre-norm; nanoGPT `model.py`, HF `modeling_llama.py`):
//   x = x + o_proj(attention(rope(q_proj(norm1(x))), rope(k_proj(..)), v_proj(..)))
//   x = x + down_proj(silu(gate_proj(norm2(x))) * up_proj(norm2(x)))        llama;  GPT-2: c_proj(gelu(c_fc(ln_2(x))))
import {
  Tensor, getBackend, linear, add, embedding, rmsnorm, residualRmsnorm, layernorm, rope, attention, swiglu, gelu, crossEntropy,
  ropeInvFreq, ropeTablesFrom,
} from '../tensor/index.js';
import { toLowp, lowpRows, lowpBytes, type LowpMatrix, type WeightDtype } from '../tensor/quant.js';
import { Rng } from '../util/rng.js';
import { UserError, assert } from '../util/errors.js';
import { GPTConfig, validateConfig, headDim, describeConfig } from './config.js';

export type ParamKind = 'matrix' | 'embedding' | 'norm' | 'bias';
export interface ParamInfo { name: string; shape: number[]; offset: number; size: number; kind: ParamKind }

interface Spec { name: string; shape: number[]; kind: ParamKind; std: number } // std 0: zeros; std -1: ones

// The parameter list in buffer order, with GPT-2/nanoGPT initialisation: normal(0, 0.02), residual projections scaled by
// 1/sqrt(2 nLayer) (GPT-2 paper section 2.3; nanoGPT `_init_weights` + `c_proj.weight` special case), norms 1, biases 0.
function paramSpecs(c: GPTConfig): Spec[] {
  const C = c.nEmbd, I = c.intermediateSize, hd = headDim(c), kvDim = c.nKvHead * hd;
  const std = 0.02, resid = 0.02 / Math.sqrt(2 * c.nLayer);
  const s: Spec[] = [];
  const p = (name: string, shape: number[], kind: ParamKind, sd: number) => s.push({ name, shape, kind, std: sd });
  if (c.arch === 'llama') {
    p('model.embed_tokens.weight', [c.vocabSize, C], 'embedding', std);
    for (let l = 0; l < c.nLayer; l++) {
      const L = `model.layers.${l}.`;
      p(L + 'input_layernorm.weight', [C], 'norm', -1);
      p(L + 'self_attn.q_proj.weight', [c.nHead * hd, C], 'matrix', std);
      p(L + 'self_attn.k_proj.weight', [kvDim, C], 'matrix', std);
      p(L + 'self_attn.v_proj.weight', [kvDim, C], 'matrix', std);
      if (c.qkvBias) {
        p(L + 'self_attn.q_proj.bias', [c.nHead * hd], 'bias', 0);
        p(L + 'self_attn.k_proj.bias', [kvDim], 'bias', 0);
        p(L + 'self_attn.v_proj.bias', [kvDim], 'bias', 0);
      }
      p(L + 'self_attn.o_proj.weight', [C, c.nHead * hd], 'matrix', resid);
      p(L + 'post_attention_layernorm.weight', [C], 'norm', -1);
      p(L + 'mlp.gate_proj.weight', [I, C], 'matrix', std);
      p(L + 'mlp.up_proj.weight', [I, C], 'matrix', std);
      p(L + 'mlp.down_proj.weight', [C, I], 'matrix', resid);
    }
    p('model.norm.weight', [C], 'norm', -1);
  } else {
    p('transformer.wte.weight', [c.vocabSize, C], 'embedding', std);
    p('transformer.wpe.weight', [c.maxSeqLen, C], 'embedding', std);
    for (let l = 0; l < c.nLayer; l++) {
      const L = `transformer.h.${l}.`;
      p(L + 'ln_1.weight', [C], 'norm', -1);
      p(L + 'ln_1.bias', [C], 'bias', 0);
      p(L + 'attn.c_attn.weight', [3 * C, C], 'matrix', std); // rows: q, k, v
      p(L + 'attn.c_attn.bias', [3 * C], 'bias', 0);
      p(L + 'attn.c_proj.weight', [C, C], 'matrix', resid);
      p(L + 'attn.c_proj.bias', [C], 'bias', 0);
      p(L + 'ln_2.weight', [C], 'norm', -1);
      p(L + 'ln_2.bias', [C], 'bias', 0);
      p(L + 'mlp.c_fc.weight', [I, C], 'matrix', std);
      p(L + 'mlp.c_fc.bias', [I], 'bias', 0);
      p(L + 'mlp.c_proj.weight', [C, I], 'matrix', resid);
      p(L + 'mlp.c_proj.bias', [C], 'bias', 0);
    }
    p('transformer.ln_f.weight', [C], 'norm', -1);
    p('transformer.ln_f.bias', [C], 'bias', 0);
  }
  if (c.scalarHead) p('score.weight', [1, C], 'matrix', std); // HF *ForSequenceClassification, num_labels = 1
  else if (!c.tiedEmbeddings) p('lm_head.weight', [c.vocabSize, C], 'matrix', std);
  return s;
}

// The number of parameters (floats of the flat buffer) of a config, without allocating them.
export function parameterCount(c: GPTConfig): number {
  return paramSpecs(validateConfig({ ...c })).reduce((a, s) => a + s.shape.reduce((x, y) => x * y, 1), 0);
}

// Normal(0, std) by Box-Muller using both outputs of each pair (32-bit uniforms are plenty for an init).
function fillNormal(d: Float32Array, std: number, rng: Rng): void {
  const inv = 1 / 4294967296;
  for (let j = 0; j < d.length; j += 2) {
    const u1 = (rng.u32() + 1) * inv, u2 = rng.u32() * inv; // u1 in (0, 1]
    const r = std * Math.sqrt(-2 * Math.log(u1)), a = 2 * Math.PI * u2;
    d[j] = r * Math.cos(a);
    if (j + 1 < d.length) d[j + 1] = r * Math.sin(a);
  }
}

// The tensors one block computes with (views into the flat buffers); biases undefined for llama (q/k/v ones with qkvBias).
interface Block {
  ln1w: Tensor; ln1b?: Tensor; ln2w: Tensor; ln2b?: Tensor;
  wq: Tensor; wk: Tensor; wv: Tensor; bq?: Tensor; bk?: Tensor; bv?: Tensor; wo: Tensor; bo?: Tensor;
  wg?: Tensor; wu: Tensor; bu?: Tensor; wd: Tensor; bd?: Tensor;
}

// Key/value cache for batched decoding: per layer (batch, maxT, nKvHead, headDim); lens[b] = tokens cached for row b.
// Scratch buffers grow to the largest call seen and are reused, so decode steps allocate no new buffers.
export class KVCache {
  readonly lens: Int32Array;
  readonly k: Float32Array[] = [];
  readonly v: Float32Array[] = [];
  readonly scratch = new Map<string, Float32Array>();
  readonly iscratch = new Map<string, Int32Array>();
  constructor(readonly batch: number, readonly maxT: number, nLayer: number, kvDim: number) {
    this.lens = new Int32Array(batch);
    for (let l = 0; l < nLayer; l++) {
      this.k.push(new Float32Array(batch * maxT * kvDim));
      this.v.push(new Float32Array(batch * maxT * kvDim));
    }
  }
  // forget every row (or one row) so it can be reused for a new sequence
  reset(row?: number): void {
    if (row === undefined) this.lens.fill(0);
    else this.lens[row] = 0;
  }
  buf(name: string, n: number): Float32Array {
    let a = this.scratch.get(name);
    if (!a || a.length < n) this.scratch.set(name, (a = new Float32Array(n)));
    return a.length === n ? a : a.subarray(0, n);
  }
  ibuf(name: string, n: number): Int32Array {
    let a = this.iscratch.get(name);
    if (!a || a.length < n) this.iscratch.set(name, (a = new Int32Array(n)));
    return a.length === n ? a : a.subarray(0, n);
  }
}

export interface ForwardOptions { targets?: Int32Array; weights?: Float32Array | null; hidden?: boolean }
export interface ForwardResult { logits: Tensor; loss?: Tensor; hidden?: Tensor; scores?: Tensor }

export class GPT {
  readonly config: GPTConfig;
  readonly params = new Map<string, Tensor>();
  readonly layout: ParamInfo[] = [];
  readonly flat: Float32Array;
  readonly gradFlat: Float32Array;
  private readonly blocks: Block[] = [];
  private readonly wte: Tensor;
  private readonly wpe?: Tensor;
  private readonly lnfw: Tensor;
  private readonly lnfb?: Tensor;
  private readonly head: Tensor; // lm_head, the tied wte, or score
  readonly ropeCos: Float32Array; // (maxSeqLen, headDim/2)
  readonly ropeSin: Float32Array;
  private posCache: Int32Array | null = null;
  private weightDtype: WeightDtype = 'f32';
  private readonly lowp = new Map<Tensor, LowpMatrix>(); // inference copies of the matrices (setInferenceDtype)

  // Zero parameters; use GPT.create for an initialised model or loadModel for a checkpoint.
  constructor(config: GPTConfig) {
    const c = (this.config = validateConfig({ ...config }));
    let total = 0;
    for (const s of paramSpecs(c)) {
      const size = s.shape.reduce((a, b) => a * b, 1);
      this.layout.push({ name: s.name, shape: s.shape, offset: total, size, kind: s.kind });
      total += size;
    }
    this.flat = new Float32Array(total);
    this.gradFlat = new Float32Array(total);
    for (const p of this.layout) this.params.set(p.name, this.view(p.offset, p.shape));

    const C = c.nEmbd, get = (n: string) => this.params.get(n)!;
    const llama = c.arch === 'llama';
    this.wte = get(llama ? 'model.embed_tokens.weight' : 'transformer.wte.weight');
    if (!llama) this.wpe = get('transformer.wpe.weight');
    for (let l = 0; l < c.nLayer; l++) {
      if (llama) {
        const L = `model.layers.${l}.`;
        this.blocks.push({
          ln1w: get(L + 'input_layernorm.weight'), ln2w: get(L + 'post_attention_layernorm.weight'),
          wq: get(L + 'self_attn.q_proj.weight'), wk: get(L + 'self_attn.k_proj.weight'),
          wv: get(L + 'self_attn.v_proj.weight'), wo: get(L + 'self_attn.o_proj.weight'),
          ...(c.qkvBias ? { bq: get(L + 'self_attn.q_proj.bias'), bk: get(L + 'self_attn.k_proj.bias'), bv: get(L + 'self_attn.v_proj.bias') } : {}),
          wg: get(L + 'mlp.gate_proj.weight'), wu: get(L + 'mlp.up_proj.weight'), wd: get(L + 'mlp.down_proj.weight'),
        });
      } else {
        const L = `transformer.h.${l}.`;
        const qkvW = this.offsetOf(L + 'attn.c_attn.weight'), qkvB = this.offsetOf(L + 'attn.c_attn.bias');
        this.blocks.push({
          ln1w: get(L + 'ln_1.weight'), ln1b: get(L + 'ln_1.bias'), ln2w: get(L + 'ln_2.weight'), ln2b: get(L + 'ln_2.bias'),
          wq: this.view(qkvW, [C, C]), wk: this.view(qkvW + C * C, [C, C]), wv: this.view(qkvW + 2 * C * C, [C, C]),
          bq: this.view(qkvB, [C]), bk: this.view(qkvB + C, [C]), bv: this.view(qkvB + 2 * C, [C]),
          wo: get(L + 'attn.c_proj.weight'), bo: get(L + 'attn.c_proj.bias'),
          wu: get(L + 'mlp.c_fc.weight'), bu: get(L + 'mlp.c_fc.bias'),
          wd: get(L + 'mlp.c_proj.weight'), bd: get(L + 'mlp.c_proj.bias'),
        });
      }
    }
    this.lnfw = get(llama ? 'model.norm.weight' : 'transformer.ln_f.weight');
    if (!llama) this.lnfb = get('transformer.ln_f.bias');
    this.head = c.scalarHead ? get('score.weight') : c.tiedEmbeddings ? this.wte : get('lm_head.weight');

    // Rotary tables (Su et al. 2021, RoFormer) as transformers computes them, with Llama 3.1 scaling when configured.
    ({ cos: this.ropeCos, sin: this.ropeSin } = ropeTablesFrom(c.maxSeqLen, ropeInvFreq(headDim(c), c.ropeTheta, c.ropeScaling)));
  }

  static create(config: GPTConfig, seed: number): GPT {
    const m = new GPT(config);
    m.init(seed);
    return m;
  }

  // Deterministic given the seed: parameters are drawn in layout order from one stream.
  init(seed: number): void {
    const rng = new Rng(seed);
    const specs = paramSpecs(this.config);
    for (let i = 0; i < specs.length; i++) {
      const d = this.flat.subarray(this.layout[i].offset, this.layout[i].offset + this.layout[i].size);
      const sd = specs[i].std;
      if (sd === -1) d.fill(1);
      else if (sd === 0) d.fill(0);
      else fillNormal(d, sd, rng);
    }
  }

  private view(offset: number, shape: number[]): Tensor {
    const n = shape.reduce((a, b) => a * b, 1);
    const t = new Tensor(this.flat.subarray(offset, offset + n), shape, true);
    t.grad = new Tensor(this.gradFlat.subarray(offset, offset + n), shape);
    return t;
  }

  offsetOf(name: string): number {
    const p = this.layout.find((q) => q.name === name);
    assert(p, `no parameter named ${name}`);
    return p.offset;
  }

  numParams(opts: { nonEmbedding?: boolean } = {}): number {
    if (!opts.nonEmbedding) return this.flat.length;
    return this.layout.filter((p) => p.kind !== 'embedding').reduce((a, p) => a + p.size, 0);
  }

  summary(): string {
    const m = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(2)}M` : `${(n / 1e3).toFixed(1)}K`);
    return `GPT ${describeConfig(this.config)} | ${m(this.numParams())} parameters ` +
      `(${m(this.numParams({ nonEmbedding: true }))} non-embedding)`;
  }

  zeroGrad(): void {
    getBackend().fill(this.gradFlat, 0, this.gradFlat.length); // on all threads: 1.5 ms for small, 3.9 with .fill(0)
  }

  // A copy with the same config and weights (e.g. the frozen reference policy of PPO/DPO).
  clone(): GPT {
    const m = new GPT(this.config);
    m.flat.set(this.flat);
    return m;
  }

  // Copies every parameter both models have with the same shape (e.g. a reward model from the SFT model); returns the
  // names of this model's parameters that were not copied.
  copyParamsFrom(src: GPT): string[] {
    const missed: string[] = [];
    for (const p of this.layout) {
      const q = src.layout.find((x) => x.name === p.name);
      if (q && q.size === p.size && q.shape.join() === p.shape.join()) {
        this.flat.set(src.flat.subarray(q.offset, q.offset + q.size), p.offset);
      } else {
        missed.push(p.name);
      }
    }
    return missed;
  }

  private norm(x: Tensor, w: Tensor, b?: Tensor): Tensor {
    return b ? layernorm(x, w, b, this.config.normEps) : rmsnorm(x, w, this.config.normEps);
  }

  // x + y and the norm of it: one pass for RMSNorm (residualRmsnorm), add then layernorm for GPT-2 style
  private addNorm(x: Tensor, y: Tensor, w: Tensor, b?: Tensor): { x: Tensor; h: Tensor } {
    if (b) {
      const s = add(x, y);
      return { x: s, h: layernorm(s, w, b, this.config.normEps) };
    }
    const r = residualRmsnorm(x, y, w, this.config.normEps);
    return { x: r.sum, h: r.out };
  }

  private positions(B: number, T: number): Int32Array {
    if (!this.posCache || this.posCache.length !== B * T) {
      this.posCache = new Int32Array(B * T);
      for (let i = 0; i < B * T; i++) this.posCache[i] = i % T;
    }
    return this.posCache;
  }

  // ---- training forward (autograd)
  forward(ids: Int32Array, B: number, T: number, opts: ForwardOptions = {}): ForwardResult {
    const c = this.config, hd = headDim(c), C = c.nEmbd;
    assert(ids.length === B * T, `forward: ids has ${ids.length} tokens, expected B*T = ${B}*${T}`);
    if (T > c.maxSeqLen) {
      throw new UserError(`sequence of ${T} tokens is longer than the model context (${c.maxSeqLen})`,
        'use a shorter sequence length');
    }
    let x = embedding(ids, this.wte); // (B*T, C)
    if (this.wpe) x = add(x, embedding(this.positions(B, T), this.wpe));
    const first = this.blocks[0];
    let h = first ? this.norm(x, first.ln1w, first.ln1b) : this.norm(x, this.lnfw, this.lnfb);
    for (let l = 0; l < this.blocks.length; l++) {
      const L = this.blocks[l], next = this.blocks[l + 1];
      let q = linear(h, L.wq, L.bq).view([B, T, c.nHead, hd]); // (B, T, nHead, hd)
      let k = linear(h, L.wk, L.bk).view([B, T, c.nKvHead, hd]); // (B, T, nKvHead, hd)
      const v = linear(h, L.wv, L.bv).view([B, T, c.nKvHead, hd]);
      if (c.arch === 'llama') {
        q = rope(q, this.ropeCos, this.ropeSin, null);
        k = rope(k, this.ropeCos, this.ropeSin, null);
      }
      const a = attention(q, k, v).view([B * T, C]); // (B*T, C)
      ({ x, h } = this.addNorm(x, linear(a, L.wo, L.bo), L.ln2w, L.ln2b));
      const m = L.wg ? swiglu(linear(h, L.wg), linear(h, L.wu)) : gelu(linear(h, L.wu, L.bu)); // (B*T, I)
      // the residual add, then the next block's first norm (or the final norm)
      ({ x, h } = this.addNorm(x, linear(m, L.wd, L.bd), next ? next.ln1w : this.lnfw, next ? next.ln1b : this.lnfb));
    }
    const hidden = h; // (B*T, C)
    const logits = linear(hidden, this.head); // (B*T, V), or (B*T, 1) with the scalar head
    const out: ForwardResult = { logits };
    if (c.scalarHead) out.scores = logits.view([B * T]);
    if (opts.targets) {
      assert(!c.scalarHead, 'forward: targets given to a scalar-head model (it has no language-model head)');
      assert(opts.targets.length === B * T, `forward: targets has ${opts.targets.length} entries, expected ${B * T}`);
      out.loss = crossEntropy(logits, opts.targets, opts.weights ?? null);
    }
    if (opts.hidden) out.hidden = hidden;
    return out;
  }

  // ---- inference weights: float32, or a bf16 / q8_0 copy of every matrix forwardCached multiplies with (the
  // projections and the lm head; the scalar head stays float32). Training and forward() always use the float32
  // parameters. The copy is made from the weights at this call: call it again after changing them.
  // `given` supplies matrices already in the dtype by parameter name (a GGUF q8_0 tensor maps byte for byte); the
  // others are converted here. q8_0 needs input widths that are whole blocks of 32; a matrix whose width is not stays
  // float32 and is listed in the result.
  setInferenceDtype(dtype: WeightDtype, given: Map<string, LowpMatrix> = new Map()): { bytes: number; float32: string[] } {
    this.lowp.clear();
    this.weightDtype = dtype;
    const used: Tensor[] = [];
    for (const L of this.blocks) used.push(...[L.wq, L.wk, L.wv, L.wo, L.wg, L.wu, L.wd].filter((t): t is Tensor => !!t));
    if (!this.config.scalarHead) used.push(this.head);
    let bytes = 0;
    const float32: string[] = [], whole = new Map<string, LowpMatrix>();
    for (const t of used) {
      // the parameter this tensor views (GPT-2's q, k, v are row ranges of c_attn) and its first row there
      const off = (t.data.byteOffset - this.flat.byteOffset) / 4;
      const p = this.layout.find((q) => off >= q.offset && off < q.offset + q.size)!;
      const [rows, cols] = p.shape, r0 = (off - p.offset) / cols, r1 = r0 + t.shape[0];
      if (dtype === 'f32' || (dtype === 'q8_0' && cols % 32 !== 0)) {
        if (dtype !== 'f32' && !float32.includes(p.name)) float32.push(p.name);
        bytes += 4 * t.size;
        continue;
      }
      let m = whole.get(p.name);
      if (!m) {
        m = given.get(p.name);
        if (m && (m.dtype !== dtype || m.rows !== rows || m.cols !== cols)) {
          throw new UserError(`${p.name}: the given ${m.dtype} matrix is (${m.rows}, ${m.cols}); the model needs ${dtype} (${rows}, ${cols})`);
        }
        m ??= toLowp(this.flat.subarray(p.offset, p.offset + p.size), rows, cols, dtype);
        whole.set(p.name, m);
      }
      const view = r0 === 0 && r1 === rows ? m : lowpRows(m, r0, r1);
      this.lowp.set(t, view);
      bytes += lowpBytes(view);
    }
    return { bytes, float32 };
  }

  get inferenceDtype(): WeightDtype {
    return this.weightDtype;
  }

  // out (n, nOut) = inp (n, nIn) @ w^T in the inference dtype of w
  private matmulWeight(out: Float32Array, inp: Float32Array, w: Tensor, n: number): void {
    const be = getBackend(), [nOut, nIn] = w.shape, q = this.lowp.get(w);
    if (!q) be.gemm(out, inp, w.data, n, nOut, nIn, false, true, 1, 0);
    else if (q.dtype === 'bf16') be.gemmBf16(out, inp, q.data, n, nOut, nIn);
    else be.gemmQ8_0(out, inp, q.data, n, nOut, nIn);
  }

  // ---- inference with a KV cache (Backend primitives, no autograd)
  newKVCache(batch: number, maxT: number): KVCache {
    if (maxT > this.config.maxSeqLen) {
      throw new UserError(`KV cache of ${maxT} positions exceeds the model context (${this.config.maxSeqLen})`,
        'ask for fewer tokens (prompt + max new tokens)');
    }
    return new KVCache(batch, maxT, this.config.nLayer, this.config.nKvHead * headDim(this.config));
  }

  // Appends ids (B, Tq) to cache rows (opts.rows, default 0..B-1) at positions lens[row].. and returns the logits
  // (B, Tq, V), or (B, 1, V) with lastOnly. Rows advance independently, so sequences of different lengths decode in one
  // batch (prefill each row alone with rows: [r], then decode all rows together). The returned array is a view of a
  // scratch buffer of the cache: valid until the next call with this cache; copy it to keep it.
  forwardCached(
    ids: Int32Array, B: number, Tq: number, cache: KVCache, opts: { lastOnly?: boolean; rows?: ArrayLike<number> } = {},
  ): Float32Array {
    const c = this.config, be = getBackend(), hd = headDim(c), C = c.nEmbd, I = c.intermediateSize;
    const kvDim = c.nKvHead * hd, N = B * Tq, maxT = cache.maxT, V = c.scalarHead ? 1 : c.vocabSize;
    assert(ids.length === N, `forwardCached: ids has ${ids.length} tokens, expected B*Tq = ${B}*${Tq}`);
    assert(Tq >= 1, 'forwardCached: Tq must be >= 1');
    for (let i = 0; i < N; i++) {
      if (!(ids[i] >= 0 && ids[i] < c.vocabSize)) {
        throw new UserError(`token id ${ids[i]} is outside the model's vocabulary of ${c.vocabSize}`,
          'the tokenizer and the model do not match; load both from the same model directory');
      }
    }
    const rows = cache.ibuf('rows', B), pos0 = cache.ibuf('pos0', B), lensAfter = cache.ibuf('lensAfter', B);
    let contiguous = true; // rows 0..B-1: one batched attention call over the cache
    for (let b = 0; b < B; b++) {
      const r = opts.rows ? opts.rows[b] : b;
      if (r !== b) contiguous = false;
      assert(r >= 0 && r < cache.batch, `forwardCached: row ${r} outside the cache batch of ${cache.batch}`);
      rows[b] = r;
      pos0[b] = cache.lens[r];
      lensAfter[b] = cache.lens[r] + Tq;
      if (lensAfter[b] > maxT) {
        throw new UserError(`sequence grew beyond the KV cache: ${lensAfter[b]} > ${maxT}`, 'allocate a longer cache');
      }
    }

    const x = cache.buf('x', N * C), h = cache.buf('h', N * C), o = cache.buf('o', N * C);
    const q = cache.buf('q', N * C), kn = cache.buf('kn', N * kvDim), vn = cache.buf('vn', N * kvDim);
    const att = cache.buf('att', N * C), u = cache.buf('u', N * I), m = cache.buf('m', N * I);
    const mean = cache.buf('mean', N), rstd = cache.buf('rstd', N);
    const norm = (out: Float32Array, inp: Float32Array, w: Tensor, b: Tensor | undefined, n: number) => {
      if (b) be.layernormForward(out, mean.subarray(0, n), rstd.subarray(0, n), inp, w.data, b.data, n, C, c.normEps);
      else be.rmsnormForward(out, rstd.subarray(0, n), inp, w.data, n, C, c.normEps);
    };
    // x += y, then h = the norm of x: one pass for RMSNorm
    const addNorm = (y: Float32Array, w: Tensor, b: Tensor | undefined, n: number) => {
      if (b) {
        be.add(x, x, y, n * C);
        norm(h, x, w, b, n);
      } else {
        be.residualRmsnormForward(x, h, rstd.subarray(0, n), x, y, w.data, n, C, c.normEps);
      }
    };
    const lin = (out: Float32Array, inp: Float32Array, w: Tensor, b: Tensor | undefined, n: number) => {
      this.matmulWeight(out, inp, w, n);
      if (b) be.addBias(out, out, b.data, n, w.shape[0]);
    };

    be.embeddingForward(x, ids, this.wte.data as Float32Array, N, C); // (N, C)
    if (this.wpe) {
      const pos = cache.ibuf('pos', N);
      for (let b = 0; b < B; b++) for (let t = 0; t < Tq; t++) pos[b * Tq + t] = pos0[b] + t;
      be.embeddingForward(h, pos, this.wpe.data as Float32Array, N, C);
      be.add(x, x, h, N * C);
    }
    const scale = 1 / Math.sqrt(hd);
    if (this.blocks.length) norm(h, x, this.blocks[0].ln1w, this.blocks[0].ln1b, N);
    for (let l = 0; l < this.blocks.length; l++) {
      const L = this.blocks[l], K = cache.k[l], Vc = cache.v[l], next = this.blocks[l + 1];
      lin(q, h, L.wq, L.bq, N); // (N, nHead*hd)
      lin(kn, h, L.wk, L.bk, N); // (N, kvDim)
      lin(vn, h, L.wv, L.bv, N);
      if (c.arch === 'llama') {
        be.ropeForward(q, q, this.ropeCos, this.ropeSin, B, Tq, c.nHead, hd, pos0);
        be.ropeForward(kn, kn, this.ropeCos, this.ropeSin, B, Tq, c.nKvHead, hd, pos0);
      }
      for (let b = 0; b < B; b++) {
        const src = b * Tq * kvDim, dst = (rows[b] * maxT + pos0[b]) * kvDim;
        K.set(kn.subarray(src, src + Tq * kvDim), dst);
        Vc.set(vn.subarray(src, src + Tq * kvDim), dst);
      }
      if (contiguous) {
        be.attentionForward(att, null, q, K.subarray(0, B * maxT * kvDim), Vc.subarray(0, B * maxT * kvDim),
          B, Tq, maxT, c.nHead, c.nKvHead, hd, scale, lensAfter);
      } else {
        for (let b = 0; b < B; b++) {
          const qs = b * Tq * C, ks = rows[b] * maxT * kvDim;
          be.attentionForward(att.subarray(qs, qs + Tq * C), null, q.subarray(qs, qs + Tq * C),
            K.subarray(ks, ks + maxT * kvDim), Vc.subarray(ks, ks + maxT * kvDim),
            1, Tq, maxT, c.nHead, c.nKvHead, hd, scale, lensAfter.subarray(b, b + 1));
        }
      }
      lin(o, att, L.wo, L.bo, N);
      addNorm(o, L.ln2w, L.ln2b, N);
      if (L.wg) {
        const up = cache.buf('up', N * I);
        lin(u, h, L.wg, undefined, N); // (N, I)
        lin(up, h, L.wu, undefined, N);
        be.swigluForward(m, u, up, N * I);
      } else {
        lin(u, h, L.wu, L.bu, N);
        be.geluForward(m, u, N * I);
      }
      lin(o, m, L.wd, L.bd, N);
      if (next) addNorm(o, next.ln1w, next.ln1b, N); // the next block's first norm
      else be.add(x, x, o, N * C);
    }

    let R = N, xf = x;
    if (opts.lastOnly) {
      R = B;
      xf = cache.buf('xlast', B * C);
      for (let b = 0; b < B; b++) xf.set(x.subarray((b * Tq + Tq - 1) * C, (b * Tq + Tq) * C), b * C);
    }
    const hf = cache.buf('hf', R * C);
    norm(hf, xf, this.lnfw, this.lnfb, R);
    const logits = cache.buf('logits', R * V);
    this.matmulWeight(logits, hf, this.head, R); // (R, V)
    for (let b = 0; b < B; b++) cache.lens[rows[b]] = lensAfter[b];
    return logits;
  }
}
