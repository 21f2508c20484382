// The autograd ops, part 2: the network layers (RMSNorm, LayerNorm, rotary embedding, attention, SwiGLU, GELU,
// softmax) and the losses over logits (cross-entropy, token log-probabilities). Same rules as ops.ts: whole-array
// Backend calls forward, backward composed from Backend primitives that accumulate into gradOf(input).
// Conventions: the last dimension is the feature dimension; attention tensors are (B, T, nHead, headDim), so q, k, v
// are views of a projection's (B*T, nHead*headDim) output and no transpose is ever materialised.

import type { Backend, FloatArray } from './backend.js';
import { addBackward, be, lastDim, live, rank, sameShape, tmp, unary } from './ops.js';
import {
  Tensor, adoptGrad, canAdoptGrad, dtypeOf, fmtShape, giveBuffer, gradForOverwrite, gradInPlaceOfData, gradOf,
  makeResult, needsGrad, outBuffer,
} from './tensor.js';

// ---- normalisation over the last dimension

export function rmsnorm(x: Tensor, w: Tensor, eps: number): Tensor {
  const C = lastDim('rmsnorm', 'x', x);
  rank('rmsnorm', 'w', w, 1, `(${C})`);
  if (w.size !== C) throw new Error(`rmsnorm: w has shape ${fmtShape(w.shape)} but x has shape ${fmtShape(x.shape)}; w must be (${C})`);
  const rec = needsGrad(x, w);
  const xd = x.data, wd = w.data, N = x.size / C;
  const dt = dtypeOf(xd);
  const B = be(xd);
  const out = outBuffer(dt, N * C, rec);
  const rstd = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  B.rmsnormForward(out, rstd, xd, wd, N, C, eps);
  if (!rec) giveBuffer(rstd);
  return makeResult(out, x.shape, rec, [x, w], (g) => {
    const dx = gradOf(x) ?? tmp(dt, N * C), dw = gradOf(w) ?? tmp(dt, C);
    B.rmsnormBackward(dx, dw, g, xd, wd, rstd, N, C);
    if (!x.requiresGrad) giveBuffer(dx);
    if (!w.requiresGrad) giveBuffer(dw);
  });
}

// The residual add and the RMSNorm after it, as a transformer block has them: sum = x + y (the new residual stream)
// and out = rmsnorm(sum, w), formed in one pass over the rows (residualRmsnormForward). Each output keeps its own
// backward (add's, and rmsnorm's on sum), so gradients are exactly those of add then rmsnorm.
export function residualRmsnorm(x: Tensor, y: Tensor, w: Tensor, eps: number): { sum: Tensor; out: Tensor } {
  sameShape('residualRmsnorm', 'x', x, 'y', y);
  const C = lastDim('residualRmsnorm', 'x', x);
  rank('residualRmsnorm', 'w', w, 1, `(${C})`);
  if (w.size !== C) throw new Error(`residualRmsnorm: w has shape ${fmtShape(w.shape)} but x has shape ${fmtShape(x.shape)}; w must be (${C})`);
  const rec = needsGrad(x, y, w);
  const wd = w.data, N = x.size / C, n = x.size;
  const dt = dtypeOf(x.data);
  const B = be(x.data);
  const sumd = outBuffer(dt, n, rec), out = outBuffer(dt, n, rec);
  const rstd = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  B.residualRmsnormForward(sumd, out, rstd, x.data, y.data, wd, N, C, eps);
  if (!rec) giveBuffer(rstd);
  const sum = makeResult(sumd, x.shape, rec, [x, y], (g) => addBackward(B, x, y, g, n));
  return {
    sum,
    out: makeResult(out, x.shape, rec, [sum, w], (g) => {
      const dx = gradOf(sum) ?? tmp(dt, n), dw = gradOf(w) ?? tmp(dt, C);
      B.rmsnormBackward(dx, dw, g, sumd, wd, rstd, N, C);
      if (!sum.requiresGrad) giveBuffer(dx);
      if (!w.requiresGrad) giveBuffer(dw);
    }),
  };
}

