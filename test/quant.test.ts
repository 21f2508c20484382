// Low-precision inference weights: the formats (IEEE half and bf16 rounding, llama.cpp's q8_0 block on a block worked
// by hand), then a GPT holding its inference weights in bf16 and q8_0: a tiny model trained on a Markov chain gives
// the same top-1 token as float32 at nearly every position of held-out text and the same greedy continuation; matrices
// supplied as they are (a GGUF tensor) are used byte for byte; widths that are not whole q8_0 blocks stay float32.
// The kernels themselves are checked against the JS reference in test/backend-cases.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  f16ToF32, f32ToF16, f32ToBf16Array, bf16ToF32Array, quantizeQ8_0, dequantizeQ8_0, toLowp, lowpRows, q8_0Bytes,
  lowpPermuteRows, fromLowp,
} from '../src/tensor/quant.js';
import { GPT } from '../src/model/gpt.js';
import type { GPTConfig } from '../src/model/config.js';
import { AdamW } from '../src/train/optim.js';
import { releaseTape, getBackend, setBackend } from '../src/tensor/index.js';
import { Engine } from '../src/generate/index.js';
import { UserError } from '../src/util/errors.js';
import { rng } from './helpers.js';

test('half: every one of the 65536 bit patterns survives half -> float -> half; ties round to even', () => {
  for (let h = 0; h < 65536; h++) {
    const x = f16ToF32(h);
    if (Number.isNaN(x)) assert.ok(Number.isNaN(f16ToF32(f32ToF16(x))), `NaN ${h.toString(16)}`);
    else assert.equal(f32ToF16(x), h, `half 0x${h.toString(16)} = ${x}`);
  }
  assert.equal(f16ToF32(0x3c00), 1);
  assert.equal(f16ToF32(0x0001), 2 ** -24); // smallest subnormal
  assert.equal(f16ToF32(0x7bff), 65504);
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // halfway between 1 and its successor: to the even one
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02);
  assert.equal(f32ToF16(2 ** -25), 0); // half the smallest subnormal: ties to even (0)
  assert.equal(f32ToF16(3 * 2 ** -25), 2); // 1.5 subnormal steps: to 2
  assert.equal(f32ToF16(65520), 0x7c00); // halfway to 65536 rounds up: inf
  assert.equal(f32ToF16(-0), 0x8000);
});

test('bf16: the high half of a float32, rounded to nearest even; inf and NaN kept', () => {
  const x = Float32Array.of(1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, -2.5, Infinity, NaN, 3.4028234663852886e38, 1e-40);
  const h = f32ToBf16Array(x);
  assert.deepEqual([...h.subarray(0, 5)], [0x3f80, 0x3f80, 0x3f82, 0xc020, 0x7f80]);
  assert.ok(Number.isNaN(bf16ToF32Array(h)[5]));
  assert.equal(bf16ToF32Array(h)[6], Infinity); // the largest float rounds up past the largest bf16
  assert.equal(bf16ToF32Array(h)[7], 2 ** -133); // subnormals are rounded (to the nearest step, 2^-133), not flushed
});

test('q8_0: a block worked by hand (llama.cpp quantize_row_q8_0_ref), 34 bytes, d little-endian first', () => {
  const x = Float32Array.from({ length: 32 }, (_, j) => j - 16); // -16 .. 15
  // d = 16/127 = 0.1259842..., as a half: 2^-3 (1 + 8/1024) -> 0x3008; 1/d (from the float32 d) is exactly 7.9375
  assert.equal(Math.fround(1 / Math.fround(16 / 127)), 7.9375);
  const q = quantizeQ8_0(x, 1, 32);
  assert.equal(q.length, 34);
  assert.deepEqual([q[0], q[1]], [0x08, 0x30]);
  const qs = new Int8Array(q.buffer, 2, 32);
  // q = roundf(x 7.9375): -16 -> -127, -8 -> -63.5 -> -64 (halves away from zero), 1 -> 8, 15 -> 119.06 -> 119
  assert.equal(qs[0], -127);
  assert.equal(qs[8], -64);
  assert.equal(qs[16], 0);
  assert.equal(qs[17], 8);
  assert.equal(qs[31], 119);
  assert.equal(dequantizeQ8_0(q, 1, 32)[0], -127 * 0.1259765625);
  // a block of zeros has d = 0 and q = 0
  assert.deepEqual([...quantizeQ8_0(new Float32Array(32), 1, 32)], new Array(34).fill(0));
  assert.throws(() => quantizeQ8_0(new Float32Array(48), 1, 48), /whole blocks of 32/);
});

