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
// API: ShardWriter (append documents, flush shards), readShard(path), writeManifest/readManifest(dir),
// loadSplit(dir, 'train' | 'val') -> one concatenated TokenArray, unigramEntropy(tokens, vocabSize).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UserError } from '../util/errors.js';
import { readJson, writeFileAtomic, writeJsonAtomic } from '../util/fsx.js';

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
  if (!existsSync(path)) throw new UserError(`token shard not found: ${path}`, 'run `chatwright data prepare` again');
  const raw = readFileSync(path);
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
  const m = readJson(path, 'data manifest', hint) as Manifest;
  if (m.format !== 'chatwright-shards' || !Array.isArray(m.train) || !Array.isArray(m.val) || !(m.vocabSize > 0)) {
    throw new UserError(`${path} is not a chatwright shard manifest`, hint);
  }
  return m;
}

// All shards of a split, concatenated in order (the corpora here fit in memory: 20 M tokens are 40 MB as uint16).
export function loadSplit(dir: string, split: Split, m: Manifest = readManifest(dir)): TokenArray {
  const infos = m[split];
  const total = infos.reduce((s, x) => s + x.tokens, 0);
  const out = m.dtype === 'uint16' ? new Uint16Array(total) : new Uint32Array(total);
  let off = 0;
  for (const s of infos) {
    const t = readShard(join(dir, s.file));
    if (t.length !== s.tokens || (t instanceof Uint16Array) !== (out instanceof Uint16Array)) {
      throw new UserError(`shard ${s.file} does not match ${MANIFEST} (${t.length} tokens, manifest says ${s.tokens})`,
        'run `chatwright data prepare` again');
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
