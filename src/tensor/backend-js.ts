// The JS backend: every Backend primitive as plain loops. It is the oracle the native kernels are tested against
// (test/backend-cases.test.ts runs it in float64 as the reference) and the fallback when the addon is unavailable.
// Boundary: arrays and sizes in, arrays out; no Tensor, no autograd, no allocation per call (scratch rows grow once).
// Clarity first; the only concessions to speed are loop orders that walk memory contiguously (gemm's i-k-j).
// Formulas follow llm.c train_gpt2.c (layernorm, gelu, crossentropy, adamw) and FlashAttention (Dao et al. 2022,
// Algorithm 1/2: softmax statistics via log-sum-exp so the (T, T) matrix is never stored).

import type { Backend, FloatArray } from './backend.js';
import { bf16Round, bf16ToF32, f16ToF32, QK8_0, Q8_0_BLOCK_BYTES } from './quant.js';

// Scratch rows in float64, grown on demand and reused, so a call allocates nothing after the first.
let scratchA = new Float64Array(256);
let scratchB = new Float64Array(256);
function rowA(n: number): Float64Array {
  if (scratchA.length < n) scratchA = new Float64Array(Math.max(n, 2 * scratchA.length));
  return scratchA;
}
function rowB(n: number): Float64Array {
  if (scratchB.length < n) scratchB = new Float64Array(Math.max(n, 2 * scratchB.length));
  return scratchB;
}

const GELU_SCALE = Math.sqrt(2 / Math.PI);

function sigmoid1(a: number): number {
  // Two branches so exp never overflows.
  if (a >= 0) return 1 / (1 + Math.exp(-a));
  const e = Math.exp(a);
  return e / (1 + e);
}

// ---- gemm
// One product C(M, N) = alpha op(A) op(B) + beta C at the given offsets. Rows of C are accumulated in float64 in a
// scratch row (i-k-j order: the inner loop walks a row of B and the row of C contiguously); with transB the inner
// loop is a dot product over contiguous rows of A and B instead.
function gemm1(
  C: FloatArray, A: FloatArray, B: FloatArray, M: number, N: number, K: number,
  transA: boolean, transB: boolean, alpha: number, beta: number, oA: number, oB: number, oC: number,
): void {
  const acc = rowA(N);
  for (let i = 0; i < M; i++) {
    acc.fill(0, 0, N);
    if (!transB) {
      for (let k = 0; k < K; k++) {
        const a = transA ? A[oA + k * M + i] : A[oA + i * K + k];
        const bRow = oB + k * N;
        for (let j = 0; j < N; j++) acc[j] += a * B[bRow + j];
      }
    } else {
      const aCol = rowB(K);
      for (let k = 0; k < K; k++) aCol[k] = transA ? A[oA + k * M + i] : A[oA + i * K + k];
      for (let j = 0; j < N; j++) {
        const bRow = oB + j * K;
        let s = 0;
        for (let k = 0; k < K; k++) s += aCol[k] * B[bRow + k];
        acc[j] = s;
      }
    }
    const cRow = oC + i * N;
    if (beta === 0) for (let j = 0; j < N; j++) C[cRow + j] = alpha * acc[j];
    else for (let j = 0; j < N; j++) C[cRow + j] = alpha * acc[j] + beta * C[cRow + j];
  }
}

// ---- bf16 mixed precision: the operands' elements the batch reads, rounded (alpha folded into A first, in float32
// as the native packer does) into float64 scratch copies, then gemm1 (products of bf16 values are exact in float64).
let bf16A: Float64Array = new Float64Array(256);
let bf16B: Float64Array = new Float64Array(256);
function roundedCopy(scratch: Float64Array, x: FloatArray, n: number, alpha: number): Float64Array {
  const out = scratch.length >= n ? scratch : new Float64Array(Math.max(n, 2 * scratch.length));
  const a = Math.fround(alpha); // the native glue takes alpha as a float32
  for (let i = 0; i < n; i++) out[i] = bf16Round(a === 1 ? x[i] : Math.fround(a * x[i]));
  return out;
}

