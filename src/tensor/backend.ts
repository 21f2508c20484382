// The Backend: the small set of primitives that every heavy computation in chatwright reduces to.
//
// Two implementations: src/tensor/backend-js.ts (plain readable loops; the oracle, and the fallback when the native
// addon is unavailable) and src/tensor/backend-native.ts (C kernels in native/, SIMD + thread pool). Everything else,
// the autograd ops, the model, the losses, is composed in TypeScript from these.
//
// Conventions (after llm.c):
// - Arrays are row-major and contiguous; a "view" is a typed-array subarray, so there are no offset arguments.
// - Outputs come first, then buffers saved for backward, then inputs, then sizes.
// - Backward primitives ACCUMULATE (+=) into their gradient outputs; the caller zeroes them. The one exception is
//   crossEntropyBackward, which overwrites dlogits (and may alias logits), because the logits are the largest buffer.
// - The JS backend accepts Float32Array or Float64Array (float64 is used by the finite-difference gradient checks);
//   the native backend accepts Float32Array only.
// - Token ids and positions are Int32Array; a negative target means "ignore this position".

export type FloatArray = Float32Array | Float64Array;

export interface Backend {
  readonly name: 'js' | 'native';

  // ---- matrix multiply
  // C = alpha * op(A) @ op(B) + beta * C, for `batch` independent products at the given element strides.
  // op(A) is (M, K): A is stored (M, K), or (K, M) when transA. op(B) is (K, N): B is stored (K, N), or (N, K) when
  // transB. C is (M, N). beta is 0 (overwrite; C's old contents are ignored, even NaN) or 1 (accumulate).
  gemm(
    C: FloatArray, A: FloatArray, B: FloatArray,
    M: number, N: number, K: number,
    transA: boolean, transB: boolean, alpha: number, beta: number,
    batch?: number, strideA?: number, strideB?: number, strideC?: number,
  ): void;

  // The same product in bf16 mixed precision (training where the CPU has AVX512_BF16): each element of alpha * op(A)
  // and of op(B) is rounded to bf16 (quant.ts bf16Round), the products, exact in float32, are summed in float32 (the
  // reference: float64), and C = sum + beta * C. About 3 significant digits per input where gemm keeps 7; twice the
  // float32 peak on such CPUs. The native backend runs it only there (nativeControls.hasBf16Gemm), else the reference.
  gemmMixedBf16(
    C: FloatArray, A: FloatArray, B: FloatArray,
    M: number, N: number, K: number,
    transA: boolean, transB: boolean, alpha: number, beta: number,
    batch?: number, strideA?: number, strideB?: number, strideC?: number,
  ): void;

  // ---- products with low-precision weights (inference; formats in src/tensor/quant.ts)
  // C (M, N) = A (M, K) @ W^T for W (N, K), each weight dequantized exactly (bf16: the high half of a float32; q8_0:
  // llama.cpp's blocks of 32, w = d q with an fp16 scale d, K a multiple of 32). C is overwritten. W's length is
  // N*K (bf16) or N*K/32*34 bytes (q8_0).
  gemmBf16(C: FloatArray, A: FloatArray, W: Uint16Array, M: number, N: number, K: number): void;
  gemmQ8_0(C: FloatArray, A: FloatArray, W: Uint8Array, M: number, N: number, K: number): void;

  // ---- causal self-attention, grouped-query (flash-style: the (T, T) matrix is never stored)
  // q: (B, Tq, nHead, headDim); k, v: (B, Tk, nKvHead, headDim), Tk >= Tq; out: (B, Tq, nHead, headDim).
  // lse: (B, nHead, Tq), the log-sum-exp of each query's scaled scores, saved for backward (may be null at inference).
  // Query head h reads kv head floor(h / (nHead / nKvHead)). Query i of batch b sits at absolute position
  // len_b - Tq + i, where len_b = lens[b] (lens given: a KV cache with Tk slots of which lens[b] are valid) or Tk,
  // and attends to keys 0..that position inclusive.
  attentionForward(
    out: FloatArray, lse: FloatArray | null, q: FloatArray, k: FloatArray, v: FloatArray,
    B: number, Tq: number, Tk: number, nHead: number, nKvHead: number, headDim: number, scale: number,
    lens: Int32Array | null,
  ): void;
  // Training form only: Tq == Tk == T, lens null. Accumulates into dq, dk, dv.
  attentionBackward(
    dq: FloatArray, dk: FloatArray, dv: FloatArray,
    dout: FloatArray, out: FloatArray, lse: FloatArray, q: FloatArray, k: FloatArray, v: FloatArray,
    B: number, T: number, nHead: number, nKvHead: number, headDim: number, scale: number,
  ): void;

  // ---- normalisation, rows of length C
  // out = x * rstd * w, rstd = 1 / sqrt(mean(x^2) + eps); rstd: (N)
  rmsnormForward(out: FloatArray, rstd: FloatArray, x: FloatArray, w: FloatArray, N: number, C: number, eps: number): void;
  rmsnormBackward(
    dx: FloatArray, dw: FloatArray, dout: FloatArray, x: FloatArray, w: FloatArray, rstd: FloatArray, N: number, C: number,
  ): void;
  // The residual add fused with the RMSNorm after it: sum = x + y, out = sum * rstd * w (rstd of sum); sum may be x.
  // One pass where add + rmsnormForward take two (the backward is add's and rmsnormBackward on sum).
  residualRmsnormForward(
    sum: FloatArray, out: FloatArray, rstd: FloatArray, x: FloatArray, y: FloatArray, w: FloatArray,
    N: number, C: number, eps: number,
  ): void;
  // out = (x - mean) * rstd * w + b; mean, rstd: (N)
  layernormForward(
    out: FloatArray, mean: FloatArray, rstd: FloatArray, x: FloatArray, w: FloatArray, b: FloatArray,
    N: number, C: number, eps: number,
  ): void;
  layernormBackward(
    dx: FloatArray, dw: FloatArray, db: FloatArray, dout: FloatArray, x: FloatArray, w: FloatArray,
    mean: FloatArray, rstd: FloatArray, N: number, C: number,
  ): void;