export function layernorm(x: Tensor, w: Tensor, b: Tensor, eps: number): Tensor {
  const C = lastDim('layernorm', 'x', x);
  for (const [name, p] of [['w', w], ['b', b]] as const) {
    rank('layernorm', name, p, 1, `(${C})`);
    if (p.size !== C) throw new Error(`layernorm: ${name} has shape ${fmtShape(p.shape)} but x has shape ${fmtShape(x.shape)}; ${name} must be (${C})`);
  }
  const rec = needsGrad(x, w, b);
  const xd = x.data, wd = w.data, bd = b.data, N = x.size / C;
  const dt = dtypeOf(xd);
  const B = be(xd);
  const out = outBuffer(dt, N * C, rec);
  const mu = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  const rstd = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  B.layernormForward(out, mu, rstd, xd, wd, bd, N, C, eps);
  if (!rec) {
    giveBuffer(mu);
    giveBuffer(rstd);
  }
  return makeResult(out, x.shape, rec, [x, w, b], (g) => {
    const dx = gradOf(x) ?? tmp(dt, N * C), dw = gradOf(w) ?? tmp(dt, C), db = gradOf(b) ?? tmp(dt, C);
    B.layernormBackward(dx, dw, db, g, xd, wd, mu, rstd, N, C);
    if (!x.requiresGrad) giveBuffer(dx);
    if (!w.requiresGrad) giveBuffer(dw);
    if (!b.requiresGrad) giveBuffer(db);
  });
}

// ---- rotary embedding (Su et al. 2021, RoFormer; Hugging Face Llama's rotate_half layout)

// x: (B, T, nHead, headDim); cos, sin: (maxT, headDim/2) tables; token t of batch b sits at pos0[b] + t.
export function rope(x: Tensor, cos: FloatArray, sin: FloatArray, pos0: Int32Array | null): Tensor {
  rank('rope', 'x', x, 4, '(B, T, nHead, headDim)');
  const [Bn, T, nHead, hd] = x.shape;
  if (hd % 2 !== 0) throw new Error(`rope: headDim must be even, x has shape ${fmtShape(x.shape)}`);
  if (cos.length !== sin.length || cos.length % (hd / 2) !== 0) {
    throw new Error(`rope: cos (${cos.length}) and sin (${sin.length}) must both be (maxT, ${hd / 2}) tables for x ${fmtShape(x.shape)}`);
  }
  const maxT = cos.length / (hd / 2);
  if (pos0 && pos0.length < Bn) throw new Error(`rope: pos0 has ${pos0.length} entries for batch ${Bn}`);
  for (let b = 0; b < Bn; b++) {
    const p = pos0 ? pos0[b] : 0;
    if (p < 0 || p + T > maxT) throw new Error(`rope: positions ${p}..${p + T - 1} exceed the rotary table of ${maxT} positions`);
  }
  const rec = needsGrad(x);
  const xd = x.data;
  const B = be(xd);
  const out = outBuffer(dtypeOf(xd), x.size, rec);
  B.ropeForward(out, xd, cos, sin, Bn, T, nHead, hd, pos0);
  return makeResult(out, x.shape, rec, [x], (g) => {
    // The backward is the rotation by the negative angle, i.e. the forward with sin negated: when x's gradient is
    // still empty, g is rotated in place and handed to x (no zero-fill, no second buffer).
    if (canAdoptGrad(x, g)) {
      B.ropeForward(g, g, cos, negated(sin), Bn, T, nHead, hd, pos0);
      adoptGrad(x, g);
      return;
    }
    const dx = gradOf(x);
    if (dx) B.ropeBackward(dx, g, cos, sin, Bn, T, nHead, hd, pos0);
  });
}

// -sin tables, computed once per table (the model's tables live as long as the model).
const negSin = new WeakMap<FloatArray, FloatArray>();
function negated(sin: FloatArray): FloatArray {
  let t = negSin.get(sin);
  if (!t) {
    t = sin instanceof Float64Array ? new Float64Array(sin.length) : new Float32Array(sin.length);
    for (let i = 0; i < sin.length; i++) t[i] = -sin[i];
    negSin.set(sin, t);
  }
  return t;
}