// ---- products with low-precision weights: each row of W dequantized (exactly) into a float64 scratch row, then dot
// products with every row of A.
function gemmLowp(C: FloatArray, A: FloatArray, M: number, N: number, K: number, row: (j: number, w: Float64Array) => void): void {
  const w = rowB(K);
  for (let j = 0; j < N; j++) {
    row(j, w);
    for (let i = 0; i < M; i++) {
      let s = 0;
      for (let p = 0; p < K; p++) s += A[i * K + p] * w[p];
      C[i * N + j] = s;
    }
  }
}

// ---- attention helpers: offsets into (B, T, heads, headDim) and (B, nHead, T)
function dot(a: FloatArray, oa: number, b: FloatArray, ob: number, n: number): number {
  let s = 0;
  for (let d = 0; d < n; d++) s += a[oa + d] * b[ob + d];
  return s;
}

export const jsBackend: Backend = {
  name: 'js',

  gemm(C, A, B, M, N, K, transA, transB, alpha, beta, batch = 1, strideA = M * K, strideB = K * N, strideC = M * N) {
    for (let p = 0; p < batch; p++) {
      gemm1(C, A, B, M, N, K, transA, transB, alpha, beta, p * strideA, p * strideB, p * strideC);
    }
  },

  gemmMixedBf16(C, A, B, M, N, K, transA, transB, alpha, beta, batch = 1, strideA = M * K, strideB = K * N, strideC = M * N) {
    if (batch === 0 || M === 0 || N === 0) return;
    if (K === 0 || alpha === 0) { // nothing to round: C = beta * C, as gemm
      for (let p = 0; p < batch; p++) gemm1(C, A, B, M, N, K, transA, transB, alpha, beta, p * strideA, p * strideB, p * strideC);
      return;
    }
    bf16A = roundedCopy(bf16A, A, (batch - 1) * strideA + M * K, alpha);
    bf16B = roundedCopy(bf16B, B, (batch - 1) * strideB + K * N, 1);
    for (let p = 0; p < batch; p++) {
      gemm1(C, bf16A, bf16B, M, N, K, transA, transB, 1, beta, p * strideA, p * strideB, p * strideC);
    }
  },

  gemmBf16(C, A, W, M, N, K) {
    gemmLowp(C, A, M, N, K, (j, w) => {
      for (let p = 0; p < K; p++) w[p] = bf16ToF32(W[j * K + p]);
    });
  },

  gemmQ8_0(C, A, W, M, N, K) {
    if (K % QK8_0 !== 0) throw new RangeError(`gemmQ8_0: K must be a multiple of ${QK8_0} (q8_0 blocks), got ${K}`);
    const q = new Int8Array(W.buffer, W.byteOffset, W.length), rowBytes = (K / QK8_0) * Q8_0_BLOCK_BYTES;
    gemmLowp(C, A, M, N, K, (j, w) => {
      for (let b = 0; b < K / QK8_0; b++) {
        const o = j * rowBytes + b * Q8_0_BLOCK_BYTES, d = f16ToF32(W[o] | (W[o + 1] << 8));
        for (let t = 0; t < QK8_0; t++) w[b * QK8_0 + t] = d * q[o + 2 + t];
      }
    });
  },

  attentionForward(out, lse, q, k, v, B, Tq, Tk, nHead, nKvHead, headDim, scale, lens) {
    const group = nHead / nKvHead;
    const s = rowA(Tk);
    const o = rowB(headDim);
    for (let b = 0; b < B; b++) {
      const len = lens ? lens[b] : Tk;
      for (let h = 0; h < nHead; h++) {
        const kvh = Math.floor(h / group);
        for (let i = 0; i < Tq; i++) {
          const qo = ((b * Tq + i) * nHead + h) * headDim;
          const last = Math.min(len - Tq + i, Tk - 1); // absolute position of this query: keys 0..last
          let m = -Infinity;
          for (let j = 0; j <= last; j++) {
            s[j] = scale * dot(q, qo, k, ((b * Tk + j) * nKvHead + kvh) * headDim, headDim);
            if (s[j] > m) m = s[j];
          }
          let l = 0;
          o.fill(0, 0, headDim);
          for (let j = 0; j <= last; j++) {
            const p = Math.exp(s[j] - m);
            l += p;
            const vo = ((b * Tk + j) * nKvHead + kvh) * headDim;
            for (let d = 0; d < headDim; d++) o[d] += p * v[vo + d];
          }
          for (let d = 0; d < headDim; d++) out[qo + d] = l > 0 ? o[d] / l : 0;
          if (lse) lse[(b * nHead + h) * Tq + i] = l > 0 ? m + Math.log(l) : -Infinity;
        }
      }
    }
  },

  // P = exp(S - lse); dP = dout V^T; dS = P (dP - rowsum(dout * out)); dQ = scale dS K; dK = scale dS^T Q; dV = P^T dout
  // (FlashAttention-2, Dao 2023, Algorithm 2).
  attentionBackward(dq, dk, dv, dout, out, lse, q, k, v, B, T, nHead, nKvHead, headDim, scale) {
    const group = nHead / nKvHead;
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < nHead; h++) {
        const kvh = Math.floor(h / group);
        for (let i = 0; i < T; i++) {
          const qo = ((b * T + i) * nHead + h) * headDim;
          const L = lse[(b * nHead + h) * T + i];
          const D = dot(dout, qo, out, qo, headDim);
          for (let j = 0; j <= i; j++) {
            const ko = ((b * T + j) * nKvHead + kvh) * headDim;
            const p = Math.exp(scale * dot(q, qo, k, ko, headDim) - L);
            const dp = dot(dout, qo, v, ko, headDim);
            const ds = p * (dp - D) * scale;
            for (let d = 0; d < headDim; d++) {
              dq[qo + d] += ds * k[ko + d];
              dk[ko + d] += ds * q[qo + d];
              dv[ko + d] += p * dout[qo + d];
            }
          }
        }
      }
    }
  },

  rmsnormForward(out, rstd, x, w, N, C, eps) {
    for (let n = 0; n < N; n++) {
      const o = n * C;
      let ss = 0;
      for (let c = 0; c < C; c++) ss += x[o + c] * x[o + c];
      const r = 1 / Math.sqrt(ss / C + eps);
      rstd[n] = r;
      for (let c = 0; c < C; c++) out[o + c] = x[o + c] * r * w[c];
    }
  },

  // y = x r w, r = (mean(x^2) + eps)^-1/2:  dx = r (g - x r^2 mean(g x)), g = dout w;  dw = sum_n dout x r
  rmsnormBackward(dx, dw, dout, x, w, rstd, N, C) {
    for (let n = 0; n < N; n++) {
      const o = n * C;
      const r = rstd[n];
      let gx = 0;
      for (let c = 0; c < C; c++) gx += dout[o + c] * w[c] * x[o + c];
      const k = (r * r * r * gx) / C;
      for (let c = 0; c < C; c++) {
        dx[o + c] += r * dout[o + c] * w[c] - k * x[o + c];
        dw[c] += dout[o + c] * x[o + c] * r;
      }
    }
  },

  residualRmsnormForward(sum, out, rstd, x, y, w, N, C, eps) {
    for (let i = 0; i < N * C; i++) sum[i] = x[i] + y[i];
    jsBackend.rmsnormForward(out, rstd, sum, w, N, C, eps);
  },

  layernormForward(out, mean, rstd, x, w, b, N, C, eps) {
    for (let n = 0; n < N; n++) {
      const o = n * C;
      let m = 0;
      for (let c = 0; c < C; c++) m += x[o + c];
      m /= C;
      let v = 0;
      for (let c = 0; c < C; c++) v += (x[o + c] - m) * (x[o + c] - m);
      const r = 1 / Math.sqrt(v / C + eps);
      mean[n] = m;
      rstd[n] = r;
      for (let c = 0; c < C; c++) out[o + c] = (x[o + c] - m) * r * w[c] + b[c];
    }
  },

  // llm.c layernorm_backward: dx = r (dnorm - mean(dnorm) - norm mean(dnorm norm)), dnorm = dout w
  layernormBackward(dx, dw, db, dout, x, w, mean, rstd, N, C) {
    for (let n = 0; n < N; n++) {
      const o = n * C;
      const m = mean[n];
      const r = rstd[n];
      let dnormMean = 0;
      let dnormNormMean = 0;
      for (let c = 0; c < C; c++) {
        const norm = (x[o + c] - m) * r;
        const dnorm = dout[o + c] * w[c];
        dnormMean += dnorm;
        dnormNormMean += dnorm * norm;
      }
      dnormMean /= C;
      dnormNormMean /= C;
      for (let c = 0; c < C; c++) {
        const norm = (x[o + c] - m) * r;
        const dnorm = dout[o + c] * w[c];
        db[c] += dout[o + c];
        dw[c] += norm * dout[o + c];
        dx[o + c] += (dnorm - dnormMean - norm * dnormNormMean) * r;
      }
    }
  },

  ropeForward(out, x, cos, sin, B, T, nHead, headDim, pos0) {
    const half = headDim / 2;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const pos = (pos0 ? pos0[b] : 0) + t;
        for (let h = 0; h < nHead; h++) {
          const o = ((b * T + t) * nHead + h) * headDim;
          for (let i = 0; i < half; i++) {
            const c = cos[pos * half + i];
            const s = sin[pos * half + i];
            const x1 = x[o + i];
            const x2 = x[o + i + half];
            out[o + i] = x1 * c - x2 * s;
            out[o + i + half] = x2 * c + x1 * s;
          }
        }
      }
    }
  },

  ropeBackward(dx, dout, cos, sin, B, T, nHead, headDim, pos0) {
    const half = headDim / 2;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        const pos = (pos0 ? pos0[b] : 0) + t;
        for (let h = 0; h < nHead; h++) {
          const o = ((b * T + t) * nHead + h) * headDim;
          for (let i = 0; i < half; i++) {
            const c = cos[pos * half + i];
            const s = sin[pos * half + i];
            const d1 = dout[o + i];
            const d2 = dout[o + i + half];
            dx[o + i] += d1 * c + d2 * s;
            dx[o + i + half] += d2 * c - d1 * s;
          }
        }
      }
    }
  },

  swigluForward(out, gate, up, n) {
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      out[i] = g * sigmoid1(g) * up[i];
    }
  },

  // d silu(g)/dg = s (1 + g (1 - s)), s = sigmoid(g)
  swigluBackward(dgate, dup, dout, gate, up, n) {
    for (let i = 0; i < n; i++) {
      const g = gate[i];
      const s = sigmoid1(g);
      dgate[i] += dout[i] * up[i] * s * (1 + g * (1 - s));
      dup[i] += dout[i] * g * s;
    }
  },

  geluForward(out, x, n) {
    for (let i = 0; i < n; i++) {
      const xi = x[i];
      out[i] = 0.5 * xi * (1 + Math.tanh(GELU_SCALE * (xi + 0.044715 * xi * xi * xi)));
    }
  },

  geluBackward(dx, dout, x, n) {
    for (let i = 0; i < n; i++) {
      const xi = x[i];
      const th = Math.tanh(GELU_SCALE * (xi + 0.044715 * xi * xi * xi));
      const sech2 = 1 - th * th; // 1/cosh^2 without overflowing cosh
      const local = 0.5 * (1 + th) + 0.5 * xi * sech2 * GELU_SCALE * (1 + 3 * 0.044715 * xi * xi);
      dx[i] += local * dout[i];
    }
  },

  softmaxForward(out, x, N, C) {
    for (let n = 0; n < N; n++) {
      const o = n * C;
      let m = -Infinity;
      for (let c = 0; c < C; c++) if (x[o + c] > m) m = x[o + c];
      let s = 0;
      for (let c = 0; c < C; c++) s += Math.exp(x[o + c] - m);
      for (let c = 0; c < C; c++) out[o + c] = Math.exp(x[o + c] - m) / s;
    }
  },

  // dx = y (dout - sum(dout y))
  softmaxBackward(dx, dout, out, N, C) {
    for (let n = 0; n < N; n++) {
      const o = n * C;
      let s = 0;
      for (let c = 0; c < C; c++) s += dout[o + c] * out[o + c];
      for (let c = 0; c < C; c++) dx[o + c] += out[o + c] * (dout[o + c] - s);
    }
  },

  crossEntropyForward(losses, lse, logits, targets, N, V) {
    for (let n = 0; n < N; n++) {
      const o = n * V;
      let m = -Infinity;
      for (let j = 0; j < V; j++) if (logits[o + j] > m) m = logits[o + j];
      let s = 0;
      for (let j = 0; j < V; j++) s += Math.exp(logits[o + j] - m);
      const L = m + Math.log(s);
      lse[n] = L;
      const t = targets[n];
      if (t >= V) throw new RangeError(`crossEntropyForward: target ${t} at row ${n} is outside the vocabulary of ${V}`);
      losses[n] = t < 0 ? 0 : L - logits[o + t];
    }
  },

  crossEntropyBackward(dlogits, dlosses, logits, lse, targets, N, V) {
    for (let n = 0; n < N; n++) {
      const o = n * V;
      const t = targets[n];
      if (t < 0) {
        for (let j = 0; j < V; j++) dlogits[o + j] = 0;
        continue;
      }
      const g = dlosses[n];
      const L = lse[n];
      // Read logits[o + j] before writing dlogits[o + j]: the two may be the same array.
      for (let j = 0; j < V; j++) dlogits[o + j] = g * (Math.exp(logits[o + j] - L) - (j === t ? 1 : 0));
    }
  },

  embeddingForward(out, ids, wte, N, C) {
    const rows = wte.length / C;
    for (let n = 0; n < N; n++) {
      const id = ids[n];
      if (id < 0 || id >= rows) throw new RangeError(`embeddingForward: id ${id} at position ${n} is outside 0..${rows - 1}`);
      for (let c = 0; c < C; c++) out[n * C + c] = wte[id * C + c];
    }
  },

  embeddingBackward(dwte, dout, ids, N, C) {
    for (let n = 0; n < N; n++) {
      const id = ids[n];
      for (let c = 0; c < C; c++) dwte[id * C + c] += dout[n * C + c];
    }
  },

  adamw(p, g, m, v, n, lr, beta1, beta2, eps, wd, step) {
    const c1 = 1 - Math.pow(beta1, step);
    const c2 = 1 - Math.pow(beta2, step);
    for (let i = 0; i < n; i++) {
      const gi = g[i];
      m[i] = beta1 * m[i] + (1 - beta1) * gi;
      v[i] = beta2 * v[i] + (1 - beta2) * gi * gi;
      const mhat = m[i] / c1;
      const vhat = v[i] / c2;
      p[i] -= lr * (mhat / (Math.sqrt(vhat) + eps) + wd * p[i]);
    }
  },

  addBias(out, x, b, N, C) {
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) out[n * C + c] = x[n * C + c] + b[c];
  },

  sumRows(db, dout, N, C) {
    const acc = rowA(C);
    acc.fill(0, 0, C);
    for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) acc[c] += dout[n * C + c];
    for (let c = 0; c < C; c++) db[c] += acc[c];
  },

  sum(x, n) {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i];
    return s;
  },

  sumSquares(x, n) {
    let s = 0;
    for (let i = 0; i < n; i++) s += x[i] * x[i];
    return s;
  },

  add(out, a, b, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] + b[i];
  },
  sub(out, a, b, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] - b[i];
  },
  mul(out, a, b, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] * b[i];
  },
  div(out, a, b, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] / b[i];
  },
  minimum(out, a, b, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] <= b[i] ? a[i] : b[i];
  },
  maximum(out, a, b, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] >= b[i] ? a[i] : b[i];
  },
  scaleShift(out, a, s, t, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] * s + t;
  },
  axpy(y, alpha, x, n) {
    for (let i = 0; i < n; i++) y[i] += alpha * x[i];
  },
  exp(out, a, n) {
    for (let i = 0; i < n; i++) out[i] = Math.exp(a[i]);
  },
  log(out, a, n) {
    for (let i = 0; i < n; i++) out[i] = Math.log(a[i]);
  },
  sigmoid(out, a, n) {
    for (let i = 0; i < n; i++) out[i] = sigmoid1(a[i]);
  },
  logSigmoid(out, a, n) {
    for (let i = 0; i < n; i++) {
      const x = a[i];
      out[i] = Math.min(x, 0) - Math.log1p(Math.exp(-Math.abs(x)));
    }
  },
  clamp(out, a, lo, hi, n) {
    for (let i = 0; i < n; i++) out[i] = a[i] < lo ? lo : a[i] > hi ? hi : a[i];
  },
  where(out, cond, a, b, n) {
    for (let i = 0; i < n; i++) out[i] = cond[i] !== 0 ? a[i] : b[i];
  },
  fill(out, value, n) {
    out.fill(value, 0, n);
  },
};
