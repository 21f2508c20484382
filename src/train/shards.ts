// Token shards: the on-disk form of a tokenized corpus. This module knows bytes and token ids, not text.
//
// A shard file (`train_000.bin`, `val_000.bin`) is a 32-byte little-endian header, then the ids:
//   0  8 bytes  magic "CWTOKENS"
//   8  uint32   version (1)
//  12  uint32   bytes per token: 2 (uint16, vocab <= 65536) or 4 (uint32)
//  16  uint64   token count
//  24  8 bytes  reserved (zero)
// Documents are separated by the beginning-of-text token: each document is written as [bos, ...ids].
// `manifest.json` lists the shards of each split with their counts; it is written LAST, so its existence means the
// preparation completed (nanochat's dataset download does the same).
//
// Reading checks everything before it sizes anything from it: the manifest's fields and counts (and that each shard
// file is as long as its count says), the shard headers, and every token id against the vocabulary, naming the file.
//
// API: ShardWriter (append documents, flush shards), readShard(path), writeManifest/readManifest(dir),
// loadSplit(dir, 'train' | 'val') -> one concatenated TokenArray, unigramEntropy(tokens, vocabSize).
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readFileChecked, readJson, writeFileAtomic, writeJsonAtomic } from '../util/fsx.js';

export const SHARD_MAGIC = 'CWTOKENS';
export const SHARD_VERSION = 1;
export const HEADER_BYTES = 32;
export const MANIFEST = 'manifest.json';

export type TokenArray = Uint16Array | Uint32Array;
export type Split = 'train' | 'val';

export interface ShardInfo { file: string; tokens: number; documents: number }
export interface Manifest {
  format: 'chatwright-shards';
  version: number;
  vocabSize: number;
  bos: number;
  dtype: 'uint16' | 'uint32';
  tokenizer: string | null;      // the tokenizer's directory, relative to the data directory (a copy is kept there)
  sources: string[];             // corpus names or paths
  valFraction: number;
  train: ShardInfo[];
  val: ShardInfo[];
}

export function dtypeFor(vocabSize: number): 'uint16' | 'uint32' {
  return vocabSize <= 65536 ? 'uint16' : 'uint32';
}

export function encodeShard(ids: ArrayLike<number>, dtype: 'uint16' | 'uint32'): Uint8Array {
  const width = dtype === 'uint16' ? 2 : 4;
  const buf = new Uint8Array(HEADER_BYTES + ids.length * width);
  const dv = new DataView(buf.buffer);
  for (let i = 0; i < 8; i++) buf[i] = SHARD_MAGIC.charCodeAt(i);
  dv.setUint32(8, SHARD_VERSION, true);
  dv.setUint32(12, width, true);
  dv.setBigUint64(16, BigInt(ids.length), true);
  const max = dtype === 'uint16' ? 0xffff : 0xffffffff;
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (!(id >= 0 && id <= max && Number.isInteger(id))) throw new Error(`token id ${id} does not fit in ${dtype}`);
    if (width === 2) dv.setUint16(HEADER_BYTES + 2 * i, id, true);
    else dv.setUint32(HEADER_BYTES + 4 * i, id, true);
  }
  return buf;
}

export function readShard(path: string): TokenArray {
  const raw = readFileChecked(path, 'token shard', 'run `chatwright data prepare` again');
  const bad = (why: string) =>
    new UserError(`not a valid token shard (${why}): ${path}`, 'run `chatwright data prepare` again to rebuild the shards');
  if (raw.length < HEADER_BYTES) throw bad('shorter than its header');
  if (raw.subarray(0, 8).toString('latin1') !== SHARD_MAGIC) throw bad('bad magic');
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.length);
  const version = dv.getUint32(8, true);
  if (version !== SHARD_VERSION) throw bad(`version ${version}, expected ${SHARD_VERSION}`);
  const width = dv.getUint32(12, true);
  if (width !== 2 && width !== 4) throw bad(`token width ${width}`);
  const count = Number(dv.getBigUint64(16, true));
  if (raw.length !== HEADER_BYTES + count * width) throw bad(`${raw.length} bytes for ${count} tokens of ${width} bytes`);
  // copy into an aligned buffer (the file buffer may not be aligned to the token width); assumes a little-endian host
  const bytes = new Uint8Array(count * width);
  bytes.set(raw.subarray(HEADER_BYTES));
  return width === 2 ? new Uint16Array(bytes.buffer) : new Uint32Array(bytes.buffer);
}

// Accumulates documents of one split and writes a shard each time `shardTokens` tokens have gathered.
export class ShardWriter {
  private buf: number[] = [];
  private docs = 0;
  readonly shards: ShardInfo[] = [];
  tokens = 0;
  documents = 0;

  constructor(
    private readonly dir: string,
    private readonly split: Split,
    private readonly dtype: 'uint16' | 'uint32',
    private readonly bos: number,
    private readonly shardTokens = 1 << 24,
  ) {}

  add(ids: ArrayLike<number>): void {
    this.buf.push(this.bos);
    for (let i = 0; i < ids.length; i++) this.buf.push(ids[i]);
    this.docs++;
    this.documents++;
    this.tokens += ids.length + 1;
    if (this.buf.length >= this.shardTokens) this.flush();
  }

  flush(): void {
    if (this.buf.length === 0) return;
    const file = `${this.split}_${String(this.shards.length).padStart(3, '0')}.bin`;
    writeFileAtomic(join(this.dir, file), encodeShard(this.buf, this.dtype));
    this.shards.push({ file, tokens: this.buf.length, documents: this.docs });
    this.buf = [];
    this.docs = 0;
  }
}

