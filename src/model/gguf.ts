// The GGUF file format, version 3 (github.com/ggml-org/ggml, docs/gguf.md): bytes only, no model knowledge (gguf-model.ts
// maps models and tokenizers to and from it). Layout, all little-endian:
//   magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
//   metadata: (string key, u32 value type, value)*, strings are u64 length + UTF-8 bytes, arrays u32 type + u64 count,
//   tensor infos: (string name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset)*,
//   padding to `general.alignment` (default 32), then the tensor data, each tensor at its offset (aligned).
// Reading keeps each tensor's raw bytes and type, so a kernel that runs q8_0 as it is can use them directly;
// `tensorToF32` dequantises the types we support (F32, F16, BF16, Q8_0) and names any other type in its error.
import { closeSync, existsSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { readFileChecked, writeFileAtomic } from '../util/fsx.js';
import { floatToHalf, halfToFloat } from './safetensors.js';

export const GGUF_MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
export const GGUF_VERSION = 3;
const DEFAULT_ALIGNMENT = 32;

// ggml_type (ggml/include/ggml.h): the values this file reads or writes by name; others are named in errors.
export const GGML_TYPE = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
const GGML_TYPE_NAMES: Record<number, string> = {
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1', 10: 'Q2_K', 11: 'Q3_K',
  12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS', 17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL',
  21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS', 24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16',
  34: 'TQ1_0', 35: 'TQ2_0', 39: 'MXFP4',
};
export function ggmlTypeName(t: number): string {
  return GGML_TYPE_NAMES[t] ?? `type ${t}`;
}
export const QK8_0 = 32; // values per q8_0 block: an f16 scale then 32 int8 (34 bytes)

// Bytes of `n` values (n a multiple of the block size for block types); undefined for types we do not size.
function typeBytes(type: number, n: number): number | undefined {
  if (type === GGML_TYPE.F32) return 4 * n;
  if (type === GGML_TYPE.F16 || type === GGML_TYPE.BF16) return 2 * n;
  if (type === GGML_TYPE.Q8_0) return (n / QK8_0) * 34;
  return undefined;
}

// gguf_type: how metadata values are stored.
export const GGUF_VALUE = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10,
  INT64: 11, FLOAT64: 12,
} as const;

// A metadata value with its GGUF type made explicit (a JS number does not say whether it is a u32 or an f32).
export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64' | 'u8'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'string[]'; value: string[] }
  | { type: 'i32[]' | 'f32[]'; value: ArrayLike<number> };

export interface GgufTensor {
  name: string;
  type: number; // ggml type
  ne: number[]; // dimensions, innermost first (a row-major (rows, cols) matrix is ne = [cols, rows])
  data: Uint8Array; // raw bytes in that type
}

export interface GgufFile {
  version: number;
  metadata: Map<string, unknown>; // numbers, bigints (u64/i64 beyond 2^53), booleans, strings, arrays of them
  tensors: Map<string, GgufTensor>;
}

// ---- writing

// Small values go into 1 MiB chunks (a vocabulary is hundreds of thousands of strings: one part each would be one
// write call each); tensor data is passed through as its own part, uncopied.
class Writer {
  parts: Uint8Array[] = [];
  size = 0;
  private chunk = Buffer.alloc(1 << 20);
  private used = 0;
  private room(n: number): DataView {
    if (this.used + n > this.chunk.length) this.flush(Math.max(n, 1 << 20));
    const dv = new DataView(this.chunk.buffer, this.chunk.byteOffset + this.used, n);
    this.used += n;
    this.size += n;
    return dv;
  }
  private flush(next = 1 << 20) {
    if (this.used > 0) this.parts.push(this.chunk.subarray(0, this.used));
    this.chunk = Buffer.alloc(next);
    this.used = 0;
  }
  u8(v: number) { this.room(1).setUint8(0, v); }
  u32(v: number) { this.room(4).setUint32(0, v, true); }
  i32(v: number) { this.room(4).setInt32(0, v, true); }
  f32(v: number) { this.room(4).setFloat32(0, v, true); }
  u64(v: number) { this.room(8).setBigUint64(0, BigInt(v), true); }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.small(b);
  }
  small(b: Uint8Array) {
    const dv = this.room(b.length);
    new Uint8Array(dv.buffer, dv.byteOffset, b.length).set(b);
  }
  bytes(b: Uint8Array) {
    this.flush();
    this.parts.push(b);
    this.size += b.length;
  }
  pad(alignment: number) {
    const n = (alignment - (this.size % alignment)) % alignment;
    if (n) this.room(n);
  }
  done(): Uint8Array[] {
    this.flush(0);
    return this.parts;
  }
}