test('q8_0 and bf16: the error of each weight is at most half a step; row views share the storage', () => {
  const r = rng(3);
  const rows = 5, cols = 96, w = Float32Array.from({ length: rows * cols }, () => (r() * 2 - 1) * (r() < 0.1 ? 4 : 1));
  const q = toLowp(w, rows, cols, 'q8_0'), back = dequantizeQ8_0(q.data as Uint8Array, rows, cols);
  assert.equal(q.data.length, q8_0Bytes(rows, cols));
  for (let b = 0; b < (rows * cols) / 32; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(w[b * 32 + j]));
    for (let j = 0; j < 32; j++) {
      const k = b * 32 + j;
      assert.ok(Math.abs(back[k] - w[k]) <= (amax / 127) * 0.51 + 1e-3 * amax / 127, `weight ${k}: ${w[k]} -> ${back[k]}`);
    }
  }
  const bf = bf16ToF32Array(f32ToBf16Array(w));
  for (let k = 0; k < w.length; k++) assert.ok(Math.abs(bf[k] - w[k]) <= Math.abs(w[k]) * 2 ** -8, `bf16 weight ${k}`);
  const order = [3, 0, 4, 1, 2], p = lowpPermuteRows(q, order), pb = lowpPermuteRows(toLowp(w, rows, cols, 'bf16'), order);
  for (const [perm, src] of [[p, back], [pb, bf]] as const) {
    const x = fromLowp(perm);
    for (let i = 0; i < rows; i++) assert.deepEqual([...x.subarray(i * cols, (i + 1) * cols)], [...src.subarray(order[i] * cols, (order[i] + 1) * cols)]);
  }
  assert.throws(() => lowpPermuteRows(q, [0, 1]), RangeError);
  const v = lowpRows(q, 2, 4);
  assert.equal(v.rows, 2);
  assert.equal(v.data.buffer, q.data.buffer);
  assert.deepEqual([...dequantizeQ8_0(v.data as Uint8Array, 2, cols)], [...back.subarray(2 * cols, 4 * cols)]);
});

// ---- a GPT with low-precision inference weights

const V = 64;
const cfg = (o: Partial<GPTConfig> = {}): GPTConfig => ({
  arch: 'llama', vocabSize: V, nLayer: 2, nHead: 4, nKvHead: 2, nEmbd: 64, intermediateSize: 128, maxSeqLen: 64,
  ropeTheta: 10000, normEps: 1e-5, tiedEmbeddings: true, ...o,
});

// A Markov chain over V tokens: from each token, 3 likely successors (0.6, 0.25, 0.1) and the rest uniform, so the
// trained model's top token has a margin but is not certain.
function markov(seed: number): (prev: number, u: number) => number {
  const r = rng(seed);
  const succ = Array.from({ length: V }, () => [0, 1, 2].map(() => Math.floor(r() * V)));
  return (prev, u) => (u < 0.6 ? succ[prev][0] : u < 0.85 ? succ[prev][1] : u < 0.95 ? succ[prev][2] : Math.floor(((u - 0.95) / 0.05) * V));
}
function sample(next: (p: number, u: number) => number, n: number, seed: number): Int32Array {
  const r = rng(seed), out = new Int32Array(n);
  for (let i = 1; i < n; i++) out[i] = next(out[i - 1], r());
  return out;
}

let trained: GPT | null = null;
function trainedModel(): GPT {
  if (trained) return trained;
  const next = markov(5), model = GPT.create(cfg(), 1), opt = new AdamW(model);
  const B = 8, T = 32, data = sample(next, 40000, 6);
  for (let step = 0; step < 150; step++) {
    const ids = new Int32Array(B * T), targets = new Int32Array(B * T);
    for (let b = 0; b < B; b++) {
      const o = (step * B + b) * 37 % (data.length - T - 1);
      ids.set(data.subarray(o, o + T), b * T);
      targets.set(data.subarray(o + 1, o + T + 1), b * T);
    }
    model.zeroGrad();
    const { loss } = model.forward(ids, B, T, { targets });
    loss!.backward();
    opt.step(3e-3);
    releaseTape();
  }
  return (trained = model);
}

