// The safetensors file format (https://github.com/huggingface/safetensors, README "Format"): bytes only, no model
// knowledge. Layout: 8-byte little-endian u64 header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the data buffer; offsets
// are relative to the start of the data buffer.
// Load: F32, F16, BF16, F64 (converted to float32). Save: F32. Malformed files are UserErrors naming the problem.
import { endianness } from 'node:os';
import { UserError } from '../util/errors.js';
import { parseJson, readFileChecked, writeFileAtomic } from '../util/fsx.js';

export interface StTensor { dtype: string; shape: number[]; data: Float32Array }

const DTYPE_SIZE: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const MAX_HEADER = 100 * 1024 * 1024; // the reference implementation's limit

if (endianness() !== 'LE') throw new Error('safetensors.ts assumes a little-endian host');

export function readSafetensors(path: string): Map<string, StTensor> {
  return parseSafetensors(readFileChecked(path, 'safetensors file'), path);
}

export function readSafetensorsMetadata(path: string): Record<string, string> {
  return parseHeader(readFileChecked(path, 'safetensors file'), path).metadata;
}

function parseHeader(buf: Uint8Array, what: string) {
  const bad = (msg: string) => new UserError(`malformed safetensors file ${what}: ${msg}`,
    'the file is truncated or not a safetensors file; save it again or re-download it');
  if (buf.length < 8) throw bad(`file is ${buf.length} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (n > MAX_HEADER) throw bad(`header length ${n} exceeds the ${MAX_HEADER}-byte limit`);
  if (8 + n > buf.length) throw bad(`header length ${n} runs past the end of the file (${buf.length} bytes)`);
  let header: any;
  try {
    header = parseJson(Buffer.from(buf.buffer, buf.byteOffset + 8, n).toString('utf8'), 'header');
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad('header is not a JSON object');
  const metadata: Record<string, string> = header.__metadata__ ?? {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw bad('__metadata__ is not an object');
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw bad(`__metadata__ "${k}" is not a string`);
  return { header, metadata, dataStart: 8 + n, dataLen: buf.length - 8 - n, bad };
}

export function parseSafetensors(buf: Uint8Array, what = '<buffer>'): Map<string, StTensor> {
  const { header, dataStart, dataLen, bad } = parseHeader(buf, what);
  const spans: { name: string; begin: number; end: number }[] = [];
  const out = new Map<string, StTensor>();
  for (const [name, info] of Object.entries<any>(header)) {
    if (name === '__metadata__') continue;
    if (!info || typeof info !== 'object') throw bad(`tensor "${name}" has no {dtype, shape, data_offsets}`);
    const { dtype, shape, data_offsets: offs } = info;
    if (typeof dtype !== 'string' || !Object.hasOwn(DTYPE_SIZE, dtype)) {
      throw bad(`tensor "${name}" has unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`);
    }
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw bad(`tensor "${name}" has an invalid shape ${JSON.stringify(shape)}`);
    }
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1]) {
      throw bad(`tensor "${name}" has invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    if (end > dataLen) {
      throw bad(`tensor "${name}" data_offsets [${begin}, ${end}] run past the data buffer (${dataLen} bytes); the file is truncated`);
    }
    const count = shape.reduce((a: number, b: number) => a * b, 1);
    if (end - begin !== count * DTYPE_SIZE[dtype]) {
      throw bad(`tensor "${name}" has ${end - begin} bytes but shape [${shape}] of ${dtype} needs ${count * DTYPE_SIZE[dtype]}`);
    }
    spans.push({ name, begin, end });
    out.set(name, { dtype, shape: shape.slice(), data: decode(buf.subarray(dataStart + begin, dataStart + end), dtype, count) });
  }
  spans.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].begin < spans[i - 1].end) throw bad(`tensors "${spans[i - 1].name}" and "${spans[i].name}" overlap`);
  }
  return out;
}

function decode(bytes: Uint8Array, dtype: string, n: number): Float32Array {
  const out = new Float32Array(n);
  if (dtype === 'F32') {
    new Uint8Array(out.buffer).set(bytes); // copy: the source may not be 4-byte aligned
  } else if (dtype === 'F64') {
    const tmp = new Float64Array(n);
    new Uint8Array(tmp.buffer).set(bytes);
    out.set(tmp);
  } else {
    const u16 = new Uint16Array(n);
    new Uint8Array(u16.buffer).set(bytes);
    if (dtype === 'BF16') {
      // bfloat16 is the top half of a float32
      const u32 = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u32[i] = u16[i] << 16;
    } else {
      for (let i = 0; i < n; i++) out[i] = halfToFloat(u16[i]);
    }
  }
  return out;
}

// IEEE 754 binary16 -> number (subnormals, infinities and NaN included)
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * f * 2 ** -24;
  if (e === 31) return f ? NaN : s * Infinity;
  return s * (1 + f / 1024) * 2 ** (e - 15);
}

// number -> binary16 bits, round to nearest even (used by tests to make F16 files)
export function floatToHalf(x: number): number {
  const f32 = new Float32Array([x]);
  const u = new Uint32Array(f32.buffer)[0];
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  let mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let h = mant >> shift;
    const rem = mant & ((1 << shift) - 1), half = 1 << (shift - 1);
    if (rem > half || (rem === half && (h & 1))) h++;
    return sign | h;
  }
  let h = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++;
  return sign | h;
}

// Writes F32 tensors in the given order, header padded with spaces to a multiple of 8 so the data is aligned.
// transformers' from_pretrained wants __metadata__.format == "pt".
export function writeSafetensors(
  path: string, tensors: Map<string, { shape: number[]; data: Float32Array }>, metadata: Record<string, string> = { format: 'pt' },
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata));
}

export function encodeSafetensors(
  tensors: Map<string, { shape: number[]; data: Float32Array }>, metadata: Record<string, string> = { format: 'pt' },
): Uint8Array[] {
  const header: Record<string, unknown> = { __metadata__: metadata };
  const parts: Uint8Array[] = [];
  let off = 0;
  for (const [name, t] of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) {
      throw new Error(`writeSafetensors: tensor "${name}" has ${t.data.length} values but shape [${t.shape}] needs ${count}`);
    }
    header[name] = { dtype: 'F32', shape: t.shape, data_offsets: [off, off + t.data.byteLength] };
    parts.push(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    off += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((Buffer.byteLength(json) + 8) % 8)) % 8);
  const hbytes = Buffer.from(json, 'utf8');
  const len = new Uint8Array(8);
  new DataView(len.buffer).setBigUint64(0, BigInt(hbytes.length), true);
  return [len, hbytes, ...parts];
}