// The inverse frequencies of a Hugging Face Llama model, in float32 steps as LlamaRotaryEmbedding computes them
// (inv_freq = 1 / theta^(2i/d)), so long positions round like transformers. With `scaling` (Llama 3.1's rope_type
// "llama3", transformers `_compute_llama3_parameters`): frequencies whose wavelength exceeds oldCtx / lowFreqFactor are
// divided by factor, those under oldCtx / highFreqFactor kept, and the band between interpolated by
// smooth = (oldCtx / wavelen - lowFreqFactor) / (highFreqFactor - lowFreqFactor).  -> (headDim/2)
export function ropeInvFreq(headDim: number, theta: number, scaling?: {
  factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number;
}): Float32Array {
  const half = headDim / 2, f = Math.fround;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) inv[i] = f(1 / f(theta ** f((2 * i) / headDim)));
  if (scaling) {
    const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositionEmbeddings: oldCtx } = scaling;
    const lowWavelen = oldCtx / lo, highWavelen = oldCtx / hi;
    for (let i = 0; i < half; i++) {
      const wavelen = (2 * Math.PI) / inv[i];
      if (wavelen > lowWavelen) inv[i] = f(inv[i] / factor);
      else if (wavelen >= highWavelen) {
        const smooth = (oldCtx / wavelen - lo) / (hi - lo);
        inv[i] = f((1 - smooth) * (inv[i] / factor) + smooth * inv[i]);
      }
    }
  }
  return inv;
}

// cos, sin (maxT, headDim/2) tables of angle = pos * invFreq[i], the angle rounded to float32 as transformers does.
export function ropeTablesFrom(maxT: number, invFreq: Float32Array): { cos: Float32Array; sin: Float32Array } {
  const half = invFreq.length;
  const cos = new Float32Array(maxT * half), sin = new Float32Array(maxT * half);
  for (let i = 0; i < half; i++) {
    for (let t = 0; t < maxT; t++) {
      const angle = Math.fround(t * invFreq[i]);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

// Hugging Face Llama tables: angle(pos, i) = pos * theta^(-2i / headDim).  -> cos, sin (maxT, headDim/2)
export function ropeTables(maxT: number, headDim: number, theta = 10000): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const cos = new Float32Array(maxT * half), sin = new Float32Array(maxT * half);
  for (let p = 0; p < maxT; p++) {
    for (let i = 0; i < half; i++) {
      const a = p * Math.pow(theta, (-2 * i) / headDim);
      cos[p * half + i] = Math.cos(a);
      sin[p * half + i] = Math.sin(a);
    }
  }
  return { cos, sin };
}

// ---- attention

// Causal grouped-query attention. q: (B, T, nHead, hd); k, v: (B, Tk, nKvHead, hd) -> (B, T, nHead, hd).
// Training form: Tk == T. With opts.lens (a KV cache of Tk slots, lens[b] valid) it is inference only (no gradient).
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: { lens?: Int32Array | null; scale?: number } = {}): Tensor {
  rank('attention', 'q', q, 4, '(B, T, nHead, headDim)');
  rank('attention', 'k', k, 4, '(B, Tk, nKvHead, headDim)');
  sameShape('attention', 'k', k, 'v', v);
  const [Bn, T, nHead, hd] = q.shape;
  const [Bk, Tk, nKv, hdk] = k.shape;
  if (Bk !== Bn || hdk !== hd || Tk < T || nKv < 1 || nHead % nKv !== 0) {
    throw new Error(`attention: k has shape ${fmtShape(k.shape)} but q has shape ${fmtShape(q.shape)}; k must be ` +
      `(${Bn}, Tk >= ${T}, nKvHead dividing ${nHead}, ${hd})`);
  }
  const lens = opts.lens ?? null;
  if (lens && lens.length < Bn) throw new Error(`attention: lens has ${lens.length} entries for batch ${Bn}`);
  const scale = opts.scale ?? 1 / Math.sqrt(hd);
  const rec = needsGrad(q, k, v);
  if (rec && (lens || Tk !== T)) {
    throw new Error(`attention: gradients need the training form (Tk == T, no lens); got q ${fmtShape(q.shape)}, ` +
      `k ${fmtShape(k.shape)}${lens ? ' with lens' : ''}; run cached attention under noGrad`);
  }
  const qd = q.data, kd = k.data, vd = v.data;
  const dt = dtypeOf(qd);
  const B = be(qd);
  const out = outBuffer(dt, q.size, rec);
  const lse = rec ? outBuffer(dt, Bn * nHead * T, true) : null;
  B.attentionForward(out, lse, qd, kd, vd, Bn, T, Tk, nHead, nKv, hd, scale, lens);
  return makeResult(out, q.shape, rec, [q, k, v], (g) => {
    const dq = gradOf(q) ?? tmp(dt, q.size), dk = gradOf(k) ?? tmp(dt, k.size), dv = gradOf(v) ?? tmp(dt, v.size);
    B.attentionBackward(dq, dk, dv, g, out, lse!, qd, kd, vd, Bn, T, nHead, nKv, hd, scale);
    if (!q.requiresGrad) giveBuffer(dq);
    if (!k.requiresGrad) giveBuffer(dk);
    if (!v.requiresGrad) giveBuffer(dv);
  });
}

// ---- activations

// silu(gate) * up (Shazeer 2020, GLU Variants Improve Transformer)
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  sameShape('swiglu', 'gate', gate, 'up', up);
  const rec = needsGrad(gate, up);
  const gd = gate.data, ud = up.data, n = gate.size;
  const dt = dtypeOf(gd);
  const B = be(gd);
  const out = outBuffer(dt, n, rec);
  B.swigluForward(out, gd, ud, n);
  return makeResult(out, gate.shape, rec, [gate, up], (g) => {
    const dg = gradOf(gate) ?? tmp(dt, n), du = gradOf(up) ?? tmp(dt, n);
    B.swigluBackward(dg, du, g, gd, ud, n);
    if (!gate.requiresGrad) giveBuffer(dg);
    if (!up.requiresGrad) giveBuffer(du);
  });
}

