// Low-precision weight formats for inference: bf16 and q8_0. Training stays float32; a model's inference weights
// can be held in one of these (GPT.setInferenceDtype), and the Backend multiplies with them directly (gemmBf16,
// gemmQ8_0), dequantizing in registers.
//
// - bf16: the high 16 bits of a float32 (8-bit exponent, 7-bit mantissa), rounded to nearest even; one Uint16 each.
// - q8_0: llama.cpp's block_q8_0 (ggml/src/ggml-common.h), so GGUF q8_0 tensors map byte for byte: each row of K
//   weights (K a multiple of 32) is K/32 blocks of 34 bytes: the scale d as an IEEE half (little-endian), then 32
//   int8 q; the weight is d * q. quantizeQ8_0 is ggml's quantize_row_q8_0_ref (ggml/src/ggml-quants.c):
//   d = max|x| / 127, q = round(x / d) (half away from zero, C's roundf), with 1/d taken before d is rounded to half.
// Boundary: typed arrays in and out; no Backend, no model.

export type WeightDtype = 'f32' | 'bf16' | 'q8_0';
export const WEIGHT_DTYPES: readonly WeightDtype[] = ['f32', 'bf16', 'q8_0'];

export const QK8_0 = 32; // weights per q8_0 block
export const Q8_0_BLOCK_BYTES = 34; // fp16 scale + 32 int8

// A weight matrix W (rows, cols), used as x @ W^T (rows = outputs, cols = inputs, as nn.Linear stores it).
export type LowpMatrix =
  | { dtype: 'bf16'; rows: number; cols: number; data: Uint16Array }
  | { dtype: 'q8_0'; rows: number; cols: number; data: Uint8Array };

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

// ---- IEEE half <-> float (exact; round to nearest even)

export function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function f32ToF16(x: number): number {
  f32[0] = x;
  const b = u32[0], sign = (b >>> 16) & 0x8000, e = (b >>> 23) & 0xff, m = b & 0x7fffff;
  if (e === 0xff) return sign | 0x7c00 | (m ? 0x200 : 0); // inf, NaN (quiet)
  const E = e - 127 + 15;
  if (E >= 31) return sign | 0x7c00; // overflow -> inf
  if (E <= 0) { // half subnormal (or zero): value / 2^-24, rounded to nearest even
    if (E < -10) return sign;
    const mant = m | 0x800000, shift = 14 - E; // 24-bit significand down to the subnormal's 10 bits
    let r = mant >>> shift;
    const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  let r = (E << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && r & 1)) r++; // may carry into the exponent, up to inf: still right
  return sign | r;
}

// ---- bf16

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0];
}

export function f32ToBf16Array(x: Float32Array): Uint16Array {
  const bits = new Uint32Array(x.buffer, x.byteOffset, x.length), out = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const b = bits[i];
    if ((b & 0x7f800000) === 0x7f800000 && b & 0x7fffff) out[i] = (b >>> 16) | 0x40; // NaN stays a (quiet) NaN
    else out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16; // nearest even; overflow rounds to inf as it should
  }
  return out;
}

// x as a float32, rounded to bf16 and widened back: the rounding of the mixed-precision GEMM's inputs (Backend
// gemmMixedBf16), which is vcvtne2ps2bf16's (Intel SDM vol. 2): nearest even, a float32 denormal becomes a zero of its
// sign, NaN stays NaN. (Weights stored as bf16 keep their denormals: f32ToBf16Array.)
export function bf16Round(x: number): number {
  f32[0] = x;
  const b = u32[0];
  if ((b & 0x7f800000) === 0) u32[0] = b & 0x80000000;
  else if ((b & 0x7f800000) === 0x7f800000) u32[0] = b & 0x7fffff ? (b | 0x400000) & 0xffff0000 : b;
  else u32[0] = ((b + 0x7fff + ((b >>> 16) & 1)) >>> 16) << 16;
  return f32[0];
}

export function bf16ToF32Array(h: Uint16Array): Float32Array {
  const out = new Float32Array(h.length), bits = new Uint32Array(out.buffer);
  for (let i = 0; i < h.length; i++) bits[i] = h[i] << 16;
  return out;
}

// ---- q8_0

export function q8_0Bytes(rows: number, cols: number): number {
  return rows * (cols / QK8_0) * Q8_0_BLOCK_BYTES;
}