function writeValue(w: Writer, v: GgufValue): void {
  switch (v.type) {
    case 'u8': w.u32(GGUF_VALUE.UINT8); w.u8(v.value); return;
    case 'u32': w.u32(GGUF_VALUE.UINT32); w.u32(v.value); return;
    case 'i32': w.u32(GGUF_VALUE.INT32); w.i32(v.value); return;
    case 'f32': w.u32(GGUF_VALUE.FLOAT32); w.f32(v.value); return;
    case 'u64': w.u32(GGUF_VALUE.UINT64); w.u64(v.value); return;
    case 'bool': w.u32(GGUF_VALUE.BOOL); w.u8(v.value ? 1 : 0); return;
    case 'string': w.u32(GGUF_VALUE.STRING); w.str(v.value); return;
    case 'string[]':
      w.u32(GGUF_VALUE.ARRAY); w.u32(GGUF_VALUE.STRING); w.u64(v.value.length);
      for (const s of v.value) w.str(s);
      return;
    case 'i32[]': case 'f32[]': {
      w.u32(GGUF_VALUE.ARRAY); w.u32(v.type === 'i32[]' ? GGUF_VALUE.INT32 : GGUF_VALUE.FLOAT32); w.u64(v.value.length);
      const a = v.type === 'i32[]' ? Int32Array.from(v.value) : Float32Array.from(v.value);
      w.small(new Uint8Array(a.buffer));
      return;
    }
  }
}

/** The file's bytes as parts (metadata in the given order, tensors in the given order, each aligned). */
export function encodeGguf(metadata: [string, GgufValue][], tensors: GgufTensor[], alignment = DEFAULT_ALIGNMENT): Uint8Array[] {
  const w = new Writer();
  w.u32(GGUF_MAGIC);
  w.u32(GGUF_VERSION);
  w.u64(tensors.length);
  const md = alignment === DEFAULT_ALIGNMENT ? metadata : [...metadata, ['general.alignment', { type: 'u32', value: alignment }] as [string, GgufValue]];
  w.u64(md.length);
  for (const [k, v] of md) {
    w.str(k);
    writeValue(w, v);
  }
  let off = 0;
  const offsets: number[] = [];
  for (const t of tensors) {
    const n = t.ne.reduce((a, b) => a * b, 1);
    const want = typeBytes(t.type, n);
    if (want !== undefined && want !== t.data.length) {
      throw new Error(`encodeGguf: tensor ${t.name} has ${t.data.length} bytes but ne [${t.ne}] of ${ggmlTypeName(t.type)} needs ${want}`);
    }
    w.str(t.name);
    w.u32(t.ne.length);
    for (const d of t.ne) w.u64(d);
    w.u32(t.type);
    w.u64(off);
    offsets.push(off);
    off += t.data.length;
    off += (alignment - (off % alignment)) % alignment;
  }
  w.pad(alignment);
  for (const t of tensors) {
    w.bytes(t.data);
    w.pad(alignment);
  }
  return w.done();
}

export function writeGguf(path: string, metadata: [string, GgufValue][], tensors: GgufTensor[]): void {
  writeFileAtomic(path, encodeGguf(metadata, tensors));
}

// ---- reading

export function readGguf(path: string): GgufFile {
  if (!existsSync(path)) throw new UserError(`GGUF file not found: ${path}`);
  if (statSync(path).isDirectory()) throw new UserError(`GGUF file ${path} is a folder, not a file`);
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    readFileChecked(path, 'GGUF file'); // throws the failure (no permission...) as a UserError naming the file
    throw new UserError(`GGUF file ${path} cannot be read`);
  }
  try {
    const size = fstatSync(fd).size;
    if (size > 2 ** 31 - 1 - 4096) {
      // Node's Buffer limit; the reader holds the whole file (a model this size also needs its f32 copy in memory)
      throw new UserError(`${path} is ${(size / 2 ** 30).toFixed(1)} GiB; GGUF files over 2 GiB cannot be read yet`,
        'use the Hugging Face safetensors folder of the model instead');
    }
    const buf = Buffer.alloc(size);
    let o = 0;
    while (o < size) {
      const n = readSync(fd, buf, o, size - o, o);
      if (n === 0) break;
      o += n;
    }
    return parseGguf(buf.subarray(0, o), path);
  } finally {
    closeSync(fd);
  }
}