export function gelu(x: Tensor): Tensor {
  return unary('gelu', x, (B, o, xd, n) => B.geluForward(o, xd, n), (B, dx, g, xd, _o, n) => B.geluBackward(dx, g, xd, n));
}

// Softmax over the last dimension.
export function softmax(x: Tensor): Tensor {
  const C = lastDim('softmax', 'x', x);
  const N = C > 0 ? x.size / C : 0;
  return unary('softmax', x, (B, o, xd) => B.softmaxForward(o, xd, N, C), (B, dx, g, _x, o) => B.softmaxBackward(dx, g, o, N, C));
}

// ---- losses over logits (N, V), fused with log-softmax: probabilities are never stored

function logitsArgs(op: string, logits: Tensor, targets: Int32Array): [number, number] {
  rank(op, 'logits', logits, 2, '(N, V)');
  const [N, V] = logits.shape;
  if (targets.length !== N) throw new Error(`${op}: targets has ${targets.length} entries but logits has shape ${fmtShape(logits.shape)}`);
  for (let i = 0; i < N; i++) {
    if (targets[i] >= V) throw new Error(`${op}: target ${targets[i]} at row ${i} is outside the vocabulary of ${V}`);
  }
  return [N, V];
}

// dlogits (+)= CE backward with per-row weights dl: over the logits themselves when this loss is their only reader
// (no second (N, V) buffer), else straight into a fresh gradient buffer, else via a temporary.
function crossEntropyGrad(B: Backend, logits: Tensor, dl: FloatArray, ld: FloatArray, lse: FloatArray,
  targets: Int32Array, N: number, V: number): void {
  const own = gradInPlaceOfData(logits);
  if (own) {
    B.crossEntropyBackward(own, dl, ld, lse, targets, N, V); // own === ld
    return;
  }
  const dst = gradForOverwrite(logits);
  if (!dst) return;
  if (dst.fresh) {
    B.crossEntropyBackward(dst.buf, dl, ld, lse, targets, N, V);
  } else {
    const t = tmp(dtypeOf(ld), N * V);
    B.crossEntropyBackward(t, dl, ld, lse, targets, N, V);
    B.axpy(dst.buf, 1, t, N * V);
    giveBuffer(t);
  }
}