// logits (T, V) of one sequence through the KV-cache forward at the model's current inference dtype
function logitsOf(model: GPT, ids: Int32Array): Float32Array {
  const cache = model.newKVCache(1, ids.length);
  return model.forwardCached(ids, 1, ids.length, cache).slice();
}
const argmaxRow = (x: Float32Array, t: number) => {
  let best = 0;
  for (let v = 1; v < V; v++) if (x[t * V + v] > x[t * V + best]) best = v;
  return best;
};

test('a trained tiny model: bf16 and q8_0 give the float32 top-1 token at >= 97% of held-out positions, and the same greedy text', () => {
  const model = trainedModel();
  const held = sample(markov(5), 64, 77); // held-out text from the same chain
  model.setInferenceDtype('f32');
  const ref = logitsOf(model, held);
  const greedy = (dtype: 'f32' | 'bf16' | 'q8_0') => {
    model.setInferenceDtype(dtype);
    return new Engine(model).generate([[...held.subarray(0, 8)]], { maxNewTokens: 24, temperature: 0 })[0].ids;
  };
  const refGreedy = greedy('f32');
  for (const dtype of ['bf16', 'q8_0'] as const) {
    model.setInferenceDtype(dtype);
    assert.equal(model.inferenceDtype, dtype);
    const got = logitsOf(model, held);
    let agree = 0, maxErr = 0, scale = 0;
    for (let t = 0; t < held.length; t++) if (argmaxRow(got, t) === argmaxRow(ref, t)) agree++;
    for (let k = 0; k < ref.length; k++) {
      maxErr = Math.max(maxErr, Math.abs(got[k] - ref[k]));
      scale = Math.max(scale, Math.abs(ref[k]));
    }
    const rate = agree / held.length;
    console.log(`# ${dtype}: top-1 agreement ${(100 * rate).toFixed(1)}%, max |logit diff| ${maxErr.toFixed(4)} (logits up to ${scale.toFixed(2)})`);
    assert.ok(rate >= 0.97, `${dtype}: top-1 agreement ${rate}`);
    assert.ok(maxErr > 0, `${dtype}: logits identical to float32: the low-precision path did not run`);
    assert.ok(maxErr < 0.05 * scale, `${dtype}: max logit error ${maxErr} against logits up to ${scale}`);
    assert.deepEqual(greedy(dtype), refGreedy, `${dtype}: greedy continuation`);
  }
  model.setInferenceDtype('f32');
});

test('low-precision inference on the JS backend gives the native result (same weights, same dtype)', (t) => {
  const model = trainedModel(), held = sample(markov(5), 24, 78), before = getBackend().name;
  if (before !== 'native') {
    t.skip('native backend unavailable');
    return;
  }
  try {
    for (const dtype of ['bf16', 'q8_0'] as const) {
      model.setInferenceDtype(dtype);
      const nat = logitsOf(model, held);
      setBackend('js');
      const js = logitsOf(model, held);
      setBackend('native');
      let e = 0;
      for (let k = 0; k < js.length; k++) e = Math.max(e, Math.abs(js[k] - nat[k]));
      assert.ok(e < 1e-3, `${dtype}: JS and native logits differ by ${e}`);
    }
  } finally {
    setBackend(before);
    model.setInferenceDtype('f32');
  }
});