export function quantizeQ8_0(x: Float32Array, rows: number, cols: number): Uint8Array {
  if (cols % QK8_0 !== 0) throw new RangeError(`quantizeQ8_0: a row of ${cols} weights is not whole blocks of ${QK8_0}`);
  if (x.length < rows * cols) throw new RangeError(`quantizeQ8_0: x has ${x.length} elements, needs ${rows * cols}`);
  const out = new Uint8Array(q8_0Bytes(rows, cols)), q = new Int8Array(out.buffer);
  const nb = (rows * cols) / QK8_0;
  for (let b = 0; b < nb; b++) {
    const src = b * QK8_0, dst = b * Q8_0_BLOCK_BYTES;
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) {
      const a = Math.abs(x[src + j]);
      amax = amax > a ? amax : a; // ggml's MAX(amax, fabsf(v)), NaN included
    }
    const d = Math.fround(amax / 127), id = d ? Math.fround(1 / d) : 0;
    const h = f32ToF16(d);
    out[dst] = h & 0xff;
    out[dst + 1] = h >>> 8;
    for (let j = 0; j < QK8_0; j++) {
      const v = Math.fround(x[src + j] * id);
      q[dst + 2 + j] = Math.sign(v) * Math.round(Math.abs(v)); // roundf: halves away from zero
    }
  }
  return out;
}

export function dequantizeQ8_0(data: Uint8Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(rows * cols), q = new Int8Array(data.buffer, data.byteOffset, data.length);
  for (let b = 0; b < (rows * cols) / QK8_0; b++) {
    const o = b * Q8_0_BLOCK_BYTES, d = f16ToF32(data[o] | (data[o + 1] << 8));
    for (let j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = d * q[o + 2 + j];
  }
  return out;
}

// ---- matrices

// W (rows, cols) in float32 -> the dtype's storage. q8_0 needs cols a multiple of 32.
export function toLowp(w: Float32Array, rows: number, cols: number, dtype: 'bf16' | 'q8_0'): LowpMatrix {
  const x = w.subarray(0, rows * cols);
  return dtype === 'bf16'
    ? { dtype, rows, cols, data: f32ToBf16Array(x) }
    : { dtype, rows, cols, data: quantizeQ8_0(x, rows, cols) };
}

export function fromLowp(m: LowpMatrix): Float32Array {
  return m.dtype === 'bf16' ? bf16ToF32Array(m.data) : dequantizeQ8_0(m.data, m.rows, m.cols);
}

// Rows [r0, r1) of a matrix, sharing its storage (rows are independent in both formats).
export function lowpRows(m: LowpMatrix, r0: number, r1: number): LowpMatrix {
  if (m.dtype === 'bf16') return { ...m, rows: r1 - r0, data: m.data.subarray(r0 * m.cols, r1 * m.cols) };
  const rb = (m.cols / QK8_0) * Q8_0_BLOCK_BYTES;
  return { ...m, rows: r1 - r0, data: m.data.subarray(r0 * rb, r1 * rb) };
}

// A matrix whose row i is m's row order[i] (a GGUF llama file holds q and k with their rows permuted per head for
// llama.cpp's interleaved rotary; its loader puts them back with the inverse order, whole rows, so q8_0 stays exact).
export function lowpPermuteRows(m: LowpMatrix, order: ArrayLike<number>): LowpMatrix {
  if (order.length !== m.rows) throw new RangeError(`lowpPermuteRows: ${order.length} rows in the order, the matrix has ${m.rows}`);
  const rb = m.dtype === 'bf16' ? m.cols : (m.cols / QK8_0) * Q8_0_BLOCK_BYTES;
  const data = m.dtype === 'bf16' ? new Uint16Array(m.data.length) : new Uint8Array(m.data.length);
  for (let i = 0; i < m.rows; i++) {
    const r = order[i];
    if (!(r >= 0 && r < m.rows)) throw new RangeError(`lowpPermuteRows: row ${r} is outside 0..${m.rows - 1}`);
    data.set(m.data.subarray(r * rb, (r + 1) * rb), i * rb);
  }
  return { ...m, data } as LowpMatrix;
}

// Bytes a matrix occupies (what a decode step reads of it).
export function lowpBytes(m: LowpMatrix): number {
  return m.data.byteLength;
}