// Scalar: sum_i w_i loss_i / sum_i w_i over rows with targets[i] >= 0 (w = 1 when weights are absent); 0 when no
// row counts.
export function crossEntropy(logits: Tensor, targets: Int32Array, weights?: Float32Array | null): Tensor {
  const [N, V] = logitsArgs('crossEntropy', logits, targets);
  if (weights && weights.length !== N) throw new Error(`crossEntropy: weights has ${weights.length} entries but logits has shape ${fmtShape(logits.shape)}`);
  const rec = needsGrad(logits);
  const ld = logits.data;
  const dt = dtypeOf(ld);
  const B = be(ld);
  const losses = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  const lse = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  const wEff = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  B.crossEntropyForward(losses, lse, ld, targets, N, V);
  let denom = 0;
  for (let i = 0; i < N; i++) {
    wEff[i] = targets[i] < 0 ? 0 : weights ? weights[i] : 1;
    denom += wEff[i];
  }
  B.mul(losses, losses, wEff, N);
  const out = outBuffer(dt, 1, rec);
  out[0] = denom !== 0 ? B.sum(losses, N) / denom : 0;
  if (!rec) {
    giveBuffer(losses);
    giveBuffer(lse);
    giveBuffer(wEff);
  }
  return makeResult(out, [], rec, [logits], (g) => {
    const dl = tmp(dt, N);
    B.scaleShift(dl, wEff, denom !== 0 ? g[0] / denom : 0, 0, N);
    crossEntropyGrad(B, logits, dl, ld, lse, targets, N, V);
    giveBuffer(dl);
  });
}

// (N): log p(targets[i] | row i), 0 where targets[i] < 0.
export function tokenLogprobs(logits: Tensor, targets: Int32Array): Tensor {
  const [N, V] = logitsArgs('tokenLogprobs', logits, targets);
  const rec = needsGrad(logits);
  const ld = logits.data;
  const dt = dtypeOf(ld);
  const B = be(ld);
  const out = outBuffer(dt, N, rec);
  const lse = rec ? outBuffer(dt, N, true) : tmp(dt, N);
  B.crossEntropyForward(out, lse, ld, targets, N, V);
  B.scaleShift(out, out, -1, 0, N);
  if (!rec) giveBuffer(lse);
  return makeResult(out, [N], rec, [logits], (g) => {
    const dl = tmp(dt, N);
    B.scaleShift(dl, g, -1, 0, N);
    crossEntropyGrad(B, logits, dl, ld, lse, targets, N, V);
    giveBuffer(dl);
  });
}

// (N): the entropy -sum_v p log p of softmax(logits[i]) per row, for the entropy bonus and the entropy figure of RL.
// Backward: dH/dz_j = -p_j (log p_j + H). The probabilities are recomputed in the backward rather than stored.
export function entropy(logits: Tensor): Tensor {
  rank('entropy', 'logits', logits, 2, '(N, V)');
  const [N, V] = logits.shape;
  const rec = needsGrad(logits);
  const ld = logits.data, dt = dtypeOf(ld), B = be(ld);
  const out = outBuffer(dt, N, rec);
  const p = tmp(dt, V);
  const rowEntropy = (i: number): number => {
    B.softmaxForward(p, ld.subarray(i * V, (i + 1) * V), 1, V);
    let h = 0;
    for (let v = 0; v < V; v++) if (p[v] > 0) h -= p[v] * Math.log(p[v]);
    return h;
  };
  for (let i = 0; i < N; i++) out[i] = rowEntropy(i);
  giveBuffer(p);
  return makeResult(out, [N], rec, [logits], (g) => {
    const dst = gradForOverwrite(logits);
    if (!dst) return;
    const q = tmp(dt, V);
    for (let i = 0; i < N; i++) {
      const gi = g[i];
      const row = dst.buf.subarray(i * V, (i + 1) * V);
      if (gi === 0) { if (dst.fresh) row.fill(0); continue; }
      B.softmaxForward(q, ld.subarray(i * V, (i + 1) * V), 1, V);
      let h = 0;
      for (let v = 0; v < V; v++) if (q[v] > 0) h -= q[v] * Math.log(q[v]);
      for (let v = 0; v < V; v++) {
        const d = q[v] > 0 ? -gi * q[v] * (Math.log(q[v]) + h) : 0;
        row[v] = dst.fresh ? d : row[v] + d;
      }
    }
    giveBuffer(q);
  });
}