export function parseGguf(buf: Uint8Array, what = '<buffer>'): GgufFile {
  const bad = (msg: string) => new UserError(`malformed GGUF file ${what}: ${msg}`,
    'the file is truncated or not a GGUF file; export it again or re-download it');
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let p = 0;
  const need = (n: number, of: string) => {
    if (p + n > buf.length) throw bad(`${of} at byte ${p} runs past the end of the file (${buf.length} bytes)`);
  };
  const u8 = () => (need(1, 'a u8'), dv.getUint8(p++));
  const u32 = () => (need(4, 'a u32'), (p += 4), dv.getUint32(p - 4, true));
  const u64 = (): number | bigint => {
    need(8, 'a u64');
    const v = dv.getBigUint64(p, true);
    p += 8;
    return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  };
  const count = (of: string): number => {
    const n = u64();
    if (typeof n !== 'number' || n > buf.length) throw bad(`${of} ${n} is larger than the file`);
    return n;
  };
  const str = (): string => {
    const n = count('a string length');
    need(n, 'a string');
    const s = Buffer.from(buf.buffer, buf.byteOffset + p, n).toString('utf8');
    p += n;
    return s;
  };
  const scalar = (t: number): unknown => {
    switch (t) {
      case GGUF_VALUE.UINT8: return u8();
      case GGUF_VALUE.INT8: need(1, 'an i8'); return dv.getInt8(p++);
      case GGUF_VALUE.UINT16: need(2, 'a u16'); p += 2; return dv.getUint16(p - 2, true);
      case GGUF_VALUE.INT16: need(2, 'an i16'); p += 2; return dv.getInt16(p - 2, true);
      case GGUF_VALUE.UINT32: return u32();
      case GGUF_VALUE.INT32: need(4, 'an i32'); p += 4; return dv.getInt32(p - 4, true);
      case GGUF_VALUE.FLOAT32: need(4, 'an f32'); p += 4; return shortestF32(dv.getFloat32(p - 4, true));
      case GGUF_VALUE.BOOL: return u8() !== 0;
      case GGUF_VALUE.STRING: return str();
      case GGUF_VALUE.UINT64: return u64();
      case GGUF_VALUE.INT64: {
        need(8, 'an i64');
        const v = dv.getBigInt64(p, true);
        p += 8;
        return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      case GGUF_VALUE.FLOAT64: need(8, 'an f64'); p += 8; return dv.getFloat64(p - 8, true);
      default: throw bad(`unknown metadata value type ${t} at byte ${p - 4}`);
    }
  };
  if (buf.length < 4 || dv.getUint32(0, true) !== GGUF_MAGIC) throw bad('it does not start with "GGUF"');
  p = 4;
  const version = u32();
  if (version !== 2 && version !== 3) throw bad(`version ${version} is not supported (2 and 3 are)`);
  const nTensors = count('the tensor count');
  const nMeta = count('the metadata count');
  const metadata = new Map<string, unknown>();
  for (let i = 0; i < nMeta; i++) {
    const key = str();
    const t = u32();
    if (t === GGUF_VALUE.ARRAY) {
      const et = u32();
      const n = count(`the length of array ${key}`);
      const arr: unknown[] = new Array(n);
      for (let j = 0; j < n; j++) arr[j] = scalar(et);
      metadata.set(key, arr);
    } else {
      metadata.set(key, scalar(t));
    }
  }
  const alignment = (metadata.get('general.alignment') as number | undefined) ?? DEFAULT_ALIGNMENT;
  if (!Number.isInteger(alignment) || alignment <= 0 || alignment % 8 !== 0) throw bad(`general.alignment ${alignment} is not a positive multiple of 8`);
  const infos: { name: string; ne: number[]; type: number; offset: number }[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    if (nd > 4) throw bad(`tensor ${name} has ${nd} dimensions (at most 4)`);
    const ne: number[] = [];
    for (let d = 0; d < nd; d++) {
      const n = u64();
      if (typeof n !== 'number') throw bad(`dimension ${d} of tensor ${name} is ${n}`);
      ne.push(n);
    }
    const type = u32();
    const offset = count(`the offset of tensor ${name}`);
    infos.push({ name, ne, type, offset });
  }
  const dataStart = p + ((alignment - (p % alignment)) % alignment);
  const tensors = new Map<string, GgufTensor>();
  for (const t of infos) {
    const n = t.ne.reduce((a, b) => a * b, 1);
    let bytes = typeBytes(t.type, n);
    if (t.type === GGML_TYPE.Q8_0 && t.ne[0] % QK8_0 !== 0) throw bad(`q8_0 tensor ${t.name} has rows of ${t.ne[0]}, not a multiple of 32`);
    // a type we do not size: keep what lies up to the next tensor, so the file still opens (tensorToF32 names the type)
    if (bytes === undefined) bytes = 0;
    const begin = dataStart + t.offset;
    if (begin + bytes > buf.length) {
      throw bad(`tensor ${t.name} (${ggmlTypeName(t.type)}, ne [${t.ne}]) runs past the end of the file; it is truncated`);
    }
    if (tensors.has(t.name)) throw bad(`tensor ${t.name} appears twice`);
    tensors.set(t.name, { name: t.name, type: t.type, ne: t.ne, data: buf.subarray(begin, begin + bytes) });
  }
  return { version, metadata, tensors };
}

// The shortest decimal that rounds to the same float32 (1e-5 stored as f32 reads back as 1e-5, not 9.99999974e-6).
function shortestF32(x: number): number {
  for (let digits = 1; digits <= 9; digits++) {
    const y = Number(x.toPrecision(digits));
    if (Math.fround(y) === x) return y;
  }
  return x;
}

// ---- conversions

/** A tensor's values as float32 (F32, F16, BF16, Q8_0); other types are an error naming the type. */
export function tensorToF32(t: GgufTensor, what = 'GGUF'): Float32Array {
  const n = t.ne.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const src = t.data;
  if (t.type === GGML_TYPE.F32) {
    new Uint8Array(out.buffer).set(src);
  } else if (t.type === GGML_TYPE.F16 || t.type === GGML_TYPE.BF16) {
    const u16 = new Uint16Array(n);
    new Uint8Array(u16.buffer).set(src);
    if (t.type === GGML_TYPE.BF16) {
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
    } else {
      for (let i = 0; i < n; i++) out[i] = halfToFloat(u16[i]);
    }
  } else if (t.type === GGML_TYPE.Q8_0) {
    const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
    for (let b = 0; b < n / QK8_0; b++) {
      const d = halfToFloat(dv.getUint16(b * 34, true));
      for (let j = 0; j < QK8_0; j++) out[b * QK8_0 + j] = d * dv.getInt8(b * 34 + 2 + j);
    }
  } else {
    throw new UserError(`${what}: tensor ${t.name} is ${ggmlTypeName(t.type)}, which chatwright cannot load yet (F32, F16, BF16 and Q8_0 load)`,
      'convert the model to f16 or q8_0 with llama.cpp\'s llama-quantize, or load the Hugging Face safetensors folder');
  }
  return out;
}

export function f32Bytes(x: Float32Array): Uint8Array {
  return new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
}

export function toF16Bytes(x: Float32Array): Uint8Array {
  const u16 = new Uint16Array(x.length);
  for (let i = 0; i < x.length; i++) u16[i] = floatToHalf(x[i]);
  return new Uint8Array(u16.buffer);
}

// ggml's quantize_row_q8_0_ref (ggml/src/ggml-quants.c): per block of 32, d = max|x| / 127, q = round(x / d) (half
// away from zero, as C's roundf), d stored as f16.
export function toQ8_0Bytes(x: Float32Array): Uint8Array {
  if (x.length % QK8_0 !== 0) throw new Error(`toQ8_0Bytes: ${x.length} values is not a multiple of ${QK8_0}`);
  const nb = x.length / QK8_0;
  const out = new Uint8Array(nb * 34);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    let amax = 0;
    for (let j = 0; j < QK8_0; j++) amax = Math.max(amax, Math.abs(x[b * QK8_0 + j]));
    const d = Math.fround(amax / 127);
    const id = d ? Math.fround(1 / d) : 0;
    dv.setUint16(b * 34, floatToHalf(d), true);
    for (let j = 0; j < QK8_0; j++) {
      const v = Math.fround(x[b * QK8_0 + j] * id);
      dv.setInt8(b * 34 + 2 + j, Math.sign(v) * Math.round(Math.abs(v)));
    }
  }
  return out;
}
