// The safetensors file format (https://github.com/huggingface/safetensors, README "Format"): bytes only, no model
// knowledge. Layout: 8-byte little-endian u64 header length N, N bytes of JSON header
// {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the data buffer; offsets
// are relative to the start of the data buffer.
// Load: F32, F16, BF16, F64 (converted to float32). Save: F32. Malformed files are UserErrors naming the problem.
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { endianness } from 'node:os';
import { UserError } from '../util/errors.js';
import { parseJson, readFileChecked, writeFileAtomic } from '../util/fsx.js';

export interface StTensor { dtype: string; shape: number[]; data: Float32Array }

const DTYPE_SIZE: Record<string, number> = { F32: 4, F16: 2, BF16: 2, F64: 8 };
const MAX_HEADER = 100 * 1024 * 1024; // the reference implementation's limit

if (endianness() !== 'LE') throw new Error('safetensors.ts assumes a little-endian host');

// Opens a file to read, or a UserError naming it (missing, a folder, no permission), as readFileChecked does.
function openChecked(path: string): number {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    readFileChecked(path, 'safetensors file'); // throws the named error
    throw e;
  }
  if (fstatSync(fd).isDirectory()) {
    closeSync(fd);
    throw new UserError(`safetensors file ${path} is a folder, not a file`);
  }
  return fd;
}

// Reads tensor by tensor from the file (never the whole file at once: checkpoints pass Node's 2 GiB read limit).
export function readSafetensors(path: string): Map<string, StTensor> {
  const fd = openChecked(path);
  try {
    const size = fstatSync(fd).size;
    const read = (pos: number, n: number): Uint8Array => {
      const b = Buffer.alloc(n);
      let o = 0;
      while (o < n) {
        const k = readSync(fd, b, o, n - o, pos + o);
        if (k === 0) break;
        o += k;
      }
      return b.subarray(0, o);
    };
    const { entries, dataStart } = parseHeader(read(0, 8), (n) => read(8, n), size, path);
    const out = new Map<string, StTensor>();
    for (const e of entries) out.set(e.name, { dtype: e.dtype, shape: e.shape, data: decode(read(dataStart + e.begin, e.end - e.begin), e.dtype, e.count) });
    return out;
  } finally {
    closeSync(fd);
  }
}

/** The header alone: each tensor's dtype and shape, and __metadata__ (no tensor data is read). */
export function readSafetensorsHeader(path: string): { tensors: Map<string, { dtype: string; shape: number[] }>; metadata: Record<string, string> } {
  const fd = openChecked(path);
  try {
    const read = (pos: number, n: number): Uint8Array => {
      const b = Buffer.alloc(n);
      const k = readSync(fd, b, 0, n, pos);
      return b.subarray(0, k);
    };
    const { entries, metadata } = parseHeader(read(0, 8), (n) => read(8, n), fstatSync(fd).size, path);
    return { tensors: new Map(entries.map((e) => [e.name, { dtype: e.dtype, shape: e.shape }])), metadata };
  } finally {
    closeSync(fd);
  }
}

export function readSafetensorsMetadata(path: string): Record<string, string> {
  return readSafetensorsHeader(path).metadata;
}

interface Entry { name: string; dtype: string; shape: number[]; count: number; begin: number; end: number }

// first8: the file's first 8 bytes; headerOf(n): the n header bytes after them; fileLen: the whole file's length.
function parseHeader(first8: Uint8Array, headerOf: (n: number) => Uint8Array, fileLen: number, what: string) {
  const bad = (msg: string) => new UserError(`malformed safetensors file ${what}: ${msg}`,
    'the file is truncated or not a safetensors file; save it again or re-download it');
  if (fileLen < 8 || first8.length < 8) throw bad(`file is ${fileLen} bytes, shorter than the 8-byte header length`);
  const n = Number(new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true));
  if (n > MAX_HEADER) throw bad(`header length ${n} exceeds the ${MAX_HEADER}-byte limit`);
  if (8 + n > fileLen) throw bad(`header length ${n} runs past the end of the file (${fileLen} bytes)`);
  const hb = headerOf(n);
  let header: any;
  try {
    header = parseJson(Buffer.from(hb.buffer, hb.byteOffset, hb.byteLength).toString('utf8'), 'header');
  } catch (e) {
    throw bad((e as Error).message);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw bad('header is not a JSON object');
  const metadata: Record<string, string> = header.__metadata__ ?? {};
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw bad('__metadata__ is not an object');
  for (const [k, v] of Object.entries(metadata)) if (typeof v !== 'string') throw bad(`__metadata__ "${k}" is not a string`);
  const dataStart = 8 + n, dataLen = fileLen - 8 - n;
  const entries: Entry[] = [];
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
    entries.push({ name, dtype, shape: shape.slice(), count, begin, end });
  }
  const spans = [...entries].sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    if (spans[i].begin < spans[i - 1].end) throw bad(`tensors "${spans[i - 1].name}" and "${spans[i].name}" overlap`);
  }
  return { entries, metadata, dataStart };
}

export function parseSafetensors(buf: Uint8Array, what = '<buffer>'): Map<string, StTensor> {
  const { entries, dataStart } = parseHeader(buf.subarray(0, 8), (n) => buf.subarray(8, 8 + n), buf.length, what);
  const out = new Map<string, StTensor>();
  for (const e of entries) {
    out.set(e.name, { dtype: e.dtype, shape: e.shape, data: decode(buf.subarray(dataStart + e.begin, dataStart + e.end), e.dtype, e.count) });
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

// number -> binary16 bits, round to nearest even (GGUF f16 export; tests make F16 files with it)
const halfScratch = new Float32Array(1);
const halfBits = new Uint32Array(halfScratch.buffer);
export function floatToHalf(x: number): number {
  halfScratch[0] = x;
  const u = halfBits[0];
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

// A weight of 1e8 or more is no trained value (they stay within ~1e3): such a file is corrupt, and its products would
// overflow float32 into Inf and NaN logits. NaN fails the comparison too. Throws a UserError naming the file (`what`),
// the tensor and the first such value.
const MAX_ABS_WEIGHT = 1e8;
export function checkPlausibleWeights(what: string, tensor: string, x: Float32Array): void {
  for (let i = 0; i < x.length; i++) {
    if (!(Math.abs(x[i]) < MAX_ABS_WEIGHT)) {
      throw new UserError(`${what}: tensor ${tensor} holds ${x[i]} at index ${i} (of ${x.length}); weights are finite and below ${MAX_ABS_WEIGHT} in size`,
        'the weights are corrupt, or the training run that wrote them diverged; use an earlier checkpoint');
    }
  }
}