test('setInferenceDtype: given matrices are used as they are; wrong shapes and dtypes are errors; reports the bytes', () => {
  const model = GPT.create(cfg({ tiedEmbeddings: false }), 3);
  const C = 64, I = 128;
  const zeros = quantizeQ8_0(new Float32Array(V * C), V, C);
  const { bytes, float32 } = model.setInferenceDtype('q8_0', new Map([['lm_head.weight', { dtype: 'q8_0', rows: V, cols: C, data: zeros }]]));
  assert.deepEqual(float32, []);
  const perLayer = q8_0Bytes(C, C) * 2 + q8_0Bytes(32, C) * 2 + q8_0Bytes(I, C) * 2 + q8_0Bytes(C, I);
  assert.equal(bytes, 2 * perLayer + q8_0Bytes(V, C));
  assert.ok(logitsOf(model, Int32Array.of(1, 2, 3)).every((x) => x === 0), 'the given all-zero lm head was not used');
  assert.throws(() => model.setInferenceDtype('q8_0', new Map([['lm_head.weight', { dtype: 'q8_0', rows: V, cols: 32, data: zeros }]])),
    (e) => e instanceof UserError && /lm_head.weight/.test(e.message));
  assert.throws(() => model.setInferenceDtype('bf16', new Map([['lm_head.weight', { dtype: 'q8_0', rows: V, cols: C, data: zeros }]])),
    (e) => e instanceof UserError && /needs bf16/.test(e.message));
});

test('q8_0 keeps float32 where a width is not whole blocks; GPT-2 style (q, k, v rows of c_attn) quantizes per view', () => {
  const odd = GPT.create(cfg({ intermediateSize: 80 }), 4); // down_proj reads 80 inputs
  const ids = Int32Array.of(5, 9, 2, 7);
  const ref = logitsOf(odd, ids);
  const { float32 } = odd.setInferenceDtype('q8_0');
  assert.deepEqual(float32, ['model.layers.0.mlp.down_proj.weight', 'model.layers.1.mlp.down_proj.weight']);
  const got = logitsOf(odd, ids);
  for (let k = 0; k < ref.length; k++) assert.ok(Math.abs(got[k] - ref[k]) < 0.02, `logit ${k}: ${got[k]} vs ${ref[k]}`);

  const gpt2 = GPT.create(cfg({ arch: 'gpt2', nKvHead: 4, intermediateSize: 256 }), 5);
  const r2 = logitsOf(gpt2, ids);
  for (const dtype of ['bf16', 'q8_0'] as const) {
    gpt2.setInferenceDtype(dtype);
    const g2 = logitsOf(gpt2, ids);
    let e = 0;
    for (let k = 0; k < r2.length; k++) e = Math.max(e, Math.abs(g2[k] - r2[k]));
    assert.ok(e > 0 && e < 0.02, `gpt2 ${dtype}: max logit diff ${e}`);
  }
});

test('large products (prefill-sized: shared packed blocks, several K blocks, threads) equal float32 GEMM on the dequantized weights', async (t) => {
  const mod = await import('../src/tensor/backend-native.js');
  const be = mod.loadNativeBackend();
  if (!be) {
    t.skip(`native backend unavailable: ${mod.nativeLoadError()}`);
    return;
  }
  const r = rng(11), initial = mod.nativeControls.cpuLevel();
  const M = 600, N = 320, K = 1632; // 2 M N K > 5e8 flops and M >= N >= 256: gemm.c's shared path on 2+ threads
  const A = Float32Array.from({ length: M * K }, () => r() * 2 - 1), W = Float32Array.from({ length: N * K }, () => r() * 2 - 1);
  try {
    for (let level = 0; level <= 2; level++) {
      if (mod.nativeControls.setCpuLevel(level) !== level) continue;
      for (const dtype of ['bf16', 'q8_0'] as const) {
        const q = toLowp(W, N, K, dtype), ref = new Float32Array(M * N), got = new Float32Array(M * N).fill(NaN);
        be.gemm(ref, A, fromLowp(q), M, N, K, false, true, 1, 0);
        if (dtype === 'bf16') be.gemmBf16(got, A, q.data as Uint16Array, M, N, K);
        else be.gemmQ8_0(got, A, q.data as Uint8Array, M, N, K);
        let e = 0, s = 0;
        for (let k = 0; k < ref.length; k++) {
          e = Math.max(e, Math.abs(got[k] - ref[k]));
          s = Math.max(s, Math.abs(ref[k]));
        }
        assert.ok(e <= 1e-5 * s, `${dtype} at level ${level}: max error ${e} against values up to ${s}`);
      }
    }
  } finally {
    mod.nativeControls.setCpuLevel(initial);
  }
});