  // ---- rotary embedding, Hugging Face Llama convention ("rotate_half": pairs (i, i + headDim/2))
  // x, out: (B, T, nHead, headDim); cos, sin: (maxT, headDim/2) tables; token t of batch b has position
  // pos0[b] + t (pos0 null: 0). out may alias x.
  // out[.., i] = x[i] cos - x[i + h] sin;  out[.., i + h] = x[i + h] cos + x[i] sin   (h = headDim/2, angle at (pos, i))
  ropeForward(
    out: FloatArray, x: FloatArray, cos: FloatArray, sin: FloatArray,
    B: number, T: number, nHead: number, headDim: number, pos0: Int32Array | null,
  ): void;
  // dx += rotation by the negative angle of dout.
  ropeBackward(
    dx: FloatArray, dout: FloatArray, cos: FloatArray, sin: FloatArray,
    B: number, T: number, nHead: number, headDim: number, pos0: Int32Array | null,
  ): void;

  // ---- activations (n elements)
  // out = silu(gate) * up, silu(g) = g * sigmoid(g)
  swigluForward(out: FloatArray, gate: FloatArray, up: FloatArray, n: number): void;
  swigluBackward(dgate: FloatArray, dup: FloatArray, dout: FloatArray, gate: FloatArray, up: FloatArray, n: number): void;
  // GPT-2's tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
  geluForward(out: FloatArray, x: FloatArray, n: number): void;
  geluBackward(dx: FloatArray, dout: FloatArray, x: FloatArray, n: number): void;

  // ---- softmax over rows of length C
  softmaxForward(out: FloatArray, x: FloatArray, N: number, C: number): void;
  softmaxBackward(dx: FloatArray, dout: FloatArray, out: FloatArray, N: number, C: number): void;

  // ---- cross-entropy fused with log-softmax over the vocabulary; probabilities are never stored
  // logits: (N, V). losses[i] = lse[i] - logits[i, targets[i]], or 0 where targets[i] < 0. lse: (N).
  crossEntropyForward(losses: FloatArray, lse: FloatArray, logits: FloatArray, targets: Int32Array, N: number, V: number): void;
  // dlogits[i, :] = dlosses[i] * (softmax(logits[i]) - onehot(targets[i])), rows with targets[i] < 0 get 0.
  // OVERWRITES dlogits; dlogits may be the same array as logits.
  crossEntropyBackward(
    dlogits: FloatArray, dlosses: FloatArray, logits: FloatArray, lse: FloatArray, targets: Int32Array, N: number, V: number,
  ): void;

  // ---- embedding: out[i, :] = wte[ids[i], :]; backward scatter-adds dout rows into dwte
  embeddingForward(out: FloatArray, ids: Int32Array, wte: FloatArray, N: number, C: number): void;
  embeddingBackward(dwte: FloatArray, dout: FloatArray, ids: Int32Array, N: number, C: number): void;

  // ---- AdamW with decoupled weight decay (Loshchilov & Hutter), in place over n elements; step counts from 1.
  // p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p), mhat = m / (1 - beta1^step), vhat = v / (1 - beta2^step)
  adamw(
    p: FloatArray, g: FloatArray, m: FloatArray, v: FloatArray, n: number,
    lr: number, beta1: number, beta2: number, eps: number, wd: number, step: number,
  ): void;

  // ---- bias and reductions
  // out[i, :] = x[i, :] + b  (N rows of C); out may alias x
  addBias(out: FloatArray, x: FloatArray, b: FloatArray, N: number, C: number): void;
  // db[:] += sum over rows of dout  (N rows of C)
  sumRows(db: FloatArray, dout: FloatArray, N: number, C: number): void;
  sum(x: FloatArray, n: number): number;
  sumSquares(x: FloatArray, n: number): number;

  // ---- elementwise over n elements; out may alias an input
  add(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void;
  sub(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void;
  mul(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void;
  div(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void;
  minimum(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void;
  maximum(out: FloatArray, a: FloatArray, b: FloatArray, n: number): void;
  // out = a * s + t
  scaleShift(out: FloatArray, a: FloatArray, s: number, t: number, n: number): void;
  // y += alpha * x
  axpy(y: FloatArray, alpha: number, x: FloatArray, n: number): void;
  exp(out: FloatArray, a: FloatArray, n: number): void;
  log(out: FloatArray, a: FloatArray, n: number): void;
  sigmoid(out: FloatArray, a: FloatArray, n: number): void;
  // log(sigmoid(a)), computed stably: min(a, 0) - log1p(exp(-|a|))
  logSigmoid(out: FloatArray, a: FloatArray, n: number): void;
  clamp(out: FloatArray, a: FloatArray, lo: number, hi: number, n: number): void;
  // out = cond != 0 ? a : b
  where(out: FloatArray, cond: FloatArray, a: FloatArray, b: FloatArray, n: number): void;
  fill(out: FloatArray, value: number, n: number): void;
}