export function writeManifest(dir: string, m: Manifest): void {
  writeJsonAtomic(join(dir, MANIFEST), m);
}

export function readManifest(dir: string): Manifest {
  const hint = `prepare the data first: chatwright data prepare --corpus chinese-poetry --tokenizer DIR --out ${dir}`;
  if (!existsSync(dir)) throw new UserError(`data directory not found: ${dir}`, hint);
  const path = join(dir, MANIFEST);
  if (!existsSync(path)) {
    throw new UserError(`no ${MANIFEST} in ${dir}: the data preparation did not complete or never ran`, hint);
  }
  return validateManifest(readJson(path, 'data manifest', hint), path, hint);
}

// Every field the loader and the stages read, checked where the manifest is parsed.
export function validateManifest(m: any, path: string, hint: string): Manifest {
  const bad = (what: string) => new UserError(`${path}: ${what}`, hint);
  if (typeof m !== 'object' || m === null || m.format !== 'chatwright-shards') throw bad('not a chatwright shard manifest');
  if (m.version !== 1) throw bad(`version ${JSON.stringify(m.version)} is not 1`);
  if (!(Number.isInteger(m.vocabSize) && m.vocabSize >= 1 && m.vocabSize <= 2 ** 32)) throw bad(`vocabSize ${JSON.stringify(m.vocabSize)} is not a whole number in [1, 2^32]`);
  if (m.dtype !== dtypeFor(m.vocabSize)) throw bad(`dtype ${JSON.stringify(m.dtype)} does not hold a vocabulary of ${m.vocabSize} (expected ${dtypeFor(m.vocabSize)})`);
  if (!(Number.isInteger(m.bos) && m.bos >= 0 && m.bos < m.vocabSize)) throw bad(`bos ${JSON.stringify(m.bos)} is not a token id below ${m.vocabSize}`);
  if (m.tokenizer !== null && typeof m.tokenizer !== 'string') throw bad(`tokenizer ${JSON.stringify(m.tokenizer)} is not a folder name`);
  for (const split of ['train', 'val'] as const) {
    if (!Array.isArray(m[split])) throw bad(`"${split}" is not a list of shards`);
    for (const [i, x] of (m[split] as unknown[]).entries()) {
      const s = x as Record<string, unknown> | null;
      const where = `${split}[${i}]`;
      if (typeof s !== 'object' || s === null) throw bad(`${where} is not {file, tokens, documents}`);
      // a plain file name inside the data folder: no path may lead out of it
      if (typeof s.file !== 'string' || !/^[A-Za-z0-9_.-]+$/.test(s.file) || s.file.startsWith('.')) throw bad(`${where}.file ${JSON.stringify(s.file)} is not a shard file name`);
      if (!(Number.isSafeInteger(s.tokens) && (s.tokens as number) >= 0)) throw bad(`${where}.tokens ${JSON.stringify(s.tokens)} is not a count`);
      if (!(Number.isSafeInteger(s.documents) && (s.documents as number) >= 0)) throw bad(`${where}.documents ${JSON.stringify(s.documents)} is not a count`);
    }
  }
  if (!m.train.some((s: ShardInfo) => s.tokens > 0)) throw bad('lists no training tokens');
  return m as Manifest;
}

// All shards of a split, concatenated in order (the corpora here fit in memory: 20 M tokens are 40 MB as uint16).
// Each shard's size on disk is checked against the manifest before the split is allocated, and each id against the
// vocabulary.
export function loadSplit(dir: string, split: Split, m: Manifest = readManifest(dir)): TokenArray {
  const infos = m[split];
  const width = m.dtype === 'uint16' ? 2 : 4;
  const again = 'run `chatwright data prepare` again';
  let total = 0;
  for (const s of infos) {
    const path = join(dir, s.file);
    let size = -1;
    try {
      size = statSync(path).size;
    } catch {
      throw new UserError(`token shard not found: ${path} (listed in ${MANIFEST})`, again);
    }
    if (size !== HEADER_BYTES + s.tokens * width) {
      throw new UserError(`shard ${path} is ${size} bytes; ${MANIFEST} says ${s.tokens} tokens of ${width} bytes (${HEADER_BYTES + s.tokens * width} bytes)`, again);
    }
    total += s.tokens;
  }
  const out = m.dtype === 'uint16' ? new Uint16Array(total) : new Uint32Array(total);
  let off = 0;
  for (const s of infos) {
    const path = join(dir, s.file);
    const t = readShard(path);
    if (t.length !== s.tokens || (t instanceof Uint16Array) !== (out instanceof Uint16Array)) {
      throw new UserError(`shard ${path} does not match ${MANIFEST} (${t.length} tokens of ${t.BYTES_PER_ELEMENT} bytes, manifest says ${s.tokens} of ${width})`, again);
    }
    for (let i = 0; i < t.length; i++) {
      if (t[i] >= m.vocabSize) throw new UserError(`shard ${path} holds token id ${t[i]} at position ${i}, outside the vocabulary of ${m.vocabSize}`, again);
    }
    out.set(t, off);
    off += t.length;
  }
  return out;
}

// Unigram entropy of the token stream, in nats: -sum_v p(v) ln p(v) with p from the counts. A model that has learned
// nothing but token frequencies reaches exactly this cross-entropy, so a loss below it means context is being used.
export function unigramEntropy(tokens: TokenArray, vocabSize: number): number {
  const counts = new Float64Array(vocabSize);
  for (let i = 0; i < tokens.length; i++) counts[tokens[i]]++;
  let h = 0;
  for (let v = 0; v < vocabSize; v++) {
    if (counts[v] > 0) {
      const p = counts[v] / tokens.length;
      h -= p * Math.log(p);
    }
  }
  return h;
}
